"""Crossbar arrays: mapping, periphery (DAC/ADC, tiling) and the batched :class:`Crossbar`."""

from .core import Crossbar, CrossbarConfig
from .mapping import Mapping, conductances_to_weights, physical_shape, weights_to_conductances
from .periphery import Converter, Tiling, tile_counts, uniform_quantize

__all__ = [
    "Crossbar",
    "CrossbarConfig",
    "Mapping",
    "Converter",
    "Tiling",
    "tile_counts",
    "uniform_quantize",
    "weights_to_conductances",
    "conductances_to_weights",
    "physical_shape",
]
