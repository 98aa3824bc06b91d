"""Device non-idealities: small pure functions on conductance tensors, plus config objects.

Every function takes the conductances ``g`` (any shape; a leading Monte Carlo trial dimension is
just another dimension) and a ``torch.Generator`` and returns new tensors: nothing is modified in
place and the same generator state gives the same result. Programming-time effects are applied once
when a crossbar is programmed; read-time effects (:class:`ReadNoise`) on every read.

Formulas (G in siemens, ``G_min``/``G_max`` the device bounds, ξ ~ N(0, 1) independent per cell):

==================  ===========================================================================
stuck_at            with probability ``p_hrs`` G ← G_min (stuck at HRS, the calibration paper's
                    "single-bit failure"), with probability ``p_lrs`` G ← G_max (stuck at LRS)
lognormal           G ← G·exp(θ), θ ~ N(0, σ²)    (the calibration paper's variation model)
fluctuation         G ← G + σ·(G_max − G_min)·ξ   (Gaussian, relative to the range)
defect_percent      a fraction α of cells is affected; of those a fraction β is stuck at HRS and
                    the rest varied lognormally with σ_ij ~ U[σ_lo, σ_hi] (paper: 0.6..1.0)
variation           G ← G·(1 + σ·ξ) ("multiplicative"), G + σ·(G_max − G_min)·ξ ("additive") or
                    G·exp(σ·ξ) ("lognormal"): one device-variation parameter σ, several forms
read noise          per read: G ← G·(1 + σ·ξ) ("relative") or G + σ·(G_max − G_min)·ξ ("range")
==================  ===========================================================================

Physical conductances by default: every effect that varies a conductance (``lognormal``,
``fluctuation``, ``variation`` and the varied cells of ``defect_percent``) keeps it inside the device's
range ``[G_min, G_max]`` (``clip: true``, the default). ``clip: false`` is the explicit opt-out: the
formula as written, e.g. ``G·exp(θ)`` unbounded, which can put a device above ``G_max`` (a 1–12 kΩ device
at ``G_max·exp(2)`` would need 135 Ω). The pure functions below apply no bounds themselves.

Effects are dataclasses registered where they are defined (``@register_effect("kind")``); in configs
``nonidealities`` is a list of ``{kind: ..., ...}`` mappings, a validated tagged union.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch

from .config import ConfigError, Registry, check
from .quantizer import quantize_levels

__all__ = [
    "stuck_at",
    "lognormal",
    "fluctuation",
    "defect_percent",
    "StuckAt",
    "Lognormal",
    "Fluctuation",
    "DefectPercent",
    "Levels",
    "DeviceVariation",
    "conductance_variation",
    "relative",
    "NOISE_MODES",
    "Effect",
    "register_effect",
    "EFFECTS",
    "ReadNoise",
    "build_nonidealities",
    "NONIDEALITIES",
]


def _uniform(g: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(g.shape, generator=generator, dtype=g.dtype, device=g.device)


def _normal(g: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(g.shape, generator=generator, dtype=g.dtype, device=g.device)


def stuck_at(
    g: torch.Tensor,
    p_hrs: float,
    p_lrs: float,
    g_min: float,
    g_max: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stick a random fraction of cells at HRS (G_min) and LRS (G_max). Returns (g, stuck_mask)."""
    u = _uniform(g, generator)
    hrs = u < p_hrs
    lrs = (u >= p_hrs) & (u < p_hrs + p_lrs)
    g = torch.where(hrs, torch.full_like(g, g_min), g)
    g = torch.where(lrs, torch.full_like(g, g_max), g)
    return g, hrs | lrs


