"""Neural-network layers on crossbars (thin ``nn.Module`` wrappers around :mod:`memristive.crossbar`)."""

from .linear import Abs, CrossbarLinear, convert, mlp
from .gru import CrossbarGRU, CrossbarGRUNet, CrossbarMatrix, GRUNet, QuantGRU, convert_gru

__all__ = ["Abs", "CrossbarLinear", "convert", "mlp"]
__all__ += ["CrossbarGRU", "CrossbarGRUNet", "CrossbarMatrix", "GRUNet", "QuantGRU", "convert_gru"]
