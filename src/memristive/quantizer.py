"""The one uniform quantizer: an integer grid, a scale, a zero point, clamping and rounding.

Every quantizer in memristive is built from :func:`quantize` — DAC/ADC
(:class:`memristive.crossbar.Converter`), finite device levels (:func:`quantize_levels`), weight and
activation fake-quantizers (:mod:`memristive.quant`)::

    q   = clamp(round(x / s) + z, q_min, q_max)      (integer code)
    x_q = s · (q − z)

``grad`` chooses the backward pass:

* ``"ste"`` — straight-through: ``∂x_q/∂x = 1`` everywhere, saturated values included (converters:
  a saturated ADC output still passes its gradient, as in aihwkit's analog tiles);
* ``"clipped"`` — straight-through inside the range, 0 where the code is clamped (the PyTorch
  fake-quant convention; weight and activation quantizers);
* ``"none"`` — no gradient path (device levels, inference): fastest.
"""

from __future__ import annotations

from typing import Literal

import torch

__all__ = ["ste_round", "quantize", "codes", "signed_range", "unsigned_range", "quantize_levels", "GRADS"]

GRADS = ("ste", "clipped", "none")


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """``round(x)`` forward, identity backward (straight-through estimator)."""
    return _RoundSTE.apply(x)


def signed_range(bits: int) -> tuple[int, int]:
    """Symmetric signed codes ``{−(2^(b−1)−1), …, 2^(b−1)−1}`` (no negative extra code)."""
    qmax = 2 ** (bits - 1) - 1
    return -qmax, qmax


def unsigned_range(bits: int) -> tuple[int, int]:
    """Unsigned codes ``{0, …, 2^b − 1}``."""
    return 0, 2**bits - 1


def codes(x: torch.Tensor, scale, qmin: int, qmax: int, zero_point=0) -> torch.Tensor:
    """Integer codes ``clamp(round(x/s) + z, q_min, q_max)`` (no gradient)."""
    return torch.clamp(torch.round(x.detach() / scale) + zero_point, qmin, qmax)


def quantize(
    x: torch.Tensor, scale, qmin: int, qmax: int, zero_point=0,
    grad: Literal["ste", "clipped", "none"] = "ste",
) -> torch.Tensor:
    """``s·(clamp(round(x/s) + z, q_min, q_max) − z)`` with the chosen backward pass (module docstring).

    ``scale`` and ``zero_point`` may be numbers or tensors broadcastable to ``x``.
    """
    if grad == "clipped":
        q = ste_round(x / scale)
        if _nonzero(zero_point):
            return (torch.clamp(q + zero_point, qmin, qmax) - zero_point) * scale
        return torch.clamp(q, qmin, qmax) * scale
    if grad not in GRADS:
        raise ValueError(f"grad={grad!r}: must be one of {list(GRADS)}")
    q = torch.round(x.detach() / scale)  # a fresh tensor: the rest works in place
    if _nonzero(zero_point):
        q = torch.clamp(q + zero_point, qmin, qmax) - zero_point
    else:
        q.clamp_(qmin, qmax)
    q = q.mul_(scale) if not torch.is_tensor(scale) or scale.shape == q.shape or scale.dim() == 0 else q * scale
    if grad == "none" or not (torch.is_grad_enabled() and x.requires_grad):
        return q
    return x + (q - x).detach()


def _nonzero(z) -> bool:
    return torch.is_tensor(z) or z != 0


def quantize_levels(g: torch.Tensor, lo: float, hi: float, levels: int) -> torch.Tensor:
    """Round values to the nearest of ``levels`` evenly spaced values in ``[lo, hi]`` (device levels)."""
    if levels < 2:
        raise ValueError(f"levels={levels}: need at least 2 levels")
    step = (hi - lo) / (levels - 1)
    return lo + quantize(g - lo, step, 0, levels - 1, grad="none")
