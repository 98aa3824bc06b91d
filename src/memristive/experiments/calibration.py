"""The calibration paper's experiments (Du, Peng & Liu, J. NUDT 45(5) 2023).

``memristive run calibration-fig6``: Fig. 6 — 784×100×10 Abs MLP on MNIST, recognition rate vs
defect percent (0–20 %), 100 Monte Carlo arrays per point, three curves: no calibration,
calibration only, calibration + in-situ training. The "no calibration" arrays are exactly those of
the ``defects`` experiment (same model, same defect model, same seeds).

``memristive run calibration-table1``: Table 1 — 784×256×10 MLP with defects only in W1, only in W2,
or in both; Liu et al. (DAC 2017) retraining + remapping vs calibration + in-situ training. The paper
does not give the defect rate: ``headline_percent`` (10 %) is the one shown in the table and
``defect_percents`` sweeps it.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import check
from ..crossbar import CrossbarConfig
from ..methods.calibration import CalibrationConfig, calibrate
from ..methods.insitu import InSituConfig, insitu_train
from ..methods.liu import LiuConfig, liu_rescue
from ..methods.software import accuracy
from ..nn import CrossbarLinear
from ..nonideal import DefectPercent
from ..data import load_dataset
from .common import (CostConfig, SoftwareMLPConfig, check_number, check_values, record_mlp_cost, software_mlp, summary,
                     value_key)
from .folder import RunFolder
from .registry import experiment

# The paper's printed numbers (recognition rate, %), for the plots and the results table.
PAPER_FIG6 = {  # defect percent -> {curve: value}; "~" values are read from the text ("近70%", "60%")
    10: {"none": 38.3, "calibration": 48.5, "insitu": 70.0},
    20: {"none": 21.4, "insitu": 60.0},
}
PAPER_TABLE1 = {"liu": {"W1": 94.88, "W2": 97.43, "W1&W2": 92.93}, "ours": {"W1": 94.93, "W2": 97.66, "W1&W2": 93.22}}
CASES = {"W1": (0,), "W2": (1,), "W1&W2": (0, 1)}


def _insitu_writes(label: str, stats: dict) -> dict:
    """A ``training`` entry of :func:`~memristive.experiments.common.record_cost` from in-situ stats
    (pulses per device; a write model without pulses counts one pulse per write)."""
    return {"label": label, "pulses_per_device": stats.get("pulses_per_device_mean", stats["writes_per_device_mean"])}


def _defect(percent: float, beta: float, lo: float, hi: float, clip: bool = True) -> DefectPercent:
    return DefectPercent(alpha=percent / 100, beta=beta, sigma_low=lo, sigma_high=hi, clip=clip)


def convert_with_defects(model: nn.Module, base: CrossbarConfig, defect: DefectPercent, layers: tuple[int, ...],
                         trials: int, seed: int) -> nn.Module:
    """Like :func:`memristive.nn.convert` (same per-layer seeds ``seed + 1000·i``), with ``defect``
    added only to the Linear layers whose index is in ``layers``."""
    import copy

    hw = copy.deepcopy(model)
    linears = [(n, m) for n, m in hw.named_modules() if isinstance(m, nn.Linear)]
    for i, (name, lin) in enumerate(linears):
        nonid = [*base.nonidealities, defect] if i in layers else list(base.nonidealities)
        cfg = dataclasses.replace(base, nonidealities=nonid)
        layer = CrossbarLinear.from_linear(lin, cfg, trials=trials, seed=seed + 1000 * i)
        parent = hw.get_submodule(name.rsplit(".", 1)[0]) if "." in name else hw
        setattr(parent, name.rsplit(".", 1)[-1], layer)
    return hw


# ============================================================================================ Fig. 6
@dataclass
class Fig6Config(SoftwareMLPConfig, CostConfig):
    """Fig. 6: recognition rate vs defect percent; no calibration / calibration / calibration + in-situ."""

    defect_percents: list[float] = field(default_factory=lambda: [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20])
    beta: float = 0.5
    sigma_low: float = 0.6
    sigma_high: float = 1.0
    clip: bool = True  # varied conductances stay in [G_min, G_max]; false: G·exp(θ) unbounded, as printed
    trials: int = 100
    seed: int = 0
    crossbar: CrossbarConfig = field(default_factory=CrossbarConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    insitu: InSituConfig = field(default_factory=lambda: InSituConfig(epochs=1, n_train=10000))

    def __post_init__(self) -> None:
        super().__post_init__()  # model, data, trials, seed, beta/sigma checks
        check_values(self.defect_percents, "defect_percents", 0, 100, " (percent)")
        self.check_subsets()


def fig6_point(model: nn.Module, data, cfg: Fig6Config, percent: float, seed: int, progress: bool = True) -> dict:
    """All three curves at one defect percent, on the same ``cfg.trials`` arrays."""
    defect = _defect(percent, cfg.beta, cfg.sigma_low, cfg.sigma_high, cfg.clip)
    xcfg = dataclasses.replace(cfg.crossbar, nonidealities=[*cfg.crossbar.nonidealities, defect])
    from ..nn import convert

    t0 = time.perf_counter()
    hw = convert(model, xcfg, trials=cfg.trials, seed=seed)  # == experiments.defects.evaluate_defects
    out = {"none": summary(accuracy(hw, data.x_test, data.y_test))}
    cal = calibrate(hw, model, data.x_train, cfg.calibration, inplace=True)
    out["calibration"] = summary(accuracy(cal, data.x_test, data.y_test))
    t1 = time.perf_counter()
    stats = insitu_train(cal, data.x_train, data.y_train, cfg.insitu, progress=progress, desc=f"in-situ {percent:g}%")
    t2 = time.perf_counter()
    out["insitu"] = summary(accuracy(cal, data.x_test, data.y_test))
    out["insitu_stats"] = {k: v for k, v in stats.items() if k != "writes_per_trial"}
    out["seconds"] = {"evaluate_and_calibrate": round(t1 - t0, 2), "insitu": round(t2 - t1, 2),
                      "evaluate_insitu": round(time.perf_counter() - t2, 2)}
    return out


@experiment(
    "calibration-fig6",
    "Calibration paper Fig. 6: 784x100x10 Abs MLP, MNIST accuracy vs defect percent; none / calibration / "
    "calibration + in-situ training (Monte Carlo)",
    Fig6Config,
    quick=dict(n_train=3000, n_test=1000, epochs=2, trials=4, defect_percents=[0, 10, 20],
               insitu={"n_train": 1000}, calibration={"n_samples": 2000}),
)
def run_fig6(cfg: Fig6Config, run: RunFolder) -> dict:
    data = load_dataset(cfg.dataset, n_train=cfg.n_train, n_test=cfg.n_test)
    model = software_mlp(run, data, cfg.sizes, cfg.epochs, cfg.lr, cfg.batch_size, cfg.seed, cfg.activation)
    software = float(accuracy(model, data.x_test, data.y_test)[0]) * 100
    rows, points = [], []
    for i, p in enumerate(tqdm(cfg.defect_percents, desc=f"defect percent ({cfg.trials} trials each)")):
        seed = cfg.seed * 100003 + i + 1  # the defects experiment's seeds: identical "none" arrays
        res = run.checkpoint(f"fig6_{value_key(p)}", lambda: fig6_point(model, data, cfg, p, seed))
        points.append({"defect_percent": p, **res})
        for curve in ("none", "calibration", "insitu"):
            paper = PAPER_FIG6.get(p, {}).get(curve)
            rows.append({"defect_percent": p, "curve": curve, **res[curve], "paper": paper if paper is not None else ""})
    run.write_csv("fig6.csv", rows)
    _plot_fig6(run, points, software, cfg)
    record_mlp_cost(run, model, data, cfg.crossbar, training=[
        _insitu_writes(f"calibration + in-situ at {p['defect_percent']:g} % defects", p["insitu_stats"]) for p in points])
    return {"software_accuracy": round(software, 3), "data_source": data.source, "points": points}


def _plot_fig6(run: RunFolder, points: list[dict], software: float, cfg: Fig6Config) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [p["defect_percent"] for p in points]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    labels = {"none": "no calibration", "calibration": "calibration", "insitu": "calibration + in-situ training"}
    for j, curve in enumerate(("none", "calibration", "insitu")):
        m = [p[curve]["mean"] for p in points]
        ax.fill_between(x, [p[curve]["min"] for p in points], [p[curve]["max"] for p in points], color=f"C{j}", alpha=0.12)
        ax.errorbar(x, m, yerr=[p[curve]["std"] for p in points], marker="o", ms=4, capsize=3, color=f"C{j}",
                    label=f"{labels[curve]} (mean ± std, band min–max)")
        px = [d for d in PAPER_FIG6 if curve in PAPER_FIG6[d]]
        ax.scatter(px, [PAPER_FIG6[d][curve] for d in px], marker="x", s=60, color=f"C{j}", zorder=5)
    ax.scatter([], [], marker="x", color="k", label="paper's printed values")
    ax.axhline(software, ls="--", color="gray", label=f"software {software:.2f} %")
    ax.set_xlabel("defect percent α (%)")
    ax.set_ylabel("test accuracy (%)")
    m = cfg.crossbar.mapping
    mapping = {"balanced": "balanced pairs", "differential": "pairs offset at G_min"}.get(m.kind, m.kind)
    ax.set_title(f"{'×'.join(map(str, cfg.sizes))} {cfg.activation} MLP, {cfg.trials} arrays/point, {mapping}", fontsize=10)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=7)
    run.save_figure(fig, "fig6.png")


# ============================================================================================ Table 1
@dataclass
class Table1Config(SoftwareMLPConfig, CostConfig):
    """Table 1: 784×256×10 MLP, defects in W1 / W2 / both; Liu et al. vs calibration + in-situ."""

    sizes: list[int] = field(default_factory=lambda: [784, 256, 10])
    defect_percents: list[float] = field(default_factory=lambda: [5, 10, 20])
    headline_percent: float = 10
    cases: list[str] = field(default_factory=lambda: ["W1", "W2", "W1&W2"])
    beta: float = 0.5
    sigma_low: float = 0.6
    sigma_high: float = 1.0
    clip: bool = True
    trials: int = 10
    seed: int = 0
    crossbar: CrossbarConfig = field(default_factory=CrossbarConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    insitu: InSituConfig = field(default_factory=lambda: InSituConfig(epochs=1, n_train=10000))
    liu: LiuConfig = field(default_factory=lambda: LiuConfig(epochs=1, n_train=10000))

    def __post_init__(self) -> None:
        super().__post_init__()  # model, data, trials, seed, beta/sigma checks
        check_values(self.defect_percents, "defect_percents", 0, 100, " (percent)")
        self.check_subsets()
        check(isinstance(self.cases, list) and len(self.cases) >= 1 and len(set(self.cases)) == len(self.cases),
              "cases", self.cases, f"needs at least one of {list(CASES)}, each once")
        check(self.headline_percent in self.defect_percents, "headline_percent", self.headline_percent,
              f"must be one of defect_percents={self.defect_percents}")
        for c in self.cases:
            check(c in CASES, "cases", c, f"each case must be one of {list(CASES)}")
        check(len(self.sizes) == 3, "sizes", self.sizes, "Table 1 needs a two-layer MLP (W1, W2)")


def table1_cell(model: nn.Module, data, cfg: Table1Config, percent: float, case: str, seed: int,
                progress: bool = True) -> dict:
    """One (defect percent, case) cell: none, Liu et al., calibration, calibration + in-situ; same arrays."""
    defect = _defect(percent, cfg.beta, cfg.sigma_low, cfg.sigma_high, cfg.clip)
    hw = convert_with_defects(model, cfg.crossbar, defect, CASES[case], cfg.trials, seed)
    out = {"none": summary(accuracy(hw, data.x_test, data.y_test))}
    t0 = time.perf_counter()
    liu_model, liu_stats = liu_rescue(hw, model, data.x_train, data.y_train, cfg.liu, progress=progress)
    out["liu"] = summary(accuracy(liu_model, data.x_test, data.y_test))
    out["liu_stats"] = liu_stats
    del liu_model
    t1 = time.perf_counter()
    cal = calibrate(hw, model, data.x_train, cfg.calibration, inplace=True)
    out["calibration"] = summary(accuracy(cal, data.x_test, data.y_test))
    stats = insitu_train(cal, data.x_train, data.y_train, cfg.insitu, progress=progress, desc=f"in-situ {case} {percent:g}%")
    out["ours"] = summary(accuracy(cal, data.x_test, data.y_test))
    out["insitu_stats"] = {k: v for k, v in stats.items() if k != "writes_per_trial"}
    out["seconds"] = {"liu": round(t1 - t0, 2), "ours": round(time.perf_counter() - t1, 2)}
    return out


@experiment(
    "calibration-table1",
    "Calibration paper Table 1: 784x256x10 MLP with defects in W1 / W2 / both; Liu et al. (DAC 2017) "
    "retraining + remapping vs calibration + in-situ training, swept over the defect rate",
    Table1Config,
    quick=dict(n_train=3000, n_test=1000, epochs=2, trials=2, defect_percents=[10], sizes=[784, 64, 10],
               insitu={"n_train": 600}, liu={"n_train": 600}, calibration={"n_samples": 2000}),
)
def run_table1(cfg: Table1Config, run: RunFolder) -> dict:
    data = load_dataset(cfg.dataset, n_train=cfg.n_train, n_test=cfg.n_test)
    model = software_mlp(run, data, cfg.sizes, cfg.epochs, cfg.lr, cfg.batch_size, cfg.seed, cfg.activation)
    software = float(accuracy(model, data.x_test, data.y_test)[0]) * 100
    cells, rows = [], []
    todo = [(p, c) for p in cfg.defect_percents for c in cfg.cases]
    for j, (p, case) in enumerate(tqdm(todo, desc=f"Table 1 cells ({cfg.trials} trials each)")):
        seed = cfg.seed * 100003 + 7919 * (cfg.defect_percents.index(p) + 1)  # same arrays for every case's layers
        res = run.checkpoint(f"table1_{value_key(p)}_{case.replace('&', '+')}", lambda: table1_cell(model, data, cfg, p, case, seed))
        cells.append({"defect_percent": p, "case": case, **res})
        for method in ("none", "liu", "calibration", "ours"):
            paper = PAPER_TABLE1.get(method, {}).get(case, "") if p == cfg.headline_percent else ""
            rows.append({"defect_percent": p, "case": case, "method": method, **res[method], "paper": paper})
    run.write_csv("table1.csv", rows)
    table = {m: {c["case"]: c[m]["mean"] for c in cells if c["defect_percent"] == cfg.headline_percent}
             for m in ("none", "liu", "calibration", "ours")}
    record_mlp_cost(run, model, data, cfg.crossbar, training=[
        _insitu_writes(f"calibration + in-situ, {c['case']} at {c['defect_percent']:g} %", c["insitu_stats"]) for c in cells])
    _plot_table1(run, cells, software, cfg)
    return {"software_accuracy": round(software, 3), "data_source": data.source,
            "headline_percent": cfg.headline_percent, "table": table, "paper": PAPER_TABLE1, "cells": cells}


def _plot_table1(run: RunFolder, cells: list[dict], software: float, cfg: Table1Config) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cfg.cases), figsize=(4.2 * len(cfg.cases), 3.8), sharey=True, squeeze=False)
    names = {"none": "no compensation", "liu": "Liu et al. (retrain + remap)", "calibration": "calibration",
             "ours": "calibration + in-situ"}
    for ax, case in zip(axes[0], cfg.cases):
        cs = [c for c in cells if c["case"] == case]
        x = [c["defect_percent"] for c in cs]
        for j, m in enumerate(("none", "liu", "calibration", "ours")):
            ax.errorbar(x, [c[m]["mean"] for c in cs], yerr=[c[m]["std"] for c in cs], marker="o", ms=4, capsize=3,
                        color=f"C{j}", label=names[m])
        for j, m in ((1, "liu"), (3, "ours")):
            ax.scatter([cfg.headline_percent], [PAPER_TABLE1[m][case]], marker="x", s=60, color=f"C{j}", zorder=5)
        ax.axhline(software, ls="--", color="gray")
        ax.set_title(f"defects in {case}", fontsize=10)
        ax.set_xlabel("defect percent α (%)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][0].scatter([], [], marker="x", color="k", label=f"paper (at {cfg.headline_percent:g} %: rate not given)")
    axes[0][0].legend(fontsize=7, loc="lower left")
    run.save_figure(fig, "table1.png")


# ============================================================================================ investigations
MAPPING_VARIANTS = {
    # name: (mapping kind, keep varied conductances in [G_min, G_max] (the default), defect kind)
    "offset (default)": ("differential", True, "both"),
    "offset, unclipped variation": ("differential", False, "both"),
    "offset, stuck only": ("differential", True, "stuck"),
    "offset, variation only": ("differential", True, "variation"),
    "balanced": ("balanced", True, "both"),
    "balanced, unclipped variation": ("balanced", False, "both"),
    "balanced, stuck only": ("balanced", True, "stuck"),
    "balanced, variation only": ("balanced", True, "variation"),
    "reference column": ("reference", True, "both"),
}


@dataclass
class MappingStudyConfig(SoftwareMLPConfig, CostConfig):
    """What the paper's no-calibration numbers imply: mapping, clipping, which cells are affected."""

    defect_percents: list[float] = field(default_factory=lambda: [10, 20])
    variants: list[str] = field(default_factory=lambda: list(MAPPING_VARIANTS))
    standards: list[str] = field(default_factory=lambda: ["zero", "mean", "nearest"])  # calibration-only accuracy
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    beta: float = 0.5
    sigma_low: float = 0.6
    sigma_high: float = 1.0
    trials: int = 100
    seed: int = 0
    crossbar: CrossbarConfig = field(default_factory=CrossbarConfig)

    def __post_init__(self) -> None:
        super().__post_init__()  # model, data, trials, seed, beta/sigma checks
        check(isinstance(self.variants, list) and len(self.variants) >= 1 and len(set(self.variants)) == len(self.variants),
              "variants", self.variants, f"needs at least one of {list(MAPPING_VARIANTS)}, each once")
        for v in self.variants:
            check(v in MAPPING_VARIANTS, "variants", v, f"each variant must be one of {list(MAPPING_VARIANTS)}")
        check(isinstance(self.standards, list) and len(set(self.standards)) == len(self.standards), "standards",
              self.standards, "must be a list of distinct calibration standards")
        check_values(self.defect_percents, "defect_percents", 0, 100, " (percent)")
        self.check_subsets()


