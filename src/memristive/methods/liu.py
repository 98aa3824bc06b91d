"""Defect rescue by retraining and remapping (Liu, Hu, Strachan & Li, "Rescuing memristor-based
neuromorphic design with high defects", DAC 2017) — the comparison method of the calibration paper.

Only the abstract of the DAC paper was available; this is the standard formulation of its two steps
(see ``docs/calibration.md``). The array is tested after programming, so its **defect map** is known:
which devices are stuck and at what conductance. Variation of the other devices is not part of Liu's
defect model: they are assumed to take their mapping targets.

1. **Remapping.** Logical rows ``i`` of each layer (input neurons) are assigned to physical rows
   ``r`` (word lines) by the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``) so that
   significant weights avoid defective cells::

       cost="significance" (Liu):  C[i, r] = Σ_j |w_ij| · d_rj,   d_rj = 1 if a device of (r, j) is stuck
       cost="error":               C[i, r] = Σ_j |w_ij − ŵ_rj(w_ij)|

   where ``ŵ_rj(w)`` is the weight the cell pair at ``(r, j)`` realizes for target ``w`` (below).
   The identity assignment is always feasible, so remapping never increases the cost. Each layer's
   rows are permuted independently: inputs and hidden activations are routed to the assigned rows.
   The remapped crossbar is stored in logical row order (equivalent for a column sum; row remapping
   is refused when per-tile ADCs make row order matter).

2. **Defect-aware retraining.** The network is retrained in software with the weights the defective
   array realizes::

       ŵ = (G+ − G−)/k,   G± = stuck value on a stuck device, mapping target of w otherwise

   so weights on stuck devices are held at their stuck values (no gradient reaches them). Weights are
   kept inside the array's range ``±w_max`` (projection after each Adam step). The retrained weights
   are then programmed onto the same arrays; their defects stay where they are.

All Monte Carlo trials are retrained at once (one batched network); only the Hungarian assignment
runs per trial, as scipy solves one matrix at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import check
from .calibration import CalibrationConfig, calibrate, calibrated_layers
from .insitu import DeviceArray, gather_rows

__all__ = ["LiuConfig", "significance_cost", "error_cost", "assignment_cost", "hungarian_rows",
           "realized_weights", "liu_rescue"]


@dataclass
class LiuConfig:
    """Liu et al. DAC 2017: remap rows (Hungarian) and/or retrain with stuck weights fixed."""

    remap: bool = True
    cost: Literal["significance", "error"] = "significance"
    retrain: bool = True
    epochs: int = 1
    lr: float = 1e-3
    batch_size: int = 100
    n_train: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.cost in ("significance", "error"), "liu.cost", self.cost, "must be 'significance' or 'error'")
        check(self.epochs >= 0, "liu.epochs", self.epochs, "must be >= 0")
        check(self.lr > 0, "liu.lr", self.lr, "must be > 0")
        check(self.batch_size >= 1, "liu.batch_size", self.batch_size, "must be >= 1")
        if self.n_train is not None:
            check(self.n_train >= 1, "liu.n_train", self.n_train, "must be >= 1 (or null for all)")


# ---------------------------------------------------------------------------------------------- pure functions
def realized_weights(w: torch.Tensor, array: DeviceArray, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Weights ``(T, in, out)`` the defective array realizes for targets ``w`` (differentiable in ``w``).

    Stuck devices give their stuck conductance, all others their mapping target (Liu's model: the
    defect map is known, device variation is not). ``rows`` (``(T, in)``) evaluates physical rows
    ``rows[t, i]`` for logical row ``i`` instead of row ``i``.
    """
    g = []
    for which in ("pos", "neg"):
        if which not in array.sides:  # reference scheme: the reference column's actual conductance
            g.append(array.xb.g_neg_full())
            continue
        stuck = getattr(array.xb, f"stuck_{which}")
        g_stuck = array.stuck_values(which)
        if rows is not None:
            stuck, g_stuck = gather_rows(stuck, rows), gather_rows(g_stuck, rows)
        g.append(torch.where(stuck, g_stuck, array.target(w, which)))
    return array.mapping.to_weights(g[0], g[1], array.k)


def defect_indicator(array: DeviceArray) -> torch.Tensor:
    """``(T, rows, cols)``: 1.0 where a device of the cell pair is stuck."""
    return array.defects().to(array.xb.g_pos.dtype)


def significance_cost(w: torch.Tensor, defects: torch.Tensor) -> torch.Tensor:
    """Liu's cost ``C[t, i, r] = Σ_j |w_tij| · d_trj`` for ``w`` ``(T|1, in, out)``, ``defects`` ``(T, rows, out)``."""
    return torch.matmul(w.abs(), defects.transpose(1, 2))


