"""Inputs-split calibration of crossbar layers (Du, Peng & Liu, J. NUDT 45(5) 2023, §1.1; after
Sun et al., "Cases study of inputs split based calibration method for RRAM crossbar", IEEE Access 2019).

Section 1.1 of the paper (the calibration itself) is missing from our copy; this is the
reconstruction of ``docs/calibration.md`` ("what was reconstructed"), consistent with the one formula
the paper does print, ``V̂_out = V_out^STD + V̂'_out − δ'``.

For one layer with digital reference weights ``W`` (what was meant to be programmed) and the array's
actual, unknown weights ``Ŵ`` (defects, variation), every input ``x`` is split against a *standard
input* ``x_STD`` chosen in advance::

    V_out^STD = x_STD · W                  ideal standard output: computed digitally once, stored
    δ'        = x_STD · Ŵ  (+ c)           the array's measured response to the standard input,
                                           measured once after programming (and after every write)
    V̂'_out    = x · Ŵ      (+ c)           the array's measured output for the applied input
    V̂_out     = V_out^STD + V̂'_out − δ'    calibrated output

so ``V̂_out = x·W + (x − x_STD)·(Ŵ − W)``: the array error scales with ``‖x − x_STD‖`` instead of
``‖x‖``, an input equal to the standard is reproduced exactly, and any constant output offset ``c``
of the array is removed exactly. Everything is in weight units (output volts divided by
``v_read·R_s·k``); the formula is linear, so working in volts gives the same result.

Standards (:class:`CalibrationConfig` ``standard``):

=========  ======================================================================================
none       no calibration: the raw array output (the "no calibration" curve)
zero       ``x_STD = 0``: removes output offsets only (a linear array's output is unchanged)
mean       ``x_STD`` = mean of the layer's inputs over calibration data (the training set), taken
           in the digital reference network
nearest    ``K = n_standards`` standards (k-means centroids of the layer's inputs); each sample uses
           the nearest standard (Euclidean); ``V^STD`` and ``δ'`` are stored per standard
=========  ======================================================================================

The whole input is applied to the array (reading (b) of the research notes); applying only
``x − x_STD`` is algebraically identical for a linear array but would need negative input voltages.
All Monte Carlo trials are calibrated at once: ``δ'`` is ``(T, K, out)``.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..config import check
from ..nn import CrossbarLinear

__all__ = [
    "CalibrationConfig",
    "CalibratedLinear",
    "calibrate",
    "calibrated_output",
    "kmeans",
    "layer_inputs",
    "nearest_standard",
    "standard_mode",
    "trial_matmul",
]

STANDARDS = ("none", "zero", "mean", "nearest")


@dataclass
class CalibrationConfig:
    """Choice of standard input(s). ``n_samples`` training inputs are used to compute them."""

    standard: Literal["none", "zero", "mean", "nearest"] = "mean"
    n_standards: int = 10
    n_samples: int | None = 10000
    kmeans_iters: int = 25
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.standard in STANDARDS, "calibration.standard", self.standard, f"must be one of {list(STANDARDS)}")
        check(self.n_standards >= 1, "calibration.n_standards", self.n_standards, "must be >= 1")
        if self.n_samples is not None:
            check(self.n_samples >= 1, "calibration.n_samples", self.n_samples, "must be >= 1 (or null for all)")
        check(self.kmeans_iters >= 1, "calibration.kmeans_iters", self.kmeans_iters, "must be >= 1")


# ---------------------------------------------------------------------------------------------- pure functions
def calibrated_output(v_measured: torch.Tensor, v_std: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """``V̂_out = V_out^STD + V̂'_out − δ'`` (broadcasting)."""
    return v_std + v_measured - delta


def kmeans(x: torch.Tensor, k: int, iters: int = 25, generator: torch.Generator | None = None) -> torch.Tensor:
    """Lloyd's k-means on ``x`` ``(N, D)``; returns ``(k, D)`` centroids (seeded by ``generator``).

    Initial centroids are ``k`` distinct random samples; an empty cluster keeps its centroid.
    """
    if x.dim() != 2 or len(x) == 0:
        raise ValueError(f"kmeans: expected a non-empty (N, D) tensor, got shape {tuple(x.shape)}")
    if k > len(x):
        raise ValueError(f"kmeans: k={k} centroids need at least k samples, got {len(x)}")
    c = x[torch.randperm(len(x), generator=generator, device="cpu")[:k].to(x.device)].clone()
    for _ in range(iters):
        a = torch.cdist(x, c).argmin(1)
        sums = torch.zeros_like(c).index_add_(0, a, x)
        counts = torch.bincount(a, minlength=k).to(x.dtype).unsqueeze(1)
        c = torch.where(counts > 0, sums / counts.clamp(min=1), c)
    return c


def nearest_standard(x: torch.Tensor, standards: torch.Tensor) -> torch.Tensor:
    """Index of the nearest standard for every sample: ``(B,)`` for ``x`` ``(B, D)``, ``(T, B)`` for ``(T, B, D)``."""
    if standards.shape[0] == 1:
        return torch.zeros(x.shape[:-1], dtype=torch.long, device=x.device)
    # ‖x − s‖² = ‖x‖² − 2 x·s + ‖s‖²; the ‖x‖² term does not change the argmin
    score = (standards * standards).sum(-1) - 2 * torch.matmul(x, standards.t())
    return score.argmin(-1)


class _SharedInputMatmul(torch.autograd.Function):
    """``x (B, in) @ W (T, in, out) -> (T, B, out)`` as one GEMM against the trials laid side by side."""

    @staticmethod
    def forward(ctx, x, w):
        T, n_in, n_out = w.shape
        flat = w.permute(1, 0, 2).reshape(n_in, T * n_out)  # a view when w is stored as (in, T, out)
        ctx.save_for_backward(x, flat)
        ctx.shape = (T, n_in, n_out)
        return (x @ flat).view(x.shape[0], T, n_out).transpose(0, 1)

    @staticmethod
    def backward(ctx, grad):
        x, flat = ctx.saved_tensors
        T, n_in, n_out = ctx.shape
        g = grad.transpose(0, 1).reshape(x.shape[0], T * n_out)
        gx = g @ flat.t() if ctx.needs_input_grad[0] else None
        gw = (x.t() @ g).view(n_in, T, n_out).permute(1, 0, 2) if ctx.needs_input_grad[1] else None
        return gx, gw


def trial_matmul(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``x @ W`` for every trial: ``x`` ``(B, in)`` (shared) or ``(T, B, in)``, ``W`` ``(T, in, out)``."""
    if x.dim() == 2:
        return _SharedInputMatmul.apply(x, w)
    return torch.matmul(x, w)


