"""The array core: mappings, periphery (DAC/ADC, tiling) and the batched :class:`Crossbar`."""

from .core import Crossbar, CrossbarConfig, check_seed
from .mapping import (
    MAPPINGS,
    BalancedDifferential,
    Mapping,
    OffsetDifferential,
    ReferenceColumn,
    StateBalanced,
    check_weights,
    mapping_from_spec,
    register_mapping,
)
from .periphery import Converter, Tiling, uniform_quantize

__all__ = [
    "Crossbar",
    "CrossbarConfig",
    "check_seed",
    "Mapping",
    "OffsetDifferential",
    "BalancedDifferential",
    "ReferenceColumn",
    "StateBalanced",
    "MAPPINGS",
    "register_mapping",
    "mapping_from_spec",
    "check_weights",
    "Converter",
    "Tiling",
    "uniform_quantize",
]
