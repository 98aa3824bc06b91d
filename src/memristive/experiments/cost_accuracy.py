"""Cost experiments (:mod:`memristive.hardware`).

* ``cost-accuracy`` — test accuracy vs energy per inference of the MNIST MLP across ADC bits and
  tile sizes (one software-trained model, converted at every point);
* ``cost-neurosim-vgg8`` — the cost model on DNN+NeuroSim V1.3's published example configuration
  (8-bit VGG-8 on CIFAR-10, 128×128 1T1R sub-arrays, 2-bit RRAM cells, 5-bit ADCs shared by 8
  columns, 22 nm), beside the numbers printed in the NeuroSim V1.3 manual (Fig. 24).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..config import check, from_dict
from ..crossbar import Converter, CrossbarConfig, Tiling, mapping_from_spec
from ..devices import LinearDevice
from ..hardware import Architecture, Technology, inference_cost, programming_cost, technology
from ..methods.software import accuracy
from ..nn import convert
from ..data import load_dataset
from .common import SoftwareMLPConfig, record_cost, software_mlp, summary
from .runner import RunFolder, experiment


# ------------------------------------------------------------------------------------ cost vs accuracy
@dataclass
class CostAccuracyConfig(SoftwareMLPConfig):
    """784×100×10 Abs MLP on MNIST, converted at every (ADC bits, tile size); accuracy and energy."""

    adc_bits: list[int] = field(default_factory=lambda: [3, 4, 5, 6, 8])
    tiles: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    dac_bits: int = 8
    trials: int = 1  # the default crossbar has no random effects (ideal devices, auto-ranged converters)
    seed: int = 0
    cost_inputs: int = 500  # test images the cost is averaged over
    tech: Technology | str = field(default_factory=lambda: technology("neurosim-22nm"))  # preset name or fields
    arch: Architecture = field(default_factory=Architecture)
    crossbar: CrossbarConfig = field(default_factory=CrossbarConfig)

    def __post_init__(self) -> None:
        super().__post_init__()  # model, data, trials, seed (experiments.common)
        check(self.trials >= 1, "trials", self.trials, "must be >= 1")
        check(self.cost_inputs >= 1, "cost_inputs", self.cost_inputs, "must be >= 1")
        for b in self.adc_bits:
            check(isinstance(b, int) and 2 <= b <= 16, "adc_bits", b, "each must be an integer in [2, 16]")
        for t in self.tiles:
            check(isinstance(t, int) and t >= 2, "tiles", t, "each tile size must be an integer >= 2")
        check(2 <= self.dac_bits <= 16, "dac_bits", self.dac_bits, "must be an integer in [2, 16]")
        self.tech = technology(self.tech)


@experiment(
    "cost-accuracy",
    "MNIST MLP: test accuracy vs energy per inference across ADC bits and tile sizes (first-order cost model)",
    CostAccuracyConfig,
    quick=dict(n_train=5000, n_test=1000, epochs=2, adc_bits=[3, 4, 6, 8], tiles=[64, 256], cost_inputs=200),
)
def run_cost_accuracy(cfg: CostAccuracyConfig, run: RunFolder) -> dict:
    data = load_dataset(cfg.dataset, n_train=cfg.n_train, n_test=cfg.n_test)
    model = software_mlp(run, data, cfg.sizes, cfg.epochs, cfg.lr, cfg.batch_size, cfg.seed, cfg.activation)
    software = float(accuracy(model, data.x_test, data.y_test)[0]) * 100
    tech = cfg.tech
    x_cost = data.x_test[: cfg.cost_inputs]
    grid = [(b, t) for t in cfg.tiles for b in cfg.adc_bits]
    rows = []
    for b, t in tqdm(grid, desc=f"ADC bits × tile ({cfg.trials} trials each)"):
        def point(b=b, t=t):
            xcfg = dataclasses.replace(cfg.crossbar, adc=Converter(bits=b), dac=Converter(bits=cfg.dac_bits),
                                       tile=Tiling(t, t))
            hw = convert(model, xcfg, trials=cfg.trials, seed=cfg.seed)
            acc = summary(accuracy(hw, data.x_test, data.y_test))
            cost = inference_cost(hw, x_cost, tech, cfg.arch)["total"]
            return {"accuracy": acc, "energy_j": cost["energy_j"], "latency_s": cost["latency_s"],
                    "area_mm2": cost["area_mm2"], "tiles": cost["tiles"], "adcs": cost["adcs"]}

        res = run.checkpoint(f"adc{b}_tile{t}", point)
        e = res["energy_j"]
        rows.append({"adc_bits": b, "tile": t, "accuracy_mean": res["accuracy"]["mean"],
                     "accuracy_std": res["accuracy"]["std"], "energy_nj": round(e["total"] * 1e9, 4),
                     "array_nj": round(e["array"] * 1e9, 4), "adc_nj": round(e["adc"] * 1e9, 4),
                     "dac_driver_nj": round((e["dac"] + e["driver"]) * 1e9, 4), "sense_nj": round(e["sense"] * 1e9, 6),
                     "digital_nj": round(e["digital"] * 1e9, 4), "latency_ns": round(res["latency_s"] * 1e9, 3),
                     "area_mm2": round(res["area_mm2"], 5), "tiles": res["tiles"], "adcs": res["adcs"]})
    run.write_csv("results.csv", rows)
    _plot_cost_accuracy(run, rows, software, cfg)
    b0, t0 = grid[0]
    record_cost(run, lambda: convert(model, dataclasses.replace(cfg.crossbar, adc=Converter(bits=b0), dac=Converter(bits=cfg.dac_bits),
                                                                tile=Tiling(t0, t0)), trials=cfg.trials, seed=cfg.seed),
                x_cost, f"the MLP at the first grid point ({b0}-bit ADCs, tile {t0}x{t0}); every point's cost is in "
                        "metrics.points")
    return {"software_accuracy": round(software, 3), "tech": tech.name, "arch": dataclasses.asdict(cfg.arch),
            "data_source": data.source, "points": rows}


def _plot_cost_accuracy(run: RunFolder, rows: list[dict], software: float, cfg: CostAccuracyConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, t in enumerate(cfg.tiles):
        pts = [r for r in rows if r["tile"] == t]
        x = [r["energy_nj"] for r in pts]
        ax.errorbar(x, [r["accuracy_mean"] for r in pts], yerr=[r["accuracy_std"] for r in pts], marker="o",
                    capsize=2, color=f"C{i}", label=f"tile {t}×{t}")
        for r in pts:
            ax.annotate(f"{r['adc_bits']}b", (r["energy_nj"], r["accuracy_mean"]), fontsize=6,
                        xytext=(3, -8), textcoords="offset points")
    ax.axhline(software, ls="--", color="gray", label=f"software {software:.2f} %")
    ax.set_xscale("log")
    ax.set_xlabel("energy per inference (nJ, first-order model)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{'×'.join(map(str, cfg.sizes))} MLP on {cfg.dataset}: ADC bits (labels) × tile size", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    run.save_figure(fig, "accuracy_vs_energy.png")


# ------------------------------------------------------------------------------------ VGG-8 reference
class PatchConv(nn.Module):
    """A 3×3 (``k``) convolution as ``unfold`` + ``nn.Linear`` over patches, so :func:`convert`
    maps it onto one crossbar (rows = C·k·k, one input vector per output position). Converted (one
    trial only), it takes ``(B, C, H, W)`` or ``(1, B, C, H, W)`` and returns ``(1, B, C', H, W)``,
    the trial-leading layout the converted network's other layers (``TrialFold``) expect."""

    def __init__(self, c_in: int, c_out: int, k: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.k, self.padding, self.c_out = k, padding, c_out
        self.linear = nn.Linear(c_in * k * k, c_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, (c, h, w) = x.shape[-4], x.shape[-3:]
        p = F.unfold(x.reshape(-1, c, h, w), self.k, padding=self.padding)  # (B, C·k·k, H·W)
        y = self.linear(p.transpose(1, 2).reshape(b * h * w, -1))  # (B·H·W, C'), or (1, B·H·W, C') converted
        return y.reshape(*y.shape[:-2], b, h, w, self.c_out).movedim(-1, -3)


class _Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)


def vgg8(num_classes: int = 10) -> nn.Sequential:
    """DNN+NeuroSim's VGG-8 for CIFAR-10 (manual Table II): 2×conv128, 2×conv256, 2×conv512 (3×3,
    max-pool after every second), FC 8192→1024, FC 1024→10. No biases."""
    layers: list[nn.Module] = []
    c_in = 3
    for i, c in enumerate([128, 128, 256, 256, 512, 512]):
        layers += [PatchConv(c_in, c), nn.ReLU()]
        if i % 2 == 1:
            layers.append(nn.MaxPool2d(2))
        c_in = c
    layers += [_Flatten(), nn.Linear(8192, 1024, bias=False), nn.ReLU(), nn.Linear(1024, num_classes, bias=False)]
    return nn.Sequential(*layers)


# DNN+NeuroSim V1.3 manual, Fig. 24 ("example of final output of an 8-bit VGG-8 inference for one
# CIFAR-10 image, based on parallel 1T1R synaptic array, with 2-bit per cell RRAM (100 kΩ and 10 MΩ
# as Ron and Roff)"; 128×128 sub-arrays; Param.cpp of the release: 22 nm, levelOutput = 32 (5-bit
# ADC), numColMuxed = 8, readVoltage = 0.5 V, readPulseWidth = 10 ns).
NEUROSIM_VGG8 = {
    "chip_area_mm2": 45.554, "cim_array_area_mm2": 1.5408, "adc_area_mm2": 14.6062,
    "accumulation_area_mm2": 3.13322, "other_periphery_area_mm2": 20.0943, "interconnect_area_mm2": 6.17954,
    "latency_s": 1.45613e-3, "adc_latency_s": 63462.3e-9,
    "dynamic_energy_j": 3.77518e-5, "adc_energy_j": 1.8274e-5, "accumulation_energy_j": 5.16853e-6,
    "other_periphery_energy_j": 1.43092e-5, "leakage_energy_j": 1.19011e-6,
    "buffer_latency_s": 1.00082e-3, "interconnect_latency_s": 141884e-9,
    "buffer_energy_j": 412969e-12, "interconnect_energy_j": 8.94262e-6,
    "tops_per_w": 25.7176, "fps": 686.75,
    "source": "DNN+NeuroSim V1.3 manual (github.com/neurosim/DNN_NeuroSim_V1.3, Documents/DNN NeuroSim V1.3 Manual.pdf), Fig. 24",
}


@dataclass
class NeuroSimVGG8Config:
    """VGG-8 on NeuroSim V1.3's example hardware: the cost model's numbers beside the published ones."""

    images: int = 2  # random CIFAR-10-sized images the array energy is averaged over
    seed: int = 0
    tech: Technology | str = field(default_factory=lambda: technology("neurosim-22nm"))
    arch: Architecture = field(default_factory=lambda: Architecture(
        cols_per_adc=8, input_mode="bit_serial", input_bits=8, adc_bits=5, weight_slices=4))
    crossbar: CrossbarConfig = field(default_factory=lambda: CrossbarConfig(
        memristor=LinearDevice(r_on=100e3, r_off=10e6), mapping=mapping_from_spec("reference"), v_read=0.5,
        tile=Tiling(128, 128)))
    # The simulated array is analog with ideal converters, so later layers see the network's own
    # activations (a 4-level device cannot hold the reference scheme's mid-range reference column,
    # and an auto-ranged 5-bit ADC on an untrained network zeroes most activations); the 2-bit cells,
    # bit-serial 8-bit inputs and 5-bit ADCs enter the cost through ``arch``.

    def __post_init__(self) -> None:
        check(self.images >= 1, "images", self.images, "must be >= 1")
        self.tech = technology(self.tech)


@experiment(
    "cost-neurosim-vgg8",
    "Cost model on DNN+NeuroSim V1.3's published VGG-8/CIFAR-10 example (22 nm, 128x128, 5-bit ADC) beside its numbers",
    NeuroSimVGG8Config,
    quick=dict(images=1),
)
def run_neurosim_vgg8(cfg: NeuroSimVGG8Config, run: RunFolder) -> dict:
    torch.manual_seed(cfg.seed)
    model = vgg8()
    for m in model.modules():  # He initialisation: ReLU activations keep their scale through the depth
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    hw = convert(model, cfg.crossbar, trials=1, seed=cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    x = torch.rand(cfg.images, 3, 32, 32, generator=gen)  # CIFAR-10 is not bundled: uniform pixels in [0, 1)
    cost = inference_cost(hw, x, cfg.tech, cfg.arch)
    prog = programming_cost(hw, cfg.tech)
    tot = cost["total"]
    ns = NEUROSIM_VGG8
    e = tot["energy_j"]
    comparison = [
        _row("energy per image, total dynamic (µJ)", e["total"] * 1e6, ns["dynamic_energy_j"] * 1e6),
        _row("  ADC energy (µJ)", e["adc"] * 1e6, ns["adc_energy_j"] * 1e6),
        _row("  accumulation / digital energy (µJ)", e["digital"] * 1e6, ns["accumulation_energy_j"] * 1e6),
        _row("  array + drivers + DAC + sense (µJ) | NeuroSim 'other peripheries'", (e["array"] + e["driver"] + e["dac"] + e["sense"]) * 1e6,
             ns["other_periphery_energy_j"] * 1e6),
        _row("    same, NeuroSim without buffer and interconnect (µJ)", (e["array"] + e["driver"] + e["dac"] + e["sense"]) * 1e6,
             (ns["other_periphery_energy_j"] - ns["buffer_energy_j"] - ns["interconnect_energy_j"]) * 1e6),
        _row("latency per image (ms)", tot["latency_s"] * 1e3, ns["latency_s"] * 1e3),
        _row("  NeuroSim without buffer and interconnect latency (ms)", tot["latency_s"] * 1e3,
             (ns["latency_s"] - ns["buffer_latency_s"] - ns["interconnect_latency_s"]) * 1e3),
        _row("chip area (mm²)", tot["area_mm2"], ns["chip_area_mm2"]),
        _row("  array area (mm²)", tot["area_um2"]["array"] * 1e-6, ns["cim_array_area_mm2"]),
        _row("  ADC area (mm²)", tot["area_um2"]["adc"] * 1e-6, ns["adc_area_mm2"]),
        _row("  array + ADC area (mm²)", (tot["area_um2"]["array"] + tot["area_um2"]["adc"]) * 1e-6,
             ns["cim_array_area_mm2"] + ns["adc_area_mm2"]),
    ]
    run.write_json("cost.json", cost)
    record_cost(run, hw, x, "He-initialised VGG-8 on NeuroSim's example hardware, uniform random images", computed=cost)
    run.write_csv("comparison.csv", comparison)
    return {"neurosim": ns, "comparison": comparison, "totals": tot, "programming": prog["total"],
            "layers": [{k: L[k] for k in ("name", "rows", "cols", "tiles", "adcs", "vectors_per_inference",
                                          "energy_j", "latency_s")} for L in cost["layers"]],
            "input": "uniform random 32x32x3 images (CIFAR-10 is not bundled), He-initialised weights"}


def _row(what: str, ours: float, theirs: float) -> dict:
    return {"quantity": what, "memristive": round(ours, 4), "neurosim": round(theirs, 4),
            "ratio": round(ours / theirs, 3) if theirs else None}


def build_arch(spec: dict | Architecture | None) -> Architecture:
    return spec if isinstance(spec, Architecture) else from_dict(Architecture, spec or {}, prefix="arch")
