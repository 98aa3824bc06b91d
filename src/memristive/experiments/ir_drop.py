"""``memristive run ir-drop``: MLP accuracy against wire (line) resistance and tile size.

A 784×100×10 Abs MLP is trained in software, mapped onto differential crossbars cut into square
``S×S`` tiles (``S`` physical rows and columns, ``S/2`` weights per tile row; ``0`` = no tiling,
the calibration paper's single 784×200 and 100×20 arrays) and read with every wire segment of
rows and columns at ``r`` ohms. Each read solves the tile's resistive network exactly
(:mod:`memristive.circuit.irdrop`). Besides accuracy, every point records the relative error of
the first layer's outputs against the ideal crossbar, ``‖y_r − y_0‖ / ‖y_0‖`` on the test set,
and the cost: time to solve the networks (once per programming) and of a read (ideal vs IR drop).

The calibration paper gives no line-resistance numbers (it verified its array in LTspice); this
experiment is our own measurement, not a reproduction.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Literal

import torch
from tqdm.auto import tqdm

from ..circuit.irdrop import LineResistance
from ..config import check
from ..crossbar import CrossbarConfig, Tiling
from ..methods.software import accuracy
from ..nn import CrossbarLinear, convert
from ..data import load_dataset
from .common import (CostConfig, SoftwareMLPConfig, check_int, check_values, record_mlp_cost, software_mlp,
                     summary, value_key)
from .folder import RunFolder
from .registry import experiment


@dataclass
class IRDropConfig(SoftwareMLPConfig, CostConfig):
    """Accuracy of the software-trained MLP on crossbars with line resistance."""

    wire_resistances: list[float] = field(default_factory=lambda: [0.0, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0])
    tile_sizes: list[int] = field(default_factory=lambda: [0, 256, 128, 64, 32])
    partial_tiles: Literal["pad", "trim"] = "pad"
    solver: Literal["block", "sparse"] = "block"
    trials: int = 1
    seed: int = 0
    timing_batch: int = 1000
    crossbar: CrossbarConfig = field(default_factory=CrossbarConfig)

    def __post_init__(self) -> None:
        super().__post_init__()  # model, data, trials, seed
        check_values(self.wire_resistances, "wire_resistances", 0, None, " (ohms per segment)")
        check(isinstance(self.tile_sizes, list) and len(self.tile_sizes) >= 1
              and len(set(self.tile_sizes)) == len(self.tile_sizes), "tile_sizes", self.tile_sizes,
              "needs at least one tile size, each once")
        for i, s in enumerate(self.tile_sizes):
            check(isinstance(s, int) and not isinstance(s, bool) and (s == 0 or s >= 2), f"tile_sizes[{i}]", s,
                  "each tile size must be an integer >= 2 (or 0 for no tiling)")
        check_int(self.timing_batch, "timing_batch", 1)
        check(self.crossbar.line_resistance is None, "crossbar.line_resistance", self.crossbar.line_resistance,
              "is set by this experiment from wire_resistances; leave it unset")


def _xcfg(cfg: IRDropConfig, size: int, r: float) -> CrossbarConfig:
    lr = LineResistance(r_row=r, r_col=r, partial_tiles=cfg.partial_tiles, solver=cfg.solver) if r > 0 else None
    return dataclasses.replace(cfg.crossbar, tile=Tiling(size, size) if size else None, line_resistance=lr)


def _layers(hw) -> list[CrossbarLinear]:
    return [m for m in hw.modules() if isinstance(m, CrossbarLinear)]


def _timed(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def evaluate(model, data, cfg: IRDropConfig, size: int, r: float, reference: torch.Tensor | None) -> dict:
    """Accuracy, first-layer output error and costs for one (tile size, wire resistance) point."""
    hw = convert(model, _xcfg(cfg, size, r), trials=cfg.trials, seed=cfg.seed * 1009 + 17)
    first = _layers(hw)[0].crossbar
    t0 = time.perf_counter()
    with torch.no_grad():
        for layer in _layers(hw):  # solve (and cache) every layer's networks: the one-off cost
            layer.crossbar.read_matrix()
    solve_s = time.perf_counter() - t0
    acc = accuracy(hw, data.x_test, data.y_test)
    with torch.no_grad():
        y = first.matmul(data.x_test)  # (T, N, hidden)
        xb = data.x_test[: cfg.timing_batch]
        read_s = _timed(lambda: first.matmul(xb))
    err = None
    if reference is not None:
        err = float((torch.linalg.vector_norm(y - reference, dim=(1, 2)) / torch.linalg.vector_norm(reference, dim=(1, 2))).mean())
    return {"tile_size": size, "wire_ohm": r, **summary(acc), "layer1_rel_error": err, "solve_s": round(solve_s, 4),
            "read_ms": round(read_s * 1e3, 3), "tiles_layer1": first.counts()["tiles"]}


@experiment(
    "ir-drop",
    "784x100x10 Abs MLP on MNIST: accuracy vs wire resistance (0-5 ohm/segment) and tile size, exact IR-drop solve",
    IRDropConfig,
    quick=dict(n_train=2000, n_test=300, epochs=1, wire_resistances=[0, 2], tile_sizes=[32]),
)
def run_ir_drop(cfg: IRDropConfig, run: RunFolder) -> dict:
    data = load_dataset(cfg.dataset, n_train=cfg.n_train, n_test=cfg.n_test)
    model = software_mlp(run, data, cfg.sizes, cfg.epochs, cfg.lr, cfg.batch_size, cfg.seed, cfg.activation)
    software = float(accuracy(model, data.x_test, data.y_test)[0]) * 100
    rs = sorted(set(cfg.wire_resistances))
    rows = []
    points = [(s, r) for s in cfg.tile_sizes for r in rs]
    bar = tqdm(points, desc=f"ir-drop (tile size, wire ohm), {cfg.trials} trial(s) each")
    refs: dict[int, torch.Tensor] = {}
    for size, r in bar:
        bar.set_postfix(tile=size or "none", ohm=r)
        if size not in refs:  # the ideal crossbar's first-layer outputs for this tiling
            hw0 = convert(model, _xcfg(cfg, size, 0.0), trials=cfg.trials, seed=cfg.seed * 1009 + 17)
            with torch.no_grad():
                refs[size] = _layers(hw0)[0].crossbar.matmul(data.x_test)
        res = run.checkpoint(f"tile{size}_r{value_key(r)}", lambda: evaluate(model, data, cfg, size, r, refs[size]))
        rows.append(res)
    run.write_csv("results.csv", rows)
    ideal_read = {row["tile_size"]: row["read_ms"] for row in rows if row["wire_ohm"] == 0}
    costs = [{"tile_size": row["tile_size"], "wire_ohm": row["wire_ohm"], "tiles_layer1": row["tiles_layer1"],
              "solve_s": row["solve_s"], "read_ms": row["read_ms"], "ideal_read_ms": ideal_read.get(row["tile_size"])}
             for row in rows if row["wire_ohm"] > 0]
    run.write_csv("costs.csv", costs)
    _plot(run, rows, software, cfg)
    for size in cfg.tile_sizes:  # wire (IR-drop) losses are not in the first-order cost model
        record_mlp_cost(run, model, data, _xcfg(cfg, size, 0.0), label=f"tile {size or 'none'}",
                        what=f"the MLP on ideal-wire crossbars, tile {f'{size}x{size}' if size else 'none'}",
                        seed=cfg.seed * 1009 + 17)
    return {"software_accuracy": round(software, 3), "data_source": data.source, "points": rows}


def _plot(run: RunFolder, rows: list[dict], software: float, cfg: IRDropConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, size in enumerate(cfg.tile_sizes):
        rs = [r for r in rows if r["tile_size"] == size]
        x = [r["wire_ohm"] for r in rs]
        lab = f"{size}×{size} tiles" if size else "no tiling (784×200, 100×20)"
        axes[0].errorbar(x, [r["mean"] for r in rs], yerr=[r["std"] for r in rs], marker="o", capsize=3, label=lab,
                         color=f"C{i}")
        xe = [r["wire_ohm"] for r in rs if r["wire_ohm"] > 0 and r["layer1_rel_error"] is not None]
        ye = [r["layer1_rel_error"] for r in rs if r["wire_ohm"] > 0 and r["layer1_rel_error"] is not None]
        if xe:
            axes[1].loglog(xe, ye, marker="o", label=lab, color=f"C{i}")
    axes[0].axhline(software, ls="--", color="gray", label=f"software {software:.2f} %")
    axes[0].set_xscale("symlog", linthresh=0.05)
    axes[0].set_xlim(left=0)
    axes[0].set_xlabel("wire resistance per segment (Ω, rows and columns)")
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].set_ylim(0, 100)
    axes[0].set_title(f"{'×'.join(map(str, cfg.sizes))} {cfg.activation} MLP on {cfg.dataset}: IR drop", fontsize=10)
    axes[0].legend(fontsize=7, loc="lower left")
    axes[0].grid(alpha=0.3)
    axes[1].set_xlabel("wire resistance per segment (Ω)")
    axes[1].set_ylabel("layer-1 output error ‖y − y_ideal‖ / ‖y_ideal‖")
    axes[1].set_title("first-layer output error vs the ideal crossbar", fontsize=10)
    axes[1].grid(alpha=0.3, which="both")
    if axes[1].lines:
        axes[1].legend(fontsize=7)
    run.save_figure(fig, "accuracy_vs_wire_resistance.png")