def error_cost(w: torch.Tensor, array: DeviceArray, chunk: int = 16) -> torch.Tensor:
    """``C[t, i, r] = Σ_j |w_tij − ŵ_trj(w_tij)|``: the weight error logical row i would suffer on row r."""
    T, n_in, n_out = array.w_int.shape
    w = w.expand(T, -1, -1)
    out = torch.empty(T, n_in, n_in, dtype=w.dtype, device=w.device)
    g_stuck = {k: array.stuck_values(k) for k in array.sides}
    stuck = {k: getattr(array.xb, f"stuck_{k}") for k in array.sides}
    g_ref = array.xb.g_neg_full() if "neg" not in array.sides else None
    with torch.no_grad():
        for i0 in range(0, n_in, chunk):  # chunks of logical rows (memory), all trials and rows at once
            wi = w[:, i0 : i0 + chunk].unsqueeze(2)  # (T, c, 1, out)
            g = []
            for which in ("pos", "neg"):
                if which not in array.sides:
                    g.append(g_ref.unsqueeze(1))
                    continue
                t = array.target(wi, which)  # (T, c, 1, out)
                g.append(torch.where(stuck[which].unsqueeze(1), g_stuck[which].unsqueeze(1), t))
            err = (array.mapping.to_weights(g[0], g[1], array.k) - wi).abs().sum(-1)  # (T, c, rows)
            out[:, i0 : i0 + chunk] = err
    return out


def hungarian_rows(cost: torch.Tensor) -> torch.Tensor:
    """Optimal row assignment per trial: ``rows[t, i]`` is the physical row of logical row ``i``."""
    from scipy.optimize import linear_sum_assignment

    c = cost.detach().cpu().double().numpy()
    rows = np.empty(c.shape[:2], dtype=np.int64)
    for t in range(c.shape[0]):  # scipy solves one assignment at a time
        r, col = linear_sum_assignment(c[t])
        rows[t, r] = col
    return torch.from_numpy(rows).to(cost.device)


def assignment_cost(cost: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Total cost ``Σ_i C[t, i, rows[t, i]]`` per trial."""
    return torch.gather(cost, 2, rows.unsqueeze(-1)).squeeze(-1).sum(-1)


# ---------------------------------------------------------------------------------------------- the method
def liu_rescue(hw_model: nn.Module, reference: nn.Module, x: torch.Tensor, y: torch.Tensor,
               config: LiuConfig | None = None, progress: bool = True) -> tuple[nn.Module, dict]:
    """Apply Liu et al.'s remapping and defect-aware retraining to every crossbar of ``hw_model``.

    ``hw_model`` comes from :func:`memristive.nn.convert` of ``reference`` (the software network);
    ``x``, ``y`` are training data. Returns ``(model, stats)``; the model computes on the same
    (defective) arrays, now holding the remapped, retrained weights.
    """
    cfg = config or LiuConfig()
    model = calibrate(hw_model, reference, None, CalibrationConfig(standard="none"))
    layers = calibrated_layers(model)
    arrays = [DeviceArray(lay.crossbar, lay.w_ref) for lay in layers]
    stats: dict = {"layers": []}
    rows_all = []
    for lay, arr in zip(layers, arrays):
        w0 = lay.w_ref.unsqueeze(0)
        info: dict = {}
        if cfg.remap:
            c = lay.crossbar.config
            if c.tile is not None and not c.adc.ideal:
                raise ValueError("liu.remap: row remapping with per-tile ADCs is not supported (row order "
                                 "changes the tiles' partial sums); set liu.remap=false or an ideal ADC")
            cost = significance_cost(w0, defect_indicator(arr)) if cfg.cost == "significance" else error_cost(w0, arr)
            rows = hungarian_rows(cost)
            ident = torch.arange(cost.shape[1], device=cost.device).expand(cost.shape[0], -1)
            before, after = assignment_cost(cost, ident), assignment_cost(cost, rows)
            info.update(cost_before=float(before.mean()), cost_after=float(after.mean()),
                        rows_moved=float((rows != ident).double().mean()))
            arr.permute_rows(rows)
            rows_all.append(rows)
        stats["layers"].append(info)
    weights = [lay.w_ref.unsqueeze(0).expand(arr.w_int.shape).clone().requires_grad_(True)
               for lay, arr in zip(layers, arrays)]
    if cfg.retrain and cfg.epochs > 0:
        stats["retrain_loss"] = _retrain(model, layers, arrays, weights, x, y, cfg, progress)
    with torch.no_grad():
        for arr, w in zip(arrays, weights):
            arr.program(w.detach())
    for lay in layers:
        lay.recalibrate()
    wc = [a.write_counts() for a in arrays]
    stats["writes_per_device_mean"] = sum(w["mean_per_device"] * w["devices"] for w in wc) / sum(w["devices"] for w in wc)
    return model, stats


def _retrain(model, layers, arrays, weights, x, y, cfg: LiuConfig, progress: bool) -> list[float]:
    if cfg.n_train:
        x, y = x[: cfg.n_train], y[: cfg.n_train]
    opt = torch.optim.Adam(weights, lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    dev = weights[0].device
    losses = []
    for epoch in range(cfg.epochs):
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in tqdm(range(0, len(x), cfg.batch_size), desc=f"Liu retrain epoch {epoch + 1}/{cfg.epochs}",
                      disable=not progress, leave=False):
            idx = perm[i : i + cfg.batch_size]
            xb, yb = x[idx].to(dev), y[idx].to(dev)
            for lay, arr, w in zip(layers, arrays, weights):
                lay.surrogate = realized_weights(w, arr)
                lay.software = True  # retraining is done in software: no array in the loop
            try:
                out = model(xb)
            finally:
                for lay in layers:
                    lay.surrogate = None
                    lay.software = False
            loss = nn.functional.cross_entropy(out.flatten(0, 1), yb.repeat(out.shape[0]), reduction="sum") / len(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                for arr, w in zip(arrays, weights):
                    w.clamp_(-arr.w_max, arr.w_max)
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(x) / out.shape[0])
    return losses
