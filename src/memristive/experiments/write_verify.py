"""``memristive run write-verify``: programming error, pulses, time and energy vs write-verify tolerance,
and the accuracy of the MLP programmed that way.

A 784×100×10 Abs MLP is trained in software and its differential conductance targets are programmed
into ``trials`` arrays, every device from a reset array (``G_min``) by write-verify
(:func:`memristive.programming.write_verify`) with adaptive pulse trains, for two pulse models:

* ``linear``: the crossbar's device (default Ti/AlOx/TaOx, 1–12 kΩ) with identical pulses of
  ``step`` of the range and relative cycle-to-cycle noise ``noise`` per pulse;
* ``vteam``: VTEAM devices (MemTorch defaults, 50 Ω–1 kΩ) with the exact pulse response of
  ``memristive.devices.vteam`` (10 ns, 1 % of the state range per pulse) and pulse-to-pulse noise ``p2p``.

Each point records the programming error (relative to the conductance range), the fraction of devices
within tolerance, pulses / verify reads / time / energy per device and the MLP's test accuracy. No
lognormal error is assumed anywhere: the error is what the loop leaves.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import torch
from tqdm.auto import tqdm

from ..config import check
from ..crossbar import CrossbarConfig
from ..devices import LinearDevice, VTEAMDevice
from ..methods.software import accuracy
from ..nn import CrossbarLinear, convert
from ..programming import LinearPulse, VTEAMPulse, write_verify
from .common import CostConfig, SoftwareMLPConfig, load_data, record_cost, software_mlp, summary
from .runner import RunFolder, experiment


@dataclass
class WriteVerifyConfig(SoftwareMLPConfig, CostConfig):
    """Write-verify programming of the software-trained MLP vs tolerance, per pulse model."""

    tolerances: list[float] = field(default_factory=lambda: [0.1, 0.05, 0.02, 0.01, 0.005, 0.002])
    models: list[Literal["linear", "vteam"]] = field(default_factory=lambda: ["linear", "vteam"])
    max_pulses: int = 500
    adaptive: bool = True
    max_train: int = 16
    read_noise: float = 0.0
    step: float = 0.01
    noise: float = 0.3
    p2p: float = 0.3
    trials: int = 20
    seed: int = 0
    crossbar: CrossbarConfig = field(default_factory=CrossbarConfig)

    def __post_init__(self) -> None:
        check(self.trials >= 1, "trials", self.trials, "must be >= 1")
        check(self.epochs >= 0, "epochs", self.epochs, "must be >= 0")
        for t in self.tolerances:
            check(t > 0, "tolerances", t, "each tolerance must be > 0 (fraction of the range)")
        check(len(self.models) >= 1, "models", self.models, "needs at least one of ['linear', 'vteam']")
        check(self.max_pulses >= 1, "max_pulses", self.max_pulses, "must be >= 1")
        check(0 < self.step <= 1, "step", self.step, "must lie in (0, 1]")
        check(self.noise >= 0 and self.p2p >= 0 and self.read_noise >= 0, "noise/p2p/read_noise",
              (self.noise, self.p2p, self.read_noise), "must be >= 0")


def _setup(model, cfg: WriteVerifyConfig, which: str):
    if which == "vteam":
        vt = VTEAMDevice()
        dev = LinearDevice(g_min=vt.g_min, g_max=vt.g_max, name="VTEAM range")
        pulses = VTEAMPulse(vt, p2p=cfg.p2p)
    else:
        dev = cfg.crossbar.memristor
        pulses = LinearPulse.for_device(dev, step=cfg.step, noise=cfg.noise)
    hw = convert(model, dataclasses.replace(cfg.crossbar, memristor=dev), trials=cfg.trials, seed=cfg.seed * 31 + 1)
    layers = [m for m in hw.modules() if isinstance(m, CrossbarLinear)]
    targets = [(lay.crossbar.g_pos.detach().clone(), lay.crossbar.g_neg.detach().clone()) for lay in layers]
    return hw, layers, targets, pulses, dev


def evaluate(model, data, cfg: WriteVerifyConfig, which: str, tol: float, setup) -> dict:
    hw, layers, targets, pulses, dev = setup
    gen = torch.Generator()
    gen.manual_seed(cfg.seed * 1_000_003 + int(tol * 1e6) + (17 if which == "vteam" else 0))
    stats = {"pulses": [], "reads": [], "time": [], "energy": [], "err": [], "conv": []}
    for lay, (tp, tn) in zip(layers, targets):
        out = []
        for t in (tp, tn):
            res = write_verify(t.double(), pulses, None, tol, cfg.max_pulses, cfg.read_noise, cfg.adaptive,
                               cfg.max_train, generator=gen)
            out.append(res.g.to(t.dtype))
            stats["pulses"].append(res.pulses.flatten())
            stats["reads"].append(res.reads.flatten())
            stats["time"].append(res.time.flatten())
            stats["energy"].append(res.energy.flatten())
            stats["err"].append(((res.g - t.double()) / dev.g_range).flatten())
            stats["conv"].append(res.converged.flatten().double())
        lay.crossbar.g_pos, lay.crossbar.g_neg = out
    cat = {k: torch.cat(v) for k, v in stats.items()}
    acc = accuracy(hw, data.x_test, data.y_test)
    devices_per_trial = cat["pulses"].numel() / cfg.trials
    return {"model": which, "tol": tol, **summary(acc),
            "rms_error_rel": float(cat["err"].pow(2).mean().sqrt()), "max_error_rel": float(cat["err"].abs().max()),
            "converged_fraction": float(cat["conv"].mean()), "pulses_mean": float(cat["pulses"].mean()),
            "pulses_max": float(cat["pulses"].max()), "reads_mean": float(cat["reads"].mean()),
            "time_mean_s": float(cat["time"].mean()), "energy_mean_J": float(cat["energy"].mean()),
            "energy_per_array_J": float(cat["energy"].sum() / cfg.trials), "devices_per_array": int(devices_per_trial)}


@experiment(
    "write-verify",
    "784x100x10 Abs MLP on MNIST programmed by write-verify (linear pulse model, VTEAM): error, pulses, time, "
    "energy and accuracy vs tolerance",
    WriteVerifyConfig,
    quick=dict(n_train=2000, n_test=300, epochs=1, trials=2, tolerances=[0.05, 0.01], max_pulses=200),
)
def run_write_verify(cfg: WriteVerifyConfig, run: RunFolder) -> dict:
    data = load_data(cfg.dataset, cfg.n_train, cfg.n_test)
    model = software_mlp(run, data, cfg.sizes, cfg.epochs, cfg.lr, cfg.batch_size, cfg.seed, cfg.activation)
    software = float(accuracy(model, data.x_test, data.y_test)[0]) * 100
    rows = []
    bar = tqdm(total=len(cfg.models) * len(cfg.tolerances), desc=f"write-verify (model, tol), {cfg.trials} arrays each")
    for which in cfg.models:
        setup = None
        for tol in cfg.tolerances:
            def point():
                nonlocal setup
                setup = setup or _setup(model, cfg, which)
                return evaluate(model, data, cfg, which, tol, setup)

            rows.append(run.checkpoint(f"{which}_tol{tol:g}", point))
            bar.update(1)
    bar.close()
    run.write_csv("results.csv", rows)
    _plot(run, rows, software, cfg)
    small = dataclasses.replace(cfg, trials=1)
    for which in cfg.models:  # the ideal targets; the measured write-verify cost is in the metrics' points
        record_cost(run, lambda: _setup(model, small, which)[0], data.x_test,
                    f"the MLP at its programming targets on the {which} device range", label=which)
    return {"software_accuracy": round(software, 3), "data_source": data.source, "points": rows}


def _plot(run: RunFolder, rows: list[dict], software: float, cfg: WriteVerifyConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for k, which in enumerate(cfg.models):
        rs = [r for r in rows if r["model"] == which]
        tol = [r["tol"] for r in rs]
        axes[0].loglog(tol, [r["rms_error_rel"] for r in rs], marker="o", color=f"C{k}", label=f"{which}: rms error")
        axes[1].loglog(tol, [r["pulses_mean"] for r in rs], marker="o", color=f"C{k}", label=f"{which}: pulses/device")
        ax2 = axes[1]
        ax2.loglog(tol, [r["energy_mean_J"] * 1e12 for r in rs], marker="s", ls="--", color=f"C{k}",
                   label=f"{which}: energy/device (pJ)")
        axes[2].errorbar(tol, [r["mean"] for r in rs], yerr=[r["std"] for r in rs], marker="o", capsize=3,
                         color=f"C{k}", label=which)
    axes[0].loglog(sorted({r["tol"] for r in rows}), sorted({r["tol"] for r in rows}), ls=":", color="gray",
                   label="error = tolerance")
    axes[2].axhline(software, ls="--", color="gray", label=f"software {software:.2f} %")
    axes[2].set_xscale("log")
    for ax, yl in zip(axes, ["programming error / (G_max − G_min)", "pulses, energy per device", "test accuracy (%)"]):
        ax.set_xlabel("write-verify tolerance (fraction of range)")
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    axes[0].set_title("programming error", fontsize=9)
    axes[1].set_title("cost", fontsize=9)
    axes[2].set_title(f"MLP accuracy, {cfg.trials} arrays", fontsize=9)
    run.save_figure(fig, "write_verify.png")
