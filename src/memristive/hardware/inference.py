"""Area, energy and latency of a converted model, per layer and per inference (first order).

:func:`inference_cost` runs the model once on real inputs and, for every crossbar it meets, records
what that crossbar is asked to multiply (``Crossbar.matmul``'s input, so convolution patches, GRU
time steps and later layers' activations are all the simulated ones). From those inputs and the
programmed conductances it computes, per layer (formulas in :mod:`memristive.hardware.costs`):

* array read energy ``t_r · Σ v_i² Σ_j G_ij`` per input vector, from the actual voltages and
  conductances (every physical cell: both devices of a pair, reference columns);
* row drivers (wire charging ``C_row · v_i²``), DACs (one per row per column tile), column sense /
  TIA (one per output column per tile, ``P_sense · t_r``), ADCs (one per ``cols_per_adc`` output
  columns of a tile; one conversion per output column, row tile and read cycle) and the digital
  additions that merge partial sums across row tiles, weight slices and bit-serial cycles;
* latency per input vector ``cycles · (t_r + ⌈cols/ADC⌉ / f_s)`` with all tiles of a layer in
  parallel; vectors of a layer (convolution positions, time steps) and layers run one after another;
* area of cells, ADCs, DACs and sense circuits.

The walk finds every module that is a :class:`~memristive.crossbar.Crossbar` or has one as its
``crossbar`` attribute, so any layer type built on the crossbar (linear, GRU, convolution) is costed.
"""

from __future__ import annotations

import dataclasses
import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Literal

import torch
from torch import nn

from ..config import check
from ..crossbar import Crossbar
from ..nn.base import read_through_crossbars
from ..quantizer import codes, unsigned_range
from .costs import bit_serial_v2, converter_area, converter_energy, read_energy
from .tech import Technology, technology

__all__ = ["Architecture", "crossbar_layers", "record_inputs", "layer_cost", "inference_cost", "add_cost",
           "cost_summary", "cost_line", "inference_table"]


@dataclass
class Architecture:
    """How the arrays are read (choices the simulation does not fix).

    ``input_mode``: ``amplitude`` (one read per input vector, a ``input_bits`` DAC per row — what
    the simulation models) or ``bit_serial`` (``input_bits`` binary reads, as NeuroSim and ISAAC).
    ``input_bits``/``adc_bits``: ``None`` takes the crossbar's DAC/ADC bits (8 when it is ideal).
    ``weight_slices``: columns per weight column (bit slicing of weights over several cells,
    e.g. 8-bit weights on 2-bit cells = 4); each slice is costed like the simulated column.
    ``cols_per_adc``: output columns sharing one ADC through a column multiplexer.
    """

    cols_per_adc: int = 8
    input_mode: Literal["amplitude", "bit_serial"] = "amplitude"
    input_bits: int | None = None
    adc_bits: int | None = None
    weight_slices: int = 1

    def __post_init__(self) -> None:
        check(isinstance(self.cols_per_adc, int) and self.cols_per_adc >= 1, "arch.cols_per_adc", self.cols_per_adc,
              "must be an integer >= 1")
        check(self.input_mode in ("amplitude", "bit_serial"), "arch.input_mode", self.input_mode,
              "must be 'amplitude' or 'bit_serial'")
        for k in ("input_bits", "adc_bits"):
            v = getattr(self, k)
            check(v is None or (isinstance(v, int) and 1 <= v <= 32), f"arch.{k}", v,
                  "must be an integer in [1, 32] or null (the crossbar's converter bits)")
        check(isinstance(self.weight_slices, int) and self.weight_slices >= 1, "arch.weight_slices",
              self.weight_slices, "must be an integer >= 1")


def crossbar_layers(model: nn.Module) -> list[tuple[str, Crossbar]]:
    """``(name, crossbar)`` for every crossbar of ``model`` (a layer's name when it owns one)."""
    out: list[tuple[str, Crossbar]] = []
    seen: set[int] = set()
    for name, mod in model.named_modules():
        xb = mod if isinstance(mod, Crossbar) else getattr(mod, "crossbar", None)
        if isinstance(xb, Crossbar) and id(xb) not in seen:
            seen.add(id(xb))
            out.append((name or type(model).__name__, xb))
    return out


