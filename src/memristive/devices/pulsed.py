"""Pulsed device models: the response of a conductance to a train of identical programming pulses.

The family is IBM aihwkit's pulsed devices (``aihwkit/simulator/configs/devices.py``; see
``docs/analog-training.md`` for the exact correspondence), written in conductance units so that they
sit behind the crossbar's device interface. Every model works on the *normalised state*

    x = (G − G_min)/(G_max − G_min)          nominal range [0, 1]; device ij holds x ∈ [lo_ij, hi_ij]

and ``centre`` c is the state at which one pulse moves the device by exactly ``dw_min`` (aihwkit's
``w = 0``). One pulse of direction d (+1 raises G, −1 lowers it) changes the state by (aihwkit's
"update once" rules, with w/b_max ↦ (x − c)/(hi − c) and w/b_min ↦ (x − c)/(lo − c)):

    constant step  Δx = ±Δ_d
    linear step    Δx_up = Δ_up·(1 − γ_up·(x − c)/(1 − c)),   Δx_down = −Δ_down·(1 + γ_down·(x − c)/c)
    soft bounds    Δx_up = Δ_up·(hi − x)/(hi − c),             Δx_down = −Δ_down·(x − lo)/(c − lo)
    exp step       Δx = d·Δ_d·max(0, 1 − A_d·exp(d·γ_d·z)),     z = 2a·(x − c)/(hi − lo) + b
    power step     Δx_up = Δ_up·ω^γ_up,  Δx_down = −Δ_down·(1 − ω)^γ_down,   ω = (hi − x)/(hi − lo)

followed by ``x ← clip(x, lo, hi)``. Device-to-device variation (drawn once per device, one tensor
per parameter, any leading trial dimension; aihwkit's ``PulsedDevice`` formulas)::

    Δ_d,ij  = dw_min·(1 + d·β_ij + σ_dtod·ξ_ij),   β_ij = up_down + up_down_dtod·ξ'_ij
    lo_ij   = 0 + bounds_dtod·ξ,  hi_ij = 1 + bounds_dtod·ξ                 (units of the range)
    γ_d,ij  = |γ_d + γ_dtod·ξ|  (linear step),   γ(1 + d·β^p_ij + σ^p·ξ)  (power step)

Cycle-to-cycle noise (``dw_min_std`` = σ): ``multiplicative`` — every pulse's step is scaled by
(1 + σ·ξ_k); ``additive`` — every pulse adds Δ_d·σ·ξ_k.

Trains of n pulses. Constant step, linear step and soft bounds move the state by an *affine* map per
pulse, Δx = a_d + b_d·x, so n pulses have the exact closed form (geometric series)

    x_n = x_0 + (a + b·x_0)·F(n),   F(n) = ((1 + b)^n − 1)/b  (= n when b = 0)

and clipping once at the end equals clipping after every pulse: the iterates move monotonically
towards the map's fixed point, so a train crosses a bound at most once and then stays clipped there. Cycle-to-cycle noise enters as an effective pulse count: a multiplicative
(1 + σξ_k) per pulse sums to n + σ·√n·ξ pulses (exact for constant step, first order in the step
size otherwise); additive noise adds Δ_d·σ·√n·ξ after the train. Exp step and power step have no
closed form for the discrete map: their trains loop over pulses (``max |n|`` iterations, each
vectorised over all devices and trials; devices whose train is done are masked out).

Energy of a train (Joule heat of the programming pulses): ``E = |n|·V²·t·(G_before + G_after)/2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from ..config import ConfigError, check

from .base import Device, preset, register_device, register_preset

NOISE_MODES = ("multiplicative", "additive")
Params = dict  # name -> tensor (per device) or float (nominal)


@dataclass
class PulsedDevice(Device):
    """Common parameters of the pulsed models (see the module docstring).

    ``g_min``/``g_max`` (siemens) are the nominal bounds; ``dw_min`` the mean state change of one
    pulse at the centre, as a fraction of ``g_max − g_min``; ``up_down`` the systematic up/down bias
    β (Δ_up = dw_min·(1 + β), Δ_down = dw_min·(1 − β)); ``*_dtod`` device-to-device spreads
    (relative for steps, in units of the range for bounds); ``dw_min_std`` cycle-to-cycle spread.
    ``v_pulse``/``t_pulse`` (volts, seconds) only enter the programming energy.
    """

    g_min: float = 1e-6
    g_max: float = 1e-4
    dw_min: float = 0.001
    up_down: float = 0.0
    dw_min_dtod: float = 0.0
    up_down_dtod: float = 0.0
    dw_min_std: float = 0.0
    bounds_dtod: float = 0.0
    noise: Literal["multiplicative", "additive"] = "multiplicative"
    centre: float = 0.5
    v_pulse: float = 1.0
    t_pulse: float = 1e-7
    levels: int | None = None
    name: str = ""

    has_pulse_response: ClassVar[bool] = True
    closed_form: ClassVar[bool] = True

    def __post_init__(self) -> None:
        k = "memristor"
        check(math.isfinite(self.g_min) and self.g_min >= 0, f"{k}.g_min", self.g_min, "must be a finite conductance >= 0 (S)")
        check(math.isfinite(self.g_max) and self.g_max > self.g_min, f"{k}.g_max", self.g_max,
              f"must be a finite conductance above g_min={self.g_min} (S)")
        check(math.isfinite(self.dw_min) and 0 < self.dw_min <= 0.1, f"{k}.dw_min", self.dw_min,
              "must lie in (0, 0.1] (state change of one pulse as a fraction of the range; >= 10 states)")
        check(math.isfinite(self.up_down) and abs(self.up_down) < 1, f"{k}.up_down", self.up_down,
              "must lie in (-1, 1) (relative up/down bias of the step)")
        for key in ("dw_min_dtod", "up_down_dtod", "dw_min_std", "bounds_dtod"):
            val = getattr(self, key)
            check(math.isfinite(val) and val >= 0, f"{k}.{key}", val, "must be a finite spread >= 0")
        check(self.bounds_dtod < 0.5, f"{k}.bounds_dtod", self.bounds_dtod, "must be below 0.5 (units of the range)")
        check(self.noise in NOISE_MODES, f"{k}.noise", self.noise, f"must be one of {list(NOISE_MODES)}")
        check(0 < self.centre < 1, f"{k}.centre", self.centre, "must lie strictly inside (0, 1) (normalised state)")
        check(math.isfinite(self.v_pulse) and self.v_pulse > 0, f"{k}.v_pulse", self.v_pulse, "must be a positive voltage")
        check(math.isfinite(self.t_pulse) and self.t_pulse > 0, f"{k}.t_pulse", self.t_pulse, "must be a positive duration (s)")
        check(self.levels is None, f"{k}.levels", self.levels, "pulsed devices are analog: levels must be null")

    # ------------------------------------------------------------------ interface
    @property
    def g_range(self) -> float:
        return self.g_max - self.g_min

    def to_state(self, g: torch.Tensor) -> torch.Tensor:
        return (g - self.g_min) / self.g_range

    def to_conductance(self, x: torch.Tensor) -> torch.Tensor:
        return self.g_min + x * self.g_range

    def nominal_params(self) -> Params:
        """The parameters of the nominal device (no device-to-device variation), as floats."""
        p = {"dw_up": self.dw_min * (1 + self.up_down), "dw_down": self.dw_min * (1 - self.up_down),
             "lo": 0.0, "hi": 1.0}
        p.update(self._extra_nominal())
        return p

    def sample_params(self, shape: tuple[int, ...], generator: torch.Generator | None = None,
                      device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Params:
        """Per-device parameters of ``shape`` devices (e.g. ``(trials, rows, cols)``), drawn once."""

        def randn():
            return torch.randn(shape, generator=generator, device=device, dtype=dtype)

        beta = self.up_down + self.up_down_dtod * randn() if self.up_down_dtod > 0 else torch.full(shape, self.up_down, device=device, dtype=dtype)
        scale = 1 + self.dw_min_dtod * randn() if self.dw_min_dtod > 0 else torch.ones(shape, device=device, dtype=dtype)
        # a drawn step below zero would reverse the pulse's direction: such a device does not move
        p = {"dw_up": (self.dw_min * (scale + beta)).clamp(0, 0.45), "dw_down": (self.dw_min * (scale - beta)).clamp(0, 0.45)}
        if self.bounds_dtod > 0:
            lo = (self.bounds_dtod * randn()).clamp(min=-self.g_min / self.g_range)  # G >= 0
            hi = 1 + self.bounds_dtod * randn()
            # keep the centre inside every device's range (bounds_dtod < 0.5 makes this rare)
            p["lo"] = lo.clamp(max=self.centre - 0.05)
            p["hi"] = hi.clamp(min=self.centre + 0.05)
        else:
            p["lo"] = torch.zeros(shape, device=device, dtype=dtype)
            p["hi"] = torch.ones(shape, device=device, dtype=dtype)
        p.update(self._extra_sample(shape, randn, device, dtype))
        return p

    def clip(self, g: torch.Tensor, params: Params | None = None) -> torch.Tensor:
        """``g`` limited to each device's own bounds (a device cannot hold more)."""
        p = params if params is not None else self.nominal_params()
        c = _siemens(self, p, g)
        return torch.clamp(g, c["lo"], c["hi"])  # conductances inside the bounds come back bit for bit

    def pulse(self, g: torch.Tensor, n: torch.Tensor, generator: torch.Generator | None = None,
              params: Params | None = None) -> torch.Tensor:
        """Conductances after ``n`` pulses (signed integer counts, broadcast with ``g``; n > 0 raises G)."""
        p = params if params is not None else self.nominal_params()
        n = torch.as_tensor(n, dtype=g.dtype, device=g.device)
        x0 = self.to_state(g)
        x = self._train(_clip(x0, p["lo"], p["hi"]), n, p, generator)
        return g + (x - x0) * self.g_range  # a cell without pulses (inside its bounds) keeps G exactly

    def pulse_pair(self, g: torch.Tensor, n_up: torch.Tensor, n_down: torch.Tensor,
                   generator: torch.Generator | None = None, params: Params | None = None) -> torch.Tensor:
        """``n_up`` raising pulses, then ``n_down`` lowering pulses (both counts >= 0)."""
        p = params if params is not None else self.nominal_params()
        x0 = self.to_state(g)
        x = _clip(x0, p["lo"], p["hi"])
        if self.closed_form:  # one direction per train: no per-cell selection of the affine coefficients
            co = self._affine_cached(p, x)
            x = self._affine_train(x, n_up.to(g.dtype), co[0], p, generator, p["dw_up"])
            x = self._affine_train(x, n_down.to(g.dtype), co[1], p, generator, p["dw_down"])
        else:
            x = self._train(x, n_up.to(g.dtype), p, generator)
            x = self._train(x, -n_down.to(g.dtype), p, generator)
        return g + (x - x0) * self.g_range

    def _affine_cached(self, p: Params, x: torch.Tensor):
        """``((a_up, b_up, L_up), (a_dn, b_dn, L_dn))`` with ``L = log1p(b)``, cached in ``p``."""
        key = ("_affine", x.dtype, x.device)
        co = p.get(key)
        if co is None:
            a_up, b_up, a_dn, b_dn = (_t(v, x) for v in self._affine(p))
            co = tuple((a, b, torch.log1p(b)) for a, b in ((a_up, _no_overshoot(b_up)), (a_dn, _no_overshoot(b_dn))))
            p[key] = co
        return co

    def _affine_train(self, x, m, co, p, generator, step):
        """``m >= 0`` pulses of one direction with Δx = a + b·x per pulse (closed form, see the module)."""
        a, b, L = co
        sigma = self.dw_min_std
        if sigma > 0 and self.noise == "multiplicative":
            m = m + sigma * m.sqrt() * _randn_like(x, generator)
        if bool((b == 0).all()):
            F = m
        else:
            b_safe = torch.where(b == 0, torch.ones_like(b), b)
            F = torch.where(b == 0, m, torch.expm1(m * L) / b_safe)
        x = x + (a + b * x) * F
        if sigma > 0 and self.noise == "additive":
            x = x + sigma * _t(step, x) * m.sqrt() * _randn_like(x, generator)
        return _clip(x, p["lo"], p["hi"])

    def steps(self, x: torch.Tensor, params: Params | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Magnitudes ``(Δx_up, Δx_down)`` of one noiseless pulse at normalised state ``x``."""
        return self._steps(x, params if params is not None else self.nominal_params())

    def symmetry_point(self, params: Params | None = None, iters: int = 48) -> torch.Tensor | float:
        """Normalised state where one up and one down pulse cancel (Δx_up = Δx_down), per device.

        Found by bisection on ``[lo, hi]`` (vectorised); where the two steps never cross (e.g.
        constant step) the centre is returned.
        """
        p = params if params is not None else self.nominal_params()
        lo = torch.as_tensor(p["lo"], dtype=torch.float64)
        hi = torch.as_tensor(p["hi"], dtype=torch.float64)
        p64 = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in p.items() if isinstance(k, str)}  # no caches

        def f(x):
            up, dn = self._steps(x, p64)
            return up - dn

        f_lo, f_hi = f(lo), f(hi)
        crosses = (f_lo > 0) & (f_hi < 0)
        a, b = lo.clone(), hi.clone()
        for _ in range(iters):
            mid = (a + b) / 2
            pos = f(mid) > 0
            a = torch.where(pos, mid, a)
            b = torch.where(pos, b, mid)
        out = torch.where(crosses, (a + b) / 2, torch.full_like(a, self.centre))
        dtype = next((v.dtype for k, v in p.items() if isinstance(k, str) and isinstance(v, torch.Tensor)), torch.float32)
        return out.to(dtype) if out.dim() else float(out)

    def pulse_energy(self, g_before: torch.Tensor, g_after: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """Joule energy (J) of ``|n|`` pulses per device: ``|n|·V²·t·(G_before + G_after)/2``."""
        return n.abs() * (self.v_pulse ** 2 * self.t_pulse / 2) * (g_before + g_after)

    def pulse_energy_total(self, g_before: torch.Tensor, g_after: torch.Tensor, n: torch.Tensor) -> float:
        """``pulse_energy(...).sum()`` for counts ``n >= 0``, without the per-device tensor."""
        n, a, b = n.reshape(-1), g_before.reshape(-1), g_after.reshape(-1)
        return float(torch.dot(n, a) + torch.dot(n, b)) * (self.v_pulse ** 2 * self.t_pulse / 2)

    # ------------------------------------------------------------------ per model
    def _extra_nominal(self) -> dict:
        return {}

    def _extra_sample(self, shape, randn, device, dtype) -> dict:
        return {}

    def _steps(self, x: torch.Tensor, p: Params) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _affine(self, p: Params) -> tuple:
        """``(a_up, b_up, a_down, b_down)`` with signed Δx = a_d + b_d·x per pulse (affine models)."""
        raise NotImplementedError

    def _train(self, x: torch.Tensor, n: torch.Tensor, p: Params, generator) -> torch.Tensor:
        if self.closed_form:
            return self._train_closed(x, n, p, generator)
        return self._train_loop(x, n, p, generator)

    def _train_closed(self, x, n, p, generator):
        a_up, b_up, a_dn, b_dn = (_t(v, x) for v in self._affine(p))
        up = n > 0
        a = torch.where(up, a_up, a_dn)
        b = _no_overshoot(torch.where(up, b_up, b_dn))
        m = n.abs()
        sigma = self.dw_min_std
        if sigma > 0 and self.noise == "multiplicative":
            m = m + sigma * m.sqrt() * _randn_like(x, generator)
        # F(m) = ((1 + b)^m − 1)/b, = m where b = 0 (expm1/log1p keep it exact for small b)
        b_safe = torch.where(b == 0, torch.ones_like(b), b)
        F = torch.where(b == 0, m, torch.expm1(m * torch.log1p(b_safe)) / b_safe)
        x = x + (a + b * x) * F
        if sigma > 0 and self.noise == "additive":
            step = torch.where(up, _t(p["dw_up"], x), _t(p["dw_down"], x))
            x = x + sigma * step * n.abs().sqrt() * _randn_like(x, generator)
        return _clip(x, p["lo"], p["hi"])

    def _train_loop(self, x, n, p, generator):
        m = n.abs()
        total = int(m.max()) if m.numel() else 0
        sign = n.sign()
        up = n > 0
        sigma = self.dw_min_std
        for k in range(total):  # one iteration per pulse, every device at once
            active = (m > k).to(x.dtype)
            s_up, s_dn = self._steps(x, p)
            step = torch.where(up, s_up, s_dn)
            if sigma > 0:
                xi = _randn_like(x, generator)
                if self.noise == "multiplicative":
                    step = step * (1 + sigma * xi)
                else:
                    dw = torch.where(up, _t(p["dw_up"], x), _t(p["dw_down"], x))
                    step = step + sigma * dw * xi
            x = _clip(x + active * sign * step, p["lo"], p["hi"])
        return x


def _randn_like(x: torch.Tensor, generator) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _siemens(dev: PulsedDevice, p: Params, g: torch.Tensor) -> dict:
    """Step sizes, their squares and the bounds of ``p`` in siemens (cached in ``p`` per dtype/device)."""
    key = ("_siemens", g.dtype, g.device)
    c = p.get(key)
    if c is None:
        r = dev.g_range
        up, dn = _t(p["dw_up"], g) * r, _t(p["dw_down"], g) * r
        c = {"up": up, "dn": dn, "up2": up * up, "dn2": dn * dn,
             "lo": dev.g_min + _t(p["lo"], g) * r, "hi": dev.g_min + _t(p["hi"], g) * r}
        p[key] = c
    return c


def _no_overshoot(b: torch.Tensor) -> torch.Tensor:
    """b ≥ −1 + 1e-6: a drawn device whose single step would jump past its fixed point (b < −1; only
    possible for extreme device-to-device draws, the nominal parameters are checked) lands on it."""
    return b.clamp(min=-1.0 + 1e-6)


def _t(v, x: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(v, dtype=x.dtype, device=x.device)


def _clip(x: torch.Tensor, lo, hi) -> torch.Tensor:
    if isinstance(lo, torch.Tensor) or isinstance(hi, torch.Tensor):
        return torch.clamp(x, _t(lo, x), _t(hi, x))
    return x.clamp(lo, hi)


# ============================================================================ the models
@register_device("constant-step")
@dataclass
class ConstantStepDevice(PulsedDevice):
    """Constant step Δ_d up to hard bounds (aihwkit ``ConstantStepDevice``)."""

    kind: Literal["constant-step"] = "constant-step"

    def _steps(self, x, p):
        return torch.as_tensor(p["dw_up"]) + 0 * x, torch.as_tensor(p["dw_down"]) + 0 * x

    def _affine(self, p):
        return p["dw_up"], 0.0, _neg(p["dw_down"]), 0.0

    def pulse_pair(self, g, n_up, n_down, generator=None, params=None):
        """Up and down pulses of one cell summed before the bounds apply (exact unless a cell meets a
        bound within the pair of trains); one Gaussian carries both trains' cycle-to-cycle noise.
        Works in siemens (step sizes and bounds scaled once and cached in ``params``)."""
        p = params if params is not None else self.nominal_params()
        c = _siemens(self, p, g)
        delta = n_up * c["up"]
        delta.addcmul_(n_down, c["dn"], value=-1)
        if self.dw_min_std > 0:
            var = n_up * c["up2"]
            var.addcmul_(n_down, c["dn2"])
            noise = _randn_like(g, generator)
            delta.addcmul_(noise, var.sqrt_(), value=self.dw_min_std)
        delta.add_(g)
        return torch.clamp(delta, c["lo"], c["hi"], out=delta)

    def _train_closed(self, x, n, p, generator):
        # b = 0: x_n = x_0 + n·Δ_d exactly (the general form without its expm1/log1p)
        up = n > 0
        m = n.abs()
        step = torch.where(up, _t(p["dw_up"], x), _t(p["dw_down"], x)) * n.sign()
        if self.dw_min_std > 0:  # multiplicative and additive noise coincide for a constant step
            m = m + self.dw_min_std * m.sqrt() * _randn_like(x, generator)
        return _clip(x + step * m, p["lo"], p["hi"])


@register_device("linear-step")
@dataclass
class LinearStepDevice(PulsedDevice):
    """Step changing linearly with the state (aihwkit ``LinearStepDevice``, mean-bound reference).

    ``gamma_up`` = 0.1 means the up step at the upper nominal bound is 10 % below its centre value.
    """

    kind: Literal["linear-step"] = "linear-step"

    gamma_up: float = 0.0
    gamma_down: float = 0.0
    gamma_up_dtod: float = 0.0
    gamma_down_dtod: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("gamma_up", "gamma_down", "gamma_up_dtod", "gamma_down_dtod"):
            val = getattr(self, key)
            check(math.isfinite(val) and val >= 0, f"memristor.{key}", val, "must be a finite value >= 0")
        self._check_step()

    def _check_step(self) -> None:
        c, top = self.centre, self.dw_min * (1 + abs(self.up_down))
        check(top * max(self.gamma_up / (1 - c), self.gamma_down / c) < 1, "memristor.gamma_up/gamma_down",
              (self.gamma_up, self.gamma_down),
              "one pulse must not jump past the step's fixed point: need dw_min·(1+|up_down|)·max(γ_up/(1−c), γ_down/c) < 1")

    def _extra_nominal(self):
        return {"gamma_up": self.gamma_up, "gamma_down": self.gamma_down}

    def _extra_sample(self, shape, randn, device, dtype):
        return {"gamma_up": (self.gamma_up + self.gamma_up_dtod * randn()).abs() if self.gamma_up_dtod > 0
                else torch.full(shape, self.gamma_up, device=device, dtype=dtype),
                "gamma_down": (self.gamma_down + self.gamma_down_dtod * randn()).abs() if self.gamma_down_dtod > 0
                else torch.full(shape, self.gamma_down, device=device, dtype=dtype)}

    def _affine(self, p):
        c = self.centre
        a_up = p["dw_up"] * (1 + p["gamma_up"] * c / (1 - c))
        b_up = _neg(p["dw_up"] * p["gamma_up"] / (1 - c))
        a_dn = _neg(p["dw_down"] * (1 - p["gamma_down"]))
        b_dn = _neg(p["dw_down"] * p["gamma_down"] / c)
        return a_up, b_up, a_dn, b_dn

    def _steps(self, x, p):
        c = self.centre
        up = p["dw_up"] * (1 - p["gamma_up"] * (x - c) / (1 - c))
        dn = p["dw_down"] * (1 + p["gamma_down"] * (x - c) / c)
        return up, dn


@register_device("soft-bounds")
@dataclass
class SoftBoundsDevice(PulsedDevice):
    """Step proportional to the distance from the bound it moves towards (aihwkit ``SoftBoundsDevice``).

    Up: Δ_up·(hi − x)/(hi − c); down: Δ_down·(x − lo)/(c − lo). Symmetric steps still make it an
    *asymmetric* device in the training sense: away from its symmetry point, an up and a down pulse
    do not cancel.
    """

    kind: Literal["soft-bounds"] = "soft-bounds"

    def __post_init__(self) -> None:
        super().__post_init__()
        c = self.centre
        check(self.dw_min * (1 + abs(self.up_down)) < min(c, 1 - c), "memristor.dw_min", self.dw_min,
              f"one pulse at the centre must stay inside the range: need dw_min·(1+|up_down|) < min(centre, 1−centre) = {min(c, 1 - c):.3g}")

    def _affine(self, p):
        c = self.centre
        lo, hi = p["lo"], p["hi"]
        a_up = p["dw_up"] * hi / (hi - c)
        b_up = _neg(p["dw_up"] / (hi - c))
        a_dn = p["dw_down"] * lo / (c - lo)
        b_dn = _neg(p["dw_down"] / (c - lo))
        return a_up, b_up, a_dn, b_dn

    def _steps(self, x, p):
        c = self.centre
        return p["dw_up"] * (p["hi"] - x) / (p["hi"] - c), p["dw_down"] * (x - p["lo"]) / (c - p["lo"])


@register_device("exp-step")
@dataclass
class ExpStepDevice(PulsedDevice):
    """Exponential step (aihwkit ``ExpStepDevice``): Δx = d·Δ_d·max(0, 1 − A_d·e^{d·γ_d·z})."""

    kind: Literal["exp-step"] = "exp-step"

    A_up: float = 0.00081
    A_down: float = 0.36833
    gamma_up: float = 12.44625
    gamma_down: float = 12.78785
    a: float = 0.244
    b: float = 0.2425

    closed_form: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("A_up", "A_down", "gamma_up", "gamma_down", "a", "b"):
            check(math.isfinite(getattr(self, key)), f"memristor.{key}", getattr(self, key), "must be finite")

    def _steps(self, x, p):
        z = 2 * self.a * (x - self.centre) / (p["hi"] - p["lo"]) + self.b
        up = p["dw_up"] * (1 - self.A_up * torch.exp(self.gamma_up * z)).clamp(min=0)
        dn = p["dw_down"] * (1 - self.A_down * torch.exp(-self.gamma_down * z)).clamp(min=0)
        return up, dn


@register_device("pow-step")
@dataclass
class PowStepDevice(PulsedDevice):
    """Power-law step (aihwkit ``PowStepDevice``): Δx_up = Δ_up·ω^γ_up, Δx_down = Δ_down·(1 − ω)^γ_down."""

    kind: Literal["pow-step"] = "pow-step"

    pow_gamma: float = 1.0
    pow_gamma_dtod: float = 0.0
    pow_up_down: float = 0.0
    pow_up_down_dtod: float = 0.0

    closed_form: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check(math.isfinite(self.pow_gamma) and self.pow_gamma > 0, f"memristor.pow_gamma", self.pow_gamma, "must be > 0")
        for key in ("pow_gamma_dtod", "pow_up_down_dtod"):
            check(getattr(self, key) >= 0, f"memristor.{key}", getattr(self, key), "must be >= 0")
        check(abs(self.pow_up_down) < 1, f"memristor.pow_up_down", self.pow_up_down, "must lie in (-1, 1)")

    def _extra_nominal(self):
        return {"gamma_up": self.pow_gamma * (1 + self.pow_up_down), "gamma_down": self.pow_gamma * (1 - self.pow_up_down)}

    def _extra_sample(self, shape, randn, device, dtype):
        beta = self.pow_up_down + self.pow_up_down_dtod * randn() if self.pow_up_down_dtod > 0 else self.pow_up_down
        spread = self.pow_gamma_dtod * randn() if self.pow_gamma_dtod > 0 else 0.0
        one = torch.ones(shape, device=device, dtype=dtype)
        return {"gamma_up": (self.pow_gamma * (one + beta + spread)).clamp(min=1e-3),
                "gamma_down": (self.pow_gamma * (one - beta + spread)).clamp(min=1e-3)}

    def _steps(self, x, p):
        w = ((p["hi"] - x) / (p["hi"] - p["lo"])).clamp(0, 1)
        return p["dw_up"] * w ** p["gamma_up"], p["dw_down"] * (1 - w) ** p["gamma_down"]


def _neg(v):
    return -v


# ============================================================================ presets
# Parameters from aihwkit's presets (aihwkit/simulator/presets/devices.py), converted from aihwkit's
# weight units to fractions of the conductance range: a step dw on a weight range [w_min, w_max]
# is dw/(w_max − w_min) here, bounds spreads likewise; ``centre`` = −w_min/(w_max − w_min).
PULSED_PRESETS: dict[str, tuple[type, dict]] = {
    # Gokmen & Vlasov, Front. Neurosci. 10:333 (2016): ~1200 states, 30 % d2d and c2c (aihwkit
    # GokmenVlasovPresetDevice: dw_min 0.0016 on [-1, 1], w_max/min_dtod 0.3).
    "gokmen-vlasov": (ConstantStepDevice, dict(dw_min=0.0008, dw_min_dtod=0.3, dw_min_std=0.3, up_down_dtod=0.01,
                                               bounds_dtod=0.15, name="constant step, Gokmen & Vlasov 2016")),
    # The same, idealised to ~10,000 symmetric states (aihwkit IdealizedPresetDevice; Rasch et al. 2019).
    "idealized": (ConstantStepDevice, dict(dw_min=0.0001, dw_min_dtod=0.3, dw_min_std=0.3, bounds_dtod=0.15,
                                           name="constant step, idealised (Rasch, Gokmen & Haensch 2019)")),
    # aihwkit's default ConstantStepDevice (PulsedDevice defaults: dw_min 0.001 on [-0.6, 0.6], 30 % d2d
    # of step and bounds, 30 % c2c, up_down_dtod 0.01) -- the device of aihwkit's AnalogSGD benchmark.
    "aihwkit-constant-step": (ConstantStepDevice, dict(dw_min=0.001 / 1.2, dw_min_dtod=0.3, dw_min_std=0.3,
                                                       up_down_dtod=0.01, bounds_dtod=0.15,
                                                       name="constant step, aihwkit defaults")),
    # A symmetric constant-step device without variation (the experiment's "symmetric" device).
    "symmetric-constant-step": (ConstantStepDevice, dict(dw_min=0.001, name="constant step, symmetric, 1000 states")),
    # ReRAM soft bounds, loose fit to Gong et al., Nat. Commun. 9:2102 (2018) (aihwkit
    # ReRamSBPresetDevice: dw_min 0.002 on [-0.75, 1.25], additive c2c 3.75, d2d 0.3; its write
    # noise is not modelled here).
    "reram-sb": (SoftBoundsDevice, dict(dw_min=0.001, centre=0.375, dw_min_dtod=0.3, up_down_dtod=0.01, dw_min_std=3.75,
                                        noise="additive", bounds_dtod=0.15, name="ReRAM soft bounds (Gong 2018 fit)")),
    # An asymmetric soft-bounds device: 500 states, 20 % up/down bias, no variation.
    "asymmetric-soft-bounds": (SoftBoundsDevice, dict(dw_min=0.002, up_down=0.2,
                                                      name="soft bounds, asymmetric (up_down 0.2)")),
    # ReRAM exponential step, fit to Gong et al. 2018 (aihwkit ReRamESPresetDevice; write noise not modelled).
    "reram-es": (ExpStepDevice, dict(dw_min=0.000675, up_down=0.259359, a=-0.5, b=-0.5, gamma_up=5.0, gamma_down=5.0,
                                     A_up=-1.18445, A_down=-0.081404, dw_min_dtod=0.2, up_down_dtod=0.05,
                                     bounds_dtod=0.15, dw_min_std=5.0, name="ReRAM exp step (Gong 2018 fit)")),
    # Li-ion ECRAM, Tang et al., IEDM 2018 (aihwkit EcRamPresetDevice, range [-0.8276, 1.1724]).
    "ecram": (LinearStepDevice, dict(dw_min=0.001, centre=0.4138, gamma_up=0.1153, gamma_down=0.5085, dw_min_dtod=0.1,
                                     up_down_dtod=0.01, bounds_dtod=0.029, gamma_up_dtod=0.05, gamma_down_dtod=0.05,
                                     dw_min_std=0.3, name="Li-ECRAM linear step (Tang 2018)")),
    # Metal-oxide ECRAM, Kim et al., IEDM 2019 (aihwkit EcRamMOPresetDevice, range [-0.8286, 1.1714]).
    "ecram-mo": (LinearStepDevice, dict(dw_min=1.4107e-4, centre=0.4143, gamma_up=0.4152, gamma_down=0.7342,
                                        dw_min_dtod=0.1, up_down_dtod=0.01, bounds_dtod=0.029, gamma_up_dtod=0.05,
                                        gamma_down_dtod=0.05, dw_min_std=2.0, name="MO-ECRAM linear step (Kim 2019)")),
    # Capacitor, Li et al., VLSI 2018 (aihwkit CapacitorPresetDevice without leakage; additive c2c).
    "capacitor": (LinearStepDevice, dict(dw_min=0.0025, gamma_up=0.05, gamma_down=0.05, dw_min_dtod=0.1, up_down_dtod=0.06,
                                         bounds_dtod=0.035, gamma_up_dtod=0.01, gamma_down_dtod=0.01, dw_min_std=0.3,
                                         noise="additive", name="capacitor linear step (Li 2018), no leakage")),
    # Power step with aihwkit's documented example parameters (no published device fit).
    "pow-step-example": (PowStepDevice, dict(dw_min=0.005, pow_gamma=1.1, pow_up_down=0.2, name="power step (aihwkit example)")),
}


for _name, (_cls, _params) in PULSED_PRESETS.items():
    register_preset(_name, _cls.kind, **_params)


def pulsed_preset(name: str, **overrides) -> PulsedDevice:
    """A pulsed device preset by name, e.g. ``pulsed_preset("reram-sb", g_max=2e-4)``."""
    if name not in PULSED_PRESETS:
        raise ConfigError(f"memristor={name!r}: unknown pulsed device preset; known: {sorted(PULSED_PRESETS)}")
    return preset(name, **overrides)
