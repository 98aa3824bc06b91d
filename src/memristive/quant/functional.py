"""Quantizer formulas as small pure functions on tensors (straight-through gradients).

Symmetric weight quantization (no zero point), ``b`` bits, ``Q = 2^(b−1) − 1``::

    s_w = max|W| / Q                       (per tensor, or per output channel / per gate)
    q   = clamp(round(W / s_w), −Q, Q)     (integer code; a differential pair stores |q| of Q levels)
    W_q = s_w · q

Asymmetric (affine) activation quantization, ``b`` bits, ``N = 2^b − 1``::

    s_a = (a_max − a_min) / N
    z   = round(−a_min / s_a)              (zero point, an integer in [0, N])
    a_q = s_a · (clamp(round(a / s_a) + z, 0, N) − z)

``a_min``/``a_max`` come from an observer (:mod:`memristive.quant.observers`); the range is first
widened to contain 0 so that 0 is exactly representable (the usual convention, as in PyTorch).

Both are :func:`memristive.quantizer.quantize` (the one quantizer core) with ``grad="clipped"``.
Gradients: ``round`` is replaced by the identity in the backward pass (straight-through estimator,
STE). ``clamp`` keeps its true gradient, so values outside the representable range get zero gradient
("clipped STE", the PyTorch fake-quant convention). For weights the symmetric scale is taken from
``max|W|``, so no weight is ever clipped and every weight gets gradient 1.
"""

from __future__ import annotations

import torch

from ..quantizer import codes, quantize, ste_round

__all__ = [
    "ste_round",
    "check_bits",
    "symmetric_qmax",
    "symmetric_scale",
    "symmetric_codes",
    "quantize_symmetric",
    "asymmetric_qparams",
    "asymmetric_qparams_float",
    "quantize_asymmetric",
    "MIN_BITS",
    "MAX_BITS",
]

MIN_BITS, MAX_BITS = 2, 16
_TINY = 1e-12


def check_bits(bits: int, key: str = "bits") -> int:
    """Validate a bit width (integer 2–16) and return it."""
    from ..config import check

    check(isinstance(bits, int) and not isinstance(bits, bool) and MIN_BITS <= bits <= MAX_BITS, key, bits,
          f"must be an integer bit width in [{MIN_BITS}, {MAX_BITS}]")
    return bits


def symmetric_qmax(bits: int) -> int:
    """Largest symmetric integer code, ``2^(b−1) − 1`` (31 at 6 bit)."""
    return 2 ** (bits - 1) - 1


def symmetric_scale(w: torch.Tensor, bits: int, dim: int | None = None) -> torch.Tensor:
    """``s_w = max|W| / (2^(b−1) − 1)``: a 0-d tensor (per tensor) or one scale per index of ``dim``.

    With ``dim`` the result has ``w``'s number of dimensions (size 1 except along ``dim``) so that it
    broadcasts against ``w``. The scale is treated as a constant for gradients (``detach``). An
    all-zero tensor/channel gets scale 1 (every code is 0 anyway).
    """
    a = w.detach().abs()
    if dim is None:
        m = a.amax()
    else:
        dim = dim % w.dim()
        others = [d for d in range(w.dim()) if d != dim]
        m = a.amax(dim=others, keepdim=True) if others else a
    m = torch.where(m > 0, m, torch.ones_like(m))
    return m / symmetric_qmax(bits)


def symmetric_codes(w: torch.Tensor, bits: int, dim: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer codes and scale: ``(q, s_w)`` with ``W_q = s_w · q``, ``q ∈ {−Q, …, Q}`` (no STE)."""
    s = symmetric_scale(w, bits, dim)
    qm = symmetric_qmax(bits)
    return codes(w, s, -qm, qm), s


def quantize_symmetric(
    w: torch.Tensor, bits: int, dim: int | None = None, scale: torch.Tensor | None = None
) -> torch.Tensor:
    """Fake-quantized weights ``W_q = s_w · clamp(round(W/s_w), −Q, Q)`` with STE gradients."""
    s = symmetric_scale(w, bits, dim) if scale is None else scale
    qm = symmetric_qmax(bits)
    return quantize(w, s, -qm, qm, grad="clipped")


def asymmetric_qparams(a_min, a_max, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(s_a, z)`` for the range ``[a_min, a_max]`` (widened to include 0), ``b`` bits."""
    a_min = torch.as_tensor(a_min, dtype=torch.float64 if not torch.is_tensor(a_min) else a_min.dtype)
    a_max = torch.as_tensor(a_max, dtype=a_min.dtype, device=a_min.device)
    lo = torch.minimum(a_min, torch.zeros_like(a_min))
    hi = torch.maximum(a_max, torch.zeros_like(a_max))
    n = 2**bits - 1
    s = (hi - lo) / n
    s = torch.where(s > _TINY, s, torch.full_like(s, _TINY))
    z = torch.clamp(torch.round(-lo / s), 0, n)
    return s, z


def asymmetric_qparams_float(a_min: float, a_max: float, bits: int) -> tuple[float, int]:
    """:func:`asymmetric_qparams` on Python numbers (the fast path of the activation quantizer)."""
    lo, hi = min(float(a_min), 0.0), max(float(a_max), 0.0)
    n = 2**bits - 1
    s = (hi - lo) / n
    s = s if s > _TINY else _TINY
    return s, int(min(max(round(-lo / s), 0), n))  # round(): half to even, like torch.round


def quantize_asymmetric(a: torch.Tensor, bits: int, a_min, a_max) -> torch.Tensor:
    """Fake-quantized activations ``s_a·(clamp(round(a/s_a) + z, 0, 2^b−1) − z)`` (clipped STE)."""
    s, z = asymmetric_qparams(a_min, a_max, bits)
    s = s.to(a.dtype)
    z = z.to(a.dtype)
    return quantize(a, s, 0, 2**bits - 1, zero_point=z, grad="clipped")
