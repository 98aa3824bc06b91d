"""DTGA experiments: in-situ training of VTEAM-pair MLPs, baseline vs Dynamic Threshold + Gradient Accumulation.

* ``dtga-mnist`` / ``dtga-fashion`` — accuracy per epoch, pulses, energy, wall and programming time,
  baseline vs DTGA (paper: MNIST 82.98 % → 96.15 %, Fashion-MNIST 75.58 % → 82.53 %, −7 % time on F-MNIST);
* ``dtga-noise`` — final accuracy vs noise factor η (D2D = P2P) for both schemes, both datasets, both
  P2P noise modes (paper: DTGA tolerates η = 0.03 on MNIST, 0.02 on Fashion-MNIST);
* ``dtga-ablation`` — baseline / DT / GA / DTGA and the alternative DT rules on one dataset.

Every scheme of a comparison starts from the same devices, the same initial weights and sees the same
mini-batches; only the update rule differs. Monte Carlo trials (and the noise sweep's η values) are
one batched model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass, field

import torch

from ..config import check, to_dict
from ..devices.vteam import Variability
from ..methods.dtga import DT_RULES, SCHEMES, DTGAConfig, InSituMLP, PulsedLinear, train_insitu
from .common import CostConfig, load_data, record_cost
from .runner import RunFolder, experiment

PAPER = {
    "mnist": {"baseline": 82.98, "dtga": 96.15, "noise_tolerance": 0.03},
    "fashion-mnist": {"baseline": 75.58, "dtga": 82.53, "noise_tolerance": 0.02, "time_reduction_percent": 7.0},
}


@dataclass
class DTGACompareConfig(CostConfig):
    """Baseline vs DTGA (or any schemes) on one dataset; ``noise`` is the paper's noise factor η."""

    dataset: str = "mnist"
    schemes: list[str] = field(default_factory=lambda: ["baseline", "dtga"])
    epochs: int = 8
    n_train: int | None = None
    n_test: int | None = None
    noise: float = 0.01
    trials: int = 2
    seed: int = 0
    threads: int = 1
    insitu: DTGAConfig = field(default_factory=DTGAConfig)

    def __post_init__(self) -> None:
        check(self.dataset in ("mnist", "fashion-mnist"), "dataset", self.dataset, "must be 'mnist' or 'fashion-mnist'")
        for s in self.schemes:
            check(s in SCHEMES, "schemes", s, f"each must be one of {list(SCHEMES)}")
        check(self.epochs >= 1, "epochs", self.epochs, "must be >= 1")
        check(self.trials >= 1, "trials", self.trials, "must be >= 1")
        check(0 <= self.noise < 1, "noise", self.noise, "must lie in [0, 1)")


@contextlib.contextmanager
def _threads(n: int):
    """Intra-op threads for a run, restored afterwards. The pulse update is elementwise-bound; on a
    shared 2-core machine one thread avoids OpenMP contention (see docs/dtga.md, speed)."""
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, min(n, 2)))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _with_scheme(insitu: DTGAConfig, scheme: str, **rule) -> DTGAConfig:
    return dataclasses.replace(insitu, update=dataclasses.replace(insitu.update, scheme=scheme, **rule))


def _train(run: RunFolder, key: str, insitu: DTGAConfig, data, epochs: int, trials: int, seed: int,
           noise, desc: str) -> list[dict]:
    """Train one batched model (resumable per key); returns the per-epoch history."""

    def go():
        torch.manual_seed(seed)
        model = InSituMLP(insitu, trials=trials, seed=seed, noise=noise)
        init = model.accuracy(data.x_test, data.y_test)
        hist = train_insitu(model, data.x_train, data.y_train, data.x_test, data.y_test, epochs, seed=seed + 1,
                            desc=desc)
        return {"initial_accuracy": init.tolist(), "history": hist}

    return run.checkpoint(key, go)


def record_dtga_cost(run: RunFolder, insitu: DTGAConfig, seed: int, noise, x: torch.Tensor, training: list[dict]) -> None:
    """The inference cost of the VTEAM-pair MLP as first programmed (the trained conductances are not
    kept) and the write cost of the training runs from their recorded pulses (and VTEAM pulse energy)."""
    record_cost(run, lambda: InSituMLP(insitu, trials=1, seed=seed, noise=noise), x,
                "the VTEAM-pair MLP at its initial programming (before in-situ training)", training=training)


def training_writes(label: str, res: dict, trials: int) -> dict:
    hist = res["history"]
    return {"label": label, "pulses": sum(h["pulses"] for h in hist), "trials": trials,
            "recorded_energy_j": sum(h["energy"] for h in hist) if all("energy" in h for h in hist) else None}