class _InputStats:
    """Running sums over the inputs one crossbar received (no input tensor is kept)."""

    def __init__(self, xb: Crossbar, tech: Technology, arch: Architecture) -> None:
        self.xb, self.tech, self.arch = xb, tech, arch
        self.vectors = 0
        self.array = torch.zeros(xb.trials, dtype=torch.float64)
        self.v2 = torch.zeros(xb.trials, dtype=torch.float64)  # Σ v² over rows, vectors and cycles

    def add(self, x: torch.Tensor) -> None:
        x = x.detach()
        while x.dim() < 3:
            x = x.unsqueeze(0)
        cfg = self.xb.config
        if self.arch.input_mode == "amplitude":
            v2 = (cfg.dac(x) * cfg.v_read) ** 2
        else:
            qmin, qmax = unsigned_range(input_bits(self.xb, self.arch))
            mag = x.abs()
            v2 = bit_serial_v2(codes(mag, mag.amax().clamp(min=1e-30) / qmax, qmin, qmax), cfg.v_read)
        g_pos, g_neg = self.xb.g_pos.detach(), self.xb.g_neg.detach()  # physical cells (reference: its columns)
        g_rows = g_pos.sum(-1) + g_neg.sum(-1)  # (T, rows)
        e = read_energy(v2, g_rows, self.tech.t_read) * self.arch.weight_slices  # (T, B)
        self.array += e.sum(-1).double().cpu().expand(self.xb.trials)
        self.v2 += v2.sum(dim=(-1, -2)).double().cpu().expand(self.xb.trials)
        self.vectors += x.shape[-2]


def input_bits(xb: Crossbar, arch: Architecture) -> int:
    return arch.input_bits or xb.config.dac.bits or 8


def adc_bits(xb: Crossbar, arch: Architecture) -> int:
    return arch.adc_bits or xb.config.adc.bits or 8


@contextmanager
def record_inputs(layers: list[tuple[str, Crossbar]], tech: Technology, arch: Architecture) -> Iterator[dict]:
    """Within the block, every ``Crossbar.matmul`` call of ``layers`` adds its input to the stats."""
    stats = {id(xb): _InputStats(xb, tech, arch) for _, xb in layers}
    wrapped = []
    try:
        for _, xb in layers:
            method = xb.matmul
            st = stats[id(xb)]

            def recording(x, *args, _method=method, _st=st, **kwargs):
                _st.add(x)
                return _method(x, *args, **kwargs)

            xb.matmul = recording  # instance attribute: shadows the method until removed below
            wrapped.append(xb)
        yield stats
    finally:
        for xb in wrapped:
            del xb.matmul


