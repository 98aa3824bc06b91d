"""Weights <-> conductances: the only implementation of the mapping, as objects.

Weights ``W`` are shaped ``(inputs, outputs)`` (the crossbar's rows × columns, ``y = x @ W``). Every
mapping programs each *side* of a cell pair with a target affine in a *drive* of the weight,
``G_side = c0 + c1·drive(W, side)``, and reads weights back as ``W = (G_pos − G_neg) / k``:

``differential`` (offset pairs; two devices per weight, columns ``G+`` and ``G−``)::

    k   = (G_max − G_min) / w_max
    G±  = G_min + k·max(±W, 0)

``balanced`` (pairs centred at the mid conductance, CrossSim's two-sided BALANCED core; a zero weight
is two devices at G_mid, not two at G_min)::

    k   = (G_max − G_min) / w_max
    G±  = (G_min + G_max)/2 ± k·W/2

``balanced-state`` (``StateBalanced``): as ``balanced`` but centred at the device's mid *state*
``memristor.g_mid`` (for VTEAM ``G(s=½)``; the same as ``balanced`` for a device linear in conductance).

``reference`` (one device per weight plus one reference column per column tile at the mid conductance)::

    k   = (G_max − G_min) / (2·w_max)          # maps [−w_max, w_max] onto [G_min, G_max]
    G   = G_min + k·(W + w_max),  G_ref = G_min + k·w_max

``w_max`` defaults to ``max|W|`` of the weights mapped; weights beyond an explicit ``w_max`` are an
error, never silently clipped. ``k`` and ``w_max`` may be tensors (e.g. one per column) wherever they
broadcast against ``W``. A new mapping subclasses :class:`Mapping`, registers with
``@register_mapping("name")`` and implements :meth:`~Mapping.affine` and :meth:`~Mapping.drive`
(plus ``span`` and, for a different column layout, ``layout`` / :meth:`~Mapping.tile_counts`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from ..config import Registry, check

__all__ = ["Mapping", "OffsetDifferential", "BalancedDifferential", "StateBalanced", "ReferenceColumn", "MAPPINGS",
           "register_mapping", "mapping_from_spec", "check_weights"]

MAPPINGS = Registry("mapping")


def register_mapping(kind: str):
    """Class decorator registering a mapping kind."""
    return MAPPINGS.register(kind)


def check_weights(w: Any, name: str = "weights") -> None:
    """A finite, non-empty, real 2-D ``(inputs, outputs)`` tensor, or a clear error."""
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(w).__name__}")
    if w.dim() != 2:
        raise ValueError(f"{name}: expected a 2-D (inputs, outputs) matrix, got shape {tuple(w.shape)}")
    if w.numel() == 0:
        raise ValueError(f"{name}: empty matrix of shape {tuple(w.shape)}")
    if not w.is_floating_point():
        raise TypeError(f"{name}: expected a real floating-point tensor, got dtype {w.dtype}")
    if not torch.isfinite(w).all():
        bad = "NaN" if torch.isnan(w).any() else "infinite values"
        raise ValueError(f"{name}: contains {bad}; refusing to map it onto a crossbar")


class Mapping:
    """Base of every weight↔conductance mapping (subclasses are dataclasses with ``kind``, ``w_max``)."""

    __registry__ = MAPPINGS
    sides: ClassVar[tuple[str, ...]] = ("pos", "neg")
    span: ClassVar[float] = 1.0  # k = (G_max − G_min) / (span · w_max)
    layout: ClassVar[str] = "differential"  # physical columns: "differential" pairs or "reference" column
    shared_drive: ClassVar[bool] = True  # both sides are driven by the same function of W (W itself)
    w_max: float | None = None
    __renamed__ = {k: "a mapping is now one kind: mapping: differential | balanced | reference "
                      "(or {kind: balanced, w_max: ...})" for k in ("scheme", "balanced")}

    def __post_init__(self) -> None:
        if self.w_max is not None:
            check(isinstance(self.w_max, (int, float)) and math.isfinite(self.w_max) and self.w_max > 0,
                  "mapping.w_max", self.w_max, "must be a finite number > 0 (or null for max|W|)")

    @property
    def scheme(self) -> str:
        """The physical column layout, ``"differential"`` (pairs) or ``"reference"``."""
        return self.layout

    # ---------------------------------------------------------------- the scale
    def weight_range(self, w: torch.Tensor) -> float:
        """``w_max``: the configured one (weights beyond it are an error) or ``max|W|``."""
        peak = float(w.detach().abs().max())
        if self.w_max is None:
            return peak if peak > 0 else 1.0  # an all-zero matrix: any scale maps it to the zero point
        if peak > self.w_max * (1 + 1e-6):
            raise ValueError(f"weights reach |W|={peak:.4g}, beyond mapping.w_max={self.w_max}; "
                             "raise w_max or use w_max=null (max|W|)")
        return self.w_max

    def k_for(self, w_max, memristor) -> Any:
        """Conductance per unit weight for a weight range ``w_max`` (number or tensor)."""
        return memristor.g_range / (self.span * w_max) if self.span != 1 else memristor.g_range / w_max

    def w_max_for(self, k, memristor) -> Any:
        """The weight range that a scale ``k`` maps onto the device range (inverse of :meth:`k_for`)."""
        return memristor.g_range / (self.span * k) if self.span != 1 else memristor.g_range / k

    def scale(self, w: torch.Tensor, memristor) -> tuple[float, float]:
        """``(k, w_max)`` of this mapping for weights ``w`` on ``memristor``."""
        w_max = self.weight_range(w)
        return self.k_for(w_max, memristor), w_max

    def code_levels(self, qmax: int) -> int:
        """Device levels that hold integer weight codes ``{−Q, …, Q}`` exactly (``w_max = Q``): ``2Q + 1``
        when a device follows W itself; offset pairs store ``|q|``, so ``Q + 1``."""
        return 2 * qmax + 1 if self.shared_drive else qmax + 1

    # ---------------------------------------------------------------- per side
    def affine(self, side: str, memristor, k, w_max) -> tuple[Any, Any]:
        """``(c0, c1)`` with ``G_side = c0 + c1·drive(W, side)``."""
        raise NotImplementedError

    def drive(self, w: torch.Tensor, side: str) -> torch.Tensor:
        """The weight function each side's target is affine in."""
        return w

    def target(self, w: torch.Tensor, side: str, memristor, k, w_max) -> torch.Tensor:
        c0, c1 = self.affine(side, memristor, k, w_max)
        return c0 + c1 * self.drive(w, side)

    # ---------------------------------------------------------------- whole matrices
    def to_conductances(self, w: torch.Tensor, memristor, k=None, w_max=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Target conductances ``(G_pos, G_neg)`` of ``w`` (the scale from :meth:`scale` unless given)."""
        if k is None:
            k, w_max = self.scale(w, memristor)
        return self.target(w, "pos", memristor, k, w_max), self.target(w, "neg", memristor, k, w_max)

    def to_weights(self, g_pos: torch.Tensor, g_neg: torch.Tensor, k) -> torch.Tensor:
        """``W = (G_pos − G_neg) / k`` (a reference column broadcasts)."""
        return (g_pos - g_neg) / k

    def physical_shape(self, inputs: int, outputs: int) -> tuple[int, int]:
        """Rows × columns of cells for one weight matrix, before tiling."""
        return inputs, 2 * outputs

    def tile_counts(self, inputs: int, outputs: int, tile) -> dict:
        """Cells and tiles; differential pairs stay in one tile (``cols // 2`` weights per tile row)."""
        rows, cols = self.physical_shape(inputs, outputs)
        if tile is None:
            return dict(rows=rows, cols=cols, cells=rows * cols, row_tiles=1, col_tiles=1, tiles=1)
        row_tiles = math.ceil(inputs / tile.rows)
        col_tiles = math.ceil(outputs / (tile.cols // 2))
        return dict(rows=rows, cols=cols, cells=rows * cols, row_tiles=row_tiles, col_tiles=col_tiles,
                    tiles=row_tiles * col_tiles)

    def neg_columns(self, inputs: int, outputs: int, tile) -> int:
        """Physical ``G_neg`` columns stored: one per weight column for pairs."""
        return outputs


@register_mapping("differential")
@dataclass
class OffsetDifferential(Mapping):
    """Offset differential pairs: ``G± = G_min + k·max(±W, 0)`` (a zero weight is two devices at G_min)."""

    w_max: float | None = None
    kind: Literal["differential"] = "differential"

    def affine(self, side, memristor, k, w_max):
        return memristor.g_min, k

    shared_drive: ClassVar[bool] = False

    def drive(self, w, side):
        return torch.relu(w) if side == "pos" else torch.relu(-w)


@register_mapping("balanced")
@dataclass
class BalancedDifferential(Mapping):
    """Balanced differential pairs: ``G± = G_mid ± k·W/2`` (CrossSim's BALANCED core)."""

    w_max: float | None = None
    kind: Literal["balanced"] = "balanced"

    def affine(self, side, memristor, k, w_max):
        mid = 0.5 * (memristor.g_min + memristor.g_max)
        return (mid, 0.5 * k) if side == "pos" else (mid, -0.5 * k)


@register_mapping("balanced-state")
@dataclass
class StateBalanced(Mapping):
    """Balanced pairs centred at the device's mid *state*: ``G± = G_mid ± k·W/2``, ``k = (G_max − G_min)/w_max``,
    with ``G_mid = memristor.g_mid`` — for VTEAM ``G(s=½)``, where each device of a pair has the same
    pulse headroom both ways (with a linear R(s) that is not the conductance midpoint that ``balanced``
    uses); for a device linear in conductance the two mappings agree. The default of in-situ training
    on pulsed devices.
    """

    w_max: float | None = None
    kind: Literal["balanced-state"] = "balanced-state"

    def affine(self, side, memristor, k, w_max):
        mid = memristor.g_mid
        return (mid, 0.5 * k) if side == "pos" else (mid, -0.5 * k)


@register_mapping("reference")
@dataclass
class ReferenceColumn(Mapping):
    """One device per weight, ``G = G_min + k·(W + w_max)``, minus a reference column at ``G_min + k·w_max``."""

    w_max: float | None = None
    kind: Literal["reference"] = "reference"
    sides: ClassVar[tuple[str, ...]] = ("pos",)
    span: ClassVar[float] = 2.0
    layout: ClassVar[str] = "reference"

    def affine(self, side, memristor, k, w_max):
        b = memristor.g_min + k * w_max
        return (b, k) if side == "pos" else (b, 0.0)

    def target(self, w, side, memristor, k, w_max):
        c0, c1 = self.affine(side, memristor, k, w_max)
        if side == "pos":
            return c0 + c1 * w
        # the reference column: one device per row at the offset b (per tile column, see neg_columns)
        return torch.full((w.shape[-2], 1), float(c0), dtype=w.dtype, device=w.device) if not torch.is_tensor(c0) \
            else torch.as_tensor(c0, dtype=w.dtype, device=w.device).expand(w.shape[-2], 1).clone()

    def physical_shape(self, inputs, outputs):
        return inputs, outputs + 1

    def tile_counts(self, inputs, outputs, tile):
        if tile is None:
            rows, cols = self.physical_shape(inputs, outputs)
            return dict(rows=rows, cols=cols, cells=rows * cols, row_tiles=1, col_tiles=1, tiles=1)
        row_tiles = math.ceil(inputs / tile.rows)
        col_tiles = math.ceil(outputs / (tile.cols - 1))
        cols = outputs + col_tiles  # one reference column per column tile
        return dict(rows=inputs, cols=cols, cells=inputs * cols, row_tiles=row_tiles, col_tiles=col_tiles,
                    tiles=row_tiles * col_tiles)

    def neg_columns(self, inputs, outputs, tile):
        return self.tile_counts(inputs, outputs, tile)["col_tiles"]


def mapping_from_spec(spec: Any, key: str = "mapping") -> Mapping:
    """A :class:`Mapping` from a kind name (``"balanced"``), a ``{kind: ...}`` mapping or a Mapping."""
    return MAPPINGS.build(spec, key)
