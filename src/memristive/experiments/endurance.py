"""``memristive run endurance`` — what wear costs in-situ training: accuracy, pulses and failed devices.

The DTGA in-situ trainer (:mod:`memristive.methods.dtga`, VTEAM differential pairs, 784×100×10 sigmoid
MLP) trains the same devices, initial weights and mini-batches once without endurance (the reference)
and once per entry of ``endurances`` (:class:`memristive.endurance.Endurance`): every pulse is charged
to the pulsed device, whose window narrows past ``n_th`` pulses and which sticks past its failure
count. The controller is not told (it plans with a fresh device's model). Endurance parameters are
illustrative (chosen low enough that a short run wears the array), not a fit to a device.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from ..config import check, to_dict
from ..endurance import Endurance
from ..methods.dtga import SCHEMES, DTGAConfig, InSituMLP, train_insitu
from .common import CostConfig, load_data
from .dtga import record_dtga_cost, training_writes
from .folder import RunFolder
from .registry import experiment


G_C = 1 / 55e3  # the 'dtga' VTEAM preset's mid-state conductance: R midway between R_on = 10 kΩ and R_off = 100 kΩ


def _default_endurances() -> list[Endurance]:
    # fail_mean 1e9: no failure within this run (run configs must be finite, so not inf).
    # Two convergence points: the mid *state* (R midway, where the balanced-state pairs sit) and the
    # Endurance default, the conductance midpoint (far above the pairs on this device).
    never = dict(p=0.5, fail_mean=1e9)
    return ([Endurance(n_th=n, g_c=G_C, **never) for n in (100.0, 10.0, 1.0)]
            + [Endurance(n_th=100.0, p=0.5, g_c=G_C, fail_mean=30.0, fail_sigma=0.5, stuck="hrs")]
            + [Endurance(n_th=n, **never) for n in (1000.0, 100.0, 10.0)])


@dataclass
class EnduranceConfig(CostConfig):
    """In-situ training (DTGA rule ``scheme``) without and with each endurance of ``endurances``."""

    dataset: str = "mnist"
    scheme: str = "dtga"
    endurances: list[Endurance] = field(default_factory=_default_endurances)
    epochs: int = 2
    n_train: int | None = 20000
    n_test: int | None = None
    noise: float = 0.01
    trials: int = 4
    seed: int = 0
    threads: int = 1
    insitu: DTGAConfig = field(default_factory=DTGAConfig)

    def __post_init__(self) -> None:
        check(self.dataset in ("mnist", "fashion-mnist"), "dataset", self.dataset, "must be 'mnist' or 'fashion-mnist'")
        check(self.scheme in SCHEMES, "scheme", self.scheme, f"must be one of {list(SCHEMES)}")
        check(len(self.endurances) >= 1, "endurances", self.endurances, "need at least one endurance model")
        check(self.epochs >= 1, "epochs", self.epochs, "must be >= 1")
        check(self.trials >= 1, "trials", self.trials, "must be >= 1")
        check(0 <= self.noise < 1, "noise", self.noise, "must lie in [0, 1)")
        check(isinstance(self.threads, int) and self.threads >= 1, "threads", self.threads, "must be an integer >= 1")
        check(self.insitu.endurance is None, "insitu.endurance", self.insitu.endurance,
              "must be null here: the experiment sets it from 'endurances' (the reference runs without)")


def _label(e: Endurance | None) -> str:
    if e is None:
        return "none"
    fail = "no failures" if e.fail_mean >= 1e9 else f"fails ~{e.fail_mean:g} ({e.stuck})"
    g_c = "" if e.g_c is None else f", g_c={e.g_c:.3g} S"
    return f"n_th={e.n_th:g}, p={e.p:g}{g_c}, {fail}"


def _train(run: RunFolder, key: str, insitu: DTGAConfig, data, cfg: EnduranceConfig, desc: str) -> dict:
    def go():
        torch.manual_seed(cfg.seed)
        model = InSituMLP(insitu, trials=cfg.trials, seed=cfg.seed, noise=cfg.noise)
        hist = train_insitu(model, data.x_train, data.y_train, data.x_test, data.y_test, cfg.epochs,
                            seed=cfg.seed + 1, desc=desc)
        devices = sum(layer.crossbar.g_pos[0].numel() * (1 if layer.single else 2) for layer in model.layers)
        return {"history": hist, "endurance": model.endurance_stats(), "devices_per_trial": devices}

    return run.checkpoint(key, go)


@experiment("endurance", "In-situ training (DTGA, VTEAM pairs) on devices that wear: accuracy, pulses, failures vs endurance",
            EnduranceConfig, quick=dict(n_train=1000, n_test=300, epochs=1, trials=1,
                                        endurances=[{"n_th": 3.0, "p": 0.5, "fail_mean": 20.0}]))
def run_endurance(cfg: EnduranceConfig, run: RunFolder) -> dict:
    old = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _body(cfg, run)
    finally:
        torch.set_num_threads(old)


def _body(cfg: EnduranceConfig, run: RunFolder) -> dict:
    data = load_data(cfg.dataset, cfg.n_train, cfg.n_test)
    base = dataclasses.replace(cfg.insitu, update=dataclasses.replace(cfg.insitu.update, scheme=cfg.scheme))
    rows, curves, writes = [], {}, []
    for i, end in enumerate([None, *cfg.endurances]):
        label = _label(end)
        res = _train(run, f"{cfg.dataset}_{i}", dataclasses.replace(base, endurance=end), data, cfg,
                     f"{cfg.scheme} {label}")
        hist = res["history"]
        acc = torch.tensor(hist[-1]["accuracy"], dtype=torch.float64) * 100
        wear = res["endurance"] or {}
        pulses = sum(h["pulses"] for h in hist)
        n_dev = res["devices_per_trial"]
        rows.append({
            "endurance": label,
            "n_th": end.n_th if end else None, "p": end.p if end else None,
            "fail_mean": end.fail_mean if end else None,
            "accuracy_mean": round(float(acc.mean()), 3),
            "accuracy_std": round(float(acc.std()) if acc.numel() > 1 else 0.0, 3),
            "pulses_per_device_mean": round(pulses / (n_dev * cfg.trials), 3),
            "pulses_per_device_max": wear.get("pulses_per_device_max"),
            "window_fraction_mean": round(wear["window_fraction_mean"], 4) if wear else 1.0,
            "failed_fraction": round(wear["failed_fraction"], 5) if wear else 0.0,
            "energy_J": sum(h["energy"] for h in hist),
        })
        curves[label] = [100 * h["accuracy_mean"] for h in hist]
        writes.append(training_writes(label, res, cfg.trials))
    record_dtga_cost(run, base, cfg.seed, cfg.noise, data.x_test, writes)
    run.write_csv("endurance.csv", rows)
    _plot(run, curves, cfg)
    ref = rows[0]["accuracy_mean"]
    return {"dataset": cfg.dataset, "scheme": cfg.scheme, "rows": rows,
            "accuracy_drop_points": {r["endurance"]: round(ref - r["accuracy_mean"], 3) for r in rows[1:]},
            "endurances": [to_dict(e) for e in cfg.endurances]}


def _plot(run: RunFolder, curves: dict, cfg: EnduranceConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    for i, (label, acc) in enumerate(curves.items()):
        ax.plot(range(1, len(acc) + 1), acc, marker="o", ms=3, color=f"C{i}", label=f"{label} ({acc[-1]:.2f} %)")
    ax.set_xticks(range(1, cfg.epochs + 1))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"test accuracy (%, mean of {cfg.trials} trials)")
    ax.set_title(f"in-situ training ({cfg.scheme}) on wearing VTEAM pairs, {cfg.dataset}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    run.save_figure(fig, "accuracy_vs_epoch.png")