def layer_cost(name: str, xb: Crossbar, stats: _InputStats, n_inferences: int, tech: Technology,
               arch: Architecture) -> dict:
    """One layer's energy (J), latency (s) and area (µm²) per inference, plus the counts behind them."""
    cfg = xb.config
    c = xb.counts()
    rows, outs, s = xb.in_features, xb.out_features, arch.weight_slices
    row_tiles, col_tiles = c["row_tiles"], c["col_tiles"]
    outs_per_ct = math.ceil(outs / col_tiles)
    cols_phys = c["cols"] * s  # physical columns of the whole matrix (pairs / reference columns, slices)
    b_in, b_adc = input_bits(xb, arch), adc_bits(xb, arch)
    cycles = b_in if arch.input_mode == "bit_serial" else 1
    dac_bits = 1 if arch.input_mode == "bit_serial" else b_in
    # each weight slice is a copy of the column tiles: s·col_tiles tiles across, each with its own
    # drivers, sense circuits and ADCs
    n_adc = row_tiles * col_tiles * s * math.ceil(outs_per_ct / arch.cols_per_adc)
    n_sense = row_tiles * outs * s
    n_dac = rows * col_tiles * s
    conv_per_adc = min(arch.cols_per_adc, outs_per_ct)
    t_vec = cycles * (tech.t_read + conv_per_adc / tech.adc.sample_rate)
    conversions = cycles * row_tiles * outs * s  # ADC conversions per input vector
    adds = outs * (s * row_tiles * cycles - 1)  # digital additions per input vector
    vec = stats.vectors / n_inferences  # input vectors per inference
    e_array = float(stats.array.mean()) / n_inferences
    e_driver = tech.wire_cap_per_cell * cols_phys * float(stats.v2.mean()) / n_inferences  # each row wire: all its tiles
    e_dac = vec * cycles * n_dac * converter_energy(dac_bits, tech.dac)
    e_adc = vec * conversions * converter_energy(b_adc, tech.adc)
    e_sense = vec * cycles * n_sense * tech.sense_power * tech.t_read
    e_digital = vec * adds * tech.add_energy
    energy = dict(array=e_array, driver=e_driver, dac=e_dac, sense=e_sense, adc=e_adc, digital=e_digital)
    area = dict(array=c["cells"] * s * tech.cell_area, adc=n_adc * converter_area(b_adc, tech.adc),
                dac=n_dac * converter_area(dac_bits, tech.dac), sense=n_sense * tech.sense_area)
    return {
        "name": name, "rows": rows, "cols": outs, "mapping": cfg.mapping.kind,
        "tile": None if cfg.tile is None else [cfg.tile.rows, cfg.tile.cols],
        "tiles": c["tiles"] * s, "cells": c["cells"] * s, "adcs": n_adc, "dacs": n_dac, "sense": n_sense,
        "adc_bits": b_adc, "input_bits": b_in, "read_cycles": cycles, "vectors_per_inference": vec,
        "conversions_per_inference": vec * conversions, "latency_per_vector_s": t_vec,
        "energy_j": {**energy, "total": sum(energy.values())},
        "latency_s": vec * t_vec,
        "area_um2": {**area, "total": sum(area.values())},
        "array_energy_std_j": float(stats.array.std()) / n_inferences if xb.trials > 1 else 0.0,
        "read": stats.vectors > 0,
        # converter bits taken as 8 because both the crossbar's converter and arch leave them open
        "assumed_bits": [k for k, conv, given in (("input", cfg.dac, arch.input_bits), ("adc", cfg.adc, arch.adc_bits))
                         if conv.bits is None and given is None],
    }


@torch.no_grad()
def inference_cost(model: nn.Module, x: torch.Tensor, tech: "Technology | str | dict | None" = None,
                   arch: "Architecture | dict | None" = None, n_inferences: int | None = None) -> dict:
    """Per-layer and total energy, latency and area of one inference of ``model`` on inputs ``x``.

    ``x`` is a batch of ``n_inferences`` inputs (default ``x.shape[0]``); costs are per inference,
    averaged over the batch and over Monte Carlo trials. Returns plain data (JSON-able).
    """
    from ..config import from_dict

    tech = technology(tech)
    arch = arch if isinstance(arch, Architecture) else from_dict(Architecture, arch or {}, prefix="arch")
    layers = crossbar_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no crossbar layers to cost; convert it first "
                         "(memristive.nn.convert)")
    n = int(n_inferences if n_inferences is not None else x.shape[0])
    check(n >= 1, "n_inferences", n, "must be >= 1")
    was_training = model.training
    model.eval()
    try:
        with read_through_crossbars(), record_inputs(layers, tech, arch) as stats:  # no linear fast path
            model(x)
    finally:
        model.train(was_training)
    per_layer = [layer_cost(name, xb, stats[id(xb)], n, tech, arch) for name, xb in layers]
    keys_e = per_layer[0]["energy_j"].keys()
    keys_a = per_layer[0]["area_um2"].keys()
    total = {
        "energy_j": {k: sum(L["energy_j"][k] for L in per_layer) for k in keys_e},
        "latency_s": sum(L["latency_s"] for L in per_layer),
        "area_um2": {k: sum(L["area_um2"][k] for L in per_layer) for k in keys_a},
        "tiles": sum(L["tiles"] for L in per_layer), "cells": sum(L["cells"] for L in per_layer),
        "adcs": sum(L["adcs"] for L in per_layer),
    }
    total["area_mm2"] = total["area_um2"]["total"] * 1e-6
    return {"tech": tech.name, "arch": dataclasses.asdict(arch), "inferences": n, "layers": per_layer,
            "total": total, "unread_layers": [L["name"] for L in per_layer if not L["read"]],
            "assumed_bits": sorted({b for L in per_layer for b in L["assumed_bits"]})}