# ---------------------------------------------------------------------------------------------- the layer
class CalibratedLinear(nn.Module):
    """A :class:`~memristive.nn.CrossbarLinear` whose outputs are calibrated against stored standards.

    Buffers: ``w_ref`` ``(in, out)`` digital reference weights; ``standards`` ``(K, in)``; ``v_std``
    ``(K, out)`` = standards·W (digital); ``delta`` ``(T, K, out)`` = the array's measured response to
    each standard (:meth:`recalibrate`). With ``K = 0`` (``standard="none"``) the output is the raw
    array output. The layer also serves in-situ training (:mod:`memristive.methods.insitu`): while
    ``surrogate`` holds the array's weights as a tensor that requires grad, the output keeps the
    array's value but its gradient is that of ``(x − x_STD)·Ŵ + V^STD`` (exact for an ideal periphery).
    """

    def __init__(self, layer: CrossbarLinear, w_ref: torch.Tensor, standards: torch.Tensor) -> None:
        super().__init__()
        if w_ref.shape != (layer.in_features, layer.out_features):
            raise ValueError(f"w_ref: expected shape {(layer.in_features, layer.out_features)}, got {tuple(w_ref.shape)}")
        if standards.dim() != 2 or standards.shape[1] != layer.in_features:
            raise ValueError(f"standards: expected (K, {layer.in_features}), got {tuple(standards.shape)}")
        self.layer = layer
        dt, dev = layer.crossbar.g_pos.dtype, layer.crossbar.g_pos.device
        self.register_buffer("w_ref", w_ref.detach().to(dev, dt).clone())
        self.register_buffer("standards", standards.detach().to(dev, dt).clone())
        self.register_buffer("v_std", self.standards @ self.w_ref)
        self.register_buffer("delta", torch.zeros(layer.crossbar.trials, len(standards), layer.out_features, dtype=dt, device=dev))
        self.surrogate: torch.Tensor | None = None
        self.software = False  # with a surrogate: compute in software only (the array is not read)
        self.use_standard = False
        self.recalibrate()

    @property
    def crossbar(self):
        return self.layer.crossbar

    @property
    def in_features(self) -> int:
        return self.layer.in_features

    @property
    def out_features(self) -> int:
        return self.layer.out_features

    @property
    def n_standards(self) -> int:
        return self.standards.shape[0]

    @torch.no_grad()
    def recalibrate(self) -> None:
        """Measure ``δ'`` = the array's output for each standard input (all trials at once)."""
        if self.n_standards:
            self.delta = self.crossbar.matmul(self.standards)

    def _ideal_periphery(self) -> bool:
        cfg = self.crossbar.config
        return cfg.dac.ideal and cfg.adc.ideal and (cfg.read_noise is None or cfg.read_noise.sigma == 0)

    def correction(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """For each sample: ``V^STD − δ'`` ``(T, B, out)``, its standard input and ``V^STD`` (``None``: K = 0)."""
        if not self.n_standards:
            return None
        idx = nearest_standard(x, self.standards)
        corr = self.v_std.unsqueeze(0) - self.delta  # (T, K, out)
        if idx.dim() == 1:
            c = corr[:, idx, :]
        else:
            c = torch.gather(corr, 1, idx.unsqueeze(-1).expand(-1, -1, corr.shape[-1]))
        return c, self.standards[idx], self.v_std[idx]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.layer.bias
        if self.use_standard:  # the standard (ideal, digital) output
            y = torch.matmul(x, self.w_ref)
            return y + bias if bias is not None else y
        sel = self.correction(x)
        w = self.surrogate
        if w is None or not torch.is_grad_enabled():
            y = self.crossbar.matmul(x)
            if sel is not None:
                y = calibrated_output(y, sel[0], 0.0)
        else:
            # value: the calibrated array output; gradient: that of (x − x_STD)·Ŵ + V^STD
            z = trial_matmul(x, w) if sel is None else trial_matmul(x - sel[1], w) + sel[2]
            if self.software or self._ideal_periphery():
                y = z
            else:
                with torch.no_grad():
                    y_hw = self.crossbar.matmul(x)
                    if sel is not None:
                        y_hw = y_hw + sel[0]
                y = z + (y_hw - z).detach()
        return y + bias if bias is not None else y

    def extra_repr(self) -> str:
        return f"standards={self.n_standards}"


# ---------------------------------------------------------------------------------------------- model level
@torch.no_grad()
def layer_inputs(model: nn.Module, x: torch.Tensor, batch_size: int = 2000) -> dict[str, torch.Tensor]:
    """Inputs seen by every ``nn.Linear`` of a software ``model`` for data ``x``, keyed by module name."""
    seen: dict[str, list[torch.Tensor]] = {}
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            hooks.append(mod.register_forward_hook(
                lambda m, inp, out, name=name: seen.setdefault(name, []).append(inp[0].detach().reshape(-1, inp[0].shape[-1]))))
    try:
        for i in range(0, len(x), batch_size):
            model(x[i : i + batch_size])
    finally:
        for h in hooks:
            h.remove()
    return {k: torch.cat(v) for k, v in seen.items()}


def _standards(inputs: torch.Tensor, cfg: CalibrationConfig) -> torch.Tensor:
    if cfg.standard == "none":
        return inputs.new_zeros(0, inputs.shape[1])
    if cfg.standard == "zero":
        return inputs.new_zeros(1, inputs.shape[1])
    if cfg.standard == "mean":
        return inputs.mean(0, keepdim=True)
    gen = torch.Generator().manual_seed(cfg.seed)
    return kmeans(inputs, min(cfg.n_standards, len(inputs)), cfg.kmeans_iters, gen)


def calibrate(hw_model: nn.Module, reference: nn.Module, x: torch.Tensor | None = None,
              config: CalibrationConfig | None = None, inplace: bool = False) -> nn.Module:
    """Calibrate every :class:`CrossbarLinear` of ``hw_model`` (as made by :func:`memristive.nn.convert`
    from ``reference``); returns the model with :class:`CalibratedLinear` layers.

    ``reference`` is the software network with the intended weights (same module names as
    ``hw_model``); ``x`` is calibration data (training inputs) for the "mean"/"nearest" standards.
    """
    cfg = config or CalibrationConfig()
    if cfg.standard in ("mean", "nearest") and x is None:
        raise ValueError(f"calibration.standard={cfg.standard!r} needs calibration inputs x")
    model = hw_model if inplace else copy.deepcopy(hw_model)
    ref_linear = {n: m for n, m in reference.named_modules() if isinstance(m, nn.Linear)}
    targets = [(n, m) for n, m in model.named_modules() if isinstance(m, CrossbarLinear)]
    if not targets:
        raise ValueError("calibrate: the model has no CrossbarLinear layer (convert it with memristive.nn.convert)")
    missing = [n for n, _ in targets if (n if n else "") not in ref_linear]
    if missing:
        raise ValueError(f"calibrate: reference has no nn.Linear named {missing}; pass the model that was converted")
    inputs = {}
    if cfg.standard in ("mean", "nearest"):
        xs = x[: cfg.n_samples] if cfg.n_samples else x
        dev = next(iter(reference.parameters())).device
        inputs = layer_inputs(reference, xs.to(dev))
    for name, layer in targets:
        w_ref = ref_linear[name].weight.detach().t()
        feats = inputs.get(name, torch.zeros(1, layer.in_features, dtype=w_ref.dtype, device=w_ref.device))
        cal = CalibratedLinear(layer, w_ref.to(layer.crossbar.g_pos.device), _standards(feats, cfg).to(layer.crossbar.g_pos.device))
        if name == "":
            return cal
        parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
        setattr(parent, name.rsplit(".", 1)[-1], cal)
    return model


def calibrated_layers(model: nn.Module) -> list[CalibratedLinear]:
    return [m for m in model.modules() if isinstance(m, CalibratedLinear)]


@contextlib.contextmanager
def standard_mode(model: nn.Module):
    """Inside the block, calibrated layers compute the standard (ideal digital) output ``x·W``."""
    layers = calibrated_layers(model)
    old = [lay.use_standard for lay in layers]
    for lay in layers:
        lay.use_standard = True
    try:
        yield model
    finally:
        for lay, o in zip(layers, old):
            lay.use_standard = o
