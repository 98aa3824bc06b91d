"""``memristive run drift``: MLP accuracy from 1 s to 10 years after programming, with and without
drift compensation, for PCM power-law drift (Joshi et al. 2020 via aihwkit) and RRAM retention.

A 784×100×10 MLP is trained in software and mapped onto ``trials`` crossbar instances per device
model. Each instance is programmed once (programming noise, then the time effect's per-device
parameters — ν of every device, a retention direction — are drawn once), then read at every time in
``times``: the same instance ages, only the PCM model's accumulated 1/f noise is drawn afresh at each
time (seeded by the time index, shared by the three compensation variants).

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
from .common import SoftwareMLPConfig, load_data, software_mlp, summary
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
    """A :class:`CrossbarLinear` whose conductances age with time, plus periphery drift compensation.

    Holds the programmed conductances and the time effect's per-device state (drawn once);
    :meth:`set_time` rewrites the crossbar's conductance buffers to their values at ``t`` and
    recomputes the compensation factor from the reference readout.
    """

    def __init__(self, layer: CrossbarLinear, effect, g_min: float, g_max: float, generator: torch.Generator) -> None:
        super().__init__()
        self.layer, self.effect = layer, effect
        self.g_min, self.g_max = g_min, g_max
        xb = layer.crossbar
        self.register_buffer("g0_pos", xb.g_pos.detach().clone())
        self.register_buffer("g0_neg", xb.g_neg.detach().clone())
        self.state_pos = effect.draw(self.g0_pos, g_max, generator)
        self.state_neg = effect.draw(self.g0_neg, g_max, generator)
        self.mode = "none"
        self.register_buffer("alpha", torch.ones(1, 1, 1, dtype=xb.g_pos.dtype, device=xb.g_pos.device))
        self.ref0 = self._readout()

    def _readout(self) -> torch.Tensor:
        xb = self.layer.crossbar
        with torch.no_grad():
            return xb.matmul(torch.eye(xb.in_features, dtype=xb.g_pos.dtype, device=xb.g_pos.device))

    def _at(self, g0, state, t, generator):
        if isinstance(self.effect, RRAMRetention):
            return self.effect.at(g0, state, t, self.g_max, generator, g_min=self.g_min)
        return self.effect.at(g0, state, t, self.g_max, generator)

    @torch.no_grad()
    def set_time(self, t: float, generator: torch.Generator) -> None:
        xb = self.layer.crossbar
        xb.g_pos = self._at(self.g0_pos, self.state_pos, t, generator)
        xb.g_neg = self._at(self.g0_neg, self.state_neg, t, generator)
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
        y = self.layer.crossbar.matmul(x) * self.alpha
        return y + self.layer.bias if self.layer.bias is not None else y


def age(hw: nn.Module, effect, g_min: float, g_max: float, seed: int) -> list[AgingLinear]:
    """Wrap every :class:`CrossbarLinear` of ``hw`` (in place) in an :class:`AgingLinear`."""
    out = []
    gen = torch.Generator()
    gen.manual_seed(seed)

    def swap(module: nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, CrossbarLinear):
                a = AgingLinear(child, effect, g_min, g_max, gen)
                setattr(module, name, a)
                out.append(a)
            else:
                swap(child)

    swap(hw)
    return out


@dataclass
class DriftConfig(SoftwareMLPConfig):
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


def _build(model, cfg: DriftConfig, which: str):
    """Crossbar instances of ``model`` for device model ``which``, wrapped for aging."""
    if which == "pcm":
        dev = LinearDevice(g_min=0.0, g_max=cfg.pcm_g_max, name="PCM-like 0-25 uS (aihwkit)")
        xcfg = dataclasses.replace(cfg.crossbar, memristor=dev)
        effect = cfg.pcm
    else:
        xcfg = dataclasses.replace(cfg.crossbar)
        dev = xcfg.memristor
        effect = cfg.rram
    hw = convert(model, xcfg, trials=cfg.trials, seed=cfg.seed * 7919 + (1 if which == "pcm" else 2))
    if which == "pcm" and cfg.pcm_programming_scale > 0:
        gen = torch.Generator()
        gen.manual_seed(cfg.seed * 7919 + 11)
        prog = PCMProgramming(scale=cfg.pcm_programming_scale)
        for layer in [m for m in hw.modules() if isinstance(m, CrossbarLinear)]:
            xb = layer.crossbar
            xb.g_pos = prog.apply(xb.g_pos, dev, gen)[0]
            xb.g_neg = prog.apply(xb.g_neg, dev, gen)[0]
    layers = age(hw, effect, dev.g_min, dev.g_max, seed=cfg.seed * 7919 + (3 if which == "pcm" else 4))
    return hw, layers


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
