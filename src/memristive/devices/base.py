"""The device interface every memristor model implements, its registry and named presets.

A device is a validated dataclass (its parameters) with methods that are pure functions on tensors:

* ``g_min``/``g_max`` — the programmable conductance range (siemens); ``levels`` — ``None`` (analog)
  or the number of evenly spaced programmable conductances;
* :meth:`Device.program` — what the device holds when asked for a target conductance (levels
  applied; targets outside the range are an error, never silently clipped);
* :meth:`Device.pulse` — its response to signed pulse counts, where the device has one
  (``has_pulse_response``);
* :meth:`Device.current` — its read I–V (linear ``I = V·G`` unless the model says otherwise).

Kinds register where they are defined (``@register_device("linear")``) and presets with
:func:`register_preset`; a config names a device by preset (``"ti-alox-taox"``), by parameters
(``{kind: linear, r_on: 1e3, r_off: 12e3}``) or by a preset with overrides
(``{preset: ti-alox-taox, levels: 16}``).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import torch

from ..config import ConfigError, Registry
from ..quantizer import quantize_levels

__all__ = ["Device", "DEVICES", "PRESETS", "register_device", "register_preset", "preset", "device_from_spec",
           "load_presets"]


class _DeviceRegistry(Registry):
    """Device kinds; a plain string names a preset, ``{preset: NAME, ...}`` overrides a preset's fields."""

    def build(self, value: Any, key: str, base: Any = None) -> Any:
        if isinstance(value, str):
            return preset(value, key=key)
        if isinstance(value, dict) and "preset" in value:
            overrides = {k: v for k, v in value.items() if k != "preset"}
            return preset(value["preset"], key=key, **overrides)
        if isinstance(value, dict) and isinstance(base, Device) and value.get("kind", base.kind) == base.kind:
            # single fields laid over the configured device (``--set crossbar.memristor.r_on=2000``)
            from ..config import from_dict, to_dict

            return from_dict(type(base), _overlay(to_dict(base), value), prefix=key)
        return super().build(value, key, base)


def _overlay(params: dict, overrides: dict) -> dict:
    """``params`` with ``overrides``; a range given as resistances replaces one given as conductances and
    vice versa (a device is set by one pair)."""
    data = dict(params)
    if {"g_min", "g_max"} & set(overrides):
        data = {k: v for k, v in data.items() if k not in ("r_on", "r_off")}
    if {"r_on", "r_off"} & set(overrides):
        data = {k: v for k, v in data.items() if k not in ("g_min", "g_max")}
    data.update(overrides)
    return data


DEVICES = _DeviceRegistry("device", default_kind="linear")
PRESETS: dict[str, tuple[str, dict]] = {}  # name -> (kind, parameters)


def register_device(kind: str):
    """Class decorator registering a device kind."""
    return DEVICES.register(kind)


def register_preset(name: str, kind: str, /, **params) -> None:
    """A named parameter set of a registered device kind (cite its source beside the call)."""
    PRESETS[name] = (kind, params)


def preset(name: str, /, key: str = "memristor", **overrides) -> "Device":
    """A named device preset, e.g. ``preset("ti-alox-taox")``; ``overrides`` replace single fields."""
    from ..config import from_dict

    if isinstance(name, str) and name not in PRESETS and os.environ.get("MEMRISTIVE_PRESETS"):
        load_presets(os.environ["MEMRISTIVE_PRESETS"])
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError(f"{key}={name!r}: unknown device preset; known presets: {sorted(PRESETS)}"
                          " (your own: a YAML file of presets in MEMRISTIVE_PRESETS, or load_presets(path))")
    kind, params = PRESETS[name]
    cls = DEVICES[kind]
    data = _overlay(params, overrides)
    data.setdefault("kind", kind)
    return from_dict(cls, data, prefix=key)


def load_presets(path) -> list[str]:
    """Register the named presets of a YAML/TOML/JSON file ``{name: {kind: linear, r_on: ..., ...}}``
    (each validated by building it); returns their names. ``MEMRISTIVE_PRESETS=path`` loads one on demand."""
    from ..config import load_config

    data = load_config(path)
    names = []
    for name, params in data.items():
        if not isinstance(params, dict):
            raise ConfigError(f"presets file {str(path)!r}: {name}={params!r}: expected a mapping of device parameters")
        kind = params.get("kind", DEVICES.default_kind)
        DEVICES.build({**params, "kind": kind}, f"presets[{name}]")  # validate before registering
        register_preset(name, kind, **{k: v for k, v in params.items() if k != "kind"})
        names.append(name)
    return names


def device_from_spec(spec: Any, key: str = "memristor") -> "Device":
    """A :class:`Device` from a preset name, a parameter mapping or a device."""
    return DEVICES.build(spec, key)


class Device:
    """Base of every memristor model (subclasses are dataclasses with a ``kind`` field)."""

    __registry__ = DEVICES
    has_pulse_response: ClassVar[bool] = False
    levels: int | None = None

    # subclasses provide g_min / g_max (fields or properties)
    g_min: float
    g_max: float

    @property
    def g_range(self) -> float:
        return self.g_max - self.g_min

    @property
    def g_mid(self) -> float:
        return 0.5 * (self.g_min + self.g_max)

    def check_targets(self, g: torch.Tensor) -> torch.Tensor:
        """Targets must lie in ``[g_min, g_max]`` (float rounding aside); returns them clamped to it."""
        lo, hi = self.g_min, self.g_max
        tol = max(1e-9, 16 * torch.finfo(g.dtype).eps if g.is_floating_point() else 0.0) * hi
        if torch.isnan(g).any():
            raise ValueError(f"{type(self).__name__}.program: target conductances contain NaN")
        if (g < lo - tol).any() or (g > hi + tol).any():
            raise ValueError(
                f"{type(self).__name__}.program: targets span [{g.min().item():.4g}, {g.max().item():.4g}] S, "
                f"outside the device range [{lo:.4g}, {hi:.4g}] S"
            )
        return g.clamp(lo, hi)  # only float rounding beyond the bounds reaches this clamp

    def program(self, g_target: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Conductances the device holds when asked for ``g_target`` (levels applied)."""
        g = self.check_targets(g_target)
        if self.levels is not None:
            g = quantize_levels(g, self.g_min, self.g_max, self.levels)
        return g

    def pulse(self, g: torch.Tensor, n: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Conductances after ``n`` signed pulses per cell (``n > 0`` raises G). Pulsed devices override."""
        raise NotImplementedError(f"{type(self).__name__} has no pulse response (has_pulse_response=False)")

    def current(self, v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Read current ``I(V, G)``; linear ``V·G`` unless the device model says otherwise."""
        return v * g
