"""Technology parameters of the first-order cost model, with named presets and their sources.

A :class:`Technology` holds what does not follow from the simulated crossbar: converter figures of
merit, sense/TIA power, cell footprint, read and write pulse widths, wire capacitance and the
energy of a digital addition. Everything the simulation already knows (conductances, read voltage,
converter bits, tiles) is taken from the crossbar, never from here.

Presets (``TECH_PRESETS``; every value's source is in ``Technology.sources`` and docs/cost.md):

* ``isaac-32nm`` — ISAAC (Shafiee et al., ISCA 2016, Table 2, 32 nm): 8-bit 1.2 GS/s SAR ADC
  (2 mW, 0.0012 mm² each, after Kull et al., ISSCC 2013), 1-bit DACs, sample-and-hold,
  shift-and-add units, 100 ns crossbar read, 4F² cross-point cells;
* ``neurosim-22nm`` — DNN+NeuroSim V1.3 defaults (``Param.cpp``: 22 nm, 1T1R cell 4F×12F, 10 ns
  read pulse, 0.2 fF/µm wires, 2 V write); converters as in ``isaac-32nm`` (NeuroSim's own
  multilevel sense-amp ADC is a fitted circuit model, not a figure of merit).

From Python, ``technology({"preset": "neurosim-22nm", "adc": {"fom_walden": 2e-15}})``; in a config
field typed ``Technology | str``, ``tech: isaac-32nm`` or field overrides merged over the current
technology (``--set tech.t_read=5e-8``). ``configs/tech-*.yaml`` are complete, editable copies.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ..config import ConfigError, check, from_dict

__all__ = ["ConverterTech", "Technology", "TECH_PRESETS", "technology", "technology_dict"]


@dataclass
class ConverterTech:
    """A converter's energy and area as functions of its bits (see :func:`converter_energy`).

    ``fom_walden`` (J per conversion step): energy per conversion ``= fom_walden · 2^bits``
    (Walden, IEEE JSAC 17(4):539, 1999). ``fom_schreier_db`` (dB, optional): thermal-noise floor
    ``0.5·10^((6.02·bits + 1.76 − FOM_S)/10)`` J, which dominates at high resolution (Murmann,
    "ADC Performance Survey 1997–2024"). ``corner_hz`` (optional): above this sample rate the
    energy per conversion grows ∝ ``sample_rate/corner`` (the speed limit of the survey's FOM
    envelope). ``area_per_level`` (µm²): area ``= area_per_level · 2^bits`` (capacitive-DAC SAR /
    flash scaling).
    """

    fom_walden: float
    sample_rate: float
    area_per_level: float
    fom_schreier_db: float | None = None
    corner_hz: float | None = None

    def __post_init__(self) -> None:
        for k in ("fom_walden", "sample_rate", "area_per_level"):
            v = getattr(self, k)
            check(isinstance(v, (int, float)) and math.isfinite(v) and v > 0, k, v, "must be a positive number")
        if self.corner_hz is not None:
            check(math.isfinite(self.corner_hz) and self.corner_hz > 0, "corner_hz", self.corner_hz,
                  "must be a positive frequency in Hz (or null: no speed penalty)")
        if self.fom_schreier_db is not None:
            check(100 <= self.fom_schreier_db <= 200, "fom_schreier_db", self.fom_schreier_db,
                  "must lie in [100, 200] dB (survey values are 150–190)")


@dataclass
class Technology:
    """Technology parameters (SI units: J, s, W, F, V; areas in µm²)."""

    name: str
    node_nm: float
    cell_area_f2: float  # one memristor cell (1T1R or cross-point) in F²
    t_read: float  # read pulse width: how long a read voltage is applied, s
    adc: ConverterTech
    dac: ConverterTech
    sense_power: float  # one column's TIA / sample-and-hold while it reads, W
    sense_area: float  # µm² per column sense circuit
    wire_cap_per_um: float  # row/column wire capacitance, F/µm
    cell_pitch_f: float  # cell width along a row, in F (wire length per cell)
    add_energy: float  # one digital partial-sum addition (shift-add / adder tree), J
    v_write: float  # programming pulse amplitude, V
    t_write: float  # programming pulse width, s
    step_fraction: float = 1 / 32  # conductance change per write-verify pulse, fraction of G range (analog devices)
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for k in ("node_nm", "cell_area_f2", "t_read", "sense_area", "wire_cap_per_um", "cell_pitch_f",
                  "add_energy", "v_write", "t_write"):
            v = getattr(self, k)
            check(isinstance(v, (int, float)) and math.isfinite(v) and v > 0, k, v, "must be a positive number")
        check(isinstance(self.sense_power, (int, float)) and math.isfinite(self.sense_power) and self.sense_power >= 0,
              "sense_power", self.sense_power, "must be >= 0 W")
        check(0 < self.step_fraction <= 1, "step_fraction", self.step_fraction, "must lie in (0, 1]")

    @property
    def feature_um(self) -> float:
        return self.node_nm * 1e-3

    @property
    def cell_area(self) -> float:
        """One cell, µm²."""
        return self.cell_area_f2 * self.feature_um**2

    @property
    def wire_cap_per_cell(self) -> float:
        """Row-wire capacitance each crossed cell adds, F."""
        return self.wire_cap_per_um * self.cell_pitch_f * self.feature_um


_ISAAC = "ISAAC, Shafiee et al., ISCA 2016, Table 2 (32 nm)"
_ACCELERGY = "as transcribed in Accelergy-Project/hwcomponents-library, library/isaac.py"
# ADC: 8 per IMA, 16 mW, 1.2 GS/s, 9600 um^2 -> 1.667 pJ per 8-bit conversion, 1200 um^2 each
_ISAAC_ADC = ConverterTech(fom_walden=16e-3 / (8 * 1.2e9) / 2**8, sample_rate=1.2e9, area_per_level=1200.0 / 2**8,
                           fom_schreier_db=185.0)
# DAC: 8 x 128 1-bit DACs, 4 mW at 1.2e7 conversions/s each, 170 um^2 -> 0.326 pJ per conversion
_ISAAC_DAC = ConverterTech(fom_walden=4e-3 / (1024 * 1.2e7) / 2, sample_rate=1.2e7, area_per_level=170.0 / 1024 / 2)
_CONVERTER_SOURCES = {
    "adc.fom_walden": f"{_ISAAC} {_ACCELERGY}: 8 ADCs 16 mW at 1.2 GS/s (Kull et al., ISSCC 2013) -> 1.667 pJ per "
                      "8-bit conversion / 2^8",
    "adc.sample_rate": f"{_ISAAC}: 1.2 GS/s",
    "adc.area_per_level": f"{_ISAAC} {_ACCELERGY}: 8 ADCs 9600 um^2 -> 1200 um^2 each / 2^8",
    "adc.fom_schreier_db": "Murmann, ADC Performance Survey 1997-2024: thermal-limit envelope ~185 dB",
    "dac.fom_walden": f"{_ISAAC} {_ACCELERGY}: 8x128 1-bit DACs 4 mW at 1.2e7 conversions/s -> 0.326 pJ / 2^1",
    "dac.area_per_level": f"{_ISAAC} {_ACCELERGY}: 8x128 DACs 170 um^2 / 2^1",
    "sense_power": f"{_ISAAC}: 8x128 sample-and-hold 10 uW (not cross-checked against a second transcription)",
    "sense_area": f"{_ISAAC}: 8x128 sample-and-hold 0.00004 mm^2 (not cross-checked)",
    "add_energy": f"{_ISAAC} {_ACCELERGY}: shift-and-add 0.2 mW at 9.6e9 operations/s -> 0.021 pJ",
}

TECH_PRESETS: dict[str, Technology] = {
    "isaac-32nm": Technology(
        name="isaac-32nm", node_nm=32, cell_area_f2=4, t_read=100e-9, adc=_ISAAC_ADC, dac=_ISAAC_DAC,
        sense_power=10e-6 / 1024, sense_area=40.0 / 1024, wire_cap_per_um=0.2e-15, cell_pitch_f=2,
        add_energy=0.021e-12, v_write=2.0, t_write=50e-9,
        sources={
            **_CONVERTER_SOURCES,
            "node_nm": _ISAAC, "t_read": f"{_ISAAC}: crossbar read at 10 MHz (100 ns)",
            "cell_area_f2": "cross-point cell 4F^2 (2F pitch), as ISAAC assumes",
            "wire_cap_per_um": "0.2 fF/um, DNN+NeuroSim V1.3 Bus.cpp unitLengthWireCap",
            "cell_pitch_f": "cross-point cell pitch 2F",
            "v_write": "DNN+NeuroSim V1.3 Param.cpp writeVoltage = 2 V",
            "t_write": "50 ns programming pulse (typical RRAM SET/RESET pulse; assumption)",
            "step_fraction": "1/32 of the conductance range per write-verify pulse (assumption, 5-bit tuning)",
        }),
    "neurosim-22nm": Technology(
        name="neurosim-22nm", node_nm=22, cell_area_f2=4 * 12, t_read=10e-9, adc=_ISAAC_ADC, dac=_ISAAC_DAC,
        sense_power=10e-6 / 1024, sense_area=40.0 / 1024, wire_cap_per_um=0.2e-15, cell_pitch_f=12,
        add_energy=0.021e-12, v_write=2.0, t_write=10e-9,
        sources={
            **_CONVERTER_SOURCES,
            "node_nm": "DNN+NeuroSim V1.3 Param.cpp technode = 22",
            "cell_area_f2": "DNN+NeuroSim V1.3 Param.cpp 1T1R cell 4F x 12F",
            "t_read": "DNN+NeuroSim V1.3 Param.cpp readPulseWidth = 10 ns",
            "wire_cap_per_um": "0.2 fF/um, DNN+NeuroSim V1.3 Bus.cpp unitLengthWireCap",
            "cell_pitch_f": "DNN+NeuroSim V1.3 Param.cpp widthInFeatureSize1T1R = 12",
            "v_write": "DNN+NeuroSim V1.3 Param.cpp writeVoltage = 2 V",
            "t_write": "10 ns programming pulse (NeuroSim's writePulseWidth default; assumption)",
            "step_fraction": "1/32 of the conductance range per write-verify pulse (assumption, 5-bit tuning)",
        }),
}


def technology(spec: "str | dict | Technology | None" = None) -> Technology:
    """A :class:`Technology` from a preset name, a mapping (``preset`` + field overrides, or all
    fields), or an instance. ``None`` is ``neurosim-22nm``."""
    if spec is None:
        spec = "neurosim-22nm"
    if isinstance(spec, Technology):
        return spec
    if isinstance(spec, str):
        if spec not in TECH_PRESETS:
            raise ConfigError(f"tech={spec!r}: unknown technology preset; known: {sorted(TECH_PRESETS)}")
        return copy.deepcopy(TECH_PRESETS[spec])
    if not isinstance(spec, dict):
        raise ConfigError(f"tech={spec!r}: expected a preset name, a mapping of Technology fields or a Technology")
    data = dict(spec)
    preset = data.pop("preset", None)
    base = technology(preset) if preset is not None else None
    if base is not None and "name" not in data:
        data["name"] = f"{base.name}+overrides" if data else base.name
    try:
        return from_dict(Technology, data, prefix="tech", base=base)
    except TypeError as exc:  # a missing required field without a preset to take it from
        raise ConfigError(f"tech={spec!r}: give 'preset: NAME' (one of {sorted(TECH_PRESETS)}) or every field "
                          f"of Technology ({exc})") from None


def technology_dict(tech: Technology) -> dict[str, Any]:
    """Plain data of ``tech`` (JSON/YAML-able)."""
    return dataclasses.asdict(tech)
