"""``memristive run nonlinear-iv``: MLP accuracy and output error vs cell I–V nonlinearity and read voltage.

A 784×100×10 Abs MLP is trained in software and mapped onto differential crossbars of the crossbar
config's device, read through the cell I–V ``I = G·sinh(b·V)/b`` (memristor kind ``sinh``,
:mod:`memristive.devices.iv`, with the device's ``r_on``/``r_off``; ``b = 0`` is the ohmic device) with
the input value 1 at ``v_read`` volts, while the periphery still assumes an ohmic array (output
``I/(v_read·k)``): the error is what a nonlinear device costs an array calibrated for a linear one.
The crossbar's read path applies the I–V (``Crossbar._signal``).

Part 1 (no wire resistance, every test input): accuracy and first-layer relative output error
``‖y − y_ohmic‖/‖y_ohmic‖`` for every ``(b, v_read)``.

Part 2 (line resistance, Newton solve): the first layer cut into ``wire_tile × wire_tile`` tiles with
``wire_ohm`` per segment, on the first ``wire_samples`` test inputs: relative error of the layer's
outputs against the ideal ohmic read, with the ohmic cell (IR drop alone) and with each ``b``; plus the
Newton iteration count of one tile and the time of the read. Part 2 is our own measurement; no paper
gives these numbers.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ..circuit.irdrop import LineResistance
from ..circuit.nonlinear import nonlinear_currents
from ..config import check
from ..crossbar import CrossbarConfig, Tiling
from ..devices import LinearDevice
from ..devices.iv import SinhDevice, SinhIV
from ..methods.software import accuracy
from ..nn import CrossbarLinear, convert
from .common import CostConfig, SoftwareMLPConfig, load_data, record_cost, software_mlp, summary
from .runner import RunFolder, experiment


def memristor_with_iv(base: LinearDevice, b: float):
    """``base`` read through ``I = G·sinh(bV)/b`` (``b = 0``: ``base`` itself)."""
    if b == 0:
        return base
    return SinhDevice(r_on=base.r_on, r_off=base.r_off, levels=base.levels, b=b, name=f"{base.name}, sinh b={b:g}/V")


def _first(hw) -> CrossbarLinear:
    return next(m for m in hw.modules() if isinstance(m, CrossbarLinear))


@dataclass
class NonlinearIVConfig(SoftwareMLPConfig, CostConfig):
    """Accuracy and output error of the software-trained MLP vs sinh nonlinearity ``b`` and read voltage."""

    nonlinearities: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0, 2.0, 4.0, 8.0])
    read_voltages: list[float] = field(default_factory=lambda: [0.1, 0.2, 0.4])
    wire_ohm: float = 1.0
    wire_tile: int = 32
    wire_samples: int = 50
    wire_nonlinearities: list[float] = field(default_factory=lambda: [0.0, 2.0, 4.0])
    wire_v_read: float = 0.2
    seed: int = 0
    crossbar: CrossbarConfig = field(default_factory=CrossbarConfig)

    def __post_init__(self) -> None:
        check(self.epochs >= 0, "epochs", self.epochs, "must be >= 0")
        for b in [*self.nonlinearities, *self.wire_nonlinearities]:
            check(b >= 0, "nonlinearities", b, "each b must be >= 0 (1/V; 0 = ohmic)")
        for v in [*self.read_voltages, self.wire_v_read]:
            check(v > 0, "read_voltages", v, "each read voltage must be > 0 V")
        check(self.wire_ohm >= 0, "wire_ohm", self.wire_ohm, "must be >= 0 ohms (0 skips part 2)")
        check(self.wire_tile >= 2, "wire_tile", self.wire_tile, "must be >= 2")
        check(self.wire_samples >= 0, "wire_samples", self.wire_samples, "must be >= 0 (0 skips part 2)")
        check(self.crossbar.line_resistance is None, "crossbar.line_resistance", self.crossbar.line_resistance,
              "part 2 sets the wires itself; leave it unset")
        check(type(self.crossbar.memristor) is LinearDevice, "crossbar.memristor", self.crossbar.memristor,
              "must be a linear device (kind: linear); this experiment gives it the sinh read I-V")


def _layer1_error(y, ref):
    return float(torch.linalg.vector_norm(y - ref) / torch.linalg.vector_norm(ref))


@experiment(
    "nonlinear-iv",
    "784x100x10 Abs MLP on MNIST: accuracy and output error vs sinh I-V nonlinearity and read voltage, "
    "and with line resistance (Newton solve)",
    NonlinearIVConfig,
    quick=dict(n_train=2000, n_test=300, epochs=1, nonlinearities=[0.0, 2.0, 8.0], read_voltages=[0.2, 0.4],
               wire_samples=2, wire_tile=16, wire_nonlinearities=[0.0, 4.0]),
)
def run_nonlinear_iv(cfg: NonlinearIVConfig, run: RunFolder) -> dict:
    data = load_data(cfg.dataset, cfg.n_train, cfg.n_test)
    model = software_mlp(run, data, cfg.sizes, cfg.epochs, cfg.lr, cfg.batch_size, cfg.seed, cfg.activation)
    software = float(accuracy(model, data.x_test, data.y_test)[0]) * 100
    base = cfg.crossbar.memristor
    seed = cfg.seed * 1009 + 5

    def hardware(b: float, v_read: float, **changes):
        xcfg = dataclasses.replace(cfg.crossbar, memristor=memristor_with_iv(base, b), v_read=v_read, **changes)
        return convert(model, xcfg, trials=1, seed=seed)

    rows = []
    points = [(b, v) for b in cfg.nonlinearities for v in cfg.read_voltages]
    for b, v in tqdm(points, desc="nonlinear-iv (b, v_read), no wires"):
        def point():
            hw = hardware(b, v)
            acc = accuracy(hw, data.x_test, data.y_test)
            with torch.no_grad():
                y = _first(hw).crossbar.matmul(data.x_test)
                ref = _first(hardware(0.0, v)).crossbar.matmul(data.x_test)
            return {"b_per_V": b, "v_read": v, "bV": round(b * v, 4), **summary(acc),
                    "layer1_rel_error": _layer1_error(y, ref)}

        rows.append(run.checkpoint(f"b{b:g}_v{v:g}", point))
    run.write_csv("results.csv", rows)
    wires = []
    if cfg.wire_ohm > 0 and cfg.wire_samples > 0:
        x = data.x_test[: cfg.wire_samples]
        tile = Tiling(cfg.wire_tile, cfg.wire_tile)
        with torch.no_grad():
            ideal = _first(hardware(0.0, cfg.wire_v_read, tile=tile)).crossbar.matmul(x)
        for b in tqdm(cfg.wire_nonlinearities, desc="nonlinear-iv with line resistance (Newton)"):
            def wpoint():
                lr = LineResistance(r_row=cfg.wire_ohm, r_col=cfg.wire_ohm)
                xb = _first(hardware(b, cfg.wire_v_read, tile=tile, line_resistance=lr)).crossbar
                t0 = time.perf_counter()
                with torch.no_grad():
                    y = xb.matmul(x)
                dt = time.perf_counter() - t0
                # Newton iterations of one representative tile: the row tile with the largest inputs
                from ..circuit.layout import physical_tiles

                phys = physical_tiles(xb.g_pos.double(), xb.g_neg.double(), "differential", tile)[0][0][2][0]
                R = phys.shape[-2]
                xv = x.double() * cfg.wire_v_read
                xp = torch.nn.functional.pad(xv, (0, phys.shape[0] * R - xv.shape[-1])).reshape(xv.shape[0], -1, R)
                rt = int(xp.abs().sum((0, 2)).argmax())
                _, iters = nonlinear_currents(phys[rt, 0], xp[:, rt], SinhIV(b) if b else None, cfg.wire_ohm,
                                              cfg.wire_ohm, return_iterations=True)
                return {"b_per_V": b, "v_read": cfg.wire_v_read, "wire_ohm": cfg.wire_ohm, "tile": cfg.wire_tile,
                        "samples": cfg.wire_samples, "layer1_rel_error_vs_ideal_ohmic": _layer1_error(y, ideal),
                        "newton_iterations": iters, "read_s": round(dt, 2)}

            wires.append(run.checkpoint(f"wires_b{b:g}", wpoint))
        run.write_csv("wires.csv", wires)
    _plot(run, rows, software, cfg)
    for v in cfg.read_voltages:  # read energy V²·G·t of the ohmic cell; the sinh I-V is not in the cost model
        record_cost(run, lambda: hardware(0.0, v), data.x_test, f"the MLP on ohmic cells read at {v:g} V", label=f"v_read {v:g} V")
    return {"software_accuracy": round(software, 3), "data_source": data.source, "points": rows, "wires": wires}


def _plot(run: RunFolder, rows: list[dict], software: float, cfg: NonlinearIVConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for k, v in enumerate(cfg.read_voltages):
        rs = [r for r in rows if r["v_read"] == v]
        axes[0].plot([r["b_per_V"] for r in rs], [r["mean"] for r in rs], marker="o", color=f"C{k}",
                     label=f"v_read = {v:g} V")
        pos = [r for r in rs if r["b_per_V"] > 0]
        axes[1].loglog([r["b_per_V"] for r in pos], [r["layer1_rel_error"] for r in pos], marker="o", color=f"C{k}",
                       label=f"v_read = {v:g} V")
    axes[0].axhline(software, ls="--", color="gray", label=f"software {software:.2f} %")
    axes[0].set_xlabel("sinh nonlinearity b (1/V); I = G·sinh(bV)/b")
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].set_title("MLP on an ohmic-calibrated array, no wire resistance", fontsize=9)
    axes[0].grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    axes[1].set_xlabel("b (1/V)")
    axes[1].set_ylabel("layer-1 ‖y − y_ohmic‖ / ‖y_ohmic‖")
    axes[1].set_title("first-layer output error", fontsize=9)
    axes[1].grid(alpha=0.3, which="both")
    axes[1].legend(fontsize=7)
    run.save_figure(fig, "nonlinear_iv.png")
