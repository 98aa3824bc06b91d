"""Write-verify programming: iterative program-and-verify to a tolerance, with a pulse budget.

The loop (Alibart, Gao & Strukov, Nanotechnology 23:075201, 2012; the standard "program and verify"
of Hu et al. DAC 2016 and of multilevel RRAM, e.g. Milo et al. IRPS 2021), batched over every device
and Monte Carlo trial at once (the only Python loop is over verify cycles)::

    repeat:
        read      ĝ = G + σ_read·(G_max − G_min)·ξ                (verify read, fresh noise)
        done  ←   |ĝ − G_target| ≤ tol·(G_max − G_min)
        stop  if  done, or the device has used max_pulses
        pulse     n = sign(G_target − ĝ)·min(k, budget left)     (SET raises G, RESET lowers it)
                  k = 1, or with ``adaptive`` the nominal number of pulses for the error
                  (round(|G_target − ĝ| / nominal step), at least 1, at most ``max_train``)

Per device it counts pulses (SET and RESET), verify reads, time ``pulses·width + reads·t_read`` and
energy: ``V²·width·(G_before + G_after)/2`` per pulse (Joule heat, the VTEAM convention) plus
``v_read²·t_read·G`` per read. The programming error that results (``G − G_target``) can replace an
assumed lognormal: :class:`WriteVerify` is a programming-time effect, ``apply(g, device, generator)``.

Pulse models (anything with ``g_min``, ``g_max``, ``pulse(g, n, generator)``, ``nominal_step(g)``,
``v_set``, ``v_reset`` and ``width``):

* :class:`LinearPulse` for a :class:`~memristive.devices.LinearDevice`: each pulse moves G by
  ``step·(G_max − G_min)``; a train of ``n`` pulses by ``step·range·(n + noise·√n·ξ)`` (cycle-to-cycle
  write noise, the sum of ``n`` independent relative errors ``noise``), clipped to the device range;
* :class:`VTEAMPulse` for a :class:`~memristive.devices.VTEAMDevice`: the state moves by the exact
  pulse response of :func:`memristive.devices.vteam.pulse_train` (with its pulse-to-pulse noise), G from
  the VTEAM I–V relation;
* :class:`DevicePulse` for any device with a pulse response (``Device.pulse``, e.g. the pulsed kinds
  ``constant-step``, ``soft-bounds``, … of :mod:`memristive.devices.pulsed`).

The nominal step that sizes adaptive trains is that of one SET (G-raising) pulse at the current G,
used for both directions: on asymmetric devices a RESET train can overshoot and a device may
oscillate until its budget ends (it is then reported as not converged).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from .config import check
from .nonideal import Effect, register_effect
from .devices.vteam import Pulse, VTEAMDevice, conductance, drive, pulse_train, state_from_conductance

__all__ = ["LinearPulse", "VTEAMPulse", "DevicePulse", "write_verify", "WriteVerify", "WriteVerifyResult"]


def _randn(like: torch.Tensor, generator) -> torch.Tensor:
    return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)


# ============================================================================ pulse models
@dataclass
class LinearPulse:
    """Identical pulses on a bounded linear device: ``step`` (fraction of the range) per pulse,
    relative cycle-to-cycle ``noise`` per pulse; SET/RESET amplitudes (V) and width (s) for energy."""

    g_min: float
    g_max: float
    step: float = 0.01
    noise: float = 0.3
    v_set: float = 1.0
    v_reset: float = -1.0
    width: float = 100e-9

    def __post_init__(self) -> None:
        check(math.isfinite(self.g_min) and math.isfinite(self.g_max) and 0 <= self.g_min < self.g_max,
              "pulse.g_min/g_max", (self.g_min, self.g_max), "need 0 <= g_min < g_max (siemens)")
        check(math.isfinite(self.step) and 0 < self.step <= 1, "pulse.step", self.step,
              "must lie in (0, 1] (fraction of the conductance range per pulse)")
        check(math.isfinite(self.noise) and self.noise >= 0, "pulse.noise", self.noise, "must be >= 0")
        check(math.isfinite(self.width) and self.width > 0, "pulse.width", self.width, "must be a positive time (s)")

    @classmethod
    def for_device(cls, device, **kw) -> "LinearPulse":
        return cls(g_min=device.g_min, g_max=device.g_max, **kw)

    def nominal_step(self, g: torch.Tensor) -> torch.Tensor:
        return torch.full_like(g, self.step * (self.g_max - self.g_min))

    def pulse(self, g: torch.Tensor, n: torch.Tensor, generator=None) -> torch.Tensor:
        n = n.to(g.dtype)
        count = n.abs()
        moved = count
        if self.noise > 0:
            moved = torch.relu(count + self.noise * count.sqrt() * _randn(g, generator))
        return (g + n.sign() * moved * (self.step * (self.g_max - self.g_min))).clamp(self.g_min, self.g_max)


class VTEAMPulse:
    """VTEAM devices driven by rectangular pulses (:class:`~memristive.devices.vteam.Pulse`), with
    relative pulse-to-pulse noise ``p2p`` (``multiplicative`` or ``additive``, as in the VTEAM module)."""

    def __init__(self, dev: VTEAMDevice, pulse: Pulse | None = None, p2p: float = 0.0,
                 p2p_mode: Literal["multiplicative", "additive"] = "multiplicative") -> None:
        pulse = pulse or Pulse()
        pulse.check_device(dev)
        check(math.isfinite(p2p) and p2p >= 0, "p2p", p2p, "must be >= 0")
        self.dev, self.pulse_cfg, self.p2p, self.p2p_mode = dev, pulse, p2p, p2p_mode
        self.g_min, self.g_max = dev.g_min, dev.g_max
        self.v_set, self.v_reset, self.width = pulse.v_set, pulse.v_reset, pulse.width
        rp = dev.rate_params()
        self.u_set = float(drive(torch.tensor(pulse.v_set, dtype=torch.float64), **rp)) * pulse.width
        self.u_reset = float(drive(torch.tensor(pulse.v_reset, dtype=torch.float64), **rp)) * pulse.width

    def _state(self, g):
        return state_from_conductance(g, self.dev.r_on, self.dev.r_off, self.dev.iv).clamp(0.0, 1.0)

    def nominal_step(self, g: torch.Tensor) -> torch.Tensor:
        """|ΔG| of one SET pulse at ``g`` (noise-free)."""
        s = self._state(g)
        s1 = pulse_train(s, torch.ones_like(s), self.u_set, self.u_reset, 0.0, **self.dev.window_params())
        return (conductance(s1, self.dev.r_on, self.dev.r_off, self.dev.iv) - g).abs().clamp(min=1e-30)

    def pulse(self, g: torch.Tensor, n: torch.Tensor, generator=None) -> torch.Tensor:
        s = self._state(g)
        s1 = pulse_train(s, n.to(g.dtype), self.u_set, self.u_reset, self.p2p, self.p2p_mode, generator,
                         **self.dev.window_params())
        return conductance(s1, self.dev.r_on, self.dev.r_off, self.dev.iv)


class DevicePulse:
    """Any device with a pulse response (``has_pulse_response``, ``pulse(g, n, generator)``; n > 0 raises G).

    Pulse amplitude and width for the energy: the device's ``v_pulse``/``t_pulse`` where it has them,
    else ``v_pulse``/``width`` given here. The nominal step that sizes adaptive trains is one pulse's
    change at ``g`` with the device's noise drawn from a fixed private generator (it only sizes trains).
    """

    def __init__(self, device, v_pulse: float | None = None, width: float | None = None) -> None:
        check(bool(getattr(device, "has_pulse_response", False)), "memristor", device,
              "has no pulse response (has_pulse_response is False)")
        self.device = device
        self.g_min, self.g_max = device.g_min, device.g_max
        v = v_pulse if v_pulse is not None else getattr(device, "v_pulse", 1.0)
        self.v_set, self.v_reset = v, -v
        self.width = width if width is not None else getattr(device, "t_pulse", 100e-9)
        check(math.isfinite(self.width) and self.width > 0, "width", self.width, "must be a positive time (s)")

    def nominal_step(self, g: torch.Tensor) -> torch.Tensor:
        gen = torch.Generator(device=g.device).manual_seed(0)
        return (self.device.pulse(g, torch.ones_like(g), gen) - g).abs().clamp(min=1e-30)

    def pulse(self, g: torch.Tensor, n: torch.Tensor, generator=None) -> torch.Tensor:
        return self.device.pulse(g, n, generator)


# ============================================================================ the loop
@dataclass
class WriteVerifyResult:
    g: torch.Tensor  # programmed conductances
    pulses: torch.Tensor  # pulses applied per device
    reads: torch.Tensor  # verify reads per device
    time: torch.Tensor  # seconds per device
    energy: torch.Tensor  # joules per device
    converged: torch.Tensor  # bool per device: within tolerance at the last verify


@torch.no_grad()
def write_verify(target: torch.Tensor, model, g_start: torch.Tensor | float | None = None, tol: float = 0.01,
                 max_pulses: int = 100, read_noise: float = 0.0, adaptive: bool = False, max_train: int = 16,
                 v_read: float = 0.2, t_read: float = 100e-9, generator: torch.Generator | None = None,
                 wear=None) -> WriteVerifyResult:
    """Program every device to ``target`` by write-verify with pulse model ``model`` (see module doc).

    ``g_start``: the conductances before programming (default ``model.g_min``: a reset array).
    ``wear``: an optional :class:`memristive.endurance.Wear` that every pulse is charged to.
    """
    check(math.isfinite(tol) and tol > 0, "write_verify.tol", tol, "must be > 0 (fraction of the conductance range)")
    check(isinstance(max_pulses, int) and max_pulses >= 0, "write_verify.max_pulses", max_pulses,
          "must be an integer >= 0")
    check(math.isfinite(read_noise) and read_noise >= 0, "write_verify.read_noise", read_noise, "must be >= 0")
    check(isinstance(max_train, int) and max_train >= 1, "write_verify.max_train", max_train, "must be an integer >= 1")
    rng = model.g_max - model.g_min
    lo, hi = model.g_min - 1e-6 * rng, model.g_max + 1e-6 * rng  # float32 rounding of mapped targets passes
    if bool(((target < lo) | (target > hi)).any()):
        raise ValueError(f"write_verify: targets span [{float(target.min()):.4g}, {float(target.max()):.4g}] S, outside "
                         f"the device range [{model.g_min:.4g}, {model.g_max:.4g}] S")
    target = target.clamp(model.g_min, model.g_max)  # only rounding beyond the bounds reaches this clamp
    if g_start is None:
        g_start = model.g_min
    g = (torch.as_tensor(g_start, dtype=target.dtype, device=target.device) + torch.zeros_like(target)).clone()
    pulses = torch.zeros_like(target)
    reads = torch.zeros_like(target)
    energy = torch.zeros_like(target)
    done = torch.zeros_like(target, dtype=torch.bool)
    band = tol * rng
    for _ in range(max_pulses + 1):
        read = g + read_noise * rng * _randn(g, generator) if read_noise > 0 else g
        active = ~done
        reads = reads + active.to(reads.dtype)
        energy = energy + active.to(g.dtype) * (v_read * v_read * t_read) * g
        err = target - read
        done = done | (err.abs() <= band)
        left = max_pulses - pulses
        go = ~done & (left > 0)
        if not bool(go.any()):
            break
        k = torch.ones_like(g)
        if adaptive:
            k = torch.round(err.abs() / model.nominal_step(g)).clamp(1, max_train)
        n = torch.where(go, err.sign() * torch.minimum(k, left), torch.zeros_like(g))
        g_new = model.pulse(g, n, generator)
        g_new = torch.where(go, g_new, g)
        if wear is not None:
            g_new = wear.write(g, g_new, n)
        v2 = torch.where(n > 0, model.v_set ** 2, model.v_reset ** 2)
        energy = energy + n.abs() * v2 * model.width * (g + g_new) / 2
        pulses = pulses + n.abs()
        g = g_new
    time = pulses * model.width + reads * t_read
    return WriteVerifyResult(g, pulses, reads, time, energy, done)


@register_effect("write_verify")
@dataclass
class WriteVerify(Effect):
    """Programming-time effect: the conductances write-verify reaches (instead of an assumed error).

    ``apply(g, memristor, generator)`` programs the targets ``g`` from a reset array with the device's own
    pulse response where it has one (:class:`DevicePulse`), a :class:`VTEAMPulse` with ``p2p`` noise (a
    VTEAMDevice), else a :class:`LinearPulse` built from ``step``/``noise``/``v_set``/``v_reset``/``width``. Devices that miss the tolerance within
    the budget keep where they ended. :meth:`program` returns the whole :class:`WriteVerifyResult`
    (pulses, reads, time, energy per device).
    """

    tol: float = 0.01
    max_pulses: int = 100
    read_noise: float = 0.0
    adaptive: bool = True
    max_train: int = 16
    step: float = 0.01
    noise: float = 0.3
    v_set: float = 1.0
    v_reset: float = -1.0
    width: float = 100e-9
    p2p: float = 0.0
    kind: Literal["write_verify"] = "write_verify"

    def __post_init__(self) -> None:
        check(isinstance(self.tol, (int, float)) and math.isfinite(self.tol) and self.tol > 0, "write_verify.tol",
              self.tol, "must be > 0 (fraction of the conductance range)")
        check(isinstance(self.max_pulses, int) and self.max_pulses >= 0, "write_verify.max_pulses", self.max_pulses,
              "must be an integer >= 0")
        check(isinstance(self.max_train, int) and self.max_train >= 1, "write_verify.max_train", self.max_train,
              "must be an integer >= 1")
        check(math.isfinite(self.read_noise) and self.read_noise >= 0, "write_verify.read_noise", self.read_noise,
              "must be >= 0")
        check(math.isfinite(self.p2p) and self.p2p >= 0, "write_verify.p2p", self.p2p, "must be >= 0")
        LinearPulse(0.0, 1.0, self.step, self.noise, self.v_set, self.v_reset, self.width)  # validates those keys

    def model_for(self, memristor):
        if isinstance(memristor, VTEAMDevice):
            return VTEAMPulse(memristor, p2p=self.p2p)
        if getattr(memristor, "has_pulse_response", False):
            return DevicePulse(memristor)  # the device's own pulse response (step, noise, bounds)
        return LinearPulse.for_device(memristor, step=self.step, noise=self.noise, v_set=self.v_set,
                                      v_reset=self.v_reset, width=self.width)

    def program(self, g: torch.Tensor, memristor, generator=None) -> WriteVerifyResult:
        return write_verify(g, self.model_for(memristor), None, self.tol, self.max_pulses, self.read_noise,
                            self.adaptive, self.max_train, generator=generator)

    def apply(self, g: torch.Tensor, memristor, generator=None):
        return self.program(g, memristor, generator).g, None
