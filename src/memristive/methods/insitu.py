"""Threshold-gated in-situ training on crossbars, with device-write bookkeeping.

Two parts, usable separately:

:class:`DeviceArray` — the physical state behind a :class:`~memristive.crossbar.Crossbar` that
in-situ methods write to. For every device (all Monte Carlo trials at once)::

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
within the threshold or the epoch budget is spent. Gates (:class:`InSituConfig` ``gate``):

======  =========================================================================================
output  per sample and trial: d = max_j |softmax(V̂_out)_j − softmax(V_out^ideal)_j|; only samples
        with d > threshold contribute to the update (the paper's comparison; probabilities make the
        1e-2 threshold scale-free)
update  per device pair: only |ΔW| > threshold is written (Xia et al. 2017 threshold training)
both    both gates;  none: no gate (plain in-situ SGD)
======  =========================================================================================

Losses: ``standard`` — cross-entropy of the array's output against the standard output's
probabilities (the training error is the deviation from the standard output, as in the paper's loop);
``labels`` — cross-entropy against the dataset labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import check
from ..crossbar import Crossbar
from ..quantizer import quantize_levels
from .calibration import CalibratedLinear, calibrated_layers, standard_mode

__all__ = ["DeviceArray", "InSituConfig", "insitu_train", "output_gate", "update_gate", "gather_rows"]

GATES = ("output", "update", "both", "none")


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
                 redraw_sigma: tuple[float, float] = (0.6, 1.0), seed: int | None = None) -> None:
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
            if levels:
                torch.addcmul(st["g_stuck"], cur, st["gain_free"], out=g)
            else:
                torch.addcmul(st["base"], cur, st["slope"], out=g)

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
        """:meth:`weights` as a leaf tensor that requires grad, stored as ``(in, T, out)`` so that
        trial-shared inputs multiply it as one GEMM without a layout copy (a ``(T, in, out)`` view)."""
        xb = self.xb
        buf = torch.empty(xb.in_features, xb.trials, xb.out_features, dtype=xb.g_pos.dtype, device=xb.g_pos.device)
        torch.sub(xb.g_pos.permute(1, 0, 2), xb.g_neg_full().permute(1, 0, 2), out=buf)
        buf.mul_(1.0 / self.k)
        return buf.permute(1, 0, 2).requires_grad_(True)

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
        self.w_int = gather_rows(self.w_int, rows)
        # prev drive/targets belong to the weights each physical row held; w_int moved with them

    def write_counts(self) -> dict:
        """Writes per trial (all devices) and per device (mean, max over devices and trials)."""
        ws = [self.writes(w) for w in self._state]
        per_trial = sum(x.sum(dim=(1, 2)) for x in ws)
        n_dev = sum(x[0].numel() for x in ws)
        return {"per_trial": per_trial, "devices": n_dev, "mean_per_device": float(per_trial.double().mean()) / n_dev,
                "max_per_device": max(int(x.max()) for x in ws), "blocked_per_trial": self.blocked()}


def gather_rows(t: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``out[t, i] = t[t, rows[t, i]]`` for ``(T, rows, cols)`` tensors."""
    return torch.gather(t, 1, rows.unsqueeze(-1).expand(-1, -1, t.shape[-1]))


@dataclass
class InSituConfig:
    """Threshold-gated in-situ training (SGD; the update is ΔW = −lr·∂L/∂Ŵ, L the batch-mean loss).

    Defaults: ``lr=0.6`` at ``batch_size=200`` — chosen on a validation split (lr grid 0.01…3 at batch
    100, best within 0.5 points preferring the smaller lr: 0.3), then doubled with the batch (linear
    scaling), which halves the device writes at the same accuracy (docs/results/calibration.md).
    """

    epochs: int = 1
    lr: float = 0.6
    batch_size: int = 200
    threshold: float = 1e-2
    gate: Literal["output", "update", "both", "none"] = "output"
    loss: Literal["standard", "labels"] = "standard"
    n_train: int | None = None
    write_variation: Literal["persistent", "redraw"] = "persistent"
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.write_variation in ("persistent", "redraw"), "insitu.write_variation", self.write_variation,
              "must be 'persistent' or 'redraw'")
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
        arrays = [DeviceArray(lay.crossbar, lay.w_ref, write_variation=cfg.write_variation, seed=cfg.seed + 7 * i)
                  for i, lay in enumerate(layers)]
    if len(arrays) != len(layers):
        raise ValueError(f"insitu_train: {len(arrays)} device arrays for {len(layers)} layers")
    if cfg.n_train:
        x, y = x[: cfg.n_train], y[: cfg.n_train]
    dev = layers[0].crossbar.g_pos.device
    T = layers[0].crossbar.trials
    gen = torch.Generator().manual_seed(cfg.seed)
    gate_out = cfg.gate in ("output", "both")
    gate_upd = cfg.gate in ("update", "both")
    history = []
    epochs_run = 0
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
                with torch.no_grad(), standard_mode(model):
                    out_std = model(xb)
            finally:
                for lay in layers:
                    lay.surrogate = None
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
    return {
        "epochs_run": epochs_run,
        "history": history,
        "writes_per_trial_mean": float(per_trial.double().mean()),
        "writes_per_device_mean": float(per_trial.double().mean()) / sum(w["devices"] for w in writes),
        "writes_per_device_max": max(w["max_per_device"] for w in writes),
        "writes_per_trial": per_trial,
    }
