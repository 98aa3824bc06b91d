"""Periphery: DAC on the inputs, ADC on the column outputs, tiling onto physical arrays.

Uniform converter with ``bits`` bits over a full-scale ``range``::

    signed:   levels at  Δ·q,  q ∈ {−(2^(b−1)−1), …, 2^(b−1)−1},  Δ = range / (2^(b−1)−1)
    unsigned: levels at  Δ·q,  q ∈ {0, …, 2^b−1},                  Δ = range / (2^b−1)

Values beyond full scale saturate (that is the converter's physics, not input validation).
``range=None`` auto-ranges per call to the largest magnitude present (ideal auto-ranging); use a
fixed value, or :meth:`memristive.crossbar.Crossbar.calibrate_adc`, for a static converter.
Rounding passes gradients straight through (STE) so crossbar layers remain trainable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..config import check


@dataclass
class Converter:
    """A DAC or ADC. ``bits=None`` is an ideal (unquantized) converter."""

    bits: int | None = None
    range: float | None = None
    signed: bool = True

    def __post_init__(self) -> None:
        if self.bits is not None:
            check(self.bits >= 1, "converter.bits", self.bits, "must be >= 1 (or null for ideal)")
            check(self.bits <= 32, "converter.bits", self.bits, "must be <= 32")
            if self.signed:
                check(self.bits >= 2, "converter.bits", self.bits, "a signed converter needs >= 2 bits")
        if self.range is not None:
            check(math.isfinite(self.range) and self.range > 0, "converter.range", self.range, "must be > 0")

    @property
    def ideal(self) -> bool:
        return self.bits is None

    def __call__(self, x: torch.Tensor, full_scale: float | torch.Tensor | None = None) -> torch.Tensor:
        if self.bits is None:
            return x
        r = full_scale if full_scale is not None else self.range
        if r is None:
            r = x.detach().abs().amax().clamp(min=1e-30)
        return uniform_quantize(x, self.bits, r, self.signed)


def uniform_quantize(x: torch.Tensor, bits: int, full_scale, signed: bool = True) -> torch.Tensor:
    """Uniform quantizer with saturation; straight-through gradient."""
    if signed:
        qmax = 2 ** (bits - 1) - 1
        qmin = -qmax
    else:
        qmax = 2**bits - 1
        qmin = 0
    step = full_scale / qmax
    q = torch.clamp(torch.round(x / step), qmin, qmax) * step
    if not (torch.is_grad_enabled() and x.requires_grad):
        return q
    return x + (q - x).detach()


@dataclass
class Tiling:
    """Physical array size. Each tile has its own ADCs; partial sums are added digitally."""

    rows: int = 128
    cols: int = 128

    def __post_init__(self) -> None:
        check(self.rows >= 1, "tile.rows", self.rows, "must be >= 1")
        check(self.cols >= 2, "tile.cols", self.cols, "must be >= 2 (a differential pair needs 2)")


def tile_counts(inputs: int, outputs: int, scheme: str, tile: Tiling | None) -> dict:
    """Cells and tiles for an ``inputs × outputs`` weight matrix.

    Differential pairs are kept in one tile (``cols // 2`` weights per tile row); the reference scheme
    spends one column of every column-tile on the reference devices.
    """
    if scheme == "differential":
        rows, cols = inputs, 2 * outputs
    else:
        rows, cols = inputs, outputs + 1
    if tile is None:
        return dict(rows=rows, cols=cols, cells=rows * cols, row_tiles=1, col_tiles=1, tiles=1)
    row_tiles = math.ceil(inputs / tile.rows)
    if scheme == "differential":
        col_tiles = math.ceil(outputs / (tile.cols // 2))
        cols = 2 * outputs
    else:
        col_tiles = math.ceil(outputs / (tile.cols - 1))
        cols = outputs + col_tiles  # one reference column per column tile
    return dict(
        rows=rows, cols=cols, cells=rows * cols, row_tiles=row_tiles, col_tiles=col_tiles,
        tiles=row_tiles * col_tiles,
    )