def _summary(values: list[float]) -> dict:
    t = torch.tensor(values, dtype=torch.float64) * 100
    return {"mean": round(float(t.mean()), 3), "std": round(float(t.std()) if t.numel() > 1 else 0.0, 3),
            "min": round(float(t.min()), 3), "max": round(float(t.max()), 3), "trials": t.numel()}


def _scheme_row(name: str, res: dict) -> dict:
    hist = res["history"]
    last = hist[-1]
    return {
        "scheme": name,
        "final_accuracy": _summary(last["accuracy"]),
        "best_epoch_accuracy_mean": round(100 * max(h["accuracy_mean"] for h in hist), 3),
        "pulses": sum(h["pulses"] for h in hist),
        "set_pulses": sum(h["set"] for h in hist),
        "reset_pulses": sum(h["reset"] for h in hist),
        "energy_J": sum(h["energy"] for h in hist),
        "program_time_s": sum(h["program_time"] for h in hist),
        "wall_s": round(sum(h["wall_s"] for h in hist), 3),
        "trials": len(last["accuracy"]),
    }


def _compare(cfg: DTGACompareConfig, run: RunFolder) -> dict:
    with _threads(cfg.threads):
        return _compare_body(cfg, run)


def _compare_body(cfg: DTGACompareConfig, run: RunFolder) -> dict:
    data = load_data(cfg.dataset, cfg.n_train, cfg.n_test)
    rows, curves, results = [], {}, {}
    for scheme in cfg.schemes:
        res = results[scheme] = _train(run, f"{cfg.dataset}_{scheme}", _with_scheme(cfg.insitu, scheme), data, cfg.epochs, cfg.trials,
                     cfg.seed, cfg.noise, f"{cfg.dataset} {scheme}")
        rows.append(_scheme_row(scheme, res))
        curves[scheme] = [100 * a for a in ([sum(res["initial_accuracy"]) / len(res["initial_accuracy"])] +
                                           [h["accuracy_mean"] for h in res["history"]])]
    csv_rows = []
    for scheme in cfg.schemes:
        for h in results[scheme]["history"]:
            csv_rows.append({"scheme": scheme, "epoch": h["epoch"], "accuracy_mean": round(100 * h["accuracy_mean"], 3),
                             "accuracy_trials": " ".join(f"{100 * a:.2f}" for a in h["accuracy"]),
                             "pulses": h["pulses"], "set": h["set"], "reset": h["reset"], "energy_J": h["energy"],
                             "program_time_s": h["program_time"], "wall_s": round(h["wall_s"], 3),
                             "fired_fraction": round(h["fired_fraction"], 5),
                             "train_loss_mean": round(sum(h["loss"]) / len(h["loss"]), 5)})
    run.write_csv("epochs.csv", csv_rows)
    run.write_csv("summary.csv", [{k: (v["mean"] if isinstance(v, dict) else v) for k, v in r.items()} for r in rows])
    record_dtga_cost(run, cfg.insitu, cfg.seed, cfg.noise, data.x_test,
                 [training_writes(s, results[s], cfg.trials) for s in cfg.schemes])
    by = {r["scheme"]: r for r in rows}
    out = {"dataset": cfg.dataset, "data_source": data.source, "noise": cfg.noise, "schemes": rows,
           "paper": PAPER[cfg.dataset]}
    if "baseline" in by and "dtga" in by:
        b, d = by["baseline"], by["dtga"]
        out["dtga_vs_baseline"] = {
            "accuracy_gain_points": round(d["final_accuracy"]["mean"] - b["final_accuracy"]["mean"], 3),
            "pulse_change_percent": round(100 * (d["pulses"] / max(b["pulses"], 1) - 1), 2),
            "program_time_change_percent": round(100 * (d["program_time_s"] / max(b["program_time_s"], 1e-30) - 1), 2),
            "wall_time_change_percent": round(100 * (d["wall_s"] / max(b["wall_s"], 1e-9) - 1), 2),
        }
    _plot_curves(run, curves, cfg)
    _plot_costs(run, rows, cfg.dataset)
    return out


