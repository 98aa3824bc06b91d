"""What every crossbar layer shares: one matrix on an array, hardware-aware training, the trial fold.

* :class:`CrossbarMatrix` -- one ``(rows, cols)`` matrix on a :class:`~memristive.crossbar.Crossbar`
  plus per-column digital scales: ``y = crossbar(x) · s``. Unquantized it holds the weights (``s = 1``);
  with ``bits`` it holds the symmetric integer codes ``q ∈ {−Q…Q}`` (``Q + 1`` levels per device of an
  offset pair, ``w_max = Q``) and ``s`` the scales, so ``W_q = q·s``.
* :meth:`CrossbarMatrix.programmed` -- the array a forward pass reads. In eval mode it is the
  programmed array (the device instances under test). In training mode (hardware-aware training) the
  layer's current trainable weights are programmed onto *fresh* devices with the layer's config
  (device levels, programming-time effects such as variation and stuck-at faults, DAC/ADC, read
  noise), one instance per step, and read through the crossbar; gradients are straight-through:

      y = read(x; W̃)  with  ∂y/∂x = read's own gradient (W̃ the programmed weights, converters STE)
                            ∂y/∂W = ∂(x·W_q)/∂W,  W_q = fake-quantized W (rounding STE)

  When the array is a plain linear map (ideal DAC/ADC, no read noise, no wire resistance) the same
  is done with one tensor: ``W_st = W_q + (W̃ − W_q).detach()`` (value W̃, gradient that of W_q).
* :class:`TrialFold` -- the trial convention for every non-crossbar module: inputs ``(T, B, …)`` are
  folded to ``(T·B, …)`` for the module and unfolded after, so per-sample layers (BatchNorm in eval
  mode, LayerNorm, pooling, flatten, embeddings, …) see an ordinary batch.
* The converter registry (:func:`register_converter`) and the one per-layer seed rule
  (:func:`layer_seed`).
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import nn

from ..crossbar import Crossbar, CrossbarConfig
from ..quant import quantize_weight, symmetric_qmax, weight_codes

__all__ = ["CrossbarMatrix", "Programmed", "TrialFold", "CONVERTERS", "register_converter", "find_converter",
           "layer_seed", "SEED_STRIDE", "fresh_seed", "is_linear_read", "read_through_crossbars"]

SEED_STRIDE = 1000


def layer_seed(seed: int, index: int) -> int:
    """The seed of the ``index``-th array of a converted model: ``seed + 1000·index`` (the only place)."""
    return int(seed) + SEED_STRIDE * int(index)


def fresh_seed() -> int:
    """A seed for one hardware-aware training step, drawn from torch's global generator (so
    ``torch.manual_seed`` makes training reproducible)."""
    return int(torch.randint(0, 2**62, (1,)))


def is_linear_read(config: CrossbarConfig) -> bool:
    """True when a read of a crossbar with ``config`` is exactly ``x @ Crossbar.weights()``."""
    lr = config.line_resistance
    return (config.dac.ideal and config.adc.ideal and (config.read_noise is None or config.read_noise.sigma == 0)
            and (lr is None or lr.ideal))


_READ_EVERY_ARRAY = 0  # > 0 inside read_through_crossbars(): no linear fast path


@contextmanager
def read_through_crossbars() -> Iterator[None]:
    """Within the block every crossbar layer reads through ``Crossbar.matmul``, also where the read is a
    plain linear map that layers otherwise compute from the weights in one tensor (same outputs to
    float rounding; slower). For tools that observe each array's inputs (``memristive.hardware``)."""
    global _READ_EVERY_ARRAY
    _READ_EVERY_ARRAY += 1
    try:
        yield
    finally:
        _READ_EVERY_ARRAY -= 1


def _array_config(config: CrossbarConfig, bits: int | None) -> CrossbarConfig:
    """The config that stores integer codes of ``bits``-bit weights (device levels, ``w_max = Q``)."""
    if bits is None:
        return config
    qm = symmetric_qmax(bits)
    dev = dataclasses.replace(config.memristor, levels=config.mapping.code_levels(qm))
    return dataclasses.replace(config, memristor=dev, mapping=dataclasses.replace(config.mapping, w_max=float(qm)))


