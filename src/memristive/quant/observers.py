"""Range observers for asymmetric activation quantization.

An observer tracks ``[a_min, a_max]`` of the tensors it sees (in buffers, so ``state_dict`` keeps it):

* ``minmax`` -- running extremes: ``a_min ← min(a_min, min(x))``, ``a_max ← max(a_max, max(x))``.
* ``ema``    -- exponential moving average of per-batch extremes (PyTorch's
  ``MovingAverageMinMaxObserver``): ``a_min ← (1 − c)·a_min + c·min(x)`` (same for ``a_max``),
  ``c`` = ``momentum`` (default 0.01); the first batch initialises the range.
* ``fixed``  -- a constant range given up front (e.g. ``[0, 1]`` for a sigmoid, ``[−1, 1]`` for tanh).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Observer", "OBSERVERS"]

OBSERVERS = ("ema", "minmax", "fixed")


class Observer(nn.Module):
    """Tracks the range of the tensors passed to :meth:`observe`."""

    def __init__(self, kind: str = "ema", momentum: float = 0.01, fixed_range: tuple[float, float] | None = None):
        super().__init__()
        if kind not in OBSERVERS:
            raise ValueError(f"observer={kind!r}: must be one of {list(OBSERVERS)}")
        if not 0.0 < momentum <= 1.0:
            raise ValueError(f"momentum={momentum!r}: must lie in (0, 1]")
        if kind == "fixed":
            if fixed_range is None or not fixed_range[0] < fixed_range[1]:
                raise ValueError(f"a fixed observer needs a range (lo, hi) with lo < hi, got {fixed_range!r}")
        self.kind = kind
        self.momentum = float(momentum)
        lo, hi = fixed_range if fixed_range is not None else (0.0, 0.0)
        self.register_buffer("min_val", torch.tensor(float(lo)))
        self.register_buffer("max_val", torch.tensor(float(hi)))
        self.register_buffer("initialized", torch.tensor(kind == "fixed"))

    @torch.no_grad()
    def observe(self, x: torch.Tensor) -> None:
        if self.kind == "fixed" or x.numel() == 0:
            return
        lo, hi = x.detach().aminmax()
        lo, hi = lo.to(self.min_val.dtype), hi.to(self.max_val.dtype)
        if not bool(self.initialized):
            self.min_val.copy_(lo)
            self.max_val.copy_(hi)
            self.initialized.fill_(True)
        elif self.kind == "minmax":
            self.min_val.copy_(torch.minimum(self.min_val, lo))
            self.max_val.copy_(torch.maximum(self.max_val, hi))
        else:
            c = self.momentum
            self.min_val.mul_(1 - c).add_(c * lo)
            self.max_val.mul_(1 - c).add_(c * hi)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, range=[{float(self.min_val):.4g}, {float(self.max_val):.4g}]"
