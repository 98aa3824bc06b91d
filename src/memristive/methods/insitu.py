"""Threshold-gated in-situ training on crossbars, with device-write bookkeeping.

Two write models (``InSituConfig.write_model``), then the training loop:

:class:`PulsedArray` (``write_model="pulsed"``, **default**) — writes go through the device model,
open loop, as a controller that cannot see conductances would issue them. A weight update ``ΔW`` of a
cell is split evenly over its written devices (``W = (G+ − G−)/k``: ``+kΔW/2`` on G+ and ``−kΔW/2`` on
G− for pairs, ``kΔW`` on the single device of a reference-column cell) and rounded to whole pulses::

    n_side = round(±k·ΔW / (sides·ΔG_pulse))                 signed pulse count per device
    G     ← memristor.pulse(G, n)                            when the memristor has a pulse response
    G     ← G + sign(n)·ΔG_pulse·max(|n| + η·√|n|·ξ, 0)      otherwise (bounded linear device, below)
    G     ← inside [G_min, G_max]                            a pulse cannot drive a device past its bounds
    stuck devices never move (their pulses are counted as blocked)

A memristor with a pulse response (``has_pulse_response``, e.g. the ``memristive.devices.pulsed``
models) defines its own step, nonlinearity, bounds and noise; the controller's ``ΔG_pulse`` is then its
estimate of one nominal pulse (the mean step of a mid-range device, measured once through
``memristor.pulse``), and ``pulses``/``write_noise`` must be left null. Otherwise (a bounded linear
device): ``ΔG_pulse = (G_max − G_min)/pulses`` (``pulses`` per full range, default 100) and ``η`` the
pulse-to-pulse write noise (``write_noise``, default 0.03: the noise factor of the DTGA paper's device,
the only pulse-noise figure in this project's sources; the calibration paper gives none). The train
of ``n`` pulses has the spread of ``n`` independent pulses (:func:`memristive.devices.vteam.train_drive`).
Each device starts from the conductance it was programmed to, variation included; updates below half
a pulse are lost (the controller keeps no per-device memory), which is what makes the threshold and
the pulse size matter. Writes (pulse trains) and pulses are counted per device.

:class:`DeviceArray` (``write_model="exact"``, the earlier reconstruction) — for every device (all
Monte Carlo trials at once)::

    G = γ · s            s: nominal programmed state in [G_min, G_max] on the device's levels
                         γ: persistent device-to-device gain, γ = G_programmed / s at programming time
                            (exp(θ) for lognormally varied devices, 1 otherwise)
    stuck devices        never move: G stays at its stuck value whatever is written

A write of a weight update ΔW goes through the controller's digital copy of the intended weights::

    W_int ← clip(W_int + ΔW, −w_max, w_max)       w_max: the mapping's range (fixed k; a device
                                                  cannot be driven beyond its bounds)
    t     ← levels(mapping(W_int))                device targets by the crossbar's own mapping
    s     ← t  on every non-stuck device whose target changed   (one write each, counted)

so written values always obey the device's range and levels, and stuck devices cannot move. The
controller does not know which devices are defective; open-loop writes keep each device's gain γ
(``write_variation="persistent"``). With ``write_variation="redraw"`` a variation-affected device
(γ ≠ 1 at programming) instead lands at a fresh ``γ = exp(σ·ξ)``, ``σ ~ U[0.6, 1.0]`` fixed per device,
on every write: cycle-to-cycle variation that in-situ training cannot learn away.

:func:`insitu_train` — the calibration paper's loop (Du, Peng & Liu 2023, Fig. 4): MAC on the array,
calibrate (:mod:`memristive.methods.calibration`), compare the calibrated output with the standard
(ideal digital) output, and where they differ by more than ``threshold`` train in situ (backprop in
software, ΔW = −lr·∂L/∂Ŵ written to the devices), re-calibrate, repeat until every training sample is
within the threshold or the epoch budget is spent.

What the loop reads (counted per trial in ``insitu_train``'s ``reads``): the array's outputs for the
training inputs (one forward MVM per sample and layer), transposed reads for the backward pass (one
per sample and layer after the first: ``δ·Ŵᵀ``), and the standard inputs' responses ``δ'`` after every
write (``K`` per layer). The gradient ``∂L/∂Ŵ = (x − x_STD)ᵀ·δ`` is formed from these and the inputs,
never from the conductances. ``loss="standard"`` and the output gate also run the digital reference
network on every sample (counted as ``reference_forward``): information beyond the array.

Gates (:class:`InSituConfig` ``gate``):

======  =========================================================================================
output  per sample and trial: d = max_j |softmax(V̂_out)_j − softmax(V_out^ideal)_j|; only samples
        with d > threshold contribute to the update (the paper's comparison; probabilities make the
        1e-2 threshold scale-free)
update  per device pair: only |ΔW| > threshold is written (Xia et al. 2017 threshold training)
both    both gates;  none: no gate (plain in-situ SGD)
======  =========================================================================================

Losses: ``labels`` (default) — cross-entropy against the dataset labels; ``standard`` —
cross-entropy of the array's output against the standard output's probabilities (distillation from
the digital reference network, the earlier reconstruction's reading of "compare with the standard output").

Endurance (``InSituConfig.endurance``, default off): every write is charged to the written devices
through :class:`memristive.endurance.Wear` — a pulsed write charges its pulses, an exact write one
write per device; a written device lands inside its worn window and a device past its failure count
sticks (:mod:`memristive.endurance`). The stats report pulses charged and failed devices.

Defaults: ``write_model="pulsed"``, ``gate="update"`` (the threshold gates each device pair's write),
``loss="labels"``. The earlier reconstruction is ``write_model="exact", gate="output", loss="standard",
lr=0.6`` (``configs/calibration-fig6-exact.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from tqdm.auto import tqdm

import math

from ..config import ConfigError, check
from ..crossbar import Crossbar
from ..devices.vteam import train_drive
from ..endurance import Endurance, Wear, as_endurance, wear_stats
from ..quantizer import quantize_levels
from .calibration import CalibratedLinear, calibrated_layers, standard_mode

__all__ = ["DeviceArray", "PulsedArray", "InSituConfig", "insitu_train", "output_gate", "update_gate", "gather_rows",
           "linear_pulse_response", "WRITE_MODELS"]

GATES = ("output", "update", "both", "none")
WRITE_MODELS = ("pulsed", "exact")


def linear_pulse_response(g: torch.Tensor, n: torch.Tensor, dg: float, noise: float, g_min: float, g_max: float,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """A bounded linear device after ``n`` signed pulses (``n > 0`` raises G), all cells at once::

        G' = G + sign(n)·ΔG·max(|n| + η·√|n|·ξ, 0)      ξ ~ N(0, 1) per cell and write
        G' kept inside [min(G_min, G), max(G_max, G)]   (a pulse cannot push a device past its bounds)

    ``dg`` = ΔG per pulse (siemens), ``noise`` = η. Cells with ``n = 0`` are unchanged exactly.
    """
    count = n.abs()
    step, _ = train_drive(torch.as_tensor(dg, dtype=g.dtype, device=g.device), count, noise, "multiplicative", generator)
    g_new = g + n.sign() * step
    return torch.minimum(torch.maximum(g_new, g.clamp(max=g_min)), g.clamp(min=g_max))


def _wears(crossbar: Crossbar, sides, endurance: Endurance | None, seed: int) -> dict:
    """One :class:`Wear` per written side of ``crossbar`` (empty without endurance); failure counts drawn
    on the CPU from ``seed`` (the same devices on every torch device)."""
    if endurance is None:
        return {}
    mem, gen = crossbar.memristor, torch.Generator().manual_seed(int(seed) + 7727)
    out = {}
    for side in sides:
        g = getattr(crossbar, f"g_{side}")
        out[side] = Wear(endurance, mem.g_min, mem.g_max, g.shape, gen, dtype=g.dtype, device=g.device)
    return out


def _weights_for_grad(xb: Crossbar) -> torch.Tensor:
    """The array's weights as a leaf tensor that requires grad, stored as ``(in, T, out)`` so that
    trial-shared inputs multiply it as one GEMM without a layout copy (a ``(T, in, out)`` view)."""
    buf = torch.empty(xb.in_features, xb.trials, xb.out_features, dtype=xb.g_pos.dtype, device=xb.g_pos.device)
    torch.sub(xb.g_pos.permute(1, 0, 2), xb.g_neg_full().permute(1, 0, 2), out=buf)
    buf.mul_(1.0 / xb.k)
    return buf.permute(1, 0, 2).requires_grad_(True)


class PulsedArray:
    """Open-loop pulse writes to a programmed :class:`Crossbar` (``write_model="pulsed"``; module docstring).

    Writing updates the crossbar's ``g_pos``/``g_neg`` buffers in place. The array holds no copy of
    the intended weights: a write is a weight update turned into pulse counts, nothing more.
    """

    def __init__(self, crossbar: Crossbar, pulses: int | None = None, write_noise: float | None = None,
                 seed: int | None = None, endurance: Endurance | dict | None = None) -> None:
        endurance = as_endurance(endurance)
        mem = crossbar.memristor
        if mem.has_pulse_response:  # the device model defines its own pulse step and noise
            check(pulses is None, "pulses", pulses,
                  f"must be null: the memristor ({mem.kind}) has its own pulse response, which sets the step")
            check(write_noise is None, "write_noise", write_noise,
                  f"must be null: the memristor ({mem.kind}) has its own pulse response, which sets the noise")
        else:
            pulses = 100 if pulses is None else pulses
            write_noise = 0.03 if write_noise is None else write_noise
            check(isinstance(pulses, int) and not isinstance(pulses, bool) and pulses >= 1, "pulses", pulses,
                  "must be an integer >= 1 (pulses across the full conductance range)")
            check(isinstance(write_noise, (int, float)) and math.isfinite(write_noise) and write_noise >= 0,
                  "write_noise", write_noise, "must be a finite number >= 0")
            levels = mem.levels
            check(levels is None or pulses == levels - 1, "pulses", pulses,
                  f"must be {levels - 1 if levels else ''}: the memristor has {levels} levels and a pulse steps one level")
        self.xb = crossbar
        self.memristor = mem
        self.mapping = crossbar.mapping
        self.k = crossbar.k
        self.pulses = pulses
        self.write_noise = float(write_noise) if write_noise is not None else None
        self.dg = mem.g_range / pulses if pulses is not None else self._nominal_step(mem, crossbar.g_pos)
        self._sides = tuple(self.mapping.sides)
        self._sign = {"pos": 1.0, "neg": -1.0}  # W = (G+ − G−)/k
        g = crossbar.g_pos
        self._writes = {s: torch.zeros_like(getattr(crossbar, f"g_{s}"), dtype=torch.int32) for s in self._sides}
        self._pulses = {s: torch.zeros_like(getattr(crossbar, f"g_{s}"), dtype=torch.int32) for s in self._sides}
        self._blocked = torch.zeros(crossbar.trials, dtype=torch.int64, device=g.device)
        self._generator = torch.Generator(device=g.device)
        self._generator.manual_seed(int(seed) if seed is not None else crossbar.seed + 104729)
        self.wear = _wears(crossbar, self._sides, endurance, seed if seed is not None else crossbar.seed)

    @staticmethod
    def _nominal_step(mem, like: torch.Tensor) -> float:
        """The controller's estimate of one pulse's step: the mean response of a mid-range device to
        one raising and one lowering pulse (measured once through ``memristor.pulse``, 256 draws)."""
        g = torch.full((256,), mem.g_mid, dtype=torch.float64, device=like.device)
        gen = torch.Generator(device=like.device).manual_seed(0)
        up = mem.pulse(g, torch.ones_like(g), gen) - g
        down = g - mem.pulse(g, -torch.ones_like(g), gen)
        step = 0.5 * float(up.mean() + down.mean())
        if not step > 0:
            raise ValueError(f"{mem.kind}: one pulse does not move a mid-range device; cannot write it in pulses")
        return step

    @property
    def sides(self) -> tuple[str, ...]:
        return self._sides

    @property
    def pulse_weight(self) -> float:
        """The weight change of one pulse on every written device of a cell (``sides·ΔG_pulse/k``)."""
        return len(self._sides) * self.dg / self.k

    def pulse_counts(self, dw: torch.Tensor, which: str) -> torch.Tensor:
        """Signed pulse counts the controller sends to side ``which`` for the update ``dw`` (float, integral)."""
        return torch.round(dw * (self._sign[which] * self.k / (len(self._sides) * self.dg)))

    @torch.no_grad()
    def write(self, dw: torch.Tensor, scale: float = 1.0) -> None:
        """Apply a weight update ``scale·dw`` (``(T, in, out)`` or broadcastable) as pulses."""
        if not torch.isfinite(dw.sum()):
            raise ValueError("PulsedArray.write: the update contains NaN or infinite values")
        self._write(dw, scale)

    def _write(self, dw: torch.Tensor, scale: float = 1.0) -> None:
        xb, mem = self.xb, self.memristor
        dw = dw * scale if scale != 1.0 else dw
        for side in self._sides:
            g = getattr(xb, f"g_{side}")
            n = self.pulse_counts(dw, side).expand_as(g)
            idx = n.nonzero(as_tuple=True)  # only the pulsed devices are touched: few per step
            if idx[0].numel() == 0:
                continue
            n_sel = n[idx]
            stuck_sel = getattr(xb, f"stuck_{side}")[idx]
            if bool(stuck_sel.any()):
                self._blocked.index_add_(0, idx[0][stuck_sel], torch.ones_like(idx[0][stuck_sel]))
                free = ~stuck_sel
                idx, n_sel = tuple(i[free] for i in idx), n_sel[free]
                if idx[0].numel() == 0:
                    continue
            g_sel = g[idx]
            if mem.has_pulse_response:
                new = mem.pulse(g_sel, n_sel, self._generator)
            else:
                new = linear_pulse_response(g_sel, n_sel, self.dg, self.write_noise, mem.g_min, mem.g_max, self._generator)
            if self.wear:  # every pulse is charged; worn devices land inside their window, failed ones stick
                new = self.wear[side].write(g_sel, new, n_sel, index=idx)
            g.index_put_(idx, new)  # in place: the crossbar's version counter moves, caches are invalidated
            self._writes[side].index_put_(idx, torch.ones_like(idx[0], dtype=torch.int32), accumulate=True)
            self._pulses[side].index_put_(idx, n_sel.abs().to(torch.int32), accumulate=True)

    def writes(self, which: str = "pos") -> torch.Tensor:
        """Write events (pulse trains) each device received, ``(T, rows, cols)`` (zero on stuck devices)."""
        return self._writes[which]

    def pulses_sent(self, which: str = "pos") -> torch.Tensor:
        """Pulses each device received, ``(T, rows, cols)``."""
        return self._pulses[which]

    def blocked(self) -> torch.Tensor:
        """Per trial: pulse trains sent to stuck devices (no effect)."""
        return self._blocked

    def weights(self) -> torch.Tensor:
        return self.xb.weights()

    def weights_for_grad(self) -> torch.Tensor:
        return _weights_for_grad(self.xb)

    def write_counts(self) -> dict:
        """Writes and pulses per trial (all devices) and per device (mean, max over devices and trials)."""
        ws = [self._writes[s] for s in self._sides]
        ps = [self._pulses[s] for s in self._sides]
        per_trial = sum(x.sum(dim=(1, 2)) for x in ws)
        pulses = sum(x.sum(dim=(1, 2)) for x in ps)
        n_dev = sum(x[0].numel() for x in ws)
        return {"per_trial": per_trial, "devices": n_dev, "mean_per_device": float(per_trial.double().mean()) / n_dev,
                "max_per_device": max(int(x.max()) for x in ws), "blocked_per_trial": self.blocked(),
                "pulses_per_trial": pulses, "pulses_per_device_mean": float(pulses.double().mean()) / n_dev,
                "pulses_per_device_max": max(int(x.max()) for x in ps), "endurance": wear_stats(self.wear.values())}


class DeviceArray:
    """Writable device state of a programmed :class:`Crossbar` (see the module docstring).

    ``w`` is what the crossbar was programmed with, ``(in, out)`` or per trial ``(T, in, out)``.
    Writing updates the crossbar's ``g_pos``/``g_neg`` buffers, so the crossbar (and any layer
    using it) computes with the new conductances at once.

    Implementation: each device's target is affine in a *drive* ``u`` of its weight (the mapping
    of :mod:`memristive.crossbar.mapping`): differential ``t± = G_min + k·max(±W, 0)``; balanced
    ``t± = G_mid ± (k/2)·W``; reference ``t = G_min + k·(W + w_max)``. So ``G = g_stuck + γ_free·t``
    with ``γ_free = 0`` on stuck devices, and a device is written exactly when its target changes.
    Writes commanded to stuck devices are counted separately (``blocked``): they have no effect.
    """

    def __init__(self, crossbar: Crossbar, w: torch.Tensor, write_variation: str = "persistent",
                 redraw_sigma: tuple[float, float] = (0.6, 1.0), seed: int | None = None,
                 endurance: Endurance | dict | None = None) -> None:
        endurance = as_endurance(endurance)
        cfg = crossbar.config
        check(write_variation in ("persistent", "redraw"), "write_variation", write_variation,
              "must be 'persistent' or 'redraw'")
        self.write_variation = write_variation
        self.xb = crossbar
        self.device = dev = cfg.memristor
        self.mapping = mapping = cfg.mapping
        self.k = crossbar.k
        self.w_max = mapping.w_max_for(self.k, dev)
        T = crossbar.trials
        w = w.detach().to(crossbar.g_pos.dtype)
        self.w_int = (w.unsqueeze(0) if w.dim() == 2 else w).expand(T, -1, -1).clone()
        if self.w_int.shape[1:] != (crossbar.in_features, crossbar.out_features):
            raise ValueError(f"w: shape {tuple(w.shape)} does not match the crossbar "
                             f"({crossbar.in_features}, {crossbar.out_features})")
        if float(self.w_int.abs().max()) > self.w_max * (1 + 1e-5):
            raise ValueError(f"w: |W| reaches {float(self.w_int.abs().max()):.4g}, beyond the crossbar's range "
                             f"w_max={self.w_max:.4g}; pass the weights the crossbar was programmed with")
        self._affine = {side: mapping.affine(side, dev, self.k, self.w_max) for side in mapping.sides}
        self._state = {}
        self._shared = {}  # per drive: the previous drive/targets and the write counter
        for which in self._affine:
            g = getattr(crossbar, f"g_{which}")
            stuck = getattr(crossbar, f"stuck_{which}")
            u = self._drive(self.w_int, which)
            t = self._target(u, which)
            gain = torch.where(stuck | (t <= 0), torch.ones_like(g), g / t.clamp(min=torch.finfo(g.dtype).tiny))
            gain_free = torch.where(stuck, torch.zeros_like(g), gain)
            g_stuck = torch.where(stuck, g, torch.zeros_like(g))
            c0, c1 = self._affine[which]
            st = {"gain_free": gain_free, "g_stuck": g_stuck}
            if dev.levels is None:  # G = base + slope·u in one fused pass per step
                st["base"] = g_stuck + gain_free * c0
                st["slope"] = gain_free * c1
            key = self._drive_key(which)
            if key not in self._shared:
                self._shared[key] = {"prev": t if dev.levels is not None else u,
                                     "writes": torch.zeros_like(g, dtype=torch.int32)}
            st["shared"] = self._shared[key]
            if write_variation == "redraw":  # devices programmed off target are the variation-affected ones
                varied = ~stuck & ((gain - 1).abs() > 1e-6)
                lo, hi = redraw_sigma
                st["sigma"] = torch.where(varied, lo + (hi - lo) * torch.rand(g.shape, generator=self._gen(seed), dtype=g.dtype, device=g.device),
                                          torch.zeros_like(g))
                st["varied"] = varied
            self._state[which] = st
        self.wear = _wears(crossbar, tuple(self._state), endurance, seed if seed is not None else crossbar.seed)

    # ------------------------------------------------------------------ internals
    def _drive(self, w: torch.Tensor, which: str) -> torch.Tensor:
        """A new tensor (it is kept to detect which targets change at the next write)."""
        u = self.mapping.drive(w, which)
        return u.clone() if u is w else u

    def _target(self, u: torch.Tensor, which: str) -> torch.Tensor:
        """Nominal device targets (siemens) for drive ``u``, on the device's levels if it has them."""
        c0, c1 = self._affine[which]
        dev = self.device
        t = (u * c1).add_(c0).clamp_(dev.g_min, dev.g_max)  # the clamp only catches float rounding
        if dev.levels is not None:
            t = quantize_levels(t, dev.g_min, dev.g_max, dev.levels)
        return t

    def _drive_key(self, which: str) -> str:
        """Drives shared by both devices of a pair (balanced, reference) are computed once."""
        if not self.mapping.shared_drive:
            return which  # e.g. offset pairs: G+ follows max(W, 0), G− follows max(−W, 0)
        if len(self.mapping.sides) > 1 and self.device.levels is not None:
            return which  # G_mid ± k·W/2 on levels: the two devices can change at different steps
        return "w"

    def _program_int(self) -> None:
        levels = self.device.levels is not None
        cur_of: dict[str, torch.Tensor] = {}
        for which, st in self._state.items():
            key = self._drive_key(which)
            sh = st["shared"]
            if key not in cur_of:
                u = self._drive(self.w_int, which)
                cur = self._target(u, which) if levels else u
                changed = cur != sh["prev"]
                sh["writes"].add_(changed)
                sh["prev"] = cur
                cur_of[key] = (cur, changed)
            cur, changed = cur_of[key]
            if self.write_variation == "redraw":
                self._redraw(st, which, changed)
            g = getattr(self.xb, f"g_{which}")  # written in place: the crossbar's version counter moves
            wear = self.wear.get(which)
            g_before = g.clone() if wear is not None else None
            if levels:
                torch.addcmul(st["g_stuck"], cur, st["gain_free"], out=g)
            else:
                torch.addcmul(st["base"], cur, st["slope"], out=g)
            if wear is not None:  # one write per changed free device; every device was recomputed, so
                # all are constrained (an unwritten worn device gets the same window as at its last write)
                wear.record((changed & ~getattr(self.xb, f"stuck_{which}")).to(g.dtype))
                g.copy_(wear.constrain(g, g_before)[0])

    def _gen(self, seed: int | None) -> torch.Generator:
        if not hasattr(self, "_generator"):
            self._generator = torch.Generator(device=self.xb.g_pos.device)
            self._generator.manual_seed(int(seed) if seed is not None else self.xb.seed + 104729)
        return self._generator

    def _redraw(self, st: dict, which: str, changed: torch.Tensor) -> None:
        """``write_variation="redraw"``: a variation-affected device lands at a fresh lognormal factor
        ``exp(σ·ξ)`` on every write (cycle-to-cycle), ``σ ~ U[redraw_sigma]`` fixed per device."""
        hit = changed & st["varied"]
        g = st["gain_free"]
        fresh = torch.exp(st["sigma"] * torch.randn(g.shape, generator=self._gen(None), dtype=g.dtype, device=g.device))
        st["gain_free"] = gain = torch.where(hit, fresh, g)
        if "base" in st:
            c0, c1 = self._affine[which]
            st["base"] = st["g_stuck"] + gain * c0
            st["slope"] = gain * c1

    # ------------------------------------------------------------------ API
    @torch.no_grad()
    def write(self, dw: torch.Tensor, scale: float = 1.0) -> None:
        """Apply a weight update ``scale·dw`` (``dw`` ``(T, in, out)`` or broadcastable) to the devices."""
        if not torch.isfinite(dw.sum()):
            raise ValueError("DeviceArray.write: the update contains NaN or infinite values")
        self._write(dw, scale)

    def _write(self, dw: torch.Tensor, scale: float = 1.0) -> None:
        self.w_int.add_(dw, alpha=scale).clamp_(-self.w_max, self.w_max)
        self._program_int()

    @torch.no_grad()
    def program(self, w: torch.Tensor) -> None:
        """(Re)program intended weights ``w`` ``(in, out)`` or ``(T, in, out)``; defects stay where they are."""
        w = w.detach().to(self.w_int.dtype)
        w = (w.unsqueeze(0) if w.dim() == 2 else w).expand_as(self.w_int)
        if not torch.isfinite(w).all():
            raise ValueError("DeviceArray.program: weights contain NaN or infinite values")
        if float(w.abs().max()) > self.w_max * (1 + 1e-6):
            raise ValueError(f"DeviceArray.program: |W| reaches {float(w.abs().max()):.4g}, beyond the "
                             f"array's range w_max={self.w_max:.4g} (fixed when it was first programmed)")
        self.w_int = w.clone().clamp_(-self.w_max, self.w_max)
        self._program_int()

    def nominal(self, which: str = "pos") -> torch.Tensor:
        """Nominal device states ``s`` (G = γ·s; stuck devices: their stuck value)."""
        st = self._state[which]
        t = self._target(self._drive(self.w_int, which), which)
        stuck = getattr(self.xb, f"stuck_{which}")
        return torch.where(stuck, st["g_stuck"], t)

    def writes(self, which: str = "pos") -> torch.Tensor:
        """Writes each device received, ``(T, rows, cols)`` (zero on stuck devices)."""
        st = self._state.get(which)
        if st is None:
            return torch.zeros_like(getattr(self.xb, f"g_{which}"), dtype=torch.int32)
        return st["shared"]["writes"].masked_fill(getattr(self.xb, f"stuck_{which}"), 0)

    def blocked(self) -> torch.Tensor:
        """Per trial: writes commanded to stuck devices (they had no effect)."""
        return sum((st["shared"]["writes"] * getattr(self.xb, f"stuck_{w}")).sum(dim=(1, 2)) for w, st in self._state.items())

    def weights(self) -> torch.Tensor:
        """The weights the array actually holds, ``(T, in, out)``."""
        return self.xb.weights()

    def weights_for_grad(self) -> torch.Tensor:
        """:meth:`weights` as a leaf tensor that requires grad, ``(T, in, out)`` (an ``(in, T, out)`` layout)."""
        return _weights_for_grad(self.xb)

    @property
    def sides(self) -> tuple[str, ...]:
        """The written devices of a cell: ``("pos", "neg")`` for pairs, ``("pos",)`` with a reference column."""
        return tuple(self._state)

    def stuck_values(self, which: str) -> torch.Tensor:
        """Conductances of the stuck devices of side ``which`` (0 elsewhere), ``(T, rows, cols)``."""
        return self._state[which]["g_stuck"]

    def target(self, w: torch.Tensor, which: str) -> torch.Tensor:
        """The mapping target of weights ``w`` for side ``which`` (no levels; differentiable in ``w``)."""
        return self.mapping.target(w, which, self.device, self.k, self.w_max)

    def defects(self) -> torch.Tensor:
        """``(T, rows, cols)`` bool: a written device of the cell is stuck."""
        d = self.xb.stuck_pos.clone()
        if "neg" in self._state:
            d |= self.xb.stuck_neg
        return d

    @torch.no_grad()
    def permute_rows(self, rows: torch.Tensor) -> None:
        """Store crossbar and device state in logical row order: logical row i ← physical row ``rows[:, i]``."""
        xb = self.xb
        for name in ("g_pos", "stuck_pos", "g_neg", "stuck_neg"):  # the reference column has one device per row too
            buf = getattr(xb, name)
            buf.copy_(gather_rows(buf, rows))  # in place, so conductance-derived caches are invalidated
        for st in self._state.values():
            for key, val in list(st.items()):
                if isinstance(val, torch.Tensor):
                    st[key] = gather_rows(val, rows)
        for sh in self._shared.values():
            for key in list(sh):
                sh[key] = gather_rows(sh[key], rows)
        for wear in self.wear.values():
            wear.map_(lambda t: gather_rows(t, rows))
        self.w_int = gather_rows(self.w_int, rows)
        # prev drive/targets belong to the weights each physical row held; w_int moved with them

    def write_counts(self) -> dict:
        """Writes per trial (all devices) and per device (mean, max over devices and trials)."""
        ws = [self.writes(w) for w in self._state]
        per_trial = sum(x.sum(dim=(1, 2)) for x in ws)
        n_dev = sum(x[0].numel() for x in ws)
        return {"per_trial": per_trial, "devices": n_dev, "mean_per_device": float(per_trial.double().mean()) / n_dev,
                "max_per_device": max(int(x.max()) for x in ws), "blocked_per_trial": self.blocked(),
                "endurance": wear_stats(self.wear.values())}