def lognormal(
    g: torch.Tensor, sigma: float | torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """G·exp(θ), θ ~ N(0, σ²); ``sigma`` may be a tensor broadcastable to ``g`` (per-cell σ)."""
    return g * torch.exp(_normal(g, generator) * sigma)


def relative(g: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """G·(1 + σ·ξ): Gaussian variation relative to each device's conductance."""
    return g * (1 + sigma * _normal(g, generator))


def fluctuation(
    g: torch.Tensor, sigma: float, g_range: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """G + σ·(G_max − G_min)·ξ: Gaussian fluctuation relative to the conductance range."""
    return g + _normal(g, generator) * (sigma * g_range)


def defect_percent(
    g: torch.Tensor,
    alpha: float,
    beta: float,
    g_min: float,
    sigma_low: float = 0.6,
    sigma_high: float = 1.0,
    generator: torch.Generator | None = None,
    g_max: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The calibration paper's defect-percent model. Returns (g, stuck_mask).

    A cell is affected with probability α; an affected cell is stuck at HRS with probability β,
    otherwise its conductance is varied as G·exp(θ), θ ~ N(0, σ²) with σ ~ U[σ_low, σ_high] drawn per
    cell. Positions are random and independent per cell (and per Monte Carlo trial). With ``g_max``
    given, varied conductances are kept inside ``[g_min, g_max]`` (the random draws are the same
    either way, so clipped and unclipped arrays differ only where a varied device left the range).
    """
    u = _uniform(g, generator)
    stuck = u < alpha * beta
    varied = (u >= alpha * beta) & (u < alpha)
    sigma = sigma_low + (sigma_high - sigma_low) * _uniform(g, generator)
    theta = _normal(g, generator) * sigma
    g_var = g * torch.exp(theta)
    if g_max is not None:
        g_var = g_var.clamp(g_min, g_max)
    g = torch.where(varied, g_var, g)
    g = torch.where(stuck, torch.full_like(g, g_min), g)
    return g, stuck


NOISE_MODES = ("multiplicative", "additive", "lognormal")


def conductance_variation(
    g: torch.Tensor, sigma: float, mode: str, g_range: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Device variation on conductances in one of :data:`NOISE_MODES` (trials are just another dimension)."""
    if mode == "multiplicative":
        return relative(g, sigma, generator)
    if mode == "additive":
        return fluctuation(g, sigma, g_range, generator)
    if mode == "lognormal":
        return lognormal(g, sigma, generator)
    raise ValueError(f"mode={mode!r}: must be one of {list(NOISE_MODES)}")


# ----------------------------------------------------------------------------------------------
# Config objects. ``apply(g, memristor, generator) -> (g, stuck_mask_or_None)``
# ----------------------------------------------------------------------------------------------

EFFECTS = Registry("effect")


def register_effect(kind: str):
    """Class decorator registering a programming-time effect kind."""
    return EFFECTS.register(kind)


class Effect:
    """Base of programming-time effects: ``apply(g, memristor, generator) -> (g, stuck_mask | None)``."""

    __registry__ = EFFECTS

    def apply(self, g: torch.Tensor, memristor, generator: torch.Generator | None):
        raise NotImplementedError


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _prob(key: str, value: float) -> None:
    check(_number(value) and 0.0 <= value <= 1.0, key, value, "must be a probability in [0, 1]")


def _sigma(key: str, value: float) -> None:
    check(_number(value) and math.isfinite(value) and value >= 0, key, value, "must be a finite number >= 0")


def _clip(g: torch.Tensor, memristor, clip: bool) -> torch.Tensor:
    return g.clamp(memristor.g_min, memristor.g_max) if clip else g


@register_effect("stuck_at")
@dataclass
class StuckAt(Effect):
    """Stuck-at faults: ``p_hrs`` of cells at G_min (HRS / SBF), ``p_lrs`` at G_max (LRS)."""

    p_hrs: float = 0.0
    p_lrs: float = 0.0
    kind: Literal["stuck_at"] = "stuck_at"

    def __post_init__(self) -> None:
        _prob("stuck_at.p_hrs", self.p_hrs)
        _prob("stuck_at.p_lrs", self.p_lrs)
        check(self.p_hrs + self.p_lrs <= 1.0, "stuck_at.p_hrs+p_lrs", self.p_hrs + self.p_lrs, "must not exceed 1")

    def apply(self, g, memristor, generator):
        return stuck_at(g, self.p_hrs, self.p_lrs, memristor.g_min, memristor.g_max, generator)


@register_effect("lognormal")
@dataclass
class Lognormal(Effect):
    """Lognormal device-to-device variation G·exp(θ), θ ~ N(0, σ²)."""

    sigma: float = 0.1
    clip: bool = True
    kind: Literal["lognormal"] = "lognormal"

    def __post_init__(self) -> None:
        _sigma("lognormal.sigma", self.sigma)

    def apply(self, g, memristor, generator):
        return _clip(lognormal(g, self.sigma, generator), memristor, self.clip), None


@register_effect("fluctuation")
@dataclass
class Fluctuation(Effect):
    """Gaussian conductance fluctuation G + σ·(G_max − G_min)·ξ."""

    sigma: float = 0.01
    clip: bool = True
    kind: Literal["fluctuation"] = "fluctuation"

    def __post_init__(self) -> None:
        _sigma("fluctuation.sigma", self.sigma)

    def apply(self, g, memristor, generator):
        return _clip(fluctuation(g, self.sigma, memristor.g_range, generator), memristor, self.clip), None


@register_effect("defect_percent")
@dataclass
class DefectPercent(Effect):
    """The calibration paper's defect percent α (fraction β stuck at HRS, rest lognormal σ~U[lo,hi]).

    ``clip`` (default true) keeps the varied conductances inside the device range; ``clip: false``
    applies ``G·exp(θ)`` unbounded, as the paper prints it."""

    alpha: float = 0.1
    beta: float = 0.5
    sigma_low: float = 0.6
    sigma_high: float = 1.0
    clip: bool = True
    kind: Literal["defect_percent"] = "defect_percent"

    def __post_init__(self) -> None:
        _prob("defect_percent.alpha", self.alpha)
        _prob("defect_percent.beta", self.beta)
        _sigma("defect_percent.sigma_low", self.sigma_low)
        _sigma("defect_percent.sigma_high", self.sigma_high)
        check(self.sigma_high >= self.sigma_low, "defect_percent.sigma_high", self.sigma_high,
              f"must be >= sigma_low={self.sigma_low}")

    def apply(self, g, memristor, generator):
        return defect_percent(g, self.alpha, self.beta, memristor.g_min, self.sigma_low, self.sigma_high, generator,
                              g_max=memristor.g_max if self.clip else None)


@register_effect("levels")
@dataclass
class Levels(Effect):
    """Finite programmable levels: targets rounded to ``levels`` evenly spaced conductances."""

    levels: int = 16
    kind: Literal["levels"] = "levels"

    def __post_init__(self) -> None:
        check(isinstance(self.levels, int) and not isinstance(self.levels, bool) and self.levels >= 2,
              "levels.levels", self.levels, "must be an integer >= 2")

    def apply(self, g, memristor, generator):
        return quantize_levels(g, memristor.g_min, memristor.g_max, self.levels), None


@register_effect("variation")
@dataclass
class DeviceVariation(Effect):
    """Device variation σ in one of :data:`NOISE_MODES` (kind ``variation``): the evaluation side of
    weight-noise training (:mod:`memristive.quant.noise`). Kept inside the device range unless
    ``clip=False``."""

    sigma: float = 0.0
    mode: Literal["multiplicative", "additive", "lognormal"] = "multiplicative"
    clip: bool = True
    kind: Literal["variation"] = "variation"

    def __post_init__(self) -> None:
        _sigma("variation.sigma", self.sigma)
        check(self.mode in NOISE_MODES, "variation.mode", self.mode, f"must be one of {list(NOISE_MODES)}")

    def apply(self, g, memristor, generator):
        return _clip(conductance_variation(g, self.sigma, self.mode, memristor.g_range, generator), memristor,
                     self.clip), None


@dataclass
class ReadNoise:
    """Read noise, fresh on every read of every cell.

    ``mode="relative"``: G·(1 + σ·ξ); ``mode="range"``: G + σ·(G_max − G_min)·ξ. The crossbar applies
    it in output space with the exact distribution of the per-cell noise summed on each column (a
    Gaussian with variance Σ_i v_i²·Var(G_ij)), which costs one extra matmul instead of a noise tensor
    per input vector.
    """

    sigma: float = 0.01
    mode: Literal["relative", "range"] = "relative"
    kind: Literal["read_noise"] = "read_noise"

    def __post_init__(self) -> None:
        _sigma("read_noise.sigma", self.sigma)

    def variance(self, g: torch.Tensor, memristor) -> torch.Tensor:
        if self.mode == "relative":
            return (self.sigma * g) ** 2
        return torch.full_like(g, (self.sigma * memristor.g_range) ** 2)


NONIDEALITIES = EFFECTS  # the registry under its former name


def build_nonidealities(specs: list | None, key: str = "nonidealities") -> list:
    """Programming-time effects from ``{"kind": "stuck_at", "p_hrs": 0.1}`` mappings or effect objects."""
    if specs is None:
        return []
    if not isinstance(specs, (list, tuple)):
        raise ConfigError(f"{key}={specs!r}: expected a list of effects")
    return [EFFECTS.build(spec, f"{key}[{i}]") for i, spec in enumerate(specs)]
