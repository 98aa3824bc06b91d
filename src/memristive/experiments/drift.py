"""``memristive run drift``: MLP accuracy from 1 s to 10 years after programming, with and without
drift compensation, for PCM power-law drift (Joshi et al. 2020 via aihwkit) and RRAM retention.

A 784×100×10 MLP is trained in software and mapped onto ``trials`` crossbar instances per device
model. Each instance is programmed once — programming noise, then the crossbar's ``time_effect`` draws
its per-device parameters (ν of every device, a retention direction) — and read at every time in
``times`` through :meth:`memristive.crossbar.Crossbar.at`: the same instance ages, only the PCM
model's accumulated 1/f noise is drawn afresh at each time (seeded by the time index, shared by the
three compensation variants).

Compensation happens in the periphery (formulas in :mod:`memristive.drift`): right after programming
each layer reads the one-hot input vectors and stores the readout; at time ``t`` it reads them again and
scales that layer's outputs digitally by one factor (``global``, aihwkit's GlobalDriftCompensation)
or one factor per output column (``column``, PerColumnDriftCompensation). The reference reads go
through the same crossbar as every other read (same read noise, DAC and ADC).

Models (``models``):

* ``pcm``: a PCM-like device ``0..g_max`` (``pcm_g_max``, default aihwkit's 25 µS) with aihwkit's
  PCM programming noise (``pcm_programming_scale``) and :class:`~memristive.drift.PCMDrift`;
* ``rram``: the crossbar's own device (default Ti/AlOx/TaOx 1–12 kΩ) with
  :class:`~memristive.drift.RRAMRetention` (log-time broadening, illustrative parameters).

Note: the Abs MLP has no bias and ``|·|`` is positively homogeneous, so one uniform scale on a layer
does not change the arg-max; accuracy falls only through device-to-device differences of the drift.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import check
from ..crossbar import CrossbarConfig
from ..devices import LinearDevice
from ..drift import YEAR, PCMDrift, PCMProgramming, RRAMRetention, column_drift_scale, global_drift_scale
from ..methods.software import accuracy
from ..nn import CrossbarLinear, convert
from .common import CostConfig, SoftwareMLPConfig, load_data, record_cost, software_mlp, summary
from .runner import RunFolder, experiment

COMPENSATIONS = ("none", "global", "column")
MODELS = ("pcm", "rram")
DEFAULT_TIMES = [1.0, 60.0, 3600.0, 86400.0, 30 * 86400.0, YEAR, 10 * YEAR]


def time_label(t: float) -> str:
    for unit, s in (("y", YEAR), ("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if t >= s:
            return f"{t / s:g} {unit}"
    return f"{t:g} s"


class AgingLinear(nn.Module):
    """A :class:`CrossbarLinear` on a crossbar with a ``time_effect``, plus periphery drift compensation.

    Right after programming it reads the one-hot inputs (the reference readout); :meth:`set_time` ages
    the crossbar (:meth:`memristive.crossbar.Crossbar.at`) and reads them again; :meth:`compensate`
    sets the digital output scale from the two readouts (:mod:`memristive.drift`).
    """

    def __init__(self, layer: CrossbarLinear) -> None:
        super().__init__()
        if layer.crossbar.config.time_effect is None:
            raise ValueError("AgingLinear: the layer's crossbar has no time_effect")
        self.layer = layer
        xb = layer.crossbar
        self.register_buffer("alpha", torch.ones(1, 1, 1, dtype=xb.g_pos.dtype, device=xb.g_pos.device))
        self.ref0 = self._readout()
        self.ref_t = self.ref0

    def _readout(self) -> torch.Tensor:
        xb = self.layer.crossbar
        with torch.no_grad():
            return xb.matmul(torch.eye(xb.in_features, dtype=xb.g_pos.dtype, device=xb.g_pos.device))

    @torch.no_grad()
    def set_time(self, t: float, generator: torch.Generator) -> None:
        self.layer.crossbar.at(t, generator)
        self.ref_t = self._readout()

    def compensate(self, mode: str) -> None:
        """Set the periphery's output scale: ``none``, ``global`` or ``column``."""
        check(mode in COMPENSATIONS, "compensation", mode, f"must be one of {list(COMPENSATIONS)}")
        if mode == "none":
            self.alpha = torch.ones_like(self.alpha[:1, :1, :1])
        elif mode == "global":
            self.alpha = global_drift_scale(self.ref0, self.ref_t)
        else:
            self.alpha = column_drift_scale(self.ref0, self.ref_t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layer(x)  # the layer's own read; the periphery scales the array's part by α
        b = self.layer.bias
        return y * self.alpha if b is None else (y - b) * self.alpha + b


def age(hw: nn.Module) -> list[AgingLinear]:
    """Wrap every :class:`CrossbarLinear` of ``hw`` (in place) in an :class:`AgingLinear`."""
    out = []

    def swap(module: nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, CrossbarLinear):
                a = AgingLinear(child)
                setattr(module, name, a)
                out.append(a)
            else:
                swap(child)

    swap(hw)
    return out


@dataclass
class DriftConfig(SoftwareMLPConfig, CostConfig):
    """Accuracy of the software-trained MLP over time after programming, per device model and compensation."""

    times: list[float] = field(default_factory=lambda: list(DEFAULT_TIMES))
    models: list[Literal["pcm", "rram"]] = field(default_factory=lambda: ["pcm", "rram"])
    compensations: list[Literal["none", "global", "column"]] = field(default_factory=lambda: ["none", "global", "column"])
    trials: int = 100
    seed: int = 0
    pcm_g_max: float = 25e-6
    pcm_programming_scale: float = 1.0
    pcm: PCMDrift = field(default_factory=PCMDrift)
    rram: RRAMRetention = field(default_factory=lambda: RRAMRetention(sigma=0.01))
    crossbar: CrossbarConfig = field(default_factory=CrossbarConfig)

    def __post_init__(self) -> None:
        check(self.trials >= 1, "trials", self.trials, "must be >= 1")
        check(self.epochs >= 0, "epochs", self.epochs, "must be >= 0")
        check(len(self.times) >= 1, "times", self.times, "needs at least one time")
        for t in self.times:
            check(math.isfinite(t) and t >= 0, "times", t, "each time must be a finite number of seconds >= 0")
        check(len(self.models) >= 1, "models", self.models, f"needs at least one of {list(MODELS)}")
        check(len(self.compensations) >= 1, "compensations", self.compensations,
              f"needs at least one of {list(COMPENSATIONS)}")
        check(math.isfinite(self.pcm_g_max) and self.pcm_g_max > 0, "pcm_g_max", self.pcm_g_max,
              "must be a positive conductance (siemens)")
        check(self.pcm_programming_scale >= 0, "pcm_programming_scale", self.pcm_programming_scale, "must be >= 0")
        check(self.crossbar.time_effect is None, "crossbar.time_effect", self.crossbar.time_effect,
              "is set by this experiment from pcm / rram; leave it unset")


def _build(model, cfg: DriftConfig, which: str):
    """Crossbar instances of ``model`` for device model ``which`` (time effect in the crossbar config)."""
    if which == "pcm":
        dev = LinearDevice(g_min=0.0, g_max=cfg.pcm_g_max, name="PCM-like 0-25 uS (aihwkit)")
        prog = [PCMProgramming(scale=cfg.pcm_programming_scale)] if cfg.pcm_programming_scale > 0 else []
        xcfg = dataclasses.replace(cfg.crossbar, memristor=dev, nonidealities=[*cfg.crossbar.nonidealities, *prog],
                                   time_effect=cfg.pcm)
    else:
        xcfg = dataclasses.replace(cfg.crossbar, time_effect=cfg.rram)
    hw = convert(model, xcfg, trials=cfg.trials, seed=cfg.seed * 7919 + (1 if which == "pcm" else 2))
    return hw, age(hw)


def evaluate_model(model, data, cfg: DriftConfig, which: str, bar=None) -> list[dict]:
    hw, layers = _build(model, cfg, which)
    rows = []
    for i, t in enumerate(cfg.times):
        gen = torch.Generator()
        gen.manual_seed(cfg.seed * 1_000_003 + 101 * i + (7 if which == "pcm" else 13))
        for layer in layers:
            layer.set_time(float(t), gen)
        for comp in cfg.compensations:
            for layer in layers:
                layer.compensate(comp)
            acc = accuracy(hw, data.x_test, data.y_test)
            alpha = layers[0].alpha
            rows.append({"model": which, "time_s": float(t), "time": time_label(float(t)), "compensation": comp,
                         **summary(acc), "layer1_alpha_mean": round(float(alpha.mean()), 5)})
            if bar is not None:
                bar.update(1)
    return rows


@experiment(
    "drift",
    "784x100x10 MLP on MNIST: accuracy from 1 s to 10 years after programming (PCM drift, RRAM retention), "
    "without and with global / per-column drift compensation",
    DriftConfig,
    quick=dict(n_train=3000, n_test=500, epochs=1, trials=5, times=[1.0, 86400.0, 10 * YEAR]),
)
def run_drift(cfg: DriftConfig, run: RunFolder) -> dict:
    data = load_data(cfg.dataset, cfg.n_train, cfg.n_test)
    model = software_mlp(run, data, cfg.sizes, cfg.epochs, cfg.lr, cfg.batch_size, cfg.seed, cfg.activation)
    software = float(accuracy(model, data.x_test, data.y_test)[0]) * 100
    rows = []
    bar = tqdm(total=len(cfg.models) * len(cfg.times) * len(cfg.compensations),
               desc=f"drift (model, time, compensation), {cfg.trials} instances each")
    for which in cfg.models:
        res = run.checkpoint(f"model_{which}", lambda: evaluate_model(model, data, cfg, which, bar))
        rows.extend(res)
    bar.close()
    run.write_csv("results.csv", rows)
    _plot(run, rows, software, cfg)
    small = dataclasses.replace(cfg, trials=1)
    for which in cfg.models:  # as programmed (t = 0); drift changes the conductances and so the read energy
        record_cost(run, lambda: _build(model, small, which)[0], data.x_test, f"the MLP on the {which} arrays as programmed",
                    label=which)
    return {"software_accuracy": round(software, 3), "data_source": data.source, "points": rows}


def _plot(run: RunFolder, rows: list[dict], software: float, cfg: DriftConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cfg.models), figsize=(5.5 * len(cfg.models), 4.2), squeeze=False)
    titles = {"pcm": "PCM power-law drift (Joshi 2020 / aihwkit)", "rram": "RRAM log-time retention"}
    for ax, which in zip(axes[0], cfg.models):
        for k, comp in enumerate(cfg.compensations):
            rs = [r for r in rows if r["model"] == which and r["compensation"] == comp]
            x = [max(r["time_s"], 0.1) for r in rs]
            ax.errorbar(x, [r["mean"] for r in rs], yerr=[r["std"] for r in rs], marker="o", capsize=3,
                        label=f"compensation: {comp}", color=f"C{k}", alpha=0.85)
        ax.axhline(software, ls="--", color="gray", label=f"software {software:.2f} %")
        ax.set_xscale("log")
        ax.set_xlabel("time after programming (s)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{titles[which]}, {cfg.trials} instances", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="lower left")
    run.save_figure(fig, "accuracy_vs_time.png")
