"""Weight noise for noise-aware training: the crossbar's own mapping and variation, in weight units.

Training noise is the weight error that a crossbar shows under device variation: the weights are
mapped to conductances by the deployment :class:`~memristive.crossbar.Mapping` (offset, balanced or
reference-column), each device is varied by :func:`memristive.nonideal.conductance_variation` (the
same function the evaluation effect ``{kind: variation}`` applies), and the result is mapped back::

    G_pos, G_neg = mapping.to_conductances(W, memristor, k, w_max)
    W'           = mapping.to_weights(vary(G_pos), vary(G_neg), k)

with ``k = (G_max − G_min)/(span·w_max)`` and ``w_max`` the weight that maps to the top of the range
(per column for per-channel quantized weights: ``s_w·(2^(b−1) − 1)``). For the default offset pairs
and ``mode`` (ξ ~ N(0, 1) per device, ``W± = max(±W, 0)``, ``w₀ = w_max·G_min/(G_max − G_min)``):

==================  ==============================  ============================================
mode                conductance (evaluation)        the same in weight units (training)
==================  ==============================  ============================================
multiplicative      G ← G·(1 + σ·ξ)   **default**   W' = (w₀ + W⁺)(1 + σξ⁺) − (w₀ + W⁻)(1 + σξ⁻)
additive            G ← G + σ·(G_max − G_min)·ξ     W' = W + σ·w_max·(ξ⁺ − ξ⁻)
lognormal           G ← G·exp(σ·ξ)                  W' = (w₀ + W⁺)e^{σξ⁺} − (w₀ + W⁻)e^{σξ⁻}
==================  ==============================  ============================================

The default is ``multiplicative`` (Gaussian, relative to each device's conductance): the GRU paper
says "Gaussian noise, with intensity determined by the device variation parameter" and is silent on
the form; relative Gaussian conductance variation is the standard reading of "σ % device variation".

Training noise is sampled afresh on every forward pass (one sample per matrix, shared by all time
steps and all sequences of the batch, as one physical array would be) and enters as an additive
perturbation with a straight-through gradient: ``W_noisy = W + (W' − W).detach()``.
The evaluation side is :class:`memristive.nonideal.DeviceVariation` (``{kind: variation}``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from ..config import check
from ..crossbar.mapping import Mapping, mapping_from_spec
from ..devices import Device, device_from_spec
from ..nonideal import NOISE_MODES, conductance_variation

__all__ = ["NOISE_MODES", "weight_noise", "WeightNoise"]


def weight_noise(
    w: torch.Tensor,
    sigma: float,
    mode: str = "multiplicative",
    w_max: torch.Tensor | float | None = None,
    memristor: Device | str = "ti-alox-taox",
    mapping: Mapping | str = "differential",
    generator: torch.Generator | None = None,
    samples: int | None = None,
    clip: bool = True,
) -> torch.Tensor:
    """Noisy copy of weights ``w`` as the crossbar holds them under device variation ``σ`` (module docstring).

    ``w_max`` (scalar or broadcastable, e.g. one per column) is the weight range of the mapping;
    ``None`` means ``max|w|``. ``samples`` adds a leading dimension of that many independent draws.
    Gradients pass straight through to ``w``. ``clip`` keeps the varied conductances inside the
    device range, as the evaluation effect ``{kind: variation}`` does by default (``clip=False``: the
    formula unbounded, matching ``{kind: variation, clip: false}``).
    """
    if mode not in NOISE_MODES:
        raise ValueError(f"mode={mode!r}: must be one of {list(NOISE_MODES)}")
    if sigma == 0:
        return w if samples is None else w.unsqueeze(0).expand(samples, *w.shape)
    memristor = device_from_spec(memristor) if not isinstance(memristor, Device) else memristor
    mapping = mapping_from_spec(mapping) if not isinstance(mapping, Mapping) else mapping
    wd = w.detach()
    if w_max is None:
        w_max = wd.abs().amax().clamp(min=1e-30)
    w_max = torch.as_tensor(w_max, dtype=w.dtype, device=w.device)
    k = mapping.k_for(w_max, memristor)
    g_pos, g_neg = mapping.to_conductances(wd, memristor, k, w_max)
    if samples is not None:
        g_pos = g_pos.expand(samples, *g_pos.shape)
        g_neg = g_neg.expand(samples, *g_neg.shape)
    vp = conductance_variation(g_pos, sigma, mode, memristor.g_range, generator)
    vn = conductance_variation(g_neg, sigma, mode, memristor.g_range, generator)
    if clip:
        vp, vn = vp.clamp(memristor.g_min, memristor.g_max), vn.clamp(memristor.g_min, memristor.g_max)
    noisy = mapping.to_weights(vp, vn, k)
    return w + (noisy - mapping.to_weights(g_pos, g_neg, k))


@dataclass
class WeightNoise:
    """Noise-aware training: device variation ``sigma`` of the given ``mode`` on the (quantized) weights.

    ``memristor`` and ``mapping`` are those of the crossbar you deploy on
    (:meth:`for_crossbar` takes them from a :class:`~memristive.crossbar.CrossbarConfig`).
    """

    sigma: float = 0.0
    mode: Literal["multiplicative", "additive", "lognormal"] = "multiplicative"
    memristor: Device = "ti-alox-taox"  # type: ignore[assignment]
    mapping: Mapping = "differential"  # type: ignore[assignment]
    clip: bool = True  # varied conductances stay in the device range, as {kind: variation} by default

    def __post_init__(self) -> None:
        check(isinstance(self.sigma, (int, float)) and not isinstance(self.sigma, bool)
              and math.isfinite(self.sigma) and self.sigma >= 0, "noise.sigma", self.sigma,
              "must be a finite number >= 0 (a relative device variation, e.g. 0.14)")
        check(self.mode in NOISE_MODES, "noise.mode", self.mode, f"must be one of {list(NOISE_MODES)}")
        self.memristor = device_from_spec(self.memristor, "noise.memristor")
        self.mapping = mapping_from_spec(self.mapping, "noise.mapping")

    @classmethod
    def for_crossbar(cls, sigma: float, mode: str = "multiplicative", crossbar=None) -> "WeightNoise":
        """Noise matching a :class:`~memristive.crossbar.CrossbarConfig`'s memristor and mapping."""
        if crossbar is None:
            return cls(sigma, mode)
        return cls(sigma, mode, memristor=crossbar.memristor, mapping=crossbar.mapping)

    def __call__(self, w: torch.Tensor, w_max=None, generator: torch.Generator | None = None) -> torch.Tensor:
        return weight_noise(w, self.sigma, self.mode, w_max, self.memristor, self.mapping, generator, clip=self.clip)
