"""Time after programming: conductance drift, retention, time-dependent read noise, drift compensation.

Small pure functions on tensors (any shape; a leading Monte Carlo trial dimension is just another
dimension) plus typed configs. A *time effect* splits into two steps so that one programmed instance
can be read at many times:

* ``draw(g_prog, memristor, generator) -> state``: the per-device random parameters, drawn **once** at
  programming (the drift exponent ν of every device, a retention direction ξ). Store the state with
  the programmed conductances;
* ``at(g_prog, state, t, memristor, generator) -> g_t``: the conductances ``t`` seconds after programming.
  Deterministic given the state, except the accumulated 1/f noise of the PCM model, which is a fresh
  draw from ``generator`` at each ``t`` (as in aihwkit).

So the same seed gives the same instance at every ``t``; ``t = 0`` returns the programmed values.

Models
======

**Power-law drift** (PCM; Boybat et al. NVMTS 2018, Joshi et al. Nat. Commun. 11:2473, 2020)::

    G(t) = G(t0) · (t / t0)^(−ν)                                         t ≥ t0 (absolute time)

:class:`PCMDrift` follows the statistical PCM model of Joshi et al. as implemented in aihwkit
(``src/aihwkit/inference/noise/pcm.py``, ``PCMLikeNoiseModel``): time ``t`` counts from the end of
programming and the power law is referenced to the first read at ``t0`` (default 20 s), i.e.
``G(t) = G_prog·((t + t0)/t0)^(−ν)``. With ``g_dependent=True`` the exponent depends on the
programmed conductance (``x = max(|G_prog|/G_max, 1e-7)``)::

    μ_ν(x) = clip(−0.0155·ln x + 0.0244, 0.049, 0.1)
    σ_ν(x) = clip(−0.0125·ln x − 0.0059, 0.008, 0.045)
    ν      = |μ_ν + σ_ν·ξ| · drift_scale                      (ξ ~ N(0, 1), once per device)

otherwise ``ν = |nu_mean + nu_std·ξ|``. The accumulated 1/f read noise at time ``t`` (same source)::

    Q_s(x) = min(0.0088 / max(x^0.65, 1e-3), 0.2)
    σ_rn   = Q_s · sqrt(ln((t + t0 + t_read) / (2·t_read)))
    G      ← max(G(t) + |G(t)|·read_noise_scale·σ_rn·ξ', 0)          (ξ' fresh at every t)

and the PCM programming noise (:func:`pcm_programming_sigma`, a Gaussian of standard deviation
``(c0 + c1·x + c2·x²)·G_max/25`` with ``x = G_target/G_max``, fitted in µS with G_max = 25 µS).

**RRAM retention / relaxation** (:class:`RRAMRetention`). Filamentary oxide RRAM does not drift as a
power law; programmed levels *broaden* (and may relax towards an intermediate state) roughly linearly
in log time (Zhao et al., "Investigation of statistical retention of filamentary analog RRAM for
neuromorphic computing", IEDM 2017; the log-time form is also the one of the empirical RRAM
retention model of Lammie, Rahimi Azghadi & Ielmini, Semicond. Sci. Technol. 2021, used by
MemTorch). With ``L(t) = log10(1 + t/t0)`` decades::

    G(t) = max(G_prog + min(relax·L, 1)·(G_relax − G_prog) + sigma·L·(G_max − G_min)·ξ, 0)

``ξ ~ N(0, 1)`` once per device, so each device moves monotonically along its own direction and the
spread across devices is ``sigma·(G_max − G_min)`` per decade. ``G_relax`` defaults to the middle of
the range. The defaults are illustrative, not a fit to one device: set them from your data.

**Drift compensation** (periphery; aihwkit ``src/aihwkit/inference/compensation/drift.py``). Right
after programming the periphery reads a known input set (the one-hot vectors: every row alone)
and stores the readout; at time ``t`` it reads the same inputs again and scales every later output
digitally by

    global:      α = mean|Y(0)| / mean|Y(t)|                  (one factor per array)
    per column:  α_j = mean_i|Y_ij(0)| / mean_i|Y_ij(t)|      (one factor per output column)

(:func:`global_drift_scale`, :func:`column_drift_scale`; denominators floored at 1e-30 of the
readout's unit so an empty column gives a finite factor).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from .config import Registry, check
from .nonideal import Effect, register_effect

__all__ = [
    "power_law_drift",
    "pcm_nu_stats",
    "pcm_read_noise_sigma",
    "pcm_programming_sigma",
    "retention_shift",
    "global_drift_scale",
    "column_drift_scale",
    "TimeEffect",
    "PCMDrift",
    "RRAMRetention",
    "PCMProgramming",
    "TIME_EFFECTS",
    "register_time_effect",
    "build_time_effect",
    "YEAR",
]

YEAR = 365.25 * 86400.0  # seconds

_ZERO_CLIP = 1e-7  # aihwkit's floor on |G|/G_max in the ν statistics


def _randn(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)


# ============================================================================ pure functions
def power_law_drift(g0: torch.Tensor, nu: torch.Tensor | float, t: float, t0: float) -> torch.Tensor:
    """``G(t) = G(t0)·(t/t0)^(−ν)`` for an absolute time ``t ≥ t0 > 0`` (seconds)."""
    check(math.isfinite(t0) and t0 > 0, "t0", t0, "must be a positive time in seconds")
    check(math.isfinite(t) and t >= t0, "t", t, f"must be a finite time >= t0={t0} s")
    return g0 * torch.pow(torch.as_tensor(t / t0, dtype=g0.dtype, device=g0.device), -torch.as_tensor(nu))


def _relative(g: torch.Tensor, g_max: float) -> torch.Tensor:
    return (g.abs() / g_max).clamp(min=_ZERO_CLIP)


def pcm_nu_stats(g: torch.Tensor, g_max: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and spread of the drift exponent at programmed conductance ``g`` (Joshi 2020 / aihwkit)."""
    lx = torch.log(_relative(g, g_max))
    mu = (-0.0155 * lx + 0.0244).clamp(0.049, 0.1)
    sigma = (-0.0125 * lx - 0.0059).clamp(0.008, 0.045)
    return mu, sigma


