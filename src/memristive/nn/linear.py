"""``CrossbarLinear``, the Abs activation and an MLP builder."""

from __future__ import annotations

import torch
from torch import nn

from ..crossbar import CrossbarConfig
from .base import CrossbarMatrix, register_converter


class Abs(nn.Module):
    """``|x|``: the activation of the calibration paper's MLP (after Sun et al. 2019)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.abs()


class AppendOne(nn.Module):
    """Appends a constant-1 input feature: the next layer's bias as one more array row (as the DTGA
    trainer's in-situ layers), so an in-situ optimizer trains it by pulses like any weight."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, torch.ones(*x.shape[:-1], 1, dtype=x.dtype, device=x.device)], dim=-1)


def mlp(sizes: list[int] | tuple[int, ...], activation: str = "abs", bias: bool = False) -> nn.Sequential:
    """A plain MLP, e.g. ``mlp([784, 100, 10])``: Linear, activation, ..., Linear (logits).

    ``bias=False`` by default, as in the calibration paper (its 784×100 layer is a 784×200 array).
    """
    if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
        raise ValueError(f"mlp sizes={list(sizes)}: need at least two positive layer sizes")
    acts = {"abs": Abs, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
    if activation not in acts:
        raise ValueError(f"activation={activation!r}: must be one of {sorted(acts)}")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(int(a), int(b), bias=bias))
        if i < len(sizes) - 2:
            layers.append(acts[activation]())
    return nn.Sequential(*layers)


class CrossbarLinear(CrossbarMatrix):
    """A linear layer whose matmul runs on a :class:`Crossbar` (all Monte Carlo trials at once).

    Input ``(B, in)`` or ``(T, B, in)``; output ``(T, B, out)``; any further leading dimensions
    ``(T, B, …, in)`` are folded into the batch. The bias (if any) is added digitally in the
    periphery. ``weight`` (``(out, in)``, like ``nn.Linear``) and ``bias`` are trainable parameters:
    in training mode the forward pass programs them onto fresh devices (hardware-aware training, see
    :mod:`memristive.nn.base`); in eval mode it reads the programmed array (:attr:`crossbar`).
    """

    def __init__(self, array: CrossbarMatrix, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        super().__init__(array.crossbar, array.scale, array.n_params, array.bits, array.granularity, array.groups)
        self.weight = nn.Parameter(weight.detach().clone())
        self.bias = nn.Parameter(bias.detach().clone()) if bias is not None else None

    @classmethod
    def from_linear(cls, linear: nn.Linear, config: CrossbarConfig | None = None, trials: int = 1, seed: int = 0,
                    bits: int | None = None) -> "CrossbarLinear":
        w = linear.weight.detach()
        array = CrossbarMatrix.from_matrix(w.t(), config or CrossbarConfig(), trials=trials, seed=seed, bits=bits)
        return cls(array, w, linear.bias)

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    def matrix(self) -> torch.Tensor:
        """The array matrix ``(in, out)`` = ``weightᵀ``."""
        return self.weight.t()

    @torch.no_grad()
    def program(self, w: torch.Tensor | None = None, seed: int | None = None, config: CrossbarConfig | None = None,
                trials: int | None = None) -> None:
        """Program weights ``w`` (``(out, in)`` like ``nn.Linear.weight``; default: the trained
        ``weight``) onto new device instances (``config``/``trials`` default to the current ones)."""
        if w is not None:
            self.weight.copy_(w)
        super().program(self.weight.t(), config=config, trials=trials, seed=self.crossbar.seed if seed is None else seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() > 3:  # (T, B, ..., in): fold the extra dimensions into the batch
            y = self.forward(x.reshape(x.shape[0], -1, x.shape[-1]))
            return y.reshape(y.shape[0], *x.shape[1:-1], y.shape[-1])
        if not self.training:  # the programmed array; scales and bias after its ADC
            return self.crossbar.matmul(x, self.scale, self.bias)
        p = self.programmed(self.matrix())
        if p.linear:
            x3 = x if x.dim() == 3 else x.reshape(1, -1, x.shape[-1])
            y = torch.matmul(x3, p.weights())
            return y if self.bias is None else y + self.bias
        return p(x, self.bias)  # the bias is added digitally, after the ADC

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


@register_converter(nn.Linear)
def _convert_linear(module: nn.Linear, config: CrossbarConfig, trials: int, seed: int) -> CrossbarLinear:
    return CrossbarLinear.from_linear(module, config, trials=trials, seed=seed)