def mapping_point(model: nn.Module, data, cfg: MappingStudyConfig, variant: str, percent: float, seed: int) -> dict:
    from ..crossbar import mapping_from_spec
    from ..nn import convert

    mapping_kind, clip, kind = MAPPING_VARIANTS[variant]
    a, b = percent / 100, cfg.beta
    defect = {"both": DefectPercent(a, b, cfg.sigma_low, cfg.sigma_high, clip=clip),
              "stuck": DefectPercent(a * b, 1.0, cfg.sigma_low, cfg.sigma_high, clip=clip),
              "variation": DefectPercent(a * (1 - b), 0.0, cfg.sigma_low, cfg.sigma_high, clip=clip)}[kind]
    mapping = mapping_from_spec({"kind": mapping_kind, "w_max": cfg.crossbar.mapping.w_max})
    xcfg = dataclasses.replace(cfg.crossbar, mapping=mapping, nonidealities=[*cfg.crossbar.nonidealities, defect])
    hw = convert(model, xcfg, trials=cfg.trials, seed=seed)
    dev = xcfg.memristor
    harmful, rel_err = [], []
    for lin, layer in zip([m for m in model.modules() if isinstance(m, nn.Linear)],
                          [m for m in hw.modules() if isinstance(m, CrossbarLinear)]):
        xb = layer.crossbar
        w = lin.weight.detach().t()
        tp, tn = mapping.to_conductances(w, dev)
        # a device stuck at HRS matters only if its target was above G_min
        hits = (xb.stuck_pos & (tp > dev.g_min * (1 + 1e-6))).sum()
        total = xb.stuck_pos.sum()
        if xb.stuck_neg.shape == xb.stuck_pos.shape:
            hits = hits + (xb.stuck_neg & (tn > dev.g_min * (1 + 1e-6))).sum()
            total = total + xb.stuck_neg.sum()
        harmful.append(float(hits) / max(int(total), 1))
        rel_err.append(float(((xb.weights() - w).norm(dim=(1, 2)) / w.norm()).mean()))
    out = {"accuracy": summary(accuracy(hw, data.x_test, data.y_test)),
           "harmful_stuck_fraction": [round(h, 4) for h in harmful], "relative_weight_error": [round(e, 4) for e in rel_err]}
    g = torch.cat([m.crossbar.g_pos.flatten() for m in hw.modules() if isinstance(m, CrossbarLinear)])
    out["fraction_above_g_max"] = round(float((g > dev.g_max * (1 + 1e-6)).double().mean()), 5)
    out["max_g_over_g_max"] = round(float(g.max()) / dev.g_max, 3)
    if kind == "both":  # calibration only, per choice of standard, on the same arrays
        for std in cfg.standards:
            cal = calibrate(hw, model, data.x_train, dataclasses.replace(cfg.calibration, standard=std))
            out[f"calibration_{std}"] = summary(accuracy(cal, data.x_test, data.y_test))
    return out