def pcm_read_noise_sigma(g_prog: torch.Tensor, g_max: float, t_abs: float, t_read: float) -> torch.Tensor:
    """Relative std of the accumulated 1/f read noise at absolute time ``t_abs`` (since programming
    started, i.e. ``t + t0``): ``Q_s(x)·sqrt(ln((t_abs + t_read)/(2 t_read)))``."""
    check(t_read > 0, "t_read", t_read, "must be a positive time in seconds")
    q_s = (0.0088 / (g_prog.abs() / g_max).pow(0.65).clamp(min=1e-3)).clamp(max=0.2)
    arg = (t_abs + t_read) / (2 * t_read)
    return q_s * math.sqrt(math.log(arg)) if arg > 1 else torch.zeros_like(q_s)


def pcm_programming_sigma(g_target: torch.Tensor, g_max: float,
                          coeffs: tuple[float, ...] = (0.26348, 1.9650, -1.1731),
                          g_ref: float = 25e-6) -> torch.Tensor:
    """Std (siemens) of the PCM programming error, ``Σ_i c_i·x^i · 1e-6 · G_max/g_ref`` with
    ``x = G/G_max`` (aihwkit's polynomial is in µS, fitted for ``G_max = g_ref = 25 µS``)."""
    x = g_target / g_max
    poly = torch.zeros_like(g_target)
    for c in reversed(coeffs):
        poly = poly * x + c
    return poly * (1e-6 * g_max / g_ref)


def retention_shift(g_prog: torch.Tensor, xi: torch.Tensor, t: float, t0: float, sigma: float, relax: float,
                    g_relax: float, g_range: float) -> torch.Tensor:
    """RRAM retention: ``max(G + min(relax·L, 1)·(G_relax − G) + sigma·L·range·ξ, 0)``,
    ``L = log10(1 + t/t0)``."""
    check(math.isfinite(t) and t >= 0, "t", t, "must be a finite time >= 0 s")
    decades = math.log10(1.0 + t / t0)
    pull = min(relax * decades, 1.0)
    return (g_prog + pull * (g_relax - g_prog) + (sigma * decades * g_range) * xi).clamp(min=0.0)


def _readout_mean(y: torch.Tensor, dims) -> torch.Tensor:
    return y.abs().mean(dim=dims, keepdim=True)


