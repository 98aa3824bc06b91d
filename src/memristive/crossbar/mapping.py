"""Weights <-> conductances: the linear scale-and-offset mapping.

Weights ``W`` are shaped ``(inputs, outputs)`` (the crossbar's rows × columns, ``y = x @ W``).
Both schemes return a pair ``(G_pos, G_neg)`` with ``W = (G_pos − G_neg) / k``:

``differential`` (two devices per weight, columns ``G+`` and ``G−``; 784×100 weights → 784×200 cells)::

    k   = (G_max − G_min) / w_max
    G+  = G_min + k·max(W, 0)
    G−  = G_min + k·max(−W, 0)

``differential`` with ``balanced=True`` (pairs centred at the mid conductance, CrossSim's two-sided
BALANCED core; a zero weight is two devices at G_mid, not two at G_min)::

    G±  = (G_min + G_max)/2 ± k·W/2

``reference`` (one device per weight, plus one reference column per tile at the mid conductance)::

    k   = (G_max − G_min) / (2·w_max)          # maps [−w_max, w_max] onto [G_min, G_max]
    G   = k·W + b,   b = G_min + k·w_max        # G_neg is the reference column, shape (inputs, 1)

``w_max`` defaults to ``max|W|`` of the weights mapped; weights beyond an explicit ``w_max`` are an
error, never silently clipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ..config import check

SCHEMES = ("differential", "reference")


@dataclass
class Mapping:
    """How weights become conductances. ``w_max=None``: use max|W| of each mapped layer."""

    scheme: Literal["differential", "reference"] = "differential"
    w_max: float | None = None
    balanced: bool = False  # differential only: G± = G_mid ± k·W/2 instead of G_min + k·max(±W, 0)

    def __post_init__(self) -> None:
        check(self.scheme in SCHEMES, "mapping.scheme", self.scheme, f"must be one of {list(SCHEMES)}")
        check(not self.balanced or self.scheme == "differential", "mapping.balanced", self.balanced,
              "only the differential scheme has balanced pairs")
        if self.w_max is not None:
            check(self.w_max > 0, "mapping.w_max", self.w_max, "must be > 0 (or null for max|W|)")


def check_weights(w: torch.Tensor, name: str = "weights") -> None:
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(w).__name__}")
    if w.dim() != 2:
        raise ValueError(f"{name}: expected a 2-D (inputs, outputs) matrix, got shape {tuple(w.shape)}")
    if not torch.isfinite(w).all():
        bad = "NaN" if torch.isnan(w).any() else "infinite values"
        raise ValueError(f"{name}: contains {bad}; refusing to map it onto a crossbar")


def scale_factor(w: torch.Tensor, g_min: float, g_max: float, mapping: Mapping) -> tuple[float, float]:
    """Return ``(k, w_max)``: conductance per unit weight for this mapping."""
    w_max = mapping.w_max if mapping.w_max is not None else float(w.abs().max())
    if w_max == 0:
        w_max = 1.0  # an all-zero matrix: any scale maps it to G_min (differential) / mid (reference)
    if mapping.w_max is not None and float(w.abs().max()) > mapping.w_max * (1 + 1e-6):
        raise ValueError(
            f"weights reach |W|={float(w.abs().max()):.4g}, beyond mapping.w_max={mapping.w_max}; "
            "raise w_max or use w_max=null (max|W|)"
        )
    span = g_max - g_min
    k = span / w_max if mapping.scheme == "differential" else span / (2 * w_max)
    return k, w_max


def weights_to_conductances(
    w: torch.Tensor, g_min: float, g_max: float, mapping: Mapping
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Map ``w`` (inputs, outputs) to target conductances. Returns ``(G_pos, G_neg, k)``."""
    check_weights(w)
    k, w_max = scale_factor(w, g_min, g_max, mapping)
    if mapping.scheme == "differential" and mapping.balanced:
        mid = 0.5 * (g_min + g_max)
        g_pos = mid + (0.5 * k) * w
        g_neg = mid - (0.5 * k) * w
    elif mapping.scheme == "differential":
        g_pos = g_min + k * w.clamp(min=0)
        g_neg = g_min + k * (-w).clamp(min=0)
    else:
        b = g_min + k * w_max
        g_pos = k * w + b
        g_neg = torch.full((w.shape[0], 1), b, dtype=w.dtype, device=w.device)
    return g_pos, g_neg, k


def conductances_to_weights(g_pos: torch.Tensor, g_neg: torch.Tensor, k: float) -> torch.Tensor:
    """Inverse mapping: ``W = (G_pos − G_neg) / k`` (broadcasts a reference column)."""
    return (g_pos - g_neg) / k


def physical_shape(inputs: int, outputs: int, scheme: str) -> tuple[int, int]:
    """Rows × columns of cells for one weight matrix, before tiling."""
    return (inputs, 2 * outputs) if scheme == "differential" else (inputs, outputs + 1)