@experiment(
    "calibration-mapping",
    "Calibration paper: what its no-calibration numbers imply — accuracy at 10/20 % defects for offset vs balanced "
    "pairs, clipped vs unclipped variation, stuck-only vs variation-only; calibration-only per standard",
    MappingStudyConfig,
    quick=dict(n_train=3000, n_test=1000, epochs=2, trials=3, defect_percents=[20],
               variants=["offset (default)", "balanced"], calibration={"n_samples": 2000}),
)
def run_mapping(cfg: MappingStudyConfig, run: RunFolder) -> dict:
    data = load_dataset(cfg.dataset, n_train=cfg.n_train, n_test=cfg.n_test)
    model = software_mlp(run, data, cfg.sizes, cfg.epochs, cfg.lr, cfg.batch_size, cfg.seed, cfg.activation)
    software = float(accuracy(model, data.x_test, data.y_test)[0]) * 100
    rows = []
    todo = [(v, p) for v in cfg.variants for p in cfg.defect_percents]
    for v, p in tqdm(todo, desc=f"mapping variants ({cfg.trials} trials each)"):
        seed = cfg.seed * 100003 + 1 + cfg.defect_percents.index(p)
        res = run.checkpoint(f"mapping_{v}_{value_key(p)}".replace(" ", "_").replace(",", "").replace("(", "").replace(")", ""),
                             lambda: mapping_point(model, data, cfg, v, p, seed))
        rows.append({"variant": v, "defect_percent": p, **res["accuracy"],
                     "harmful_stuck_fraction_W1": res["harmful_stuck_fraction"][0],
                     "relative_weight_error_W1": res["relative_weight_error"][0],
                     "fraction_above_g_max": res["fraction_above_g_max"], "max_g_over_g_max": res["max_g_over_g_max"],
                     "paper_no_calibration": PAPER_FIG6.get(p, {}).get("none", ""),
                     **{f"calibrated_{s}": res[f"calibration_{s}"]["mean"] for s in cfg.standards if f"calibration_{s}" in res},
                     "paper_calibration": PAPER_FIG6.get(p, {}).get("calibration", "")})
    run.write_csv("mapping.csv", rows)
    _plot_mapping(run, rows, software, cfg)
    record_mlp_cost(run, model, data, cfg.crossbar)
    return {"software_accuracy": round(software, 3), "rows": rows}


