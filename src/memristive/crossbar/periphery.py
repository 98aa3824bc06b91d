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
from ..quantizer import quantize, signed_range, unsigned_range


@dataclass
class Converter:
    """A DAC or ADC. ``bits=None`` is an ideal (unquantized) converter."""

    bits: int | None = None
    range: float | None = None
    signed: bool = True

    def __post_init__(self) -> None:
        if self.bits is not None:
            check(isinstance(self.bits, int) and not isinstance(self.bits, bool), "converter.bits", self.bits,
                  "must be an integer number of bits (or null for ideal)")
            check(self.bits >= 1, "converter.bits", self.bits, "must be >= 1 (or null for ideal)")
            check(self.bits <= 32, "converter.bits", self.bits, "must be <= 32")
            if self.signed:
                check(self.bits >= 2, "converter.bits", self.bits, "a signed converter needs >= 2 bits")
        if self.range is not None:
            check(isinstance(self.range, (int, float)) and not isinstance(self.range, bool)
                  and math.isfinite(self.range) and self.range > 0, "converter.range", self.range,
                  "must be a finite number > 0 (or null to auto-range)")

    @property
    def ideal(self) -> bool:
        return self.bits is None

    def step(self, full_scale: float) -> float:
        """The converter's step Δ for a full scale (see the module docstring)."""
        return full_scale / (signed_range(self.bits) if self.signed else unsigned_range(self.bits))[1]

    def codes_(self, y: torch.Tensor) -> torch.Tensor:
        """In place, no gradient: ``y`` given in units of the step Δ becomes its integer codes (round to
        the nearest code, saturate at full scale) — the converter of :func:`uniform_quantize` on data
        already divided by Δ, for a read that folds that division into an earlier pass."""
        qmin, qmax = signed_range(self.bits) if self.signed else unsigned_range(self.bits)
        return y.round_().clamp_(qmin, qmax)

    def __call__(self, x: torch.Tensor, full_scale: float | torch.Tensor | None = None) -> torch.Tensor:
        if self.bits is None:
            return x
        r = full_scale if full_scale is not None else self.range
        if r is None:
            r = x.detach().abs().amax().clamp(min=1e-30)
        return uniform_quantize(x, self.bits, r, self.signed)


def uniform_quantize(x: torch.Tensor, bits: int, full_scale, signed: bool = True) -> torch.Tensor:
    """Uniform converter with saturation at ``±full_scale`` (``[0, full_scale]`` unsigned); straight-through gradient."""
    qmin, qmax = signed_range(bits) if signed else unsigned_range(bits)
    return quantize(x, full_scale / qmax, qmin, qmax, grad="ste")


@dataclass
class Tiling:
    """Physical array size. Each tile has its own ADCs; partial sums are added digitally."""

    rows: int = 128
    cols: int = 128

    def __post_init__(self) -> None:
        for key in ("rows", "cols"):
            val = getattr(self, key)
            check(isinstance(val, int) and not isinstance(val, bool), f"tile.{key}", val, "must be an integer")
        check(self.rows >= 1, "tile.rows", self.rows, "must be >= 1")
        check(self.cols >= 2, "tile.cols", self.cols, "must be >= 2 (a differential pair needs 2)")

