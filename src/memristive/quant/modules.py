"""Quantizer modules and the quantization config.

* :class:`QuantConfig` -- weight bits (symmetric), activation bits (asymmetric), weight-scale
  granularity, observer kind. ``weight_bits=None`` means full precision.
* :func:`weight_codes` / :func:`quantize_weight` -- symmetric quantization of a crossbar matrix
  ``(rows, cols)`` with one scale per matrix (``tensor``), per group of columns (``gate``) or per
  column (``channel``, the default: a crossbar column is an output channel, and its scale is one
  digital multiply after the ADC).
* :class:`ActQuant` -- asymmetric fake-quantizer for activations with an observer.
* :class:`QuantLinear` -- ``nn.Linear`` whose ``[Wᵀ; b]`` crossbar matrix is fake-quantized (+ weight
  noise) in training: the software twin of a crossbar layer with a bias row.

Defaults follow PyTorch's standard QAT recipe (per-channel symmetric weights, per-tensor affine
activations with a moving-average min/max observer, momentum 0.01).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..config import check
from ..quantizer import codes, quantize
from .functional import asymmetric_qparams_float, check_bits, quantize_symmetric, symmetric_codes, symmetric_qmax
from .noise import WeightNoise
from .observers import Observer

__all__ = ["QuantConfig", "ActQuant", "QuantLinear", "weight_codes", "quantize_weight", "column_scale",
           "calibration", "GRANULARITIES"]

GRANULARITIES = ("tensor", "gate", "channel")


@dataclass
class QuantConfig:
    """Bit widths and quantizer options (a paper's "6 bit" is ``weight_bits=6``).

    ``act_bits=None`` uses ``weight_bits`` for the activations too; ``activations=False`` leaves
    activations in full precision. ``quantize_input`` also quantizes the network input (the DAC).
    """

    weight_bits: int | None = 6
    act_bits: int | None = None
    activations: bool = True
    granularity: Literal["tensor", "gate", "channel"] = "channel"
    observer: Literal["ema", "minmax", "fixed"] = "ema"
    momentum: float = 0.01
    quantize_input: bool = True

    def __post_init__(self) -> None:
        if self.weight_bits is not None:
            check_bits(self.weight_bits, "quant.weight_bits")
        if self.act_bits is not None:
            check_bits(self.act_bits, "quant.act_bits")
        check(self.granularity in GRANULARITIES, "quant.granularity", self.granularity, f"must be one of {list(GRANULARITIES)}")
        check(0 < self.momentum <= 1, "quant.momentum", self.momentum, "must lie in (0, 1]")

    @property
    def activation_bits(self) -> int | None:
        if not self.activations:
            return None
        return self.act_bits if self.act_bits is not None else self.weight_bits


def column_scale(w: torch.Tensor, bits: int, granularity: str = "channel", groups: int = 1) -> torch.Tensor:
    """Symmetric scale per column of a ``(rows, cols)`` matrix, shape ``(cols,)``.

    ``gate``: ``groups`` equal blocks of columns (e.g. the GRU's gates) share one scale each.
    """
    rows, cols = w.shape
    if granularity == "tensor":
        s = symmetric_codes(w, bits)[1].reshape(1).expand(cols)
    elif granularity == "channel":
        s = symmetric_codes(w, bits, dim=1)[1].reshape(cols)
    elif granularity == "gate":
        if cols % groups:
            raise ValueError(f"gate granularity: {cols} columns do not split into {groups} gates")
        s = symmetric_codes(w.reshape(rows, groups, cols // groups), bits, dim=1)[1].reshape(groups, 1)
        s = s.expand(groups, cols // groups).reshape(cols)
    else:
        raise ValueError(f"granularity={granularity!r}: must be one of {list(GRANULARITIES)}")
    return s.contiguous()


def weight_codes(w: torch.Tensor, bits: int, granularity: str = "channel", groups: int = 1):
    """Integer codes ``q`` (rows, cols) and column scales ``s`` (cols,) with ``W_q = q·s``."""
    s = column_scale(w, bits, granularity, groups)
    qm = symmetric_qmax(bits)
    return codes(w, s, -qm, qm), s


def quantize_weight(w: torch.Tensor, bits: int | None, granularity: str = "channel", groups: int = 1):
    """Fake-quantized crossbar matrix (STE) and the weight mapped to ``G_max`` per column.

    Returns ``(W_q, w_max)``; ``w_max`` is ``(cols,)`` (``s·Q``) when quantized, else ``max|W|``.
    """
    if bits is None:
        return w, w.detach().abs().amax().clamp(min=1e-30)
    s = column_scale(w, bits, granularity, groups)
    return quantize_symmetric(w, bits, scale=s), s * symmetric_qmax(bits)


class ActQuant(nn.Module):
    """Asymmetric activation fake-quantizer (identity while ``bits`` is None).

    Observes its input while the module is training (or inside :func:`calibration`), then quantizes
    with the observed range. ``natural_range`` is used by the ``fixed`` observer (e.g. (0, 1) for a
    sigmoid output); without one a ``fixed`` request falls back to ``ema``. The forward uses
    PyTorch's fused ``fake_quantize_per_tensor_affine`` kernel (same formula as
    :func:`~memristive.quant.quantize_asymmetric`, float32 arithmetic: within float32 rounding of a
    tie a value may land on the neighbouring level; clipped-STE gradient).
    """

    def __init__(self, bits: int | None = None, observer: str = "ema", momentum: float = 0.01,
                 natural_range: tuple[float, float] | None = None) -> None:
        super().__init__()
        self.natural_range = natural_range
        kind = observer if (observer != "fixed" or natural_range is not None) else "ema"
        self.observer = Observer(kind, momentum, natural_range if kind == "fixed" else None)
        self.bits = None if bits is None else check_bits(bits, "act_bits")
        self.calibrating = False

    def configure(self, bits: int | None, observer: str = "ema", momentum: float = 0.01) -> None:
        """Change bits/observer (resets the observed range when the observer kind changes)."""
        self.bits = None if bits is None else check_bits(bits, "act_bits")
        kind = observer if (observer != "fixed" or self.natural_range is not None) else "ema"
        if kind != self.observer.kind or momentum != self.observer.momentum:
            dev = self.observer.min_val.device
            self.observer = Observer(kind, momentum, self.natural_range if kind == "fixed" else None).to(dev)

    def qparams(self) -> tuple[float, int]:
        """``(scale, zero_point)`` of the current range."""
        if not bool(self.observer.initialized):
            raise RuntimeError(
                "ActQuant has no observed range yet: train the model (training mode) or run it inside "
                "memristive.quant.calibration(model) on sample data before evaluating it quantized"
            )
        return asymmetric_qparams_float(float(self.observer.min_val), float(self.observer.max_val), self.bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits is None:
            return x
        if self.training or self.calibrating:
            self.observer.observe(x)
        s, z = self.qparams()
        return torch.fake_quantize_per_tensor_affine(x, s, z, 0, 2**self.bits - 1)

    def frozen(self):
        """A plain function equivalent to this quantizer while its range is fixed (no observing).

        Used inside recurrent loops: reads the range once instead of at every time step.
        """
        if self.bits is None:
            return _identity
        if self.training or self.calibrating:
            return self
        s, z = self.qparams()
        top = 2**self.bits - 1
        if torch.is_grad_enabled():
            return lambda x: torch.fake_quantize_per_tensor_affine(x, s, z, 0, top)
        lo, hi = float(-z), float(top - z)
        # inference: s·clamp(round(x/s), −z, N − z), the same values without the gradient mask (7x faster)
        return lambda x: quantize(x, s, lo, hi, grad="none")

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


@contextlib.contextmanager
def calibration(model: nn.Module):
    """Inside this block every :class:`ActQuant` of ``model`` observes its inputs (also in eval mode)."""
    qs = [m for m in model.modules() if isinstance(m, ActQuant)]
    for q in qs:
        q.calibrating = True
    try:
        yield model
    finally:
        for q in qs:
            q.calibrating = False


class QuantLinear(nn.Linear):
    """``nn.Linear`` with its crossbar matrix ``[Wᵀ; b]`` fake-quantized and noised in training.

    ``forward`` accepts ``(..., in)`` and returns ``(..., out)``; with ``quant=None`` and no noise it
    is exactly ``nn.Linear``. Its state dict is ``nn.Linear``'s.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 quant: QuantConfig | None = None, noise: WeightNoise | None = None) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.quant = quant
        self.noise = noise

    def matrix(self) -> torch.Tensor:
        """The crossbar matrix ``(in [+1], out)``: ``Wᵀ`` with the bias as an extra row."""
        m = self.weight.t()
        if self.bias is not None:
            m = torch.cat([m, self.bias.unsqueeze(0)], 0)
        return m

    def effective_matrix(self, generator: torch.Generator | None = None) -> torch.Tensor:
        bits = self.quant.weight_bits if self.quant is not None else None
        gran = self.quant.granularity if self.quant is not None else "channel"
        m, w_max = quantize_weight(self.matrix(), bits, "tensor" if gran == "gate" else gran)
        if self.noise is not None and self.noise.sigma > 0 and self.training:
            m = self.noise(m, w_max, generator)
        return m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (self.quant is None or self.quant.weight_bits is None) and (self.noise is None or self.noise.sigma == 0 or not self.training):
            return super().forward(x)
        m = self.effective_matrix()
        y = x @ m[: self.in_features]
        return y + m[self.in_features] if self.bias is not None else y
