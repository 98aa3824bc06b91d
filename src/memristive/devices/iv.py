"""Read I–V relations ``I = f(V, G)`` of a programmed cell (``G`` = its small-signal conductance).

Every relation here is *separable*, ``f(V, G) = G·h(V)``: the programmed state scales a voltage
shape ``h`` with ``h(0) = 0`` and ``h'(0) = 1``, so ``G`` keeps its meaning (the conductance measured
with a small read voltage) and a crossbar column without wire resistance still sums as one matmul,
``I_j = Σ_i G_ij·h(V_i) = (h(V)·G)_j``.

==========  ===================================  =============================================
``linear``  ``I = G·V``                          ohmic; also the VTEAM read relation: VTEAM's
                                                 ``i = v/R(s)`` (linear or exponential ``R(s)``,
                                                 Kvatinsky et al. 2015) is ohmic at a given state
``sinh``    ``I = G·sinh(b·V)/b``                the ``a·sinh(b·V)`` conduction of oxide memristors
                                                 (Yang et al., Nat. Nanotechnol. 3:429, 2008;
                                                 the ``sinh`` read current of the Stanford/PKU
                                                 RRAM model), with ``a = G/b`` scaled by the state
==========  ===================================  =============================================

A device with a nonlinear read exposes its relation as ``read_iv`` (the crossbar's read path uses it;
see :class:`SinhDevice`). ``b`` (1/V) sets the nonlinearity: at read voltage ``V`` the chord conductance is
``G·sinh(bV)/(bV)`` (``b = 0`` is ohmic). ``differential`` gives ``∂I/∂V`` for Newton solves and
``spice`` the ngspice behavioural-source expression of the same current.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from ..config import ConfigError, check, from_dict
from .base import register_device
from .linear import LinearDevice

__all__ = ["LinearIV", "SinhIV", "IV_MODELS", "iv_from_spec", "SinhDevice"]


@dataclass
class LinearIV:
    """Ohmic read: ``I = G·V``."""

    kind: Literal["linear"] = "linear"

    @property
    def is_linear(self) -> bool:
        return True

    def shape(self, v: torch.Tensor) -> torch.Tensor:
        return v

    def current(self, v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return g * v

    def differential(self, v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return g * torch.ones_like(v)

    def spice(self, g: float, vexpr: str) -> str:
        return f"{float(g)!r}*{vexpr}"


@dataclass
class SinhIV:
    """``I = G·sinh(b·V)/b`` (``b`` in 1/V, ``b > 0``)."""

    b: float = 2.0
    kind: Literal["sinh"] = "sinh"

    def __post_init__(self) -> None:
        check(isinstance(self.b, (int, float)) and math.isfinite(self.b) and self.b > 0, "iv.b", self.b,
              "must be a positive nonlinearity in 1/V (use kind: linear for an ohmic read)")

    @property
    def is_linear(self) -> bool:
        return False

    def shape(self, v: torch.Tensor) -> torch.Tensor:
        return torch.sinh(self.b * v) / self.b

    def current(self, v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return g * self.shape(v)

    def differential(self, v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return g * torch.cosh(self.b * v)

    def spice(self, g: float, vexpr: str) -> str:
        return f"{float(g) / self.b!r}*sinh({float(self.b)!r}*{vexpr})"


IV_MODELS: dict[str, type] = {"linear": LinearIV, "sinh": SinhIV}


def iv_from_spec(spec) -> LinearIV | SinhIV:
    """An I–V relation from ``None`` (linear), a kind name, a mapping with ``kind``, or an instance."""
    if spec is None:
        return LinearIV()
    if isinstance(spec, tuple(IV_MODELS.values())):
        return spec
    if isinstance(spec, str):
        spec = {"kind": spec}
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ConfigError(f"iv={spec!r}: expected a kind name or a mapping with a 'kind' key")
    if spec["kind"] not in IV_MODELS:
        raise ConfigError(f"iv.kind={spec['kind']!r}: must be one of {sorted(IV_MODELS)}")
    return from_dict(IV_MODELS[spec["kind"]], spec, prefix="iv")


@register_device("sinh")
@dataclass
class SinhDevice(LinearDevice):
    """A bounded device programmed like :class:`~memristive.devices.LinearDevice` (``g_min``..``g_max``,
    optional ``levels``) whose read current is ``I = G·sinh(b·V)/b`` (``G`` = the programmed small-signal
    conductance). ``{kind: sinh, r_on: 1e3, r_off: 12e3, b: 3}``."""

    b: float = 2.0
    name: str = "sinh"
    kind: Literal["sinh"] = "sinh"

    def __post_init__(self) -> None:
        super().__post_init__()
        check(isinstance(self.b, (int, float)) and not isinstance(self.b, bool) and math.isfinite(self.b)
              and self.b > 0, "memristor.b", self.b, "must be a positive nonlinearity in 1/V (kind: linear is ohmic)")

    @property
    def read_iv(self) -> SinhIV:
        return SinhIV(float(self.b))

    def current(self, v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return self.read_iv.current(v, g)
