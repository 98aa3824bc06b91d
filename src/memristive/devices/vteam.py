"""The VTEAM memristor model: state equation, windows, I–V relations, pulse response, variability.

All physics here are small functions on tensors; every argument broadcasts, so one call advances
every device of an array and every Monte Carlo trial at once. :class:`VTEAMDevice` is a
:class:`~memristive.devices.base.Device` (kind ``"vteam"``) whose pulse response works on
conductances, so VTEAM arrays are ordinary crossbars; :class:`VTEAMCells` is a thin ``nn.Module``
holding a population's per-device draws (D2D) and pulse-to-pulse noise as buffers.

State equation (Kvatinsky et al., IEEE TCAS-II 62(8):786, 2015; same form as the Technion
Verilog-A and MemTorch ``VTEAM.py``)::

    dw/dt = k_off·(v/v_off − 1)^α_off · f_off(w)     if 0 < v_off < v        (RESET: w → w_off, R → R_off)
          = 0                                        if v_on ≤ v ≤ v_off     (sub-threshold: no change)
          = k_on ·(v/v_on  − 1)^α_on  · f_on(w)      if v < v_on < 0         (SET:   w → w_on,  R → R_on)

with ``k_off > 0``, ``k_on < 0``, ``v_off > 0``, ``v_on < 0``. Internally the state is normalised,
``s = (w − w_on)/(w_off − w_on) ∈ [0, 1]`` (``s = 0`` is R_on, ``s = 1`` is R_off), and
``g(v) = rate/(w_off − w_on)`` is the normalised drive in 1/s.

I–V relations (TEAM/VTEAM; Kvatinsky et al. 2013/2015)::

    linear:       R(s) = R_on + (R_off − R_on)·s
    exponential:  R(s) = R_on·(R_off/R_on)^s          (= R_on·e^{λ s}, λ = ln(R_off/R_on))
    i = v / R(s)

Window functions ``f(s)`` (s normalised; Technion "Verilog-A for Memristor Models", Table 3).
``direction`` is the sign of ``ds/dt`` (+1 towards R_off, −1 towards R_on; for VTEAM the current
has the sign of the voltage, so this is Biolek's ``sign(i)``)::

    none:         f = 1                                   (then the state is clipped to [0, 1])
    joglekar:     f = 1 − (2s − 1)^{2p}
    biolek:       f = 1 − (s − stp(−i))^{2p}              (= 1 − s^{2p} moving up, 1 − (1 − s)^{2p} moving down)
    prodromakis:  f = j·(1 − ((s − ½)² + ¾)^p)
    kvatinsky:    f_off = exp(−exp((s − a_off)/w_c)),  f_on = exp(−exp(−(s − a_on)/w_c))

Pulse response. For a rectangular pulse of amplitude V and width t the drive is constant, so the
state equation separates (Biolek et al., IEEE Access 9:30242, 2021, "state equation
preprocessing"): ``F(s1) − F(s0) = u``, ``F = ∫ds/f``, with the *drive integral* ``u = g(V)·t``.
A train of n pulses is one pulse of width ``n·t``. Closed forms (exact integration):

    none:              s1 = clip(s0 + u, 0, 1)
    joglekar, p = 1:   f = 4s(1−s)      →  s1 = σ(logit(s0) + 4u)
    prodromakis, p = 1: f = j·s(1−s)    →  s1 = σ(logit(s0) + j·u)
    biolek, p = 1, u ≥ 0: f = 1 − s²    →  s1 = tanh(atanh(s0) + u)
    biolek, p = 1, u < 0: f = s(2 − s)  →  1 − s1 = tanh(atanh(1 − s0) − u)

Other windows/exponents (kvatinsky, p ≠ 1) are integrated with ``substeps`` RK4 steps in ``u``,
clipping to [0, 1] after each step ("integration with saturation", Biolek 2021). Symmetric windows
that vanish at both bounds (joglekar, prodromakis) have the well-known *stick effect*: a state that
sits exactly on a bound never moves again. The closed forms reproduce that faithfully.

Variability (the DTGA paper's "noise factor" η; standard formulation, see docs/dtga.md):

* device-to-device (drawn once per device): ``p_ij = p·(1 + η·ξ_ij)``, ξ ~ N(0, 1), for the
  parameters in ``d2d_params`` (default ``k_on, k_off, r_on, r_off``; ``lognormal``: ``p·e^{ηξ}``);
* pulse-to-pulse (drawn for every pulse): ``multiplicative`` — each pulse's drive integral is
  ``u·(1 + η·ξ)`` (with no window exactly ``Δw·(1 + ηξ)``); a train of n pulses then has drive
  ``u·(n + η·√n·ξ)`` exactly (a sum of n Gaussians), floored at 0 (a pulse cannot reverse the
  state); ``additive`` — each pulse adds ``η·ξ`` (in units of the full state range) after the
  deterministic step, i.e. ``η·√n·ξ`` for a train.

Energy of a pulse train (Joule heat in the device): ``E = n·V²·t·(G_before + G_after)/2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from torch import nn

from ..config import ConfigError, check

from .base import Device, device_from_spec, register_device, register_preset

WINDOWS = ("none", "joglekar", "biolek", "prodromakis", "kvatinsky")
IV_RELATIONS = ("linear", "exponential")
D2D_PARAMS = ("k_on", "k_off", "r_on", "r_off", "v_on", "v_off", "alpha_on", "alpha_off")


# ============================================================================ parameters
@dataclass
class Pulse:
    """Rectangular programming pulses: SET amplitude (< v_on), RESET amplitude (> v_off), width (s).

    Defaults (shared/research/algorithms.md §1.2): with the MemTorch kinetics and 10 ns, −0.2134 V and
    +0.14 V each move the state by 1 % of its range (about 100 pulses end to end).
    """

    v_set: float = -0.2134
    v_reset: float = 0.14
    width: float = 10e-9

    def __post_init__(self) -> None:
        check(math.isfinite(self.v_set) and self.v_set < 0, "pulse.v_set", self.v_set, "must be a negative voltage")
        check(math.isfinite(self.v_reset) and self.v_reset > 0, "pulse.v_reset", self.v_reset, "must be a positive voltage")
        check(math.isfinite(self.width) and self.width > 0, "pulse.width", self.width, "must be a positive time (s)")

    def check_device(self, dev: "VTEAMDevice") -> None:
        """Pulses below threshold would do nothing: refuse them."""
        check(self.v_set < dev.v_on, "pulse.v_set", self.v_set, f"must be below the SET threshold v_on={dev.v_on} V")
        check(self.v_reset > dev.v_off, "pulse.v_reset", self.v_reset,
              f"must be above the RESET threshold v_off={dev.v_off} V")


@register_device("vteam")
@dataclass
class VTEAMDevice(Device):
    """VTEAM parameters (SI units). Defaults: MemTorch's VTEAM defaults (see :data:`VTEAM_PRESETS`).

    ``w_on``/``w_off`` bound the physical state (m); ``window`` is one of
    ``none, joglekar, biolek, prodromakis, kvatinsky``; ``p`` its exponent, ``j`` Prodromakis'
    scale, ``a_on``/``a_off``/``w_c`` the Kvatinsky window parameters in *normalised* state units.
    ``write`` is the programming pulse that :meth:`pulse` applies.

    As a :class:`~memristive.devices.base.Device` (kind ``"vteam"``): ``g_min = 1/R_off``,
    ``g_max = 1/R_on``, analog (``levels = None``); :meth:`program` gives the conductance of the state
    that holds the target, :meth:`pulse` the pulse response on conductances (nominal device; per-device
    D2D draws and P2P noise: :class:`VTEAMCells`), :meth:`current` the I–V ``i = v/R(s)``.
    """

    has_pulse_response: ClassVar[bool] = True
    levels: ClassVar[int | None] = None

    k_on: float = -10.0
    k_off: float = 5e-4
    alpha_on: float = 3.0
    alpha_off: float = 1.0
    v_on: float = -0.2
    v_off: float = 0.02
    w_on: float = 0.0
    w_off: float = 3e-9
    r_on: float = 50.0
    r_off: float = 1000.0
    iv: Literal["linear", "exponential"] = "linear"
    window: Literal["none", "joglekar", "biolek", "prodromakis", "kvatinsky"] = "none"
    p: float = 1.0
    j: float = 1.0
    a_on: float = 0.0
    a_off: float = 1.0
    w_c: float = 0.1
    write: Pulse = field(default_factory=Pulse)
    substeps: int = 32
    name: str = "vteam"
    source: str = ""
    kind: Literal["vteam"] = "vteam"

    def __post_init__(self) -> None:
        check(math.isfinite(self.k_on) and self.k_on < 0, "vteam.k_on", self.k_on, "must be < 0 (m/s; SET rate)")
        check(math.isfinite(self.k_off) and self.k_off > 0, "vteam.k_off", self.k_off, "must be > 0 (m/s; RESET rate)")
        for key in ("alpha_on", "alpha_off"):
            val = getattr(self, key)
            check(math.isfinite(val) and val > 0, f"vteam.{key}", val, "must be a positive exponent")
        check(math.isfinite(self.v_on) and self.v_on < 0, "vteam.v_on", self.v_on, "must be a negative threshold voltage")
        check(math.isfinite(self.v_off) and self.v_off > 0, "vteam.v_off", self.v_off, "must be a positive threshold voltage")
        check(math.isfinite(self.w_off) and math.isfinite(self.w_on) and self.w_off > self.w_on, "vteam.w_off",
              self.w_off, f"must exceed w_on={self.w_on}")
        check(math.isfinite(self.r_on) and self.r_on > 0, "vteam.r_on", self.r_on, "must be a positive resistance")
        check(math.isfinite(self.r_off) and self.r_off > self.r_on, "vteam.r_off", self.r_off,
              f"must exceed r_on={self.r_on}")
        check(self.iv in IV_RELATIONS, "vteam.iv", self.iv, f"must be one of {list(IV_RELATIONS)}")
        check(self.window in WINDOWS, "vteam.window", self.window, f"must be one of {list(WINDOWS)}")
        if self.window in ("joglekar", "biolek"):
            check(self.p >= 1 and float(self.p).is_integer(), "vteam.p", self.p,
                  f"the {self.window} window needs an integer exponent p >= 1")
        if self.window == "prodromakis":
            check(self.p > 0, "vteam.p", self.p, "the prodromakis window needs p > 0")
            check(self.j > 0, "vteam.j", self.j, "the prodromakis window needs j > 0")
        check(self.w_c > 0, "vteam.w_c", self.w_c, "the kvatinsky window width must be > 0")
        check(isinstance(self.substeps, int) and self.substeps >= 1, "vteam.substeps", self.substeps,
              "must be an integer >= 1 (RK4 steps for windows without a closed form)")
        self.write.check_device(self)

    # -------------------------------------------------------------------- derived quantities
    @property
    def d(self) -> float:
        """State range ``w_off − w_on`` (m)."""
        return self.w_off - self.w_on

    @property
    def g_min(self) -> float:
        return 1.0 / self.r_off

    @property
    def g_max(self) -> float:
        return 1.0 / self.r_on

    # -------------------------------------------------------------------- the Device interface
    def state(self, g: torch.Tensor) -> torch.Tensor:
        """Normalised state ``s`` that has conductance ``g`` (clipped to [0, 1])."""
        return state_from_conductance(g, self.r_on, self.r_off, self.iv).clamp(0.0, 1.0)

    def conductance(self, s: torch.Tensor) -> torch.Tensor:
        """Conductance ``1/R(s)`` of normalised state ``s``."""
        return conductance(s, self.r_on, self.r_off, self.iv)

    @property
    def g_mid(self) -> float:
        """Conductance of the mid *state* ``s = ½`` (with the linear I–V ``1/(R_on + (R_off − R_on)/2)``,
        not the conductance midpoint): where a pair has the same pulse headroom both ways."""
        return float(self.conductance(torch.tensor(0.5, dtype=torch.float64)))

    def program(self, g_target: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Conductance of the state that holds ``g_target`` (analog: the target itself, up to float
        rounding). Targets outside ``[g_min, g_max]`` are a ``ValueError``."""
        g_target = self.check_targets(torch.as_tensor(g_target))
        return self.conductance(self.state(g_target)).to(g_target.dtype)

    def pulse_drives(self) -> tuple[float, float]:
        """Drive integrals ``(u_set, u_reset)`` of one ``write`` pulse of each polarity (normalised)."""
        rp = self.rate_params()
        key = (*rp.values(), self.write.v_set, self.write.v_reset, self.write.width)
        cached = self.__dict__.get("_drives")
        if cached is None or cached[0] != key:  # computed once per parameter set (called on every update)
            u_set = float(drive(torch.tensor(self.write.v_set, dtype=torch.float64), **rp)) * self.write.width
            u_reset = float(drive(torch.tensor(self.write.v_reset, dtype=torch.float64), **rp)) * self.write.width
            cached = self.__dict__["_drives"] = (key, (u_set, u_reset))
        return cached[1]

    def pulse(self, g: torch.Tensor, n: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Conductances after ``|n|`` ``write`` pulses: SET (``n > 0``, G rises) or RESET (``n < 0``).

        The nominal device, noise-free (``generator`` unused); populations with D2D draws and P2P
        noise: :meth:`VTEAMCells.pulse`. Both are :func:`pulse_conductance`.
        """
        return self.pulse_change(g, n).add_(g)

    def pulse_state(self, s: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """Normalised states after ``|n|`` ``write`` pulses (SET for ``n > 0``), nominal and noise-free:
        :meth:`pulse` in state space (what a controller that tracks states predicts)."""
        u_set, u_reset = self.pulse_drives()
        return pulse_train(s, torch.as_tensor(n, dtype=s.dtype, device=s.device), u_set, u_reset,
                           substeps=self.substeps, **self.window_params())

    def pulse_change(self, g: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """``pulse(g, n) − g``, computed without the cancellation (what a controller predicts)."""
        u_set, u_reset = self.pulse_drives()
        return pulse_conductance(g, torch.as_tensor(n, dtype=g.dtype, device=g.device), u_set, u_reset, self.r_on,
                                 self.r_off, self.iv, substeps=self.substeps, change=True, **self.window_params())

    def pulse_energy(self, g_before: torch.Tensor, g_after: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """Joule energy (J) per device of a train of ``|n|`` ``write`` pulses, SET for ``n > 0`` and RESET for
        ``n < 0`` (what :meth:`pulse` applied): :func:`pulse_energy` with the train's polarity."""
        n = torch.as_tensor(n, dtype=g_before.dtype, device=g_before.device)
        return pulse_energy(n.clamp(min=0), (-n).clamp(min=0), g_before, g_after, self.write)

    def current(self, v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Read current ``i = v/R(s)`` of a device holding ``g``. The state does not move while
        ``v_on ≤ v ≤ v_off`` (:meth:`check_read_voltage`), so at a read ``i = v·g``."""
        return current(v, self.state(g), self.r_on, self.r_off, self.iv)

    def drive(self, v: float | torch.Tensor) -> torch.Tensor:
        """Normalised drive ``g(v)`` (1/s) of a constant voltage (0 below threshold)."""
        return drive(torch.as_tensor(v, dtype=torch.float64), **self.rate_params())

    def rate_params(self) -> dict:
        return dict(k_on=self.k_on / self.d, k_off=self.k_off / self.d, alpha_on=self.alpha_on,
                    alpha_off=self.alpha_off, v_on=self.v_on, v_off=self.v_off)

    def window_params(self) -> dict:
        return dict(window=self.window, p=self.p, j=self.j, a_on=self.a_on, a_off=self.a_off, w_c=self.w_c)

    def check_read_voltage(self, v_read: float, key: str = "v_read") -> None:
        """A read voltage must not disturb the state: ``v_on ≤ ±v_read ≤ v_off``."""
        check(math.isfinite(v_read) and v_read > 0, key, v_read, "must be a positive voltage")
        check(v_read <= self.v_off and -v_read >= self.v_on, key, v_read,
              f"reads would switch the device: need |v_read| <= min(v_off={self.v_off}, -v_on={-self.v_on}) V")


VTEAM_PRESETS: dict[str, dict] = {
    # MemTorch memtorch/bh/memristor/VTEAM.py defaults, which cite the VTEAM model page of the Technion
    # ASIC2 group (Kvatinsky et al. 2015). No window; linear R(w). SET is very steep (alpha_on = 3).
    "memtorch": dict(name="VTEAM, MemTorch defaults", source=(
        "MemTorch memtorch/bh/memristor/VTEAM.py defaults (Lammie et al. 2020), after Kvatinsky et al., "
        "IEEE TCAS-II 62(8):786 (2015)")),
    # Same switching kinetics; resistances of the MemTorch VTEAM benchmark (10 kOhm / 100 kOhm, as in
    # shared/research/anchors.md 3.2), a realistic range for crossbar reads. Default for DTGA runs.
    "dtga": dict(r_on=1e4, r_off=1e5, name="VTEAM, MemTorch kinetics, 10-100 kOhm", source=(
        "switching parameters: MemTorch VTEAM defaults (Kvatinsky 2015); R_on/R_off = 10/100 kOhm as in the "
        "MemTorch VTEAM exemplar benchmark; chosen here (the DTGA paper's parameters are not public)")),
    # The same device with the exponential I-V relation (TEAM/VTEAM option) and a Biolek window.
    "dtga-exp-biolek": dict(r_on=1e4, r_off=1e5, iv="exponential", window="biolek", p=1.0,
                            name="VTEAM, exponential I-V, Biolek window (p=1)", source=(
        "as 'dtga', with the exponential I-V relation and Biolek window of the Technion Verilog-A report "
        "(Kvatinsky et al.)")),
}


for _name, _params in VTEAM_PRESETS.items():
    register_preset(_name, "vteam", **_params)


def vteam_preset(name: str, **overrides) -> VTEAMDevice:
    """A named VTEAM parameter set, e.g. ``vteam_preset("dtga")``; keyword arguments override fields."""
    if name not in VTEAM_PRESETS:
        raise ConfigError(f"VTEAM preset {name!r} is unknown; known presets: {sorted(VTEAM_PRESETS)}")
    return as_vteam({"preset": name, **overrides})


def as_vteam(device: "VTEAMDevice | str | dict", key: str = "device") -> VTEAMDevice:
    """A :class:`VTEAMDevice` from a preset name, parameters (``{preset: dtga, r_on: ...}`` or fields) or
    a device; anything else (e.g. a linear device's preset) is a ``ConfigError`` naming ``key``."""
    if isinstance(device, dict) and "preset" not in device:
        device = {"kind": "vteam", **device}
    dev = device_from_spec(device, key)
    if not isinstance(dev, VTEAMDevice):
        raise ConfigError(f"{key}={device!r}: expected a VTEAM device (presets: {sorted(VTEAM_PRESETS)}), "
                          f"got a {type(dev).__name__}")
    return dev


@dataclass
class Variability:
    """Device-to-device (``d2d``) and pulse-to-pulse (``p2p``) noise factors (relative σ)."""

    d2d: float = 0.0
    p2p: float = 0.0
    d2d_params: list[str] = field(default_factory=lambda: ["k_on", "k_off", "r_on", "r_off"])
    d2d_distribution: Literal["normal", "lognormal"] = "normal"
    p2p_mode: Literal["multiplicative", "additive"] = "multiplicative"

    def __post_init__(self) -> None:
        check(math.isfinite(self.d2d) and self.d2d >= 0, "variability.d2d", self.d2d, "must be >= 0")
        check(math.isfinite(self.p2p) and self.p2p >= 0, "variability.p2p", self.p2p, "must be >= 0")
        for name in self.d2d_params:
            check(name in D2D_PARAMS, "variability.d2d_params", name, f"each must be one of {list(D2D_PARAMS)}")
        check(self.d2d_distribution in ("normal", "lognormal"), "variability.d2d_distribution",
              self.d2d_distribution, "must be 'normal' or 'lognormal'")
        check(self.p2p_mode in ("multiplicative", "additive"), "variability.p2p_mode", self.p2p_mode,
              "must be 'multiplicative' or 'additive'")

    @classmethod
    def noise_factor(cls, eta: float, **kw) -> "Variability":
        """The DTGA paper's single "noise factor": the same η for D2D and P2P."""
        return cls(d2d=eta, p2p=eta, **kw)


# ============================================================================ physics (tensors)
def drive(v: torch.Tensor, k_on, k_off, alpha_on, alpha_off, v_on, v_off) -> torch.Tensor:
    """VTEAM drive ``g(v)`` without the window: ``k_off(v/v_off−1)^α_off`` above ``v_off``,
    ``k_on(v/v_on−1)^α_on`` below ``v_on``, exactly 0 in between. Pass normalised rates
    (``k/(w_off−w_on)``) for a drive in 1/s."""
    v = torch.as_tensor(v)
    off = k_off * (v / v_off - 1).clamp(min=0) ** alpha_off
    on = k_on * (v / v_on - 1).clamp(min=0) ** alpha_on
    zero = torch.zeros((), dtype=v.dtype, device=v.device)
    return torch.where(v > v_off, off, zero) + torch.where(v < v_on, on, zero)


def window_fn(s: torch.Tensor, direction, window: str = "none", p: float = 1.0, j: float = 1.0,
              a_on: float = 0.0, a_off: float = 1.0, w_c: float = 0.1) -> torch.Tensor:
    """Window ``f(s)`` for normalised state ``s``; ``direction`` = sign of ds/dt (+1 towards R_off)."""
    s = torch.as_tensor(s)
    up = torch.as_tensor(direction, device=s.device) >= 0
    if window == "none":
        return torch.ones_like(s)
    if window == "joglekar":
        return 1 - (2 * s - 1) ** (2 * p)
    if window == "biolek":
        return torch.where(up, 1 - s ** (2 * p), 1 - (s - 1) ** (2 * p))
    if window == "prodromakis":
        return j * (1 - ((s - 0.5) ** 2 + 0.75) ** p)
    if window == "kvatinsky":
        return torch.where(up, torch.exp(-torch.exp((s - a_off) / w_c)), torch.exp(-torch.exp(-(s - a_on) / w_c)))
    raise ConfigError(f"window={window!r}: must be one of {list(WINDOWS)}")


def has_closed_form(window: str, p: float = 1.0) -> bool:
    """Whether :func:`advance` integrates this window exactly."""
    return window == "none" or (window in ("joglekar", "biolek", "prodromakis") and p == 1)


def resistance(s: torch.Tensor, r_on, r_off, iv: str = "linear") -> torch.Tensor:
    """``R(s)``: linear ``R_on + (R_off − R_on)s`` or exponential ``R_on(R_off/R_on)^s``."""
    if iv == "linear":
        return r_on + (r_off - r_on) * s
    if iv == "exponential":
        return r_on * torch.exp(s * torch.log(torch.as_tensor(r_off / r_on)))
    raise ConfigError(f"iv={iv!r}: must be one of {list(IV_RELATIONS)}")


def conductance(s: torch.Tensor, r_on, r_off, iv: str = "linear") -> torch.Tensor:
    return 1.0 / resistance(s, r_on, r_off, iv)


def current(v: torch.Tensor, s: torch.Tensor, r_on, r_off, iv: str = "linear") -> torch.Tensor:
    """``i = v / R(s)``."""
    return v / resistance(s, r_on, r_off, iv)


def state_from_conductance(g: torch.Tensor, r_on, r_off, iv: str = "linear") -> torch.Tensor:
    """Inverse of :func:`conductance` (not clipped: values outside [0, 1] mean G is out of range)."""
    r = 1.0 / g
    if iv == "linear":
        return (r - r_on) / (r_off - r_on)
    return torch.log(r / r_on) / torch.log(torch.as_tensor(r_off / r_on))


def _logit(s: torch.Tensor) -> torch.Tensor:
    return torch.log(s) - torch.log1p(-s)


def advance(s0: torch.Tensor, u: torch.Tensor, window: str = "none", p: float = 1.0, j: float = 1.0,
            a_on: float = 0.0, a_off: float = 1.0, w_c: float = 0.1, substeps: int = 32) -> torch.Tensor:
    """State after a constant drive with integral ``u = g(V)·t`` (normalised; sign = direction).

    Exact where a closed form exists (:func:`has_closed_form`), else ``substeps`` RK4 steps with
    saturation at the bounds. Broadcasts over ``s0`` and ``u``.
    """
    s0, u = torch.broadcast_tensors(torch.as_tensor(s0), torch.as_tensor(u, dtype=torch.as_tensor(s0).dtype))
    if window == "none":
        return (s0 + u).clamp(0.0, 1.0)
    if has_closed_form(window, p):
        if window in ("joglekar", "prodromakis"):
            scale = 4.0 if window == "joglekar" else j
            out = torch.sigmoid(_logit(s0) + scale * u)
            # the stick effect: a state exactly on a bound stays there (f = 0 at both bounds)
            return torch.where((s0 <= 0) | (s0 >= 1), s0, out)
        # biolek p = 1
        up = u >= 0
        s_up = torch.tanh(torch.atanh(s0.clamp(max=1.0)) + u)
        s_dn = 1 - torch.tanh(torch.atanh((1 - s0).clamp(max=1.0)) - u)
        return torch.where(up, s_up, s_dn).clamp(0.0, 1.0)
    check(isinstance(substeps, int) and substeps >= 1, "substeps", substeps, "must be an integer >= 1")
    wp = dict(window=window, p=p, j=j, a_on=a_on, a_off=a_off, w_c=w_c)
    direction = torch.sign(u)
    h = u / substeps
    s = s0.clone()
    for _ in range(substeps):
        k1 = window_fn(s, direction, **wp)
        k2 = window_fn((s + 0.5 * h * k1).clamp(0, 1), direction, **wp)
        k3 = window_fn((s + 0.5 * h * k2).clamp(0, 1), direction, **wp)
        k4 = window_fn((s + h * k3).clamp(0, 1), direction, **wp)
        s = (s + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)).clamp(0.0, 1.0)
    return s


def window_integral(s0: torch.Tensor, s1: torch.Tensor, direction, window: str = "none", p: float = 1.0,
                    j: float = 1.0, a_on: float = 0.0, a_off: float = 1.0, w_c: float = 0.1,
                    nodes: int = 48) -> torch.Tensor:
    """``F(s1) − F(s0) = ∫_{s0}^{s1} ds/f(s)``: the drive integral that moves ``s0`` to ``s1``.

    Closed forms where :func:`advance` has them, else Gauss–Legendre quadrature with ``nodes`` points.
    States are kept a hair inside (0, 1) so windows that vanish at a bound give a large finite value.
    """
    eps = 1e-6
    s0 = torch.as_tensor(s0).clamp(eps, 1 - eps)
    s1 = torch.as_tensor(s1, dtype=s0.dtype).clamp(eps, 1 - eps)
    direction = torch.as_tensor(direction, device=s0.device)
    if window == "none":
        return s1 - s0
    if has_closed_form(window, p):
        if window in ("joglekar", "prodromakis"):
            scale = 4.0 if window == "joglekar" else j
            return (_logit(s1) - _logit(s0)) / scale
        up = direction >= 0
        return torch.where(up, torch.atanh(s1) - torch.atanh(s0), torch.atanh(1 - s0) - torch.atanh(1 - s1))
    import numpy as np

    x, w = np.polynomial.legendre.leggauss(nodes)
    x = torch.as_tensor(x, dtype=s0.dtype, device=s0.device)
    w = torch.as_tensor(w, dtype=s0.dtype, device=s0.device)
    half = (s1 - s0) / 2
    mid = (s1 + s0) / 2
    pts = mid.unsqueeze(-1) + half.unsqueeze(-1) * x
    f = window_fn(pts, direction.unsqueeze(-1) if direction.dim() else direction, window, p, j, a_on, a_off, w_c)
    return half * (w / f.clamp(min=1e-30)).sum(-1)


def sample_d2d(dev: VTEAMDevice, shape: tuple[int, ...], sigma, params=("k_on", "k_off", "r_on", "r_off"),
               distribution: str = "normal", generator: torch.Generator | None = None,
               dtype=torch.float32, device=None) -> dict[str, torch.Tensor]:
    """Per-device parameters ``p·(1 + σ·ξ)`` (or ``p·e^{σξ}``), one draw per device, shape ``shape``.

    ``sigma`` may be a float or a tensor broadcastable to ``shape`` (e.g. a different noise factor
    per Monte Carlo trial). A normal draw that flips a parameter's sign, or leaves ``r_on ≥ r_off``,
    is an error (use ``lognormal`` for large σ).
    """
    sigma_t = torch.as_tensor(sigma, dtype=dtype, device=device)
    out: dict[str, torch.Tensor] = {}
    for name in params:
        if name not in D2D_PARAMS:
            raise ConfigError(f"d2d parameter {name!r}: must be one of {list(D2D_PARAMS)}")
        xi = torch.randn(shape, generator=generator, dtype=dtype, device=device)
        base = getattr(dev, name)
        if distribution == "normal":
            factor = 1 + sigma_t * xi
            if (factor <= 0).any():
                raise ValueError(f"d2d noise σ={sigma}: a normal draw made {name} change sign; "
                                 "use d2d_distribution='lognormal' for noise this large")
        elif distribution == "lognormal":
            factor = torch.exp(sigma_t * xi)
        else:
            raise ConfigError(f"d2d_distribution={distribution!r}: must be 'normal' or 'lognormal'")
        out[name] = base * factor
    if "r_on" in out or "r_off" in out:
        r_on = out.get("r_on", torch.full(shape, dev.r_on, dtype=dtype, device=device))
        r_off = out.get("r_off", torch.full(shape, dev.r_off, dtype=dtype, device=device))
        if (r_on >= r_off).any():
            raise ValueError(f"d2d noise σ={sigma}: some devices got r_on >= r_off; the noise is too large")
    return out


def train_drive(u1: torch.Tensor, n: torch.Tensor, sigma, mode: str = "multiplicative",
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Drive integral of trains of ``n`` identical pulses (``u1`` each) with pulse-to-pulse noise.

    Returns ``(u, state_noise)``: ``multiplicative`` gives ``u = u1·max(n + σ√n·ξ, 0)`` and no state
    noise; ``additive`` gives ``u = u1·n`` and ``state_noise = σ√n·ξ`` (to add to the state).
    """
    n = n.to(u1.dtype)
    if isinstance(sigma, (int, float)) and sigma == 0:  # noise-free (the nominal device): no tensor, no sync
        return u1 * n, None
    sigma_t = torch.as_tensor(sigma, dtype=u1.dtype, device=u1.device)
    if not bool((sigma_t > 0).any()):
        return u1 * n, None
    xi = torch.randn(torch.broadcast_shapes(u1.shape, n.shape), generator=generator, dtype=u1.dtype, device=u1.device)
    # sqrt(n + tiny)·sign(n) == sqrt(n) exactly for integer counts; CPU sqrt(0) is ~20x slower than sqrt(x > 0)
    spread = sigma_t * (n + 1e-30).sqrt() * n.sign() * xi
    if mode == "multiplicative":
        return u1 * torch.relu(n + spread), None
    if mode == "additive":
        return u1 * n, spread
    raise ConfigError(f"p2p_mode={mode!r}: must be 'multiplicative' or 'additive'")


def pulse_train(s: torch.Tensor, n: torch.Tensor, u_set, u_reset, p2p_sigma=0.0, p2p_mode: str = "multiplicative",
                generator: torch.Generator | None = None, window: str = "none", p: float = 1.0, j: float = 1.0,
                a_on: float = 0.0, a_off: float = 1.0, w_c: float = 0.1, substeps: int = 32) -> torch.Tensor:
    """States after ``|n|`` SET pulses (``n > 0``, towards R_on) or RESET pulses (``n < 0``) per device.

    ``u_set``/``u_reset`` are the drive integrals of one pulse (scalars or per device); P2P noise per
    :func:`train_drive`. Devices with ``n = 0`` are untouched. (Masks are done in float arithmetic:
    on CPU it is several times faster than ``torch.where``.)
    """
    count = n.abs()
    is_set = n.sign().clamp(min=0)
    u1 = u_reset + is_set * (u_set - u_reset)
    u, noise = train_drive(u1, count, p2p_sigma, p2p_mode, generator)
    s_new = advance(s, u, window, p, j, a_on, a_off, w_c, substeps)
    if noise is not None:
        s_new = (s_new + noise).clamp(0.0, 1.0)
    if noise is None and window == "none":
        return s_new  # u = 0 leaves the state exactly unchanged
    pulsed = count.sign()
    return s + pulsed * (s_new - s)


def pulse_conductance(g: torch.Tensor, n: torch.Tensor, u_set, u_reset, r_on, r_off, iv: str = "linear",
                      p2p_sigma=0.0, p2p_mode: str = "multiplicative", generator: torch.Generator | None = None,
                      window: str = "none", p: float = 1.0, j: float = 1.0, a_on: float = 0.0, a_off: float = 1.0,
                      w_c: float = 0.1, substeps: int = 32, change: bool = False) -> torch.Tensor:
    """The pulse response on conductances: ``g`` → state → :func:`pulse_train` → conductance.

    Returns ``g + G(s_after) − G(s_before)``: a device that gets no pulse (``n = 0``) keeps exactly the
    conductance it had (the round trip g → s → g is never written back). ``r_on``/``r_off`` (and the
    drives) may be per device. ``change=True`` returns the change ``G(s_after) − G(s_before)`` instead.
    """
    s = state_from_conductance(g, r_on, r_off, iv).clamp_(0.0, 1.0)
    s_new = pulse_train(s, n, u_set, u_reset, p2p_sigma, p2p_mode, generator, window, p, j, a_on, a_off, w_c, substeps)
    dg = conductance(s_new, r_on, r_off, iv).sub_(conductance(s, r_on, r_off, iv))
    return dg if change else dg.add_(g)


def pulse_energy(n_set: torch.Tensor, n_reset: torch.Tensor, g_before: torch.Tensor, g_after: torch.Tensor,
                 write: Pulse) -> torch.Tensor:
    """Joule energy (J) of trains of ``n_set`` SET and ``n_reset`` RESET ``write`` pulses (counts >= 0)
    per device: ``E = n·V²·t·(G_before + G_after)/2``."""
    return (n_set * write.v_set ** 2 + n_reset * write.v_reset ** 2) * (g_before + g_after) * (write.width / 2)


def simulate_waveform(v: torch.Tensor, dt: float, s0: torch.Tensor, dev: VTEAMDevice) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward-Euler time series for an arbitrary voltage waveform ``v`` (time first), as in SPICE /
    MemTorch: returns ``(s, i)`` over time. For I–V loops and checks; pulses use :func:`advance`."""
    s = torch.as_tensor(s0, dtype=v.dtype).clone()
    rp, wp = dev.rate_params(), dev.window_params()
    states, currents = [], []
    for vt in v:
        g = drive(vt, **rp)
        currents.append(current(vt, s, dev.r_on, dev.r_off, dev.iv))
        s = (s + dt * g * window_fn(s, torch.sign(g), **wp)).clamp(0.0, 1.0)
        states.append(s)
    return torch.stack(states), torch.stack(currents)


# ============================================================================ device populations
class VTEAMCells(nn.Module):
    """Per-device draws of ``trials × shape`` VTEAM devices: what makes each one differ from the nominal
    :class:`VTEAMDevice` (D2D) and the pulse-to-pulse noise of its writes (P2P). Holds no conductances:
    those live where the devices are used (e.g. a crossbar's buffers).

    Buffers (per device where drawn, else scalars): ``u_set`` (< 0) / ``u_reset`` (> 0), the drive
    integral of one write pulse; ``r_on``/``r_off``; ``p2p_sigma`` (a scalar or one value per trial).
    ``d2d_sigma``/``p2p_sigma`` override the variability's factors, e.g. one value per Monte Carlo trial.
    """

    def __init__(self, dev: VTEAMDevice, trials: int, shape: tuple[int, ...], variability: Variability | None = None,
                 d2d_sigma=None, p2p_sigma=None, generator: torch.Generator | None = None, dtype=torch.float32,
                 device=None) -> None:
        super().__init__()
        self.dev = dev
        self.var = variability or Variability()
        full = (trials, *shape)

        def per_trial(x, key):
            t = torch.as_tensor(x, dtype=dtype, device=device)
            check(t.numel() in (1, trials) and bool((t >= 0).all()), key, x,
                  f"must be >= 0, one value or one per trial ({trials})")
            return t.reshape(-1, *(1,) * len(shape)) if t.dim() > 0 else t

        d2d_t = per_trial(self.var.d2d if d2d_sigma is None else d2d_sigma, "d2d_sigma")
        p2p_t = per_trial(self.var.p2p if p2p_sigma is None else p2p_sigma, "p2p_sigma")
        params = {}
        if bool((d2d_t > 0).any()) and self.var.d2d_params:
            params = sample_d2d(dev, full, d2d_t, self.var.d2d_params, self.var.d2d_distribution, generator,
                                dtype, device)
        get = lambda k: params.get(k, torch.tensor(getattr(dev, k), dtype=dtype, device=device))  # noqa: E731
        rate = dict(k_on=get("k_on") / dev.d, k_off=get("k_off") / dev.d, alpha_on=get("alpha_on"),
                    alpha_off=get("alpha_off"), v_on=get("v_on"), v_off=get("v_off"))
        v_set = torch.tensor(dev.write.v_set, dtype=dtype, device=device)
        v_reset = torch.tensor(dev.write.v_reset, dtype=dtype, device=device)
        self.register_buffer("u_set", (drive(v_set, **rate) * dev.write.width).contiguous())
        self.register_buffer("u_reset", (drive(v_reset, **rate) * dev.write.width).contiguous())
        self.register_buffer("r_on", get("r_on"))
        self.register_buffer("r_off", get("r_off"))
        self.register_buffer("p2p_sigma", p2p_t)

    def check_range(self, g: torch.Tensor) -> None:
        """Conductances every device can hold (each its own ``[1/R_off, 1/R_on]``), else ``ValueError``."""
        s = state_from_conductance(g, self.r_on, self.r_off, self.dev.iv)
        if (s < -1e-5).any() or (s > 1 + 1e-5).any():
            raise ValueError("VTEAMCells: some conductances lie outside the devices' own [1/R_off, 1/R_on] range "
                             "(device-to-device variation made the range of some devices narrower)")

    def pulse(self, g: torch.Tensor, n: torch.Tensor, generator: torch.Generator | None = None,
              select: torch.Tensor | None = None, change: bool = False) -> torch.Tensor:
        """Conductances after ``|n|`` write pulses per device (SET for ``n > 0``), with these devices'
        own parameters and P2P noise (:func:`pulse_conductance`).

        ``select`` (float 0/1) is for cells laid out as pairs, shape ``(trials, 2, ...)``: ``g``/``n``
        are then pair-shaped ``(trials, ...)`` and each pair's device ``0`` (select = 1) or ``1`` is pulsed.
        ``change=True`` returns the conductance change instead of the new conductances.
        """
        pick = (lambda t: t) if select is None else (lambda t: t if t.dim() == 0 else t[:, 1] + select * (t[:, 0] - t[:, 1]))
        p2p = self.p2p_sigma if (select is None or self.p2p_sigma.dim() == 0) else self.p2p_sigma[:, 0]
        return pulse_conductance(g, n, pick(self.u_set), pick(self.u_reset), pick(self.r_on), pick(self.r_off),
                                 self.dev.iv, p2p, self.var.p2p_mode, generator, substeps=self.dev.substeps,
                                 change=change, **self.dev.window_params())

    def extra_repr(self) -> str:
        return f"device={self.dev.name!r}, window={self.dev.window}, iv={self.dev.iv}"