def global_drift_scale(ref0: torch.Tensor, ref_t: torch.Tensor) -> torch.Tensor:
    """One factor per trial: ``mean|ref0| / mean|ref_t|`` over all but the leading (trial) dimension.

    ``ref*`` are readouts ``(T, n_inputs, outputs)`` of the same known inputs at programming and at
    time ``t``. Returns ``(T, 1, 1)`` (broadcasts against ``(T, B, outputs)``)."""
    if ref0.shape != ref_t.shape or ref0.dim() != 3:
        raise ValueError(f"readouts: expected two (trials, inputs, outputs) tensors of one shape, got "
                         f"{tuple(ref0.shape)} and {tuple(ref_t.shape)}")
    num, den = _readout_mean(ref0, (1, 2)), _readout_mean(ref_t, (1, 2))
    return num / den.clamp(min=1e-30 * float(num.max().clamp(min=1e-300)))


def column_drift_scale(ref0: torch.Tensor, ref_t: torch.Tensor) -> torch.Tensor:
    """One factor per trial and output column: ``mean_i|ref0_ij| / mean_i|ref_t_ij|``, ``(T, 1, outputs)``."""
    if ref0.shape != ref_t.shape or ref0.dim() != 3:
        raise ValueError(f"readouts: expected two (trials, inputs, outputs) tensors of one shape, got "
                         f"{tuple(ref0.shape)} and {tuple(ref_t.shape)}")
    num, den = _readout_mean(ref0, 1), _readout_mean(ref_t, 1)
    return num / den.clamp(min=1e-30 * float(num.max().clamp(min=1e-300)))


# ============================================================================ configs
TIME_EFFECTS = Registry("time effect")


def register_time_effect(kind: str):
    """Class decorator registering a time-effect kind."""
    return TIME_EFFECTS.register(kind)


