"""Quantization for crossbar deployment: quantizers, observers, STE and weight-noise injection.

Formulas live in the submodules' docstrings:

* :mod:`.functional` -- symmetric weight / asymmetric activation quantizers, STE rounding.
* :mod:`.observers`  -- min/max, EMA and fixed range observers.
* :mod:`.modules`    -- :class:`QuantConfig`, :class:`ActQuant`, :class:`QuantLinear`,
  per-tensor / per-gate / per-channel weight scales.
* :mod:`.noise`      -- :class:`WeightNoise` (training): the crossbar's mapping and device variation in
  weight units; its evaluation side is :class:`memristive.nonideal.DeviceVariation` (``kind: variation``).

The rounding itself is :func:`memristive.quantizer.quantize`, the one quantizer core.

Stable API (used by the GRU and by other tasks' pipelines)::

    QuantConfig(weight_bits=6, act_bits=None, granularity="channel", observer="ema")
    WeightNoise(sigma=0.14, mode="multiplicative", memristor="ti-alox-taox", mapping="differential")
    quantize_symmetric(w, bits, dim=None) / quantize_asymmetric(a, bits, a_min, a_max)
    ActQuant(bits, observer="ema"); calibration(model)
"""

from ..quantizer import ste_round
from .functional import (
    MAX_BITS,
    MIN_BITS,
    asymmetric_qparams,
    asymmetric_qparams_float,
    check_bits,
    quantize_asymmetric,
    quantize_symmetric,
    symmetric_codes,
    symmetric_qmax,
    symmetric_scale,
)
from .modules import (
    GRANULARITIES,
    ActQuant,
    QuantConfig,
    QuantLinear,
    calibration,
    column_scale,
    quantize_weight,
    weight_codes,
)
from .noise import NOISE_MODES, WeightNoise, weight_noise
from .observers import OBSERVERS, Observer

__all__ = [
    "MIN_BITS", "MAX_BITS", "ste_round", "check_bits", "symmetric_qmax", "symmetric_scale", "symmetric_codes",
    "quantize_symmetric", "asymmetric_qparams", "asymmetric_qparams_float", "quantize_asymmetric",
    "QuantConfig", "ActQuant", "QuantLinear", "calibration", "column_scale", "quantize_weight", "weight_codes",
    "GRANULARITIES", "NOISE_MODES", "WeightNoise", "weight_noise",
    "Observer", "OBSERVERS",
]
