"""``CrossbarLinear``, the Abs activation, an MLP builder and ``convert``."""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from ..crossbar import Crossbar, CrossbarConfig


class Abs(nn.Module):
    """``|x|``: the activation of the calibration paper's MLP (after Sun et al. 2019)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.abs()


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


class CrossbarLinear(nn.Module):
    """A linear layer whose matmul runs on a :class:`Crossbar` (all Monte Carlo trials at once).

    Input ``(B, in)`` or ``(T, B, in)``; output ``(T, B, out)``. The bias (if any) is added digitally
    in the periphery. Weights are fixed once programmed; call :meth:`program` to write new ones.
    """

    def __init__(self, crossbar: Crossbar, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.crossbar = crossbar
        if bias is not None:
            self.register_buffer("bias", bias.detach().clone())
        else:
            self.bias = None

    @classmethod
    def from_linear(
        cls, linear: nn.Linear, config: CrossbarConfig | None = None, trials: int = 1, seed: int = 0
    ) -> "CrossbarLinear":
        xb = Crossbar.from_weights(linear.weight.detach().t().contiguous(), config=config or CrossbarConfig(), trials=trials, seed=seed)
        return cls(xb, linear.bias)

    @property
    def in_features(self) -> int:
        return self.crossbar.in_features

    @property
    def out_features(self) -> int:
        return self.crossbar.out_features

    def program(self, w: torch.Tensor, seed: int | None = None) -> None:
        """Reprogram with weights ``w`` shaped ``(out, in)`` like ``nn.Linear.weight``."""
        gen = None
        if seed is not None:
            gen = torch.Generator(device=w.device)
            gen.manual_seed(seed)
        self.crossbar.program(w.detach().t().contiguous(), generator=gen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.crossbar.matmul(x)
        if self.bias is not None:
            y = y + self.bias
        return y

    def extra_repr(self) -> str:
        return f"bias={self.bias is not None}"


def convert(
    model: nn.Module, config: CrossbarConfig | None = None, trials: int = 1, seed: int = 0, inplace: bool = False
) -> nn.Module:
    """Swap every ``nn.Linear`` of ``model`` for a :class:`CrossbarLinear` (like aihwkit's
    ``convert_to_analog``). Each layer gets its own seed (``seed + index``) so layers' defects are
    independent. The result maps inputs to ``(trials, batch, ...)``.
    """
    config = config or CrossbarConfig()
    model = model if inplace else copy.deepcopy(model)
    counter = [0]

    def _swap(module: nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, nn.Linear):
                layer = CrossbarLinear.from_linear(child, dataclasses.replace(config), trials=trials, seed=seed + 1000 * counter[0])
                counter[0] += 1
                setattr(module, name, layer)
            else:
                _swap(child)

    if isinstance(model, nn.Linear):
        return CrossbarLinear.from_linear(model, config, trials=trials, seed=seed)
    _swap(model)
    return model