class Programmed:
    """One programmed array as a forward pass sees it (not a module; built per forward in training)."""

    def __init__(self, crossbar: Crossbar, scale: torch.Tensor, w_q: torch.Tensor | None = None) -> None:
        self.crossbar, self.scale, self.w_q = crossbar, scale, w_q

    @property
    def linear(self) -> bool:
        return _READ_EVERY_ARRAY == 0 and is_linear_read(self.crossbar.config)

    @property
    def trials(self) -> int:
        return self.crossbar.trials

    def weights(self) -> torch.Tensor:
        """Effective weights ``(T, rows, cols)``; in training straight-through to the trainable weights."""
        w = self.crossbar.weights() * self.scale
        if self.w_q is None:
            return w
        return self.w_q + (w - self.w_q).detach()

    def __call__(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """``x (T|1, N, rows) → (T, N, cols)`` through DAC, array, ADC, then the per-column scales and
        the digital ``bias`` (if given)."""
        if self.w_q is None:
            return self.crossbar.matmul(x, self.scale, bias)
        y = self.crossbar.matmul(x, self.scale)
        lin = torch.matmul(x.detach(), self.w_q)
        y = y + (lin - lin.detach())
        return y if bias is None else y + bias


class CrossbarMatrix(nn.Module):
    """One matrix on a crossbar: ``y = crossbar(x) · s`` with per-column scales ``s``.

    Quantized (``bits``): the devices hold the integer codes (``Q+1`` levels per device of a
    differential pair, ``w_max = Q``), ``s`` the symmetric scales. Unquantized: the float weights,
    ``s = 1``. ``n_params`` counts the entries that hold a parameter (for :mod:`memristive.hardware`).
    """

    def __init__(self, crossbar: Crossbar, scale: torch.Tensor, n_params: int | None = None, bits: int | None = None,
                 granularity: str = "channel", groups: int = 1):
        super().__init__()
        self.crossbar = crossbar
        self.register_buffer("scale", scale.detach().clone())
        self.n_params = int(n_params) if n_params is not None else crossbar.in_features * crossbar.out_features
        self.bits, self.granularity, self.groups = bits, granularity, int(groups)

    @classmethod
    def from_matrix(cls, w: torch.Tensor, config: CrossbarConfig | None = None, trials: int = 1, seed: int = 0,
                    bits: int | None = None, granularity: str = "channel", groups: int = 1,
                    n_params: int | None = None) -> "CrossbarMatrix":
        config = config or CrossbarConfig()
        xb, scale = cls._program(w.detach(), _array_config(config, bits), trials, seed, bits, granularity, groups)
        return cls(xb, scale, n_params, bits, granularity, groups)

    @staticmethod
    def _program(w, config, trials, seed, bits, granularity, groups):
        if bits is None:
            return (Crossbar.from_weights(w.contiguous(), config=config, trials=trials, seed=seed),
                    torch.ones(w.shape[1], dtype=w.dtype, device=w.device))
        q, scale = weight_codes(w, bits, granularity, groups)
        return Crossbar.from_weights(q.contiguous(), config=config, trials=trials, seed=seed), scale

    @property
    def linear(self) -> bool:
        """True when the array is a plain linear map (ideal DAC/ADC, no read noise, no IR drop)."""
        return self.programmed().linear

    @property
    def trials(self) -> int:
        return self.crossbar.trials

    def weights(self) -> torch.Tensor:
        """Effective weights ``(T, rows, cols)`` the array realises (codes × scales)."""
        return self.programmed().weights()

    def quantized(self, w: torch.Tensor) -> torch.Tensor:
        """``w`` as the array stores it, fake-quantized with a straight-through gradient."""
        return quantize_weight(w, self.bits, self.granularity, self.groups)[0]

    def programmed(self, w: torch.Tensor | None = None, config: CrossbarConfig | None = None,
                   trials: int = 1, seed: int | None = None) -> Programmed:
        """The array to read: this one (``w=None``), or ``w`` programmed onto ``trials`` fresh device
        instances (hardware-aware training; ``config`` defaults to this array's, ``seed`` to a fresh draw)."""
        if w is None:
            return Programmed(self.crossbar, self.scale)
        cfg = self.crossbar.config if config is None else _array_config(config, self.bits)
        with torch.no_grad():
            xb, scale = self._program(w.detach(), cfg, trials,
                                      fresh_seed() if seed is None else seed, self.bits, self.granularity, self.groups)
        return Programmed(xb, scale, self.quantized(w))

    @torch.no_grad()
    def program(self, w: torch.Tensor, config: CrossbarConfig | None = None, trials: int | None = None,
                seed: int = 0) -> None:
        """Program ``w`` onto new device instances: in place with the current config, or onto a new
        array with ``config`` (``trials`` defaults to the current count)."""
        w = w.detach().to(self.scale.device)
        trials = trials or self.crossbar.trials
        if config is None:
            target, scale = (w, torch.ones_like(self.scale)) if self.bits is None else \
                weight_codes(w, self.bits, self.granularity, self.groups)
            gen = torch.Generator(device=w.device).manual_seed(int(seed))
            self.crossbar.program(target.contiguous(), trials=trials, generator=gen)
        else:
            xb, scale = self._program(w, _array_config(config, self.bits), trials, seed, self.bits, self.granularity,
                                      self.groups)
            self.crossbar = xb
        self.scale = scale.to(self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.crossbar.matmul(x, self.scale)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, params={self.n_params}"


# ------------------------------------------------------------------------------------ trial fold
class TrialFold(nn.Module):
    """Runs a non-crossbar module on ``(T, B, …)`` inputs by folding trials into the batch.

    Every tensor argument ``(T, B, …)`` becomes ``(T·B, …)`` (arguments with a size-1 trial dimension
    are expanded to the largest ``T`` present first); tensor outputs are unfolded back to
    ``(T, B, …)``. Correct for every per-sample module: BatchNorm in eval mode, LayerNorm, pooling,
    flatten, dropout, activations, embeddings, digital convolutions. (BatchNorm in *training* mode
    pools its statistics over the ``T·B`` samples.)
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        m = self.module
        if (isinstance(m, nn.modules.batchnorm._BatchNorm) and not m.training and m.running_var is not None
                and len(args) == 1 and not kwargs and args[0].dim() >= 3):
            return _batchnorm_eval(m, args[0])
        tensors = [a for a in list(args) + list(kwargs.values()) if isinstance(a, torch.Tensor)]
        if not tensors:
            return self.module(*args, **kwargs)
        t = max(a.shape[0] for a in tensors)

        def fold(a):
            if not isinstance(a, torch.Tensor):
                return a
            if a.dim() < 2:
                raise ValueError(f"{type(self.module).__name__}: expected (trials, batch, ...) inputs, got {tuple(a.shape)}")
            if a.shape[0] not in (1, t):
                raise ValueError(f"{type(self.module).__name__}: inputs disagree on the trial count ({a.shape[0]} vs {t})")
            a = a.expand(t, *a.shape[1:]) if a.shape[0] != t else a
            return a.reshape(t * a.shape[1], *a.shape[2:])

        batch = tensors[0].shape[1]
        out = self.module(*[fold(a) for a in args], **{k: fold(v) for k, v in kwargs.items()})
        return _unfold(out, t, batch)

    def extra_repr(self) -> str:
        return "trials folded into the batch"


def _batchnorm_eval(bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm in eval mode on ``(T, B, C, …)``: a per-channel affine map, applied without folding
    (keeps the memory layout of the convolution before it)."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    shape = (-1,) + (1,) * (x.dim() - 3)
    return torch.addcmul(shift.view(shape).to(x.dtype), x, scale.view(shape).to(x.dtype))


def _unfold(out, t: int, batch: int):
    if isinstance(out, torch.Tensor):
        return out.reshape(t, batch, *out.shape[1:]) if out.dim() >= 1 and out.shape[0] == t * batch else out
    if isinstance(out, tuple):
        return tuple(_unfold(o, t, batch) for o in out)
    if isinstance(out, list):
        return [_unfold(o, t, batch) for o in out]
    return out


# ------------------------------------------------------------------------------------ converters
Converter = Callable[..., nn.Module]
CONVERTERS: dict[type, Converter] = {}


def register_converter(module_type: type) -> Callable[[Converter], Converter]:
    """Register ``fn(module, config, trials, seed) -> crossbar module`` for ``module_type`` (and its
    subclasses, unless a subclass has its own). The converted module's ``j``-th array must use seed
    ``layer_seed(seed, j)``; :func:`memristive.nn.convert` advances its counter by the number of arrays."""

    def deco(fn: Converter) -> Converter:
        CONVERTERS[module_type] = fn
        return fn

    return deco


def find_converter(module: nn.Module) -> Converter | None:
    """The converter for ``module``'s type: the most specific registered class in its MRO."""
    for cls in type(module).__mro__:
        if cls in CONVERTERS:
            return CONVERTERS[cls]
    return None