def gather_rows(t: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``out[t, i] = t[t, rows[t, i]]`` for ``(T, rows, cols)`` tensors."""
    return torch.gather(t, 1, rows.unsqueeze(-1).expand(-1, -1, t.shape[-1]))


@dataclass
class InSituConfig:
    """Threshold-gated in-situ training (SGD; the update is ΔW = −lr·∂L/∂Ŵ, L the batch-mean loss).

    ``write_model``: ``pulsed`` (default; :class:`PulsedArray`: pulse-quantized open-loop writes with
    write noise, ``pulses`` per full range, noise ``write_noise``) or ``exact`` (:class:`DeviceArray`:
    the earlier reconstruction, every device lands on its mapping target times its persistent gain).

    ``lr``: chosen on a validation split per write model (docs/results/calibration.md, "lr selection"):
    the pulsed default ``lr=0.3`` at ``batch_size=200``; the earlier reconstruction used ``lr=0.6``.
    """

    epochs: int = 1
    lr: float = 0.3
    batch_size: int = 200
    threshold: float = 1e-2
    gate: Literal["output", "update", "both", "none"] = "update"
    loss: Literal["standard", "labels"] = "labels"
    n_train: int | None = None
    write_model: Literal["pulsed", "exact"] = "pulsed"
    pulses: int | None = None  # null: 100 for a device without a pulse response, else the device's own
    write_noise: float | None = None  # null: 0.03 for a device without a pulse response, else the device's own
    write_variation: Literal["persistent", "redraw"] = "persistent"
    endurance: Endurance | None = None  # null: devices never wear; else every write is charged (module docstring)
    seed: int = 0

    def __post_init__(self) -> None:
        self.endurance = as_endurance(self.endurance, "insitu.endurance")
        check(self.write_model in WRITE_MODELS, "insitu.write_model", self.write_model, f"must be one of {list(WRITE_MODELS)}")
        check(self.write_variation in ("persistent", "redraw"), "insitu.write_variation", self.write_variation,
              "must be 'persistent' or 'redraw'")
        check(self.write_model == "exact" or self.write_variation == "persistent", "insitu.write_variation",
              self.write_variation, "'redraw' belongs to write_model=exact (pulsed writes have write_noise instead)")
        if self.pulses is not None:
            check(isinstance(self.pulses, int) and not isinstance(self.pulses, bool) and self.pulses >= 1, "insitu.pulses",
                  self.pulses, "must be an integer >= 1 (pulses across the full conductance range), or null")
        if self.write_noise is not None:
            check(isinstance(self.write_noise, (int, float)) and math.isfinite(self.write_noise) and self.write_noise >= 0,
                  "insitu.write_noise", self.write_noise, "must be a finite number >= 0, or null")
        check(self.epochs >= 0, "insitu.epochs", self.epochs, "must be >= 0")
        check(self.lr > 0, "insitu.lr", self.lr, "must be > 0")
        check(self.batch_size >= 1, "insitu.batch_size", self.batch_size, "must be >= 1")
        check(self.threshold >= 0, "insitu.threshold", self.threshold, "must be >= 0")
        check(self.gate in GATES, "insitu.gate", self.gate, f"must be one of {list(GATES)}")
        check(self.loss in ("standard", "labels"), "insitu.loss", self.loss, "must be 'standard' or 'labels'")
        if self.n_train is not None:
            check(self.n_train >= 1, "insitu.n_train", self.n_train, "must be >= 1 (or null for all)")


def output_gate(out: torch.Tensor, out_std: torch.Tensor, threshold: float) -> torch.Tensor:
    """``(T, B)`` mask: max_j |softmax(out) − softmax(out_std)| > threshold."""
    d = (torch.softmax(out, -1) - torch.softmax(out_std, -1)).abs().amax(-1)
    return d > threshold


def update_gate(dw: torch.Tensor, threshold: float) -> torch.Tensor:
    """``ΔW`` with every entry of magnitude ``<= threshold`` set to zero (not written)."""
    return torch.where(dw.abs() > threshold, dw, torch.zeros_like(dw))


def insitu_train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: InSituConfig | None = None,
                 arrays: list[DeviceArray] | None = None, progress: bool = True, desc: str = "in-situ") -> dict:
    """Train the arrays of a calibrated model in situ (see the module docstring). Modifies ``model``.

    ``model`` comes from :func:`memristive.methods.calibration.calibrate` (use
    ``CalibrationConfig(standard="none")`` for in-situ training without calibration). ``x``, ``y``
    are training data. Returns statistics: per-epoch gated fraction, write counts, epochs run.
    """
    cfg = config or InSituConfig()
    layers: list[CalibratedLinear] = calibrated_layers(model)
    if not layers:
        raise ValueError("insitu_train: the model has no CalibratedLinear layer; call calibrate() first")
    if arrays is None:
        if cfg.write_model == "pulsed":
            try:
                arrays = [PulsedArray(lay.crossbar, cfg.pulses, cfg.write_noise, seed=cfg.seed + 7 * i,
                                      endurance=cfg.endurance) for i, lay in enumerate(layers)]
            except ConfigError as exc:
                raise ConfigError(f"insitu.{exc}") from None
        else:
            arrays = [DeviceArray(lay.crossbar, lay.w_ref, write_variation=cfg.write_variation, seed=cfg.seed + 7 * i,
                                  endurance=cfg.endurance) for i, lay in enumerate(layers)]
    if len(arrays) != len(layers):
        raise ValueError(f"insitu_train: {len(arrays)} device arrays for {len(layers)} layers")
    if cfg.n_train:
        x, y = x[: cfg.n_train], y[: cfg.n_train]
    dev = layers[0].crossbar.g_pos.device
    T = layers[0].crossbar.trials
    gen = torch.Generator().manual_seed(cfg.seed)
    gate_out = cfg.gate in ("output", "both")
    gate_upd = cfg.gate in ("update", "both")
    need_std = gate_out or cfg.loss == "standard"  # the digital reference network runs on every sample
    history = []
    epochs_run = 0
    n_std = sum(lay.n_standards for lay in layers)
    reads = {"forward": 0, "backward": 0, "calibration": 0, "reference_forward": 0}  # per trial, in MVMs
    for epoch in range(cfg.epochs):
        perm = torch.randperm(len(x), generator=gen)
        gated = torch.zeros(T, dtype=torch.float64)
        loss_sum = torch.zeros(T, dtype=torch.float64)
        bar = tqdm(range(0, len(x), cfg.batch_size), desc=f"{desc} epoch {epoch + 1}/{cfg.epochs}",
                   disable=not progress, leave=False)
        for i in bar:
            idx = perm[i : i + cfg.batch_size]
            xb, yb = x[idx].to(dev), y[idx].to(dev)
            ws = [a.weights_for_grad() for a in arrays]
            for lay, w in zip(layers, ws):
                lay.surrogate = w
            try:
                out = model(xb)
                out_std = None
                if need_std:
                    with torch.no_grad(), standard_mode(model):
                        out_std = model(xb)
            finally:
                for lay in layers:
                    lay.surrogate = None
            reads["forward"] += len(idx) * len(layers)
            reads["reference_forward"] += len(idx) if need_std else 0
            with torch.no_grad():
                mask = output_gate(out, out_std, cfg.threshold) if gate_out else torch.ones(out.shape[:2], dtype=torch.bool, device=dev)
            if cfg.loss == "standard":
                per = -(torch.softmax(out_std, -1) * torch.log_softmax(out, -1)).sum(-1)
            else:
                per = nn.functional.cross_entropy(out.flatten(0, 1), yb.repeat(out.shape[0]), reduction="none").view(out.shape[:2])
            loss_sum += per.detach().sum(1).double().cpu()
            gated += mask.sum(1).double().cpu()
            if not mask.any():
                continue
            loss = (per * mask).sum() / len(idx)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"insitu_train: the loss became {float(loss)} (lower insitu.lr={cfg.lr})")
            grads = torch.autograd.grad(loss, ws)
            reads["backward"] += len(idx) * (len(layers) - 1)  # δ·Ŵᵀ of every layer but the first
            reads["calibration"] += n_std  # δ' re-measured after the write
            with torch.no_grad():
                for a, g in zip(arrays, grads):
                    if gate_upd:
                        a._write(update_gate(-cfg.lr * g, cfg.threshold))
                    else:
                        a._write(g, -cfg.lr)
                for lay in layers:
                    if not lay._ideal_periphery():  # ideal periphery: the surrogate already is the calibrated output
                        lay.recalibrate()
            bar.set_postfix(gated=f"{float(mask.float().mean()):.3f}")
        epochs_run += 1
        frac = gated / len(x)
        history.append({"epoch": epoch + 1, "gated_fraction_mean": round(float(frac.mean()), 5),
                        "gated_fraction_max": round(float(frac.max()), 5),
                        "loss_mean": round(float((loss_sum / len(x)).mean()), 5)})
        if float(gated.max()) == 0:  # every trial within the threshold on every sample: done
            break
    for lay in layers:
        lay.recalibrate()
    writes = [a.write_counts() for a in arrays]
    per_trial = sum(w["per_trial"] for w in writes)
    n_dev = sum(w["devices"] for w in writes)
    out = {
        "epochs_run": epochs_run,
        "history": history,
        "write_model": cfg.write_model,
        "writes_per_trial_mean": float(per_trial.double().mean()),
        "writes_per_device_mean": float(per_trial.double().mean()) / n_dev,
        "writes_per_device_max": max(w["max_per_device"] for w in writes),
        "writes_per_trial": per_trial,
        "reads_per_trial": reads,
    }
    if all("pulses_per_trial" in w for w in writes):
        pulses = sum(w["pulses_per_trial"] for w in writes)
        out["pulses_per_device_mean"] = float(pulses.double().mean()) / n_dev
        out["pulses_per_device_max"] = max(w["pulses_per_device_max"] for w in writes)
    wears = [x for a in arrays for x in getattr(a, "wear", {}).values()]
    if wears:  # endurance on: pulses charged (one per write for the exact model) and failed devices
        out["endurance"] = wear_stats(wears)
    return out