class TimeEffect:
    """Base of time effects: ``draw(g_prog, memristor, generator) -> state`` (once, at programming) and
    ``at(g_prog, state, t, memristor, generator) -> g_t`` (``t`` seconds after programming).
    ``memristor`` is the device model (its ``g_min``/``g_max`` are used)."""

    __registry__ = TIME_EFFECTS

    def draw(self, g_prog: torch.Tensor, memristor, generator: torch.Generator | None = None) -> dict:
        raise NotImplementedError

    def at(self, g_prog: torch.Tensor, state: dict, t: float, memristor,
           generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError


@register_time_effect("pcm_drift")
@dataclass
class PCMDrift(TimeEffect):
    """Power-law drift with per-device ν (Joshi et al. 2020 via aihwkit) and accumulated 1/f read noise.

    ``g_dependent``: ν statistics from the programmed conductance (aihwkit's fit); else
    ``nu_mean``/``nu_std``. ``t0``: first read after programming (s), the drift reference.
    ``read_noise``: add the accumulated 1/f noise at each read time (scaled by ``read_noise_scale``).
    """

    g_dependent: bool = True
    nu_mean: float = 0.06
    nu_std: float = 0.02
    drift_scale: float = 1.0
    t0: float = 20.0
    read_noise: bool = True
    read_noise_scale: float = 1.0
    t_read: float = 250e-9
    kind: Literal["pcm_drift"] = "pcm_drift"

    def __post_init__(self) -> None:
        check(math.isfinite(self.nu_mean) and self.nu_mean >= 0, "pcm_drift.nu_mean", self.nu_mean, "must be >= 0")
        check(math.isfinite(self.nu_std) and self.nu_std >= 0, "pcm_drift.nu_std", self.nu_std, "must be >= 0")
        check(math.isfinite(self.drift_scale) and self.drift_scale >= 0, "pcm_drift.drift_scale", self.drift_scale,
              "must be >= 0")
        check(math.isfinite(self.t0) and self.t0 > 0, "pcm_drift.t0", self.t0, "must be a positive time in seconds")
        check(math.isfinite(self.read_noise_scale) and self.read_noise_scale >= 0, "pcm_drift.read_noise_scale",
              self.read_noise_scale, "must be >= 0")
        check(math.isfinite(self.t_read) and self.t_read > 0, "pcm_drift.t_read", self.t_read,
              "must be a positive time in seconds")

    def draw(self, g_prog: torch.Tensor, memristor, generator: torch.Generator | None = None) -> dict:
        """ν per device (drawn once, at programming)."""
        if self.g_dependent:
            mu, sigma = pcm_nu_stats(g_prog, memristor.g_max)
        else:
            mu = torch.full_like(g_prog, self.nu_mean)
            sigma = torch.full_like(g_prog, self.nu_std)
        return {"nu": (mu + sigma * _randn(g_prog, generator)).abs() * self.drift_scale}

    def at(self, g_prog: torch.Tensor, state: dict, t: float, memristor,
           generator: torch.Generator | None = None) -> torch.Tensor:
        """Conductances ``t`` seconds after programming."""
        check(math.isfinite(t) and t >= 0, "t", t, "must be a finite time >= 0 s")
        if t == 0:
            return g_prog.clone()
        g = power_law_drift(g_prog, state["nu"], t + self.t0, self.t0)
        if self.read_noise and self.read_noise_scale > 0:
            sig = pcm_read_noise_sigma(g_prog, memristor.g_max, t + self.t0, self.t_read)
            g = (g + g.abs() * (self.read_noise_scale * sig) * _randn(g, generator)).clamp(min=0.0)
        return g


@register_time_effect("rram_retention")
@dataclass
class RRAMRetention(TimeEffect):
    """Log-time broadening (and optional relaxation) of programmed RRAM levels; see the module doc.

    ``sigma``: spread added per decade of ``1 + t/t0``, relative to ``G_max − G_min``; ``relax``:
    fraction of the way to ``g_relax`` (siemens; ``None`` = middle of the range) moved per decade.
    """

    sigma: float = 0.01
    relax: float = 0.0
    g_relax: float | None = None
    t0: float = 1.0
    kind: Literal["rram_retention"] = "rram_retention"

    def __post_init__(self) -> None:
        check(math.isfinite(self.sigma) and self.sigma >= 0, "rram_retention.sigma", self.sigma, "must be >= 0")
        check(math.isfinite(self.relax) and 0 <= self.relax <= 1, "rram_retention.relax", self.relax,
              "must lie in [0, 1] (fraction per decade)")
        check(math.isfinite(self.t0) and self.t0 > 0, "rram_retention.t0", self.t0, "must be a positive time in seconds")
        if self.g_relax is not None:
            check(math.isfinite(self.g_relax) and self.g_relax >= 0, "rram_retention.g_relax", self.g_relax,
                  "must be a conductance >= 0 (siemens) or null for the middle of the range")

    def draw(self, g_prog: torch.Tensor, memristor, generator: torch.Generator | None = None) -> dict:
        return {"xi": _randn(g_prog, generator)}

    def at(self, g_prog: torch.Tensor, state: dict, t: float, memristor, generator=None) -> torch.Tensor:
        lo, hi = memristor.g_min, memristor.g_max
        g_relax = self.g_relax if self.g_relax is not None else 0.5 * (lo + hi)
        return retention_shift(g_prog, state["xi"], t, self.t0, self.sigma, self.relax, g_relax, hi - lo)


@register_effect("pcm_programming")
@dataclass
class PCMProgramming(Effect):
    """PCM programming error (aihwkit ``PCMLikeNoiseModel``): ``G + scale·σ(G)·ξ``, floored at 0.

    A programming-time effect with the ``apply(g, device, generator) -> (g, None)`` interface; σ from
    :func:`pcm_programming_sigma` with the device's ``g_max``.
    """

    scale: float = 1.0
    coeffs: tuple[float, float, float] = (0.26348, 1.9650, -1.1731)
    g_ref: float = 25e-6
    kind: Literal["pcm_programming"] = "pcm_programming"

    def __post_init__(self) -> None:
        check(math.isfinite(self.scale) and self.scale >= 0, "pcm_programming.scale", self.scale, "must be >= 0")
        check(math.isfinite(self.g_ref) and self.g_ref > 0, "pcm_programming.g_ref", self.g_ref,
              "must be a positive conductance (siemens)")

    def apply(self, g: torch.Tensor, device, generator=None):
        sig = pcm_programming_sigma(g, device.g_max, self.coeffs, self.g_ref)
        return (g + self.scale * sig * _randn(g, generator)).clamp(min=0.0), None


def build_time_effect(spec, key: str = "time_effect") -> TimeEffect:
    """A time effect from a kind name, a config mapping (``{"kind": "pcm_drift", ...}``) or an instance."""
    return TIME_EFFECTS.build(spec, key)
