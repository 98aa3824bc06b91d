"""Weight noise for noise-aware training, and the matching device variation for evaluation.

Both are driven by one device-variation parameter ``σ`` and one ``mode``. The conductance-level
models (each device of a differential pair ``G⁺``, ``G⁻`` independently, ξ ~ N(0, 1)):

==================  ==============================  ============================================
mode                conductance (evaluation)        the same in weight units (training)
==================  ==============================  ============================================
multiplicative      G ← G·(1 + σ·ξ)   **default**   W' = (w₀ + W⁺)(1 + σξ⁺) − (w₀ + W⁻)(1 + σξ⁻)
additive            G ← G + σ·(G_max − G_min)·ξ     W' = W + σ·w_max·(ξ⁺ − ξ⁻)
lognormal           G ← G·exp(σ·ξ)                  W' = (w₀ + W⁺)e^{σξ⁺} − (w₀ + W⁻)e^{σξ⁻}
==================  ==============================  ============================================

with ``W⁺ = max(W, 0)``, ``W⁻ = max(−W, 0)``, ``w_max`` the weight that maps to ``G_max`` (per column
for per-channel quantized weights: ``s_w·(2^(b−1) − 1)``) and ``w₀ = w_max·G_min/(G_max − G_min)``
the weight-unit image of the ``G_min`` offset of the scale-and-offset mapping
``G± = G_min + k·W±``, ``k = (G_max − G_min)/w_max`` (see :mod:`memristive.crossbar.mapping`). So the
training noise is *exactly* the weight error a crossbar programmed with that mapping shows under
the same variation, including the offset devices of zero weights.

The default is ``multiplicative`` (Gaussian, relative to each device's conductance): the paper says
"Gaussian noise, with intensity determined by the device variation parameter" and is silent on the
form; relative Gaussian conductance variation is the standard reading of "σ % device variation".

Training noise is sampled afresh on every forward pass (one sample per matrix, shared by all time
steps and all sequences of the batch, as one physical array would be) and enters as an additive
perturbation with a straight-through gradient: ``W_noisy = W + (W' − W).detach()``.

:class:`DeviceVariation` is the evaluation side: a programming-time non-ideality (registered with
the crossbar as ``{kind: variation, sigma: 0.14, mode: multiplicative}``) applied to every device of
every Monte Carlo trial. Conductances are not clipped unless ``clip=True``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ..config import check
from ..devices import LinearDevice, preset

__all__ = ["NOISE_MODES", "weight_noise", "conductance_variation", "WeightNoise", "DeviceVariation"]

NOISE_MODES = ("multiplicative", "additive", "lognormal")


def _randn(shape, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=like.dtype, device=like.device)


def conductance_variation(
    g: torch.Tensor, sigma: float, mode: str, g_range: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Device variation on conductances (any shape; trials are just another dimension)."""
    xi = _randn(g.shape, g, generator)
    if mode == "multiplicative":
        return g * (1 + sigma * xi)
    if mode == "additive":
        return g + sigma * g_range * xi
    if mode == "lognormal":
        return g * torch.exp(sigma * xi)
    raise ValueError(f"mode={mode!r}: must be one of {list(NOISE_MODES)}")


def weight_noise(
    w: torch.Tensor,
    sigma: float,
    mode: str = "multiplicative",
    w_max: torch.Tensor | float | None = None,
    g_offset: float = 0.0,
    generator: torch.Generator | None = None,
    samples: int | None = None,
) -> torch.Tensor:
    """Noisy copy of weights ``w`` as a differential pair under device variation ``σ``.

    ``w_max`` (scalar or broadcastable, e.g. one per column) is the weight mapped to ``G_max``;
    ``None`` means ``max|w|``. ``g_offset = G_min/(G_max − G_min)``. ``samples`` adds a leading
    dimension of that many independent draws. Gradients pass straight through to ``w``.
    """
    if mode not in NOISE_MODES:
        raise ValueError(f"mode={mode!r}: must be one of {list(NOISE_MODES)}")
    if sigma == 0:
        return w if samples is None else w.unsqueeze(0).expand(samples, *w.shape)
    wd = w.detach()
    if w_max is None:
        w_max = wd.abs().amax().clamp(min=1e-30)
    w_max = torch.as_tensor(w_max, dtype=w.dtype, device=w.device)
    shape = tuple(w.shape) if samples is None else (samples, *w.shape)
    xi_p, xi_n = _randn(shape, wd, generator), _randn(shape, wd, generator)
    if mode == "additive":
        delta = sigma * w_max * (xi_p - xi_n)
    else:
        off = w_max * g_offset
        gp, gn = off + wd.clamp(min=0), off + (-wd).clamp(min=0)
        if mode == "multiplicative":
            delta = sigma * (gp * xi_p - gn * xi_n)
        else:
            delta = gp * torch.expm1(sigma * xi_p) - gn * torch.expm1(sigma * xi_n)
    return w + delta


@dataclass
class WeightNoise:
    """Noise-aware training: device variation ``sigma`` of the given ``mode`` on the (quantized) weights.

    ``device`` (a preset name or :class:`LinearDevice`) supplies ``G_min/(G_max − G_min)``, the offset
    of the mapping; use the device you deploy on.
    """

    sigma: float = 0.0
    mode: Literal["multiplicative", "additive", "lognormal"] = "multiplicative"
    device: str | LinearDevice = "ti-alox-taox"

    def __post_init__(self) -> None:
        check(self.sigma >= 0, "noise.sigma", self.sigma, "must be >= 0 (a relative device variation, e.g. 0.14)")
        check(self.mode in NOISE_MODES, "noise.mode", self.mode, f"must be one of {list(NOISE_MODES)}")
        if isinstance(self.device, str):
            self.device = preset(self.device)

    @property
    def g_offset(self) -> float:
        return self.device.g_min / self.device.g_range

    def __call__(self, w: torch.Tensor, w_max=None, generator: torch.Generator | None = None) -> torch.Tensor:
        return weight_noise(w, self.sigma, self.mode, w_max, self.g_offset, generator)


@dataclass
class DeviceVariation:
    """Programming-time device variation for evaluation (kind ``variation``); see the module table."""

    sigma: float = 0.0
    mode: Literal["multiplicative", "additive", "lognormal"] = "multiplicative"
    clip: bool = False
    kind: Literal["variation"] = "variation"

    def __post_init__(self) -> None:
        check(self.sigma >= 0, "variation.sigma", self.sigma, "must be >= 0")
        check(self.mode in NOISE_MODES, "variation.mode", self.mode, f"must be one of {list(NOISE_MODES)}")

    def apply(self, g, device, generator):
        g = conductance_variation(g, self.sigma, self.mode, device.g_range, generator)
        return (g.clamp(device.g_min, device.g_max) if self.clip else g), None


def _register() -> None:
    """Make ``{kind: variation}`` usable in any ``CrossbarConfig.nonidealities`` list."""
    from .. import nonideal

    nonideal.NONIDEALITIES.setdefault("variation", DeviceVariation)


_register()