def _plot_curves(run: RunFolder, curves: dict, cfg: DTGACompareConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (scheme, acc) in enumerate(curves.items()):
        ax.plot(range(len(acc)), acc, marker="o", ms=3, color=f"C{i}", label=f"{scheme} ({acc[-1]:.2f} %)")
        if scheme in PAPER[cfg.dataset]:
            ax.axhline(PAPER[cfg.dataset][scheme], ls=":", color=f"C{i}", label=f"paper {scheme} {PAPER[cfg.dataset][scheme]} %")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"test accuracy (%, mean of {cfg.trials} trials)")
    ax.set_title(f"in-situ training on VTEAM pairs, {cfg.dataset}, η = {cfg.noise}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    run.save_figure(fig, "accuracy_vs_epoch.png")


def _plot_costs(run: RunFolder, rows: list[dict], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["scheme"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
    for ax, key, label in zip(axes, ("pulses", "program_time_s", "wall_s"),
                              ("programming pulses", "programming time (s, row-parallel)", "simulation wall time (s)")):
        ax.bar(names, [r[key] for r in rows], color=[f"C{i}" for i in range(len(rows))])
        ax.set_title(label, fontsize=9)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.suptitle(title, fontsize=10)
    run.save_figure(fig, "costs.png")


_QUICK = dict(n_train=2000, n_test=500, epochs=1, trials=1)


@experiment("dtga-mnist", "In-situ training on VTEAM pairs, MNIST: baseline vs DTGA (accuracy, pulses, time)",
            DTGACompareConfig, quick=_QUICK)
def run_dtga_mnist(cfg: DTGACompareConfig, run: RunFolder) -> dict:
    return _compare(cfg, run)


@dataclass
class DTGAFashionConfig(DTGACompareConfig):
    dataset: str = "fashion-mnist"


@experiment("dtga-fashion", "In-situ training on VTEAM pairs, Fashion-MNIST: baseline vs DTGA (accuracy, pulses, time)",
            DTGAFashionConfig, quick=_QUICK)
def run_dtga_fashion(cfg: DTGAFashionConfig, run: RunFolder) -> dict:
    return _compare(cfg, run)


# ============================================================================ robustness
@dataclass
class DTGANoiseConfig(CostConfig):
    """Final accuracy vs noise factor η (D2D = P2P = η); each (dataset, P2P mode, scheme) is one model
    whose trials carry the different η values."""

    datasets: list[str] = field(default_factory=lambda: ["mnist", "fashion-mnist"])
    noise_factors: list[float] = field(default_factory=lambda: [0.0, 0.01, 0.02, 0.03, 0.04, 0.05])
    p2p_modes: list[str] = field(default_factory=lambda: ["multiplicative", "additive"])
    schemes: list[str] = field(default_factory=lambda: ["baseline", "dtga"])
    epochs: int = 2
    n_train: int | None = 30000
    n_test: int | None = None
    trials: int = 1
    seed: int = 0
    threads: int = 1
    insitu: DTGAConfig = field(default_factory=DTGAConfig)

    def __post_init__(self) -> None:
        for d in self.datasets:
            check(d in ("mnist", "fashion-mnist"), "datasets", d, "each must be 'mnist' or 'fashion-mnist'")
        for m in self.p2p_modes:
            check(m in ("multiplicative", "additive"), "p2p_modes", m, "each must be 'multiplicative' or 'additive'")
        for s in self.schemes:
            check(s in SCHEMES, "schemes", s, f"each must be one of {list(SCHEMES)}")
        for eta in self.noise_factors:
            check(0 <= eta < 1, "noise_factors", eta, "each must lie in [0, 1)")
        check(len(self.noise_factors) >= 1, "noise_factors", self.noise_factors, "need at least one value")
        check(self.epochs >= 1, "epochs", self.epochs, "must be >= 1")
        check(self.trials >= 1, "trials", self.trials, "must be >= 1")


@experiment("dtga-noise", "Robustness: final accuracy vs noise factor 0-0.05 (D2D+P2P), baseline vs DTGA, both datasets",
            DTGANoiseConfig, quick=dict(datasets=["mnist"], noise_factors=[0.0, 0.05], p2p_modes=["additive"],
                                        n_train=1000, n_test=300, epochs=1))
def run_dtga_noise(cfg: DTGANoiseConfig, run: RunFolder) -> dict:
    with _threads(cfg.threads):
        return _noise_body(cfg, run)


def _noise_body(cfg: DTGANoiseConfig, run: RunFolder) -> dict:
    etas = [float(e) for e in cfg.noise_factors for _ in range(cfg.trials)]
    rows, writes = [], []
    for dataset in cfg.datasets:
        data = load_data(dataset, cfg.n_train, cfg.n_test)
        for mode in cfg.p2p_modes:
            insitu = dataclasses.replace(cfg.insitu, variability=dataclasses.replace(cfg.insitu.variability, p2p_mode=mode))
            for scheme in cfg.schemes:
                res = _train(run, f"{dataset}_{mode}_{scheme}", _with_scheme(insitu, scheme), data, cfg.epochs,
                             len(etas), cfg.seed, etas, f"{dataset} {mode} {scheme}")
                acc = res["history"][-1]["accuracy"]
                writes.append(training_writes(f"{dataset} {mode} {scheme}", res, len(etas)))
                for k, eta in enumerate(cfg.noise_factors):
                    vals = acc[k * cfg.trials:(k + 1) * cfg.trials]
                    rows.append({"dataset": dataset, "p2p_mode": mode, "scheme": scheme, "noise": eta,
                                 **_summary(vals)})
    run.write_csv("accuracy_vs_noise.csv", rows)
    record_dtga_cost(run, cfg.insitu, cfg.seed, cfg.noise_factors[0], data.x_test, writes)
    tolerance = _tolerance(rows)
    _plot_noise(run, rows, cfg)
    return {"points": rows, "tolerance": tolerance, "paper": {d: PAPER[d]["noise_tolerance"] for d in PAPER},
            "tolerance_rule": "largest η whose mean accuracy stays within 2 points of the η = 0 accuracy"}


def _tolerance(rows: list[dict], drop: float = 2.0) -> list[dict]:
    """Largest η (before the first failure) whose accuracy is within ``drop`` points of η = 0."""
    out = []
    keys = sorted({(r["dataset"], r["p2p_mode"], r["scheme"]) for r in rows})
    for key in keys:
        pts = sorted((r["noise"], r["mean"]) for r in rows if (r["dataset"], r["p2p_mode"], r["scheme"]) == key)
        ref = pts[0][1]
        tol = pts[0][0]
        for eta, acc in pts:
            if acc < ref - drop:
                break
            tol = eta
        out.append({"dataset": key[0], "p2p_mode": key[1], "scheme": key[2], "tolerated_noise": tol})
    return out


def _plot_noise(run: RunFolder, rows: list[dict], cfg: DTGANoiseConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cfg.datasets), figsize=(5.5 * len(cfg.datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], cfg.datasets):
        i = 0
        for mode in cfg.p2p_modes:
            for scheme in cfg.schemes:
                pts = [r for r in rows if r["dataset"] == dataset and r["p2p_mode"] == mode and r["scheme"] == scheme]
                ax.errorbar([r["noise"] for r in pts], [r["mean"] for r in pts], yerr=[r["std"] for r in pts],
                            marker="o", capsize=2, color=f"C{i}", ls="-" if mode == "multiplicative" else "--",
                            label=f"{scheme}, P2P {mode}")
                i += 1
        ax.axvline(PAPER[dataset]["noise_tolerance"], color="gray", ls=":", label="paper's DTGA tolerance")
        ax.set_xlabel("noise factor η (D2D = P2P)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(dataset)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    run.save_figure(fig, "accuracy_vs_noise.png")


# ============================================================================ ablation
@dataclass
class DTGAAblationConfig(CostConfig):
    """baseline / DT / GA / DTGA, plus DTGA with each alternative DT rule (``dt_rules``).

    ``validation=N`` holds out the last N training images and reports accuracy on them instead of the
    test set (for choosing hyper-parameters without looking at the test set)."""

    dataset: str = "mnist"
    schemes: list[str] = field(default_factory=lambda: ["baseline", "dt", "ga", "dtga"])
    dt_rules: list[str] = field(default_factory=lambda: ["device", "layer", "decay"])
    epochs: int = 4
    n_train: int | None = None
    n_test: int | None = None
    validation: int | None = None
    noise: float = 0.01
    trials: int = 1
    seed: int = 0
    threads: int = 1
    insitu: DTGAConfig = field(default_factory=DTGAConfig)

    def __post_init__(self) -> None:
        check(self.dataset in ("mnist", "fashion-mnist"), "dataset", self.dataset, "must be 'mnist' or 'fashion-mnist'")
        for s in self.schemes:
            check(s in SCHEMES, "schemes", s, f"each must be one of {list(SCHEMES)}")
        for r in self.dt_rules:
            check(r in ("device", "layer", "decay"), "dt_rules", r, "each must be 'device', 'layer' or 'decay'")
        check(self.epochs >= 1, "epochs", self.epochs, "must be >= 1")
        check(self.trials >= 1, "trials", self.trials, "must be >= 1")


@experiment("dtga-ablation", "Ablation on VTEAM pairs: baseline / DT only / GA only / DTGA, and the DT rule alternatives",
            DTGAAblationConfig, quick=dict(_QUICK, dt_rules=["layer"]))
def run_dtga_ablation(cfg: DTGAAblationConfig, run: RunFolder) -> dict:
    with _threads(cfg.threads):
        return _ablation_body(cfg, run)


def _ablation_body(cfg: DTGAAblationConfig, run: RunFolder) -> dict:
    data = load_data(cfg.dataset, cfg.n_train, cfg.n_test)
    if cfg.validation:
        check(cfg.validation < len(data.x_train), "validation", cfg.validation, "must be below the number of training images")
        v = cfg.validation
        data = dataclasses.replace(data, x_train=data.x_train[:-v], y_train=data.y_train[:-v], x_test=data.x_train[-v:],
                                   y_test=data.y_train[-v:], source=data.source + f" (validation: last {v} training images)")
    variants = [(s, {}) for s in cfg.schemes]
    default_rule = cfg.insitu.update.dt_rule
    variants += [("dtga", {"dt_rule": r}) for r in cfg.dt_rules if r != default_rule or "dtga" not in cfg.schemes]
    rows, writes = [], []
    for scheme, rule in variants:
        name = scheme if not rule else f"{scheme} ({rule['dt_rule']})"
        if scheme in ("dt", "dtga") and not rule:
            name = f"{scheme} ({default_rule})"
        key = f"{cfg.dataset}_{scheme}" + (f"_{rule['dt_rule']}" if rule else "")
        res = _train(run, key, _with_scheme(cfg.insitu, scheme, **rule), data, cfg.epochs, cfg.trials, cfg.seed,
                     cfg.noise, name)
        rows.append(_scheme_row(name, res))
        writes.append(training_writes(name, res, cfg.trials))
    record_dtga_cost(run, cfg.insitu, cfg.seed, cfg.noise, data.x_test, writes)
    run.write_csv("ablation.csv", [{k: (v["mean"] if isinstance(v, dict) else v) for k, v in r.items()} for r in rows])
    _plot_costs(run, rows, f"ablation, {cfg.dataset}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    ax.bar([r["scheme"] for r in rows], [r["final_accuracy"]["mean"] for r in rows],
           yerr=[r["final_accuracy"]["std"] for r in rows], color=[f"C{i}" for i in range(len(rows))], capsize=3)
    lo = min(r["final_accuracy"]["min"] for r in rows)
    ax.set_ylim(max(0, lo - 5), 100)
    ax.set_ylabel("final test accuracy (%)")
    ax.tick_params(axis="x", labelrotation=25, labelsize=8)
    ax.set_title(f"ablation on {cfg.dataset} ({cfg.epochs} epochs, {cfg.trials} trials)")
    run.save_figure(fig, "ablation.png")
    return {"dataset": cfg.dataset, "data_source": data.source, "evaluated_on": "validation" if cfg.validation else "test",
            "rows": rows, "insitu": to_dict(cfg.insitu)}


# ============================================================================ regime map
@dataclass
class DTGARegimeConfig(CostConfig):
    """Where does DTGA's gain over the fixed-threshold baseline appear? A grid of learning rate ×
    fixed threshold θ (units of the nominal one-pulse weight step Δw₀) × write-pulse width (pulse size;
    with the default device 10 ns moves the state by 1 % of its range, and the step scales with the
    width), each cell trained with every scheme. θ only enters the fixed-threshold schemes (baseline,
    GA); DT and DTGA run once per (lr, width) and each rule in ``dt_rules``.

    Accuracies are measured on ``validation`` images held out from the *end* of the training set (the
    models train on the first ``n_train``), so any choice read off the map never sees the test set;
    the test accuracy is recorded beside it.
    """

    dataset: str = "mnist"
    lrs: list[float] = field(default_factory=lambda: [0.5, 2.0, 8.0])
    thresholds: list[float] = field(default_factory=lambda: [0.5, 2.0, 8.0])
    pulse_widths: list[float] = field(default_factory=lambda: [10e-9, 40e-9])
    schemes: list[str] = field(default_factory=lambda: ["baseline", "dt", "ga", "dtga"])
    dt_rules: list[str] = field(default_factory=lambda: ["device", "layer"])
    epochs: int = 3
    n_train: int = 10000
    validation: int = 10000
    n_test: int | None = None
    noise: float = 0.01
    trials: int = 1
    seed: int = 0
    threads: int = 1
    insitu: DTGAConfig = field(default_factory=DTGAConfig)

    def __post_init__(self) -> None:
        check(self.dataset in ("mnist", "fashion-mnist"), "dataset", self.dataset, "must be 'mnist' or 'fashion-mnist'")
        for key in ("lrs", "thresholds", "pulse_widths"):
            vals = getattr(self, key)
            check(len(vals) >= 1, key, vals, "need at least one value")
            for v in vals:
                check(math.isfinite(v) and v > 0 if key != "thresholds" else math.isfinite(v) and v >= 0, key, v,
                      "each must be > 0" if key != "thresholds" else "each must be >= 0 (units of Δw₀)")
        for s in self.schemes:
            check(s in SCHEMES, "schemes", s, f"each must be one of {list(SCHEMES)}")
        for r in self.dt_rules:
            check(r in DT_RULES, "dt_rules", r, f"each must be one of {list(DT_RULES)}")
        check(self.n_train >= 1 and self.validation >= 1, "n_train", self.n_train,
              "n_train and validation must both be >= 1")
        check(self.epochs >= 1, "epochs", self.epochs, "must be >= 1")
        check(self.trials >= 1, "trials", self.trials, "must be >= 1")
        check(0 <= self.noise < 1, "noise", self.noise, "must lie in [0, 1)")


def _variants(cfg: DTGARegimeConfig) -> list[tuple[str, dict, bool]]:
    """(name, update-rule overrides, depends on θ) for every scheme and DT rule of the map."""
    out = []
    for scheme in cfg.schemes:
        if scheme in ("dt", "dtga"):
            out += [(f"{scheme} ({r})", {"scheme": scheme, "dt_rule": r}, r == "decay") for r in cfg.dt_rules]
        else:
            out.append((scheme, {"scheme": scheme}, True))
    return out


@experiment("dtga-regime", "Regime map: lr x fixed threshold x pulse size -> baseline, DT, GA, DTGA (validation accuracy)",
            DTGARegimeConfig, quick=dict(lrs=[0.5, 2.0], thresholds=[0.5, 8.0], pulse_widths=[10e-9],
                                         dt_rules=["device"], n_train=2000, validation=500, n_test=500, epochs=1))
def run_dtga_regime(cfg: DTGARegimeConfig, run: RunFolder) -> dict:
    with _threads(cfg.threads):
        return _regime_body(cfg, run)


def _regime_body(cfg: DTGARegimeConfig, run: RunFolder) -> dict:
    full = load_data(cfg.dataset, None, cfg.n_test)
    n_all = len(full.x_train)
    check(cfg.n_train + cfg.validation <= n_all, "validation", cfg.validation,
          f"n_train + validation must not exceed the {n_all} training images")
    x_tr, y_tr = full.x_train[: cfg.n_train], full.y_train[: cfg.n_train]
    x_val, y_val = full.x_train[-cfg.validation:], full.y_train[-cfg.validation:]
    rows, done_all = [], {}
    for width in cfg.pulse_widths:
        device = dataclasses.replace(cfg.insitu.device, write=dataclasses.replace(cfg.insitu.device.write, width=width))
        for lr in cfg.lrs:
            done: dict[str, dict] = {}
            for theta in cfg.thresholds:
                for name, rule, uses_theta in _variants(cfg):
                    key = f"w{width:g}_lr{lr:g}_" + (f"th{theta:g}_" if uses_theta else "") + name.replace(" ", "").replace("(", "_").replace(")", "")
                    if key not in done:
                        insitu = dataclasses.replace(cfg.insitu, lr=lr, device=device,
                                                     update=dataclasses.replace(cfg.insitu.update, threshold=theta, **rule))

                        def go(insitu=insitu, name=name):
                            torch.manual_seed(cfg.seed)
                            model = InSituMLP(insitu, trials=cfg.trials, seed=cfg.seed, noise=cfg.noise)
                            hist = train_insitu(model, x_tr, y_tr, full.x_test, full.y_test, cfg.epochs,
                                                seed=cfg.seed + 1, desc=f"{name} lr {lr:g}", progress=False,
                                                x_val=x_val, y_val=y_val)
                            return {"history": hist}

                        res = run.checkpoint(key, go)
                        last = res["history"][-1]
                        done[key] = {
                            "val": _summary(last["val_accuracy"]), "test": _summary(last["accuracy"]),
                            "pulses": sum(h["pulses"] for h in res["history"]),
                            "reads": sum(h.get("reads", 0) for h in res["history"]),
                            "wall_s": round(sum(h["wall_s"] for h in res["history"]), 3)}
                        done_all[key] = done[key]
                    d = done[key]
                    rows.append({"pulse_width_ns": round(width * 1e9, 6), "lr": lr, "threshold": theta, "variant": name,
                                 "val_accuracy": d["val"]["mean"], "val_std": d["val"]["std"],
                                 "test_accuracy": d["test"]["mean"], "pulses": d["pulses"], "reads": d["reads"],
                                 "wall_s": d["wall_s"]})
    run.write_csv("regime.csv", rows)
    record_dtga_cost(run, cfg.insitu, cfg.seed, cfg.noise, full.x_test,
                 [{"label": k, "pulses": d["pulses"], "trials": cfg.trials} for k, d in done_all.items()])
    names = [n for n, _, _ in _variants(cfg)]
    gains = _regime_gains(rows, names)
    _plot_regime(run, rows, cfg, names)
    dw0 = {f"{w * 1e9:g} ns": _dw0_of(cfg.insitu, w) for w in cfg.pulse_widths}
    return {"dataset": cfg.dataset, "evaluated_on": f"validation: last {cfg.validation} training images",
            "trained_on": f"first {cfg.n_train} training images", "points": rows, "gains": gains,
            "dw0_per_width": dw0, "paper": PAPER[cfg.dataset]}


def _dw0_of(insitu: DTGAConfig, width: float) -> list[float]:
    """The nominal one-pulse weight step Δw₀ of each layer at this pulse width (θ's unit)."""
    dev = dataclasses.replace(insitu.device, write=dataclasses.replace(insitu.device.write, width=width))
    return [PulsedLinear(2, 2, True, insitu.layer_mapping(i), dev, Variability(), 1, None, None, torch.Generator(),
                         insitu.v_read).dw0 for i in range(len(insitu.w_max))]


def _regime_gains(rows: list[dict], names: list[str]) -> list[dict]:
    """Per grid cell: each variant's validation accuracy and its gain over the baseline (points)."""
    out = []
    cells = sorted({(r["pulse_width_ns"], r["lr"], r["threshold"]) for r in rows})
    for cell in cells:
        here = {r["variant"]: r["val_accuracy"] for r in rows if (r["pulse_width_ns"], r["lr"], r["threshold"]) == cell}
        row = {"pulse_width_ns": cell[0], "lr": cell[1], "threshold": cell[2], **{n: here.get(n) for n in names}}
        if "baseline" in here:
            for n in names:
                if n != "baseline" and n in here:
                    row[f"{n} - baseline"] = round(here[n] - here["baseline"], 3)
        out.append(row)
    return out


def _plot_regime(run: RunFolder, rows: list[dict], cfg: DTGARegimeConfig, names: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = sorted({r["pulse_width_ns"] for r in rows})
    fig, axes = plt.subplots(len(widths), len(names), figsize=(2.6 * len(names) + 1, 2.4 * len(widths) + 0.6),
                             squeeze=False)
    lo = min(r["val_accuracy"] for r in rows)
    for i, w in enumerate(widths):
        for j, name in enumerate(names):
            ax = axes[i][j]
            grid = torch.full((len(cfg.lrs), len(cfg.thresholds)), float("nan"))
            for r in rows:
                if r["pulse_width_ns"] == w and r["variant"] == name:
                    grid[cfg.lrs.index(r["lr"]), cfg.thresholds.index(r["threshold"])] = r["val_accuracy"]
            im = ax.imshow(grid.numpy(), origin="lower", cmap="viridis", vmin=lo, vmax=100, aspect="auto")
            for a in range(grid.shape[0]):
                for b in range(grid.shape[1]):
                    ax.text(b, a, f"{float(grid[a, b]):.1f}", ha="center", va="center", fontsize=7,
                            color="white" if float(grid[a, b]) < (lo + 100) / 2 else "black")
            ax.set_xticks(range(len(cfg.thresholds)), [f"{t:g}" for t in cfg.thresholds], fontsize=7)
            ax.set_yticks(range(len(cfg.lrs)), [f"{v:g}" for v in cfg.lrs], fontsize=7)
            if i == len(widths) - 1:
                ax.set_xlabel("fixed θ (× Δw₀)", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"lr  (pulse {w:g} ns)", fontsize=8)
            if i == 0:
                ax.set_title(name, fontsize=9)
    fig.colorbar(im, ax=axes, shrink=0.8, label="validation accuracy (%)")
    fig.suptitle(f"DTGA regime map, {cfg.dataset}, {cfg.epochs} epochs on {cfg.n_train} images, η = {cfg.noise}",
                 fontsize=10, y=1.03)
    run.save_figure(fig, "regime.png")


# ============================================================================ the same rule as an optimizer
@dataclass
class DTGAOptimizerConfig(DTGACompareConfig):
    """The DTGA trainer (:class:`InSituMLP`) vs the :class:`~memristive.methods.analog_optim.DTGA` optimizer on
    a converted model of the same network (its biases as array rows, :class:`~memristive.nn.AppendOne`),
    same initial weights, devices (VTEAM pairs, ``insitu.mapping``/``w_max``), lr and mini-batches, per scheme.
    The optimizer's writer has no VTEAM variability, so it runs noise-free; the trainer runs at every η of
    ``trainer_noise`` (0 = the optimizer's conditions; ``noise``, the published setting, for reference)."""

    trainer_noise: list[float] = field(default_factory=lambda: [0.0, 0.01])

    def __post_init__(self) -> None:
        super().__post_init__()
        for eta in self.trainer_noise:
            check(0 <= eta < 1, "trainer_noise", eta, "each must lie in [0, 1)")


def converted_twin(model: InSituMLP, insitu: DTGAConfig, trials: int):
    """A converted ``nn.Sequential`` holding ``model``'s current weights (trial 0) on crossbars of the same
    device and mappings: AppendOne → Linear(in+1, out, bias=False) → activation → …"""
    from torch import nn

    from ..crossbar import CrossbarConfig
    from ..nn import AppendOne, convert

    acts = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh}
    check(insitu.activation in acts, "insitu.activation", insitu.activation, f"must be one of {sorted(acts)} here")
    check(insitu.bias, "insitu.bias", insitu.bias, "must be true here (the bias is an array row)")
    layers, names = [], []
    for i, layer in enumerate(model.layers):
        lin = nn.Linear(layer.in_features + 1, layer.out_features, bias=False)
        with torch.no_grad():
            lin.weight.copy_(layer.weights()[0].t())
        names.append(str(len(layers) + 1))
        layers += [AppendOne(), lin] + ([acts[insitu.activation]()] if i < len(model.layers) - 1 else [])
    cfgs = {n: CrossbarConfig(memristor=insitu.device, mapping=insitu.layer_mapping(i), v_read=insitu.v_read)
            for i, n in enumerate(names)}
    return convert(nn.Sequential(*layers), cfgs[names[0]], trials=trials, layer_configs=cfgs)


def train_dtga_optimizer(insitu: DTGAConfig, data, epochs: int, trials: int, seed: int, desc: str = "DTGA optimizer") -> dict:
    """The optimizer's run, on the batches ``_train`` gives the trainer (shuffle seed ``seed + 1``)."""
    import time

    from tqdm.auto import tqdm

    from ..methods.analog_optim import DTGA, trial_loss

    torch.manual_seed(seed)
    model = converted_twin(InSituMLP(insitu, trials=trials, seed=seed), insitu, trials)
    opt = DTGA(model, lr=insitu.lr, update=insitu.update, seed=seed)

    @torch.no_grad()
    def accuracy():
        correct = torch.zeros(trials, dtype=torch.float64)
        for i in range(0, len(data.x_test), 2000):
            correct += (model(data.x_test[i : i + 2000]).argmax(-1) == data.y_test[i : i + 2000]).sum(-1).double()
        return (correct / len(data.x_test)).tolist()

    init = accuracy()
    gen = torch.Generator().manual_seed(seed + 1)
    hist = []
    bs = insitu.batch_size
    for e in range(epochs):
        t0 = time.perf_counter()
        before = opt.totals()
        perm = torch.randperm(len(data.x_train), generator=gen)
        for i in tqdm(range(0, len(perm), bs), desc=f"{desc} epoch {e + 1}", leave=False):
            idx = perm[i : i + bs]
            opt.zero_grad()
            trial_loss(model(data.x_train[idx]), data.y_train[idx]).backward()
            opt.step()
        opt.new_epoch()
        tot = opt.totals()
        acc = accuracy()
        hist.append({"epoch": e + 1, "accuracy": acc, "accuracy_mean": sum(acc) / len(acc),
                     "pulses": tot["pulses"] - before["pulses"], "set": tot["set"] - before["set"],
                     "reset": tot["reset"] - before["reset"], "energy": tot["energy"] - before["energy"],
                     "wall_s": time.perf_counter() - t0})
    opt.close()
    return {"initial_accuracy": init, "history": hist}


@experiment("dtga-optimizer", "The DTGA trainer vs the DTGA optimizer on a converted model (same net, devices, batches)",
            DTGAOptimizerConfig, quick=_QUICK)
def run_dtga_optimizer(cfg: DTGAOptimizerConfig, run: RunFolder) -> dict:
    with _threads(cfg.threads):
        data = load_data(cfg.dataset, cfg.n_train, cfg.n_test)
        rows, writes = [], []
        for scheme in cfg.schemes:
            insitu = _with_scheme(cfg.insitu, scheme)
            runs = {f"trainer, η = {eta:g}": _train(run, f"{scheme}_trainer_{eta:g}", insitu, data, cfg.epochs, cfg.trials,
                                                    cfg.seed, eta, f"{scheme} trainer η={eta:g}")
                    for eta in cfg.trainer_noise}
            runs["optimizer, η = 0"] = run.checkpoint(f"{scheme}_optimizer", lambda: train_dtga_optimizer(
                insitu, data, cfg.epochs, cfg.trials, cfg.seed, f"{scheme} optimizer"))
            for label, res in runs.items():
                writes.append(training_writes(f"{scheme}, {label}", res, cfg.trials))
                hist = res["history"]
                rows.append({"scheme": scheme, "run": label, **{k: v for k, v in _summary(hist[-1]["accuracy"]).items()},
                             "accuracy_trials": " ".join(f"{100 * a:.2f}" for a in hist[-1]["accuracy"]),
                             "epoch_means": " ".join(f"{100 * h['accuracy_mean']:.2f}" for h in hist),
                             "pulses": sum(h["pulses"] for h in hist), "set": sum(h["set"] for h in hist),
                             "reset": sum(h["reset"] for h in hist), "energy_J": sum(h["energy"] for h in hist),
                             "wall_s": round(sum(h["wall_s"] for h in hist), 1)})
        run.write_csv("summary.csv", rows)
        record_dtga_cost(run, cfg.insitu, cfg.seed, 0.0, data.x_test, writes)
        return {"dataset": cfg.dataset, "n_train": cfg.n_train, "epochs": cfg.epochs, "rows": rows}
