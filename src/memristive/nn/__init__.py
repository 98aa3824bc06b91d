"""Neural-network layers on crossbars (thin ``nn.Module`` wrappers around :mod:`memristive.crossbar`)."""

from .linear import Abs, CrossbarLinear, convert, mlp

__all__ = ["Abs", "CrossbarLinear", "convert", "mlp"]
