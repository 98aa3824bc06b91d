"""Programming cost: one-shot write-verify programming of a converted model, and in-situ writes.

One-shot programming (per physical cell, all Monte Carlo instances averaged): every cell starts at
``G_min`` (after a forming/RESET step that is not counted) and is tuned to its programmed conductance
by write-verify pulses of ``ΔG`` each — one device level (``g_range/(levels−1)``) for a device with
levels, else ``tech.step_fraction · g_range``::

    n     = ⌈|G − G_min| / ΔG⌉
    E     = n·V_w²·t_w·(G_min + G)/2  +  n·V_r²·t_r·(G_min + G)/2       (pulses + one verify read each)
    time  = Σ n·(t_w + t_r) / tiles                                     (one cell at a time per tile)

In-situ training: ``n`` writes of ``pulses_per_write`` pulses on a cell at conductance ``G`` cost
``n·p·V_w²·t_w·G`` (open loop, no verify; counts from e.g. ``DeviceArray.write_counts``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..crossbar import Crossbar
from .costs import pulse_train_energy, write_verify_pulses
from .inference import crossbar_layers
from .tech import Technology, technology

__all__ = ["programming_cost", "write_energy"]


def _crossbar_program(xb: Crossbar, tech: Technology) -> dict:
    dev = xb.memristor
    g_min, g_range = float(dev.g_min), float(dev.g_max - dev.g_min)
    levels = getattr(dev, "levels", None)
    step = g_range / (levels - 1) if levels else tech.step_fraction * g_range
    v_read = xb.config.v_read
    pulses = torch.zeros(xb.trials, dtype=torch.float64)
    energy = torch.zeros(xb.trials, dtype=torch.float64)
    for g in (xb.g_pos.detach(), xb.g_neg.detach()):  # physical cells (reference scheme: its columns)
        g = g.double()
        n = write_verify_pulses(torch.full_like(g, g_min), g, step)
        e = pulse_train_energy(n, tech.v_write, tech.t_write, g_min, g) + pulse_train_energy(n, v_read, tech.t_read, g_min, g)
        pulses += n.sum(dim=(-1, -2)).cpu()
        energy += e.sum(dim=(-1, -2)).cpu()
    tiles = xb.counts()["tiles"]
    p, e = float(pulses.mean()), float(energy.mean())
    return {"pulses": p, "energy_j": e, "time_s": p * (tech.t_write + tech.t_read) / tiles,
            "conductance_step_s": step}


def programming_cost(model: nn.Module, tech: "Technology | str | dict | None" = None) -> dict:
    """Write-verify pulses, energy and time to program every crossbar of ``model`` once."""
    tech = technology(tech)
    layers = [{"name": name, **_crossbar_program(xb, tech)} for name, xb in crossbar_layers(model)]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no crossbar layers to cost")
    return {"tech": tech.name, "layers": layers,
            "total": {k: sum(L[k] for L in layers) for k in ("pulses", "energy_j", "time_s")}}


def write_energy(writes: torch.Tensor, g: torch.Tensor, tech: "Technology | str | dict | None" = None,
                 pulses_per_write: int = 1) -> float:
    """Energy of in-situ writes, J: ``writes`` per cell and the cells' conductances ``g`` (broadcasting).

    ``(trials, rows, cols)`` tensors (e.g. ``DeviceArray.writes("pos")`` with ``crossbar.g_pos``) give
    the mean over trials of each trial's total; any other shape gives the total over all cells.
    """
    tech = technology(tech)
    if pulses_per_write < 1:
        raise ValueError(f"pulses_per_write={pulses_per_write}: must be >= 1")
    n = writes.double() * pulses_per_write
    g = g.double()
    e = pulse_train_energy(n, tech.v_write, tech.t_write, g, g)
    if e.dim() == 3:
        return float(e.sum(dim=(-1, -2)).mean())
    return float(e.sum())
