"""Neural-network layers on crossbars (thin ``nn.Module`` wrappers around :mod:`memristive.crossbar`).

Layers: :class:`CrossbarLinear`, :class:`CrossbarConv1d`, :class:`CrossbarConv2d`, :class:`CrossbarRNN`,
:class:`CrossbarLSTM`, :class:`CrossbarGRU`; whole models: :func:`convert` (+ report, per-layer configs,
:func:`register_converter`), :func:`program` (trained weights onto fresh devices), :func:`micro_batch` (the CPU evaluation batch of
many instances); the trial
convention: :class:`TrialFold`. Hardware-aware training: :mod:`memristive.nn.train`.
"""

from .base import CrossbarMatrix, TrialFold, layer_seed, register_converter
from .conv import CrossbarConv1d, CrossbarConv2d
from .gru import CrossbarGRU, CrossbarGRUNet, GRUNet, QuantGRU, convert_gru
from .linear import Abs, AppendOne, CrossbarLinear, mlp
from .recurrent import CrossbarLSTM, CrossbarRNN
from .convert import ConversionReport, convert, program
from .batching import micro_batch

__all__ = ["Abs", "AppendOne", "CrossbarLinear", "CrossbarConv1d", "CrossbarConv2d", "CrossbarRNN", "CrossbarLSTM", "mlp",
           "convert", "program", "ConversionReport", "TrialFold", "register_converter", "layer_seed", "micro_batch"]
__all__ += ["CrossbarGRU", "CrossbarGRUNet", "CrossbarMatrix", "GRUNet", "QuantGRU", "convert_gru"]