def add_cost(results: dict, model: nn.Module, x: torch.Tensor, tech=None, arch=None, key: str = "hardware_cost") -> dict:
    """Add the cost of ``model`` on inputs ``x`` to an experiment's ``results`` dict (in place)."""
    results[key] = cost_summary(inference_cost(model, x, tech, arch))
    return results


def cost_summary(cost: dict) -> dict:
    """The compact form of an :func:`inference_cost` result that experiments put in results.json."""
    return {
        "tech": cost["tech"], "arch": cost["arch"],
        "energy_per_inference_j": cost["total"]["energy_j"]["total"],
        "energy_breakdown_j": cost["total"]["energy_j"],
        "latency_s": cost["total"]["latency_s"], "area_mm2": cost["total"]["area_mm2"],
        "tiles": cost["total"]["tiles"], "cells": cost["total"]["cells"], "adcs": cost["total"]["adcs"],
        "layers": [{k: L[k] for k in ("name", "energy_j", "latency_s", "area_um2", "tiles")} for L in cost["layers"]],
        "unread_layers": cost["unread_layers"],  # layers that bypassed Crossbar.matmul: input-dependent energy 0
        "assumed_bits": cost["assumed_bits"],  # converters left ideal: costed at 8 bits
    }


def cost_line(entry: dict) -> str:
    """One line for a ``hardware_cost`` entry of results.json (:func:`cost_summary` + its ``variants``)."""
    if "unavailable" in entry:
        return f"hardware cost: unavailable ({entry['unavailable']})"
    more = f"; {len(entry['variants'])} variant(s) in results.json" if entry.get("variants") else ""
    return (f"hardware cost ({entry['tech']}): {_eng(entry['energy_per_inference_j'], 'J')} per inference, "
            f"latency {_eng(entry['latency_s'], 's')}, area {entry['area_mm2']:.4g} mm²{more}")


def _eng(v: float, unit: str) -> str:
    if v == 0:
        return f"0 {unit}"
    for f, p in ((1e-15, "f"), (1e-12, "p"), (1e-9, "n"), (1e-6, "µ"), (1e-3, "m"), (1.0, "")):
        if abs(v) < f * 1000:
            return f"{v / f:.3g} {p}{unit}"
    return f"{v:.3g} {unit}"


def inference_table(cost: dict) -> list[list[str]]:
    """Rows of the per-layer table (header first, totals last) for printing."""
    head = ["layer", "rows×cols", "tiles", "ADCs", "vectors", "array", "ADC", "DAC+drv", "sense", "digital",
            "energy", "latency", "area mm²"]
    out = [head]
    for L in cost["layers"] + [None]:
        src = L if L is not None else cost["total"]
        e = src["energy_j"]
        out.append([
            "total" if L is None else L["name"],
            "" if L is None else f"{L['rows']}×{L['cols']}",
            str(src["tiles"]), str(src["adcs"]),
            "" if L is None else f"{L['vectors_per_inference']:g}",
            _eng(e["array"], "J"), _eng(e["adc"], "J"), _eng(e["dac"] + e["driver"], "J"), _eng(e["sense"], "J"),
            _eng(e["digital"], "J"), _eng(e["total"], "J"), _eng(src["latency_s"], "s"),
            f"{src['area_um2']['total'] * 1e-6:.4g}",
        ])
    return out
