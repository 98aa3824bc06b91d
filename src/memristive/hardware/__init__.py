"""Hardware cost of a model on crossbars.

* :mod:`.storage` — weight storage, compression, memristor cells and tiles (counts);
* :mod:`.tech` — technology parameters and presets with their sources (:func:`technology`);
* :mod:`.costs` — the first-order formulas (converters, array read, pulse trains);
* :mod:`.inference` — area, energy and latency per layer and per inference from the simulated
  inputs and conductances (:func:`inference_cost`, :func:`add_cost` for experiments' results);
* :mod:`.program` — one-shot write-verify programming and in-situ write energy.
"""

from .costs import converter_area, converter_energy, pulse_train_energy, read_energy, write_verify_pulses
from .inference import (Architecture, add_cost, cost_line, cost_summary, crossbar_layers, inference_cost,
                        inference_table)
from .program import programming_cost, write_energy
from .storage import compression, cost_table, hardware_cost, model_arrays, storage_bytes
from .tech import TECH_PRESETS, ConverterTech, Technology, technology, technology_dict

__all__ = [
    "storage_bytes", "compression", "model_arrays", "hardware_cost", "cost_table",
    "ConverterTech", "Technology", "TECH_PRESETS", "technology", "technology_dict",
    "converter_energy", "converter_area", "read_energy", "pulse_train_energy", "write_verify_pulses",
    "Architecture", "crossbar_layers", "inference_cost", "add_cost", "cost_summary", "cost_line", "inference_table",
    "programming_cost", "write_energy",
]