def _plot_mapping(run: RunFolder, rows: list[dict], software: float, cfg: MappingStudyConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    n = len(cfg.defect_percents)
    width = 0.8 / n
    for j, p in enumerate(cfg.defect_percents):
        rs = [r for r in rows if r["defect_percent"] == p]
        xs = [i + j * width for i in range(len(rs))]
        ax.bar(xs, [r["mean"] for r in rs], width, yerr=[r["std"] for r in rs], capsize=2, label=f"{p:g} % defects",
               color=f"C{j}")
        if p in PAPER_FIG6:
            ax.axhline(PAPER_FIG6[p]["none"], color=f"C{j}", ls=":", label=f"paper, no calibration, {p:g} %")
    ax.axhline(software, color="gray", ls="--", label=f"software {software:.2f} %")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(cfg.variants))])
    ax.set_xticklabels(cfg.variants, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("test accuracy (%), no compensation")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    run.save_figure(fig, "mapping.png")


@dataclass
class ThresholdStudyConfig(SoftwareMLPConfig, CostConfig):
    """The threshold's trade-off (paper §1.2): accuracy vs device writes, for the output and update gates."""

    defect_percent: float = 10
    thresholds: list[float] = field(default_factory=lambda: [0.0, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1])
    gates: list[str] = field(default_factory=lambda: ["update", "output", "both"])
    beta: float = 0.5
    sigma_low: float = 0.6
    sigma_high: float = 1.0
    clip: bool = True
    trials: int = 20
    seed: int = 0
    crossbar: CrossbarConfig = field(default_factory=CrossbarConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    insitu: InSituConfig = field(default_factory=lambda: InSituConfig(epochs=1, n_train=10000))

    def __post_init__(self) -> None:
        super().__post_init__()  # model, data, trials, seed, beta/sigma checks
        check_number(self.defect_percent, "defect_percent", 0, 100)
        check(isinstance(self.gates, list) and len(self.gates) >= 1 and len(set(self.gates)) == len(self.gates),
              "gates", self.gates, "needs at least one gate, each once")
        for g in self.gates:
            check(g in ("output", "update", "both", "none"), "gates", g, "each gate must be output, update, both or none")
        check_values(self.thresholds, "thresholds", 0, None)
        self.check_subsets()


@experiment(
    "calibration-threshold",
    "Calibration paper: in-situ threshold trade-off at one defect percent — accuracy vs device writes per gate",
    ThresholdStudyConfig,
    quick=dict(n_train=3000, n_test=1000, epochs=2, trials=2, thresholds=[0.0, 0.1], insitu={"n_train": 600},
               calibration={"n_samples": 2000}),
)
def run_threshold(cfg: ThresholdStudyConfig, run: RunFolder) -> dict:
    from ..nn import convert

    data = load_dataset(cfg.dataset, n_train=cfg.n_train, n_test=cfg.n_test)
    model = software_mlp(run, data, cfg.sizes, cfg.epochs, cfg.lr, cfg.batch_size, cfg.seed, cfg.activation)
    defect = _defect(cfg.defect_percent, cfg.beta, cfg.sigma_low, cfg.sigma_high, cfg.clip)
    xcfg = dataclasses.replace(cfg.crossbar, nonidealities=[*cfg.crossbar.nonidealities, defect])
    seed = cfg.seed * 100003 + 1

    def base():
        hw = convert(model, xcfg, trials=cfg.trials, seed=seed)
        none = summary(accuracy(hw, data.x_test, data.y_test))  # before calibrate(), which swaps hw's layers in place
        cal = calibrate(hw, model, data.x_train, cfg.calibration, inplace=True)
        return {"none": none, "calibration": summary(accuracy(cal, data.x_test, data.y_test))}

    ref = run.checkpoint("threshold_base", base)
    rows, writes = [], []
    for gate in cfg.gates:
        for th in tqdm(cfg.thresholds, desc=f"gate={gate}"):
            def point():
                hw = convert(model, xcfg, trials=cfg.trials, seed=seed)
                cal = calibrate(hw, model, data.x_train, cfg.calibration, inplace=True)
                st = insitu_train(cal, data.x_train, data.y_train, dataclasses.replace(cfg.insitu, gate=gate, threshold=th),
                                  progress=False)
                return {"accuracy": summary(accuracy(cal, data.x_test, data.y_test)),
                        "writes_per_device_mean": st["writes_per_device_mean"], "writes_per_device_max": st["writes_per_device_max"],
                        "gated_fraction": st["history"][-1]["gated_fraction_mean"] if st["history"] else 0.0,
                        "epochs_run": st["epochs_run"]}
            res = run.checkpoint(f"threshold_{gate}_{value_key(th)}", point)
            writes.append({"label": f"in-situ, gate={gate}, threshold={th:g}",  # writes: one pulse each
                           "pulses_per_device": res["writes_per_device_mean"]})
            rows.append({"gate": gate, "threshold": th, **res["accuracy"], "writes_per_device_mean": round(res["writes_per_device_mean"], 3),
                         "writes_per_device_max": res["writes_per_device_max"], "gated_fraction": res["gated_fraction"]})
    run.write_csv("threshold.csv", rows)
    _plot_threshold(run, rows, ref, cfg)
    record_mlp_cost(run, model, data, cfg.crossbar, training=writes)
    return {"before_insitu": ref, "rows": rows}


def _plot_threshold(run: RunFolder, rows: list[dict], ref: dict, cfg: ThresholdStudyConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    for j, gate in enumerate(cfg.gates):
        rs = [r for r in rows if r["gate"] == gate]
        xs = [max(r["threshold"], 1e-4) for r in rs]
        a1.errorbar(xs, [r["mean"] for r in rs], yerr=[r["std"] for r in rs], marker="o", capsize=3, color=f"C{j}", label=f"gate={gate}")
        a2.plot(xs, [r["writes_per_device_mean"] for r in rs], marker="o", color=f"C{j}", label=f"gate={gate}")
    a1.axhline(ref["calibration"]["mean"], ls=":", color="gray", label="calibration only")
    for a in (a1, a2):
        a.set_xscale("log")
        a.set_xlabel("threshold (0 plotted at 1e-4)")
        a.grid(alpha=0.3)
        a.legend(fontsize=7)
    a1.set_ylabel("test accuracy (%)")
    a2.set_ylabel("writes per device (mean)")
    fig.suptitle(f"{cfg.defect_percent:g} % defects, {cfg.trials} arrays", fontsize=10)
    run.save_figure(fig, "threshold.png")
