"""``memristive run nonlinear-iv``: MLP accuracy and output error vs cell I–V nonlinearity and read voltage.

A 784×100×10 Abs MLP is trained in software and mapped onto ideal differential crossbars. Every read
uses the cell I–V ``I = G·sinh(b·V)/b`` (:mod:`memristive.devices.iv`; ``b = 0`` is the ohmic cell)
with the input value 1 at ``v_read`` volts, while the periphery still assumes an ohmic array (output
``I/(v_read·k)``): the error is what a nonlinear device costs an array calibrated for a linear one.

Part 1 (no wire resistance, every input): accuracy and first-layer relative output error
``‖y − y_ohmic‖/‖y_ohmic‖`` for every ``(b, v_read)``.

Part 2 (line resistance, Newton solve): the first layer cut into ``wire_tile × wire_tile`` tiles with
``wire_ohm`` per segment, on the first ``wire_samples`` test inputs: relative error of the layer's
outputs against the ideal ohmic read, with the ohmic cell (IR drop alone) and with each ``b``; plus
the Newton iteration count and solve time. Part 2 is our own measurement; no paper gives these numbers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from ..circuit.nonlinear import nonlinear_currents, nonlinear_read
from ..config import check
from ..crossbar import CrossbarConfig, Tiling
from ..devices.iv import LinearIV, SinhIV
from ..methods.software import accuracy
from ..nn import CrossbarLinear, convert
from .common import SoftwareMLPConfig, load_data, software_mlp, summary
from .runner import RunFolder, experiment


def _iv(b: float):
    return LinearIV() if b == 0 else SinhIV(b)


class NonlinearReadLinear(nn.Module):
    """A :class:`CrossbarLinear` read through a nonlinear I–V (ideal DAC/ADC, no read noise)."""

    def __init__(self, layer: CrossbarLinear, iv, v_read: float, r_row: float = 0.0, r_col: float = 0.0) -> None:
        super().__init__()
        self.layer, self.iv, self.v_read, self.r_row, self.r_col = layer, iv, v_read, r_row, r_col

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xb = self.layer.crossbar
        cur = nonlinear_read(xb.g_pos, xb.g_neg, xb.config.mapping.layout, xb.config.tile,
                             x * self.v_read, self.iv, self.r_row, self.r_col)
        y = cur / (self.v_read * xb.k)
        return y + self.layer.bias if self.layer.bias is not None else y


def wrap(hw: nn.Module, iv, v_read: float) -> nn.Module:
    for name, child in hw.named_children():
        if isinstance(child, CrossbarLinear):
            setattr(hw, name, NonlinearReadLinear(child, iv, v_read))
        else:
            wrap(child, iv, v_read)
    return hw


@dataclass
class NonlinearIVConfig(SoftwareMLPConfig):
    """Accuracy and output error of the software-trained MLP vs sinh nonlinearity ``b`` and read voltage."""

    nonlinearities: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0, 2.0, 4.0, 8.0])
    read_voltages: list[float] = field(default_factory=lambda: [0.1, 0.2, 0.4])
    wire_ohm: float = 1.0
    wire_tile: int = 32
    wire_samples: int = 100
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
    hw = convert(model, cfg.crossbar, trials=1, seed=cfg.seed * 1009 + 5)
    first = next(m for m in hw.modules() if isinstance(m, CrossbarLinear))
    rows = []
    points = [(b, v) for b in cfg.nonlinearities for v in cfg.read_voltages]
    for b, v in tqdm(points, desc="nonlinear-iv (b, v_read), no wires"):
        def point():
            import copy

            net = wrap(copy.deepcopy(hw), _iv(b), v)
            acc = accuracy(net, data.x_test, data.y_test)
            with torch.no_grad():
                lay = NonlinearReadLinear(first, _iv(b), v)
                ref = NonlinearReadLinear(first, LinearIV(), v)(data.x_test)
                err = _layer1_error(lay(data.x_test), ref)
            return {"b_per_V": b, "v_read": v, "bV": round(b * v, 4), **summary(acc), "layer1_rel_error": err}

        rows.append(run.checkpoint(f"b{b:g}_v{v:g}", point))
    run.write_csv("results.csv", rows)
    wires = []
    if cfg.wire_ohm > 0 and cfg.wire_samples > 0:
        xb = first.crossbar
        tile = Tiling(cfg.wire_tile, cfg.wire_tile)
        x = data.x_test[: cfg.wire_samples].to(torch.float64) * cfg.wire_v_read
        gp, gn = xb.g_pos.double(), xb.g_neg.double()
        ideal = nonlinear_read(gp, gn, "differential", tile, x, None)
        for b in tqdm(cfg.wire_nonlinearities, desc="nonlinear-iv with line resistance (Newton)"):
            def wpoint():
                t0 = time.perf_counter()
                cur = nonlinear_read(gp, gn, "differential", tile, x, _iv(b), cfg.wire_ohm, cfg.wire_ohm)
                dt = time.perf_counter() - t0
                # Newton iterations of one representative tile: the row tile with the largest inputs
                from ..circuit.layout import physical_tiles

                phys = physical_tiles(gp, gn, "differential", tile)[0][0][2][0]  # (n_rt, n_ct, R, C)
                R = phys.shape[-2]
                xp = torch.nn.functional.pad(x, (0, phys.shape[0] * R - x.shape[-1])).reshape(x.shape[0], -1, R)
                rt = int(xp.abs().sum((0, 2)).argmax())
                _, iters = nonlinear_currents(phys[rt, 0], xp[:, rt], _iv(b), cfg.wire_ohm, cfg.wire_ohm,
                                              return_iterations=True)
                return {"b_per_V": b, "v_read": cfg.wire_v_read, "wire_ohm": cfg.wire_ohm, "tile": cfg.wire_tile,
                        "samples": cfg.wire_samples, "layer1_rel_error_vs_ideal_ohmic": _layer1_error(cur, ideal),
                        "newton_iterations": iters, "solve_s": round(dt, 2)}

            wires.append(run.checkpoint(f"wires_b{b:g}", wpoint))
        run.write_csv("wires.csv", wires)
    _plot(run, rows, software, cfg)
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
