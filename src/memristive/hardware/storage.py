"""Hardware cost of a model on crossbars: weight storage, compression, memristor cells and tiles.

For ``N_w`` stored weights (parameters) at ``b`` bits::

    storage(b)      = N_w · b / 8 bytes            (reported in MB = 10⁶ bytes)
    compression(b)  = 1 − b / 32                   (saving against FP32; ratio 32 / b)

Cells and tiles of one ``rows × cols`` weight matrix (see :meth:`memristive.crossbar.Mapping.tile_counts`):

* differential 1T1R pairs: ``rows · 2·cols`` cells; a tile of ``R × C`` devices holds ``R`` rows and
  ``C // 2`` weight columns, so ``⌈rows/R⌉ · ⌈cols/(C//2)⌉`` tiles;
* reference scheme: ``rows · (cols + n_col_tiles)`` cells (one reference column per column tile).

A model's cost is the sum over its arrays. For a converted model the arrays are its
:class:`~memristive.crossbar.Crossbar` modules (including structural zeros, e.g. the fused GRU
layout's zero blocks, which occupy cells but hold no parameter); for a software model the arrays
are those a conversion would build (``nn.GRU`` per ``layout``, ``nn.Linear`` as ``[Wᵀ; b]``).
``parameters`` counts only entries that hold a trained value; storage is computed from it.
"""

from __future__ import annotations

import math
from typing import Iterable

from torch import nn

from ..crossbar import Crossbar, Tiling, mapping_from_spec

__all__ = ["storage_bytes", "compression", "model_arrays", "hardware_cost", "cost_table"]

MB = 1e6


def storage_bytes(n_weights: int, bits: int) -> float:
    """Bytes to store ``n_weights`` weights at ``bits`` bits each."""
    if bits < 1:
        raise ValueError(f"bits={bits}: must be >= 1")
    return n_weights * bits / 8


def compression(bits: int, reference_bits: int = 32) -> float:
    """Fractional storage saving of ``bits`` against ``reference_bits`` (0.8125 for 6 vs 32)."""
    return 1 - bits / reference_bits


def model_arrays(model: nn.Module, layout: str = "fused") -> list[dict]:
    """The crossbar arrays of ``model``: ``[{name, rows, cols, params, scheme, tile}]``."""
    from ..nn.gru import CrossbarMatrix, gru_matrices, structural_params

    arrays: list[dict] = []
    seen: set[int] = set()
    for name, mod in model.named_modules():
        if isinstance(mod, CrossbarMatrix):
            xb = mod.crossbar
            arrays.append(dict(name=name, rows=xb.in_features, cols=xb.out_features, params=mod.n_params,
                               scheme=xb.config.mapping.kind, tile=xb.config.tile))
            seen.add(id(xb))
        elif isinstance(mod, Crossbar) and id(mod) not in seen:
            arrays.append(dict(name=name, rows=mod.in_features, cols=mod.out_features,
                               params=mod.in_features * mod.out_features, scheme=mod.config.mapping.kind,
                               tile=mod.config.tile))
            seen.add(id(mod))
    if arrays:
        return arrays
    for name, mod in model.named_modules():  # a software model: the arrays a conversion would build
        if isinstance(mod, nn.GRU):
            lay = getattr(mod, "layout", layout)
            for layer in range(mod.num_layers):
                n_in = mod.input_size if layer == 0 else mod.hidden_size
                for key, m in gru_matrices(mod, layer, lay).items():
                    arrays.append(dict(name=f"{name}.l{layer}.{key}", rows=m.shape[0], cols=m.shape[1],
                                       params=structural_params(lay, key, n_in, mod.hidden_size, mod.bias),
                                       scheme="differential", tile=None))
        elif isinstance(mod, nn.Linear):
            rows = mod.in_features + (1 if mod.bias is not None else 0)
            arrays.append(dict(name=name, rows=rows, cols=mod.out_features, params=rows * mod.out_features,
                               scheme="differential", tile=None))
    if not arrays:
        raise ValueError(f"{type(model).__name__} has no crossbar arrays, nn.GRU or nn.Linear layers to cost")
    return arrays


def hardware_cost(model: nn.Module, bits: Iterable[int] = (32, 16, 8, 6, 4), tile: Tiling | None = None,
                  scheme: str | None = None, layout: str = "fused") -> dict:
    """Storage at each bit width, compression, cells and tiles of ``model``.

    ``tile`` (array size) and ``scheme`` override the arrays' own; without any tile size every
    matrix counts as one array. Returns plain data (JSON-able).
    """
    arrays = model_arrays(model, layout)
    per_array = []
    for a in arrays:
        sch = scheme or a["scheme"]
        t = tile if tile is not None else a["tile"]
        c = mapping_from_spec(sch).tile_counts(a["rows"], a["cols"], t)
        per_array.append({**{k: a[k] for k in ("name", "rows", "cols", "params")}, "scheme": sch,
                          "cells": c["cells"], "tiles": c["tiles"]})
    params = sum(a["params"] for a in per_array)
    entries = sum(a["rows"] * a["cols"] for a in per_array)
    cells = sum(a["cells"] for a in per_array)
    tiles = sum(a["tiles"] for a in per_array)
    t = tile if tile is not None else next((a["tile"] for a in arrays if a["tile"] is not None), None)
    storage = [{"bits": b, "bytes": storage_bytes(params, b), "MB": storage_bytes(params, b) / MB,
                "compression": compression(b), "ratio": 32 / b} for b in bits]
    return {
        "parameters": params,
        "array_weights": entries,
        "structural_zeros": entries - params,
        "cells": cells,
        "cells_per_parameter": cells / params if params else math.nan,
        "tiles": tiles,
        "tile": None if t is None else [t.rows, t.cols],
        "storage": storage,
        "arrays": per_array,
    }


def cost_table(cost: dict) -> str:
    """A Markdown table of a :func:`hardware_cost` result's storage rows."""
    lines = ["| bits | storage (MB) | compression vs FP32 |", "|---|---|---|"]
    for s in cost["storage"]:
        lines.append(f"| {s['bits']} | {s['MB']:.3f} | {100 * s['compression']:.2f} % |")
    return "\n".join(lines)
