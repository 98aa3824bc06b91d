"""``memristive run defects``: accuracy of a software-trained MLP mapped onto defective crossbars."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ..crossbar import CrossbarConfig
from ..methods.software import accuracy
from ..nn import convert
from ..nonideal import DefectPercent
from ..data import load_dataset
from .common import (CostConfig, SoftwareMLPConfig, check_summary, check_values, record_mlp_cost, software_mlp, summary,
                     value_key)
from .folder import RunFolder
from .registry import experiment


@dataclass
class DefectsConfig(SoftwareMLPConfig, CostConfig):
    """784×100×10 Abs MLP, trained in software, evaluated on differential crossbars vs defect percent."""

    defect_percents: list[float] = field(default_factory=lambda: [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20])
    beta: float = 0.5
    sigma_low: float = 0.6
    sigma_high: float = 1.0
    clip: bool = True  # varied conductances stay in [G_min, G_max]; false: G·exp(θ) unbounded
    trials: int = 100
    seed: int = 0
    crossbar: CrossbarConfig = field(default_factory=CrossbarConfig)

    def __post_init__(self) -> None:
        super().__post_init__()  # model, data, trials, seed, beta/sigma checks
        check_values(self.defect_percents, "defect_percents", 0, 100, " (percent)")


def evaluate_defects(model, data, cfg: DefectsConfig, percent: float, seed: int) -> torch.Tensor:
    """Per-trial test accuracy of ``model`` on ``cfg.trials`` crossbar instances at ``percent`` defects."""
    defect = DefectPercent(alpha=percent / 100, beta=cfg.beta, sigma_low=cfg.sigma_low, sigma_high=cfg.sigma_high,
                           clip=cfg.clip)
    xcfg = dataclasses.replace(cfg.crossbar, nonidealities=[*cfg.crossbar.nonidealities, defect])
    hw = convert(model, xcfg, trials=cfg.trials, seed=seed)
    return accuracy(hw, data.x_test, data.y_test)


@experiment(
    "defects",
    "784x100x10 Abs MLP on MNIST: test accuracy vs defect percent 0-20 % on differential crossbars (Monte Carlo)",
    DefectsConfig,
    quick=dict(n_train=5000, n_test=1000, epochs=2, trials=5, defect_percents=[0, 10, 20]),
)
def run_defects(cfg: DefectsConfig, run: RunFolder) -> dict:
    data = load_dataset(cfg.dataset, n_train=cfg.n_train, n_test=cfg.n_test)
    model = software_mlp(run, data, cfg.sizes, cfg.epochs, cfg.lr, cfg.batch_size, cfg.seed, cfg.activation)
    software = float(accuracy(model, data.x_test, data.y_test)[0]) * 100
    rows = []
    for i, p in enumerate(tqdm(cfg.defect_percents, desc=f"defect percent ({cfg.trials} trials each)")):
        res = run.checkpoint(f"defect_{value_key(p)}",
                             lambda: summary(evaluate_defects(model, data, cfg, p, cfg.seed * 100003 + i + 1)),
                             validate=check_summary)
        rows.append({"defect_percent": p, **res})
    run.write_csv("results.csv", rows)
    _plot(run, rows, software, cfg)
    record_mlp_cost(run, model, data, cfg.crossbar)
    return {"software_accuracy": round(software, 3), "data_source": data.source, "points": rows}


def _plot(run: RunFolder, rows: list[dict], software: float, cfg: DefectsConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["defect_percent"] for r in rows]
    m = [r["mean"] for r in rows]
    s = [r["std"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.fill_between(x, [r["min"] for r in rows], [r["max"] for r in rows], alpha=0.15, color="C0", label="min–max")
    ax.errorbar(x, m, yerr=s, marker="o", capsize=3, color="C0", label=f"crossbar, mean ± std ({cfg.trials} trials)")
    ax.axhline(software, ls="--", color="gray", label=f"software {software:.2f} %")
    ax.set_xlabel("defect percent α (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{'×'.join(map(str, cfg.sizes))} {cfg.activation} MLP on {cfg.dataset}, no compensation")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    run.save_figure(fig, "accuracy_vs_defects.png")
