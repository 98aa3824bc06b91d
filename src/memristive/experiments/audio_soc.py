"""The lightweight memristor GRU's other two tasks (Hua et al., JEIT, doi 10.11999/JEIT260152).

* ``urbansound-bits`` -- urban sound classification, accuracy vs weight/activation bit width 2–16
  (the paper's Table 1).
* ``urbansound-snr``  -- the same task with white (or pink) noise added to the *test* audio at
  −10, −5, 0, 5, 10 dB SNR, full precision vs 6 bit (the paper's Table 3).
* ``soc``             -- lithium-ion state-of-charge estimation on FUDS at 0 / 25 / 45 °C, RMSE vs bit
  width (the paper's Table 5).

Data: the real UrbanSound8K / CALCE files are used when present (``dataset=urbansound8k``, or
``auto`` finds it); otherwise the **offline substitutes** of :mod:`memristive.data.urbansound` and
:mod:`memristive.data.battery` — results on them are *not* comparable with the paper's numbers, and
every results file says which data were used (``data_source``).

Pipeline (:mod:`memristive.methods.qat`): train the :class:`memristive.nn.GRUNet` in full precision,
then for every bit width ``b`` fine-tune a copy with quantization-aware training (symmetric
per-channel weights, asymmetric activations, both ``b`` bits; STE) and Gaussian weight noise of
relative device variation ``noise_sigma`` re-sampled on every forward pass (the paper's "weight
noising"). Each model is reported (a) in software, as in the paper's tables, and (b) programmed on
1T1R differential crossbars (:func:`memristive.nn.gru.convert_gru`) with device variation
``eval_variation`` over ``trials`` Monte Carlo instances at once.

Choices where the paper is silent (documented in ``docs/audio-and-soc.md``): the network size
(default 2 × 64 GRU for sound, 1 × 32 for SOC: small enough for a 2-core CPU; the paper's implied
20 → 4 × 256 GRU is a config change away), 40 MFCCs at 22.05 kHz / 2048 / 512 pooled ×4 to 43 steps,
one held-out fold (fold 10; ``test_folds`` runs the full 10-fold cross-validation), SOC windows of
60 steps × 2 s with one model for all temperatures (temperature is an input), and white test noise.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import ConfigError, check
from ..crossbar import CrossbarConfig
from ..data.audio import FeatureConfig, extract_features, make_noise, mix_at_snr
from ..data.battery import BatterySimConfig, SOCRun, make_windows, soc_runs
from ..data.urbansound import (
    CLASSES,
    SoundSet,
    SubstituteConfig,
    load_sound_dataset,
    mfcc_stats_baseline,
    sound_features,
)
from ..methods.qat import SequenceTask, TrainConfig, predict, quantize_finetune, train_model
from ..nn.gru import GRUNet, convert_gru
from ..nonideal import DeviceVariation
from ..quant import QuantConfig, WeightNoise
from .common import CostConfig, record_cost, summary
from .runner import RunFolder, experiment

# ------------------------------------------------------------------------------ the paper's numbers
PAPER_TABLE1 = {2: 12.01, 3: 36.96, 4: 51.26, 5: 78.15, 6: 92.68, 7: 93.59, 8: 93.71, 16: 93.82}
PAPER_TABLE1_FP = 93.94
PAPER_TABLE3 = {-10: (34.44, 38.79), -5: (69.91, 70.25), 0: (79.52, 85.24), 5: (84.04, 87.30), 10: (92.11, 90.96)}
PAPER_TABLE5 = {  # RMSE % at 0 / 25 / 45 °C
    "fp": (1.26, 0.58, 0.56), 16: (1.57, 0.62, 0.52), 8: (1.39, 0.58, 0.52), 7: (1.55, 0.73, 0.75),
    6: (1.48, 0.79, 0.74), 5: (2.64, 1.86, 1.76), 4: (13.33, 10.50, 11.75), 3: (22.62, 23.37, 24.29),
    2: (22.24, 22.81, 23.82),
}
PAPER_TABLE5_MEMRISTOR_GRU_REF = (2.18, 1.36, 1.23)  # the paper's reference [20] row
PAPER_TEMPS = (0.0, 25.0, 45.0)


# ------------------------------------------------------------------------------ shared pieces
@dataclass
class GRUModel:
    """``layers`` × ``hidden`` GRU + linear head (see :class:`memristive.nn.GRUNet`)."""

    hidden: int = 64
    layers: int = 2
    layout: Literal["fused", "split"] = "fused"

    def __post_init__(self) -> None:
        check(self.hidden >= 1, "model.hidden", self.hidden, "must be >= 1")
        check(self.layers >= 1, "model.layers", self.layers, "must be >= 1")


def _check_bits(bits: list[int]) -> None:
    check(len(bits) > 0, "bits", bits, "needs at least one bit width")
    for b in bits:
        check(isinstance(b, int) and 2 <= b <= 16, "bits", b, "each bit width must be an integer in [2, 16]")


def _threads(n: int) -> None:
    # the GRU runs many small ops per time step; one thread avoids OpenMP spin-wait collapse on a busy CPU
    if n > 0:
        torch.set_num_threads(n)


def _train_fp(run: RunFolder, task: SequenceTask, model: GRUModel, fp: TrainConfig, seed: int) -> GRUNet:
    def make() -> GRUNet:
        torch.manual_seed(seed)
        return GRUNet(task.input_size, model.hidden, model.layers, task.num_outputs, readout=task.readout,
                      layout=model.layout)

    def train():
        net = make()
        losses = train_model(net, task, fp, seed=seed, desc="full precision")
        return {"state": net.state_dict(), "losses": losses}

    net = make()
    net.load_state_dict(run.checkpoint_torch("fp_model", train)["state"])
    return net.eval()


def _train_qat(run: RunFolder, fp_net: GRUNet, task: SequenceTask, bits: int, noise: WeightNoise | None,
               qat: TrainConfig, seed: int) -> GRUNet:
    quant = QuantConfig(weight_bits=bits)

    def train():
        return {"state": quantize_finetune(fp_net, task, quant, noise, qat, seed=seed, desc=f"QAT {bits} bit").state_dict()}

    net = copy.deepcopy(fp_net).set_quant(quant, None)
    net.load_state_dict(run.checkpoint_torch(f"qat_{bits}bit", train)["state"])
    return net.eval()


def _noise(sigma: float, crossbar: CrossbarConfig) -> WeightNoise | None:
    return WeightNoise.for_crossbar(sigma, crossbar=crossbar) if sigma > 0 else None


def _crossbar_outputs(net: GRUNet, x: torch.Tensor, crossbar: CrossbarConfig, variation: float, trials: int,
                      seed: int) -> torch.Tensor:
    """``(T, N, out)`` outputs of ``net`` programmed on ``trials`` crossbars with device variation."""
    xcfg = crossbar
    if variation > 0:
        xcfg = dataclasses.replace(crossbar, nonidealities=[*crossbar.nonidealities, DeviceVariation(variation)])
    hw = convert_gru(net, xcfg, trials=trials, seed=seed)
    with torch.no_grad():
        return predict(hw, x, batch_size=max(16, 4096 // trials))


def _plot_setup():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ====================================================================================== sound
@dataclass
class SoundConfig(CostConfig):
    """Urban sound classification with the memristor GRU (shared by both sound experiments)."""

    dataset: Literal["auto", "urbansound8k", "substitute"] = "auto"
    data_root: str | None = None
    sample_rate: int = 22050
    duration: float = 4.0
    substitute: SubstituteConfig = field(default_factory=SubstituteConfig)
    features: FeatureConfig = field(default_factory=lambda: FeatureConfig(kind="mfcc", n_mfcc=40, pool=4))
    test_folds: list[int] = field(default_factory=lambda: [10])
    model: GRUModel = field(default_factory=GRUModel)
    fp: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=30, lr=3e-3, batch_size=64))
    qat: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=4, lr=1e-3, batch_size=64))
    noise_sigma: float = 0.05
    eval_variation: float = 0.05
    trials: int = 5
    crossbar: CrossbarConfig = field(default_factory=CrossbarConfig)
    threads: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        for nested, name in ((self.features, "features"), (self.substitute, "substitute")):
            d = type(nested)()
            for k in ("sample_rate", "duration"):
                own = getattr(nested, k)
                if own != getattr(d, k) and own != getattr(self, k):
                    raise ConfigError(f"{name}.{k}={own!r}: set '{k}' at the top level (it is {getattr(self, k)!r})")
        self.features = dataclasses.replace(self.features, sample_rate=self.sample_rate, duration=self.duration)
        self.substitute = dataclasses.replace(self.substitute, sample_rate=self.sample_rate, duration=self.duration)
        check(len(self.test_folds) >= 1, "test_folds", self.test_folds, "needs at least one fold")
        for f in self.test_folds:
            check(1 <= f <= 10, "test_folds", f, "each fold must lie in 1..10")
        check(self.noise_sigma >= 0, "noise_sigma", self.noise_sigma, "must be >= 0 (relative device variation)")
        check(self.eval_variation >= 0, "eval_variation", self.eval_variation, "must be >= 0")
        check(self.trials >= 1, "trials", self.trials, "must be >= 1")


def _sound_data(cfg: SoundConfig) -> tuple[SoundSet, torch.Tensor]:
    ds = load_sound_dataset(cfg.dataset, cfg.data_root, cfg.substitute, cfg.sample_rate, cfg.duration)
    return ds, sound_features(ds, cfg.features)


def _sound_task(ds: SoundSet, feats: torch.Tensor, fold: int) -> tuple[SequenceTask, torch.Tensor, torch.Tensor]:
    """Standardised train/test task for one held-out fold (+ its train mean/std)."""
    train, test = ds.split(fold)
    xtr, xte = feats[train], feats[test]
    mean, std = xtr.mean((0, 1)), xtr.std((0, 1)).clamp_min(1e-6)
    task = SequenceTask((xtr - mean) / std, ds.labels[train], (xte - mean) / std, ds.labels[test], "classification",
                        f"{ds.name} fold {fold}", num_outputs=len(CLASSES), info={"source": ds.source})
    return task, mean, std


def _acc(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Accuracy per trial in % for outputs ``(N, C)`` or ``(T, N, C)``."""
    if out.dim() == 2:
        out = out.unsqueeze(0)
    return 100 * (out.argmax(-1) == y.unsqueeze(0)).double().mean(1)


def _fold_run(run: RunFolder, fold: int, multi: bool) -> RunFolder:
    """A sub-run-folder per fold when cross-validating (keeps checkpoints apart)."""
    if not multi:
        return run
    sub = RunFolder(run.path / f"fold{fold}", run.name, run.config)
    sub.timings, sub.resumed = run.timings, run.resumed
    return sub


# ------------------------------------------------------------------------------ urbansound-bits
@dataclass
class UrbanSoundBitsConfig(SoundConfig):
    """Accuracy vs bit width (the paper's Table 1)."""

    bits: list[int] = field(default_factory=lambda: [2, 3, 4, 5, 6, 7, 8, 16])
    baseline: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_bits(self.bits)


_SOUND_QUICK = dict(
    dataset="substitute", duration=2.0, substitute=dict(clips_per_class=20, speech_pool=8),
    features=dict(n_mfcc=20, pool=8), model=dict(hidden=16, layers=1), fp=dict(epochs=4, batch_size=32),
    qat=dict(epochs=1, batch_size=64), trials=2,
)


@experiment(
    "urbansound-bits",
    "Memristor GRU on urban sound (UrbanSound8K or its offline substitute): accuracy vs bit width 2-16 (Table 1)",
    UrbanSoundBitsConfig,
    quick=dict(_SOUND_QUICK, bits=[3, 6, 16]),
)
def run_urbansound_bits(cfg: UrbanSoundBitsConfig, run: RunFolder) -> dict:
    _threads(cfg.threads)
    ds, feats = _sound_data(cfg)
    noise = _noise(cfg.noise_sigma, cfg.crossbar)
    per_fold = []
    for fold in cfg.test_folds:
        frun = _fold_run(run, fold, len(cfg.test_folds) > 1)
        task, _, _ = _sound_task(ds, feats, fold)
        fp_net = _train_fp(frun, task, cfg.model, cfg.fp, cfg.seed)
        fp_acc = float(_acc(predict(fp_net, task.x_test), task.y_test)[0])
        base = None
        if cfg.baseline:
            train, test = ds.split(fold)
            base = frun.checkpoint("baseline", lambda: 100 * mfcc_stats_baseline(feats, ds.labels, train, test, seed=cfg.seed))
        rows = []
        for b in tqdm(cfg.bits, desc=f"fold {fold}: bit widths"):
            def point(b=b):
                net = _train_qat(frun, fp_net, task, b, noise, cfg.qat, cfg.seed + 17 * b)
                sw = float(_acc(predict(net, task.x_test), task.y_test)[0])
                hw = _acc(_crossbar_outputs(net, task.x_test, cfg.crossbar, cfg.eval_variation, cfg.trials,
                                            cfg.seed * 7919 + b), task.y_test)
                return {"bits": b, "software": round(sw, 2), "crossbar": summary(hw / 100)}

            rows.append(frun.checkpoint(f"bits_{b}", point))
        if fold == cfg.test_folds[0]:
            b0 = cfg.bits[0]
            record_cost(run, lambda: convert_gru(_train_qat(frun, fp_net, task, b0, noise, cfg.qat, cfg.seed + 17 * b0),
                                                 cfg.crossbar, seed=cfg.seed), task.x_test,
                        f"the {b0}-bit QAT GRU of fold {fold} on the experiment's crossbar config, without eval_variation")
        per_fold.append({"fold": fold, "full_precision": round(fp_acc, 2), "baseline_mfcc_stats": base, "points": rows,
                         "confusion_fp": _confusion(predict(fp_net, task.x_test), task.y_test)})
    table = _bits_table(per_fold, cfg.bits)
    run.write_csv("results.csv", table)
    _plot_bits(run, table, per_fold, cfg, ds)
    fp_mean = float(np.mean([f["full_precision"] for f in per_fold]))
    return {
        "data_source": ds.source,
        "substitute": ds.substitute,
        "test_folds": cfg.test_folds,
        "full_precision": round(fp_mean, 2),
        "paper_full_precision": PAPER_TABLE1_FP,
        "baseline_mfcc_stats": (round(float(np.mean([f["baseline_mfcc_stats"] for f in per_fold])), 2)
                                if cfg.baseline else None),
        "table": table,
        "folds": per_fold,
        "classes": CLASSES,
        "train_noise_sigma": cfg.noise_sigma,
        "eval_variation": cfg.eval_variation,
    }


def _confusion(out: torch.Tensor, y: torch.Tensor) -> list[list[int]]:
    pred = out.argmax(-1)
    m = torch.zeros(len(CLASSES), len(CLASSES), dtype=torch.int64)
    m.index_put_((y, pred), torch.ones_like(y), accumulate=True)
    return m.tolist()


def _bits_table(per_fold: list[dict], bits: list[int]) -> list[dict]:
    table = []
    for b in bits:
        pts = [next(p for p in f["points"] if p["bits"] == b) for f in per_fold]
        table.append({
            "bits": b,
            "software": round(float(np.mean([p["software"] for p in pts])), 2),
            "crossbar_mean": round(float(np.mean([p["crossbar"]["mean"] for p in pts])), 2),
            "crossbar_std": round(float(np.mean([p["crossbar"]["std"] for p in pts])), 2),
            "paper": PAPER_TABLE1.get(b),
        })
    return table


def _plot_bits(run: RunFolder, table: list[dict], per_fold: list[dict], cfg: UrbanSoundBitsConfig, ds: SoundSet) -> None:
    plt = _plot_setup()
    xs = list(range(len(table)))
    fp = float(np.mean([f["full_precision"] for f in per_fold]))
    fig, ax = plt.subplots(figsize=(6.6, 4.2))
    ax.plot(xs, [r["software"] for r in table], "o-", label="this work: QAT + weight noise (software)")
    ax.errorbar(xs, [r["crossbar_mean"] for r in table], yerr=[r["crossbar_std"] for r in table], fmt="s--", capsize=3,
                label=f"this work: on crossbars, σ={cfg.eval_variation:g} ({cfg.trials} trials)")
    ax.plot(xs, [PAPER_TABLE1.get(r["bits"], float("nan")) for r in table], "k^:", label="paper, Table 1 (UrbanSound8K)")
    ax.axhline(fp, color="C0", ls=":", alpha=0.6, label=f"this work: full precision {fp:.2f} %")
    ax.axhline(PAPER_TABLE1_FP, color="k", ls=":", alpha=0.4, label=f"paper: full precision {PAPER_TABLE1_FP} %")
    base = [f["baseline_mfcc_stats"] for f in per_fold if f["baseline_mfcc_stats"] is not None]
    if base:
        ax.axhline(float(np.mean(base)), color="C3", ls="-.", alpha=0.6,
                   label=f"MFCC-statistics logistic regression {np.mean(base):.1f} %")
    ax.set_xticks(xs, [str(r["bits"]) for r in table])
    ax.set_xlabel("weight / activation bits")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(("SUBSTITUTE data (not UrbanSound8K)" if ds.substitute else "UrbanSound8K")
                 + f", test fold(s) {cfg.test_folds}", fontsize=9)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    run.save_figure(fig, "accuracy_vs_bits.png")


# ------------------------------------------------------------------------------ urbansound-snr
@dataclass
class UrbanSoundSNRConfig(SoundConfig):
    """Accuracy with noise added to the test audio at given SNRs, full precision vs ``bits`` (Table 3)."""

    snr_db: list[float] = field(default_factory=lambda: [-10.0, -5.0, 0.0, 5.0, 10.0])
    noise: Literal["white", "pink", "brown"] = "white"
    bits: int = 6

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_bits([self.bits])
        check(len(self.snr_db) >= 1, "snr_db", self.snr_db, "needs at least one SNR")
        for s in self.snr_db:
            check(-40 <= s <= 60, "snr_db", s, "each SNR must lie in [-40, 60] dB")


@experiment(
    "urbansound-snr",
    "Memristor GRU on urban sound with test noise at -10..10 dB SNR: full precision vs 6 bit (Table 3)",
    UrbanSoundSNRConfig,
    quick=dict(_SOUND_QUICK, snr_db=[-5.0, 10.0]),
)
def run_urbansound_snr(cfg: UrbanSoundSNRConfig, run: RunFolder) -> dict:
    _threads(cfg.threads)
    ds, feats = _sound_data(cfg)
    noise = _noise(cfg.noise_sigma, cfg.crossbar)
    per_fold = []
    for fold in cfg.test_folds:
        frun = _fold_run(run, fold, len(cfg.test_folds) > 1)
        task, mean, std = _sound_task(ds, feats, fold)
        fp_net = _train_fp(frun, task, cfg.model, cfg.fp, cfg.seed)
        q_net = _train_qat(frun, fp_net, task, cfg.bits, noise, cfg.qat, cfg.seed + 17 * cfg.bits)
        _, test = ds.split(fold)
        clean_audio: dict = {}

        def audio():
            if "x" not in clean_audio:
                clean_audio["x"] = ds.audio(test)
            return clean_audio["x"]

        rows = []
        for i, snr in enumerate(tqdm([None, *cfg.snr_db], desc=f"fold {fold}: SNR levels")):
            def point(snr=snr, i=i):
                if snr is None:
                    x = task.x_test
                else:
                    g = torch.Generator().manual_seed(cfg.seed * 1000 + fold * 10 + i)
                    clean = audio()
                    noisy = mix_at_snr(clean, make_noise(cfg.noise, clean.shape, generator=g), snr)
                    x = (extract_features(noisy, cfg.features, progress=False) - mean) / std
                res = {"snr_db": snr}
                for name, net in (("fp", fp_net), (f"{cfg.bits}bit", q_net)):
                    res[name] = round(float(_acc(predict(net, x), task.y_test)[0]), 2)
                    hw = _acc(_crossbar_outputs(net, x, cfg.crossbar, cfg.eval_variation, cfg.trials,
                                                cfg.seed * 7919 + i), task.y_test)
                    res[f"{name}_crossbar"] = summary(hw / 100)
                return res

            rows.append(frun.checkpoint(f"snr_{'clean' if snr is None else f'{snr:g}'}", point))
        if fold == cfg.test_folds[0]:
            record_cost(run, lambda: convert_gru(q_net, cfg.crossbar, seed=cfg.seed), task.x_test,
                        f"the {cfg.bits}-bit QAT GRU of fold {fold} on the experiment's crossbar config (clean test "
                        "features), without eval_variation")
        per_fold.append({"fold": fold, "points": rows})
    table = _snr_table(per_fold, cfg)
    run.write_csv("results.csv", table)
    _plot_snr(run, table, cfg, ds)
    return {"data_source": ds.source, "substitute": ds.substitute, "test_folds": cfg.test_folds, "noise": cfg.noise,
            "bits": cfg.bits, "table": table, "folds": per_fold, "train_noise_sigma": cfg.noise_sigma,
            "eval_variation": cfg.eval_variation}


def _snr_table(per_fold: list[dict], cfg: UrbanSoundSNRConfig) -> list[dict]:
    q = f"{cfg.bits}bit"
    table = []
    for snr in [None, *cfg.snr_db]:
        pts = [next(p for p in f["points"] if p["snr_db"] == snr) for f in per_fold]
        paper = PAPER_TABLE3.get(int(snr)) if snr is not None and float(snr).is_integer() else None
        table.append({
            "snr_db": "clean" if snr is None else snr,
            "fp": round(float(np.mean([p["fp"] for p in pts])), 2),
            q: round(float(np.mean([p[q] for p in pts])), 2),
            "fp_crossbar": round(float(np.mean([p["fp_crossbar"]["mean"] for p in pts])), 2),
            f"{q}_crossbar": round(float(np.mean([p[f"{q}_crossbar"]["mean"] for p in pts])), 2),
            "paper_fp": paper[0] if paper else (PAPER_TABLE1_FP if snr is None else None),
            "paper_6bit": paper[1] if paper else (PAPER_TABLE1[6] if snr is None else None),
        })
    return table


def _plot_snr(run: RunFolder, table: list[dict], cfg: UrbanSoundSNRConfig, ds: SoundSet) -> None:
    plt = _plot_setup()
    rows = [r for r in table if r["snr_db"] != "clean"]
    x = [r["snr_db"] for r in rows]
    q = f"{cfg.bits}bit"
    fig, ax = plt.subplots(figsize=(6.4, 4))
    ax.plot(x, [r["fp"] for r in rows], "o-", color="C0", label="this work: full precision")
    ax.plot(x, [r[q] for r in rows], "s-", color="C1", label=f"this work: {cfg.bits} bit (QAT + noise)")
    ax.plot(x, [r[f"{q}_crossbar"] for r in rows], "s--", color="C1", alpha=0.5,
            label=f"this work: {cfg.bits} bit on crossbars (σ={cfg.eval_variation:g})")
    px = [r["snr_db"] for r in rows if r["paper_fp"] is not None]
    ax.plot(px, [r["paper_fp"] for r in rows if r["paper_fp"] is not None], "k^:", label="paper: full precision")
    ax.plot(px, [r["paper_6bit"] for r in rows if r["paper_6bit"] is not None], "kv:", label="paper: 6 bit")
    ax.set_xlabel(f"test SNR (dB, {cfg.noise} noise)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(("SUBSTITUTE data (not UrbanSound8K)" if ds.substitute else "UrbanSound8K")
                 + f", test fold(s) {cfg.test_folds}", fontsize=9)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    run.save_figure(fig, "accuracy_vs_snr.png")


# ====================================================================================== SOC
@dataclass
class SOCConfig(CostConfig):
    """SOC estimation on FUDS at each temperature, RMSE vs bit width (the paper's Table 5)."""

    battery: BatterySimConfig = field(default_factory=BatterySimConfig)
    calce_files: list[str] = field(default_factory=list)
    calce_temperatures_c: list[float] = field(default_factory=list)
    calce_initial_soc: float = 0.8
    calce_capacity_ah: float = 2.0
    window: int = 60
    step_s: int = 2
    train_stride_s: int = 20
    test_stride_s: int = 10
    model: GRUModel = field(default_factory=lambda: GRUModel(hidden=32, layers=1))
    fp: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=40, lr=3e-3, batch_size=128))
    qat: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=6, lr=1e-3, batch_size=128))
    bits: list[int] = field(default_factory=lambda: [2, 3, 4, 5, 6, 7, 8, 16])
    noise_sigma: float = 0.05
    eval_variation: float = 0.05
    trials: int = 5
    crossbar: CrossbarConfig = field(default_factory=CrossbarConfig)
    threads: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        _check_bits(self.bits)
        check(self.window >= 2, "window", self.window, "must be >= 2 steps")
        check(self.step_s >= 1, "step_s", self.step_s, "must be >= 1 s")
        check(self.train_stride_s >= 1 and self.test_stride_s >= 1, "stride", (self.train_stride_s, self.test_stride_s),
              "strides must be >= 1 s")
        check(len(self.calce_files) == len(self.calce_temperatures_c), "calce_temperatures_c",
              self.calce_temperatures_c, f"needs one temperature per CALCE file ({len(self.calce_files)})")
        check(self.noise_sigma >= 0, "noise_sigma", self.noise_sigma, "must be >= 0")
        check(self.eval_variation >= 0, "eval_variation", self.eval_variation, "must be >= 0")
        check(self.trials >= 1, "trials", self.trials, "must be >= 1")


def _decimate(run: SOCRun, step: int) -> SOCRun:
    """Average every ``step`` consecutive 1 s samples (the GRU's time step is ``step`` seconds)."""
    if step == 1:
        return run
    n = len(run.time_s) // step * step

    def avg(a):
        return np.asarray(a[:n]).reshape(-1, step).mean(1)

    return SOCRun(avg(run.time_s), avg(run.current_a), avg(run.voltage_v), avg(run.temperature_c),
                  np.asarray(run.soc[:n]).reshape(-1, step)[:, -1], run.ambient_c, run.cycle, run.initial_soc,
                  run.capacity_ah, run.source)


def _soc_task(cfg: SOCConfig, runs: dict[str, list[SOCRun]]) -> tuple[SequenceTask, np.ndarray]:
    """Windows of (V, I, T) → SOC at the window's last step; returns the task and each test window's temperature."""
    train = [_decimate(r, cfg.step_s) for r in runs["train"]]
    test = [_decimate(r, cfg.step_s) for r in runs["test"]]
    st_tr = max(1, cfg.train_stride_s // cfg.step_s)
    st_te = max(1, cfg.test_stride_s // cfg.step_s)
    xtr, ytr, mean, std = make_windows(train, cfg.window, st_tr)
    parts = [make_windows([r], cfg.window, st_te, mean, std) for r in test]
    xte = torch.cat([p[0] for p in parts])
    yte = torch.cat([p[1] for p in parts])
    temps = np.concatenate([np.full(len(p[0]), r.ambient_c) for p, r in zip(parts, test)])
    task = SequenceTask(xtr, ytr[:, -1], xte, yte[:, -1], "regression", "soc", num_outputs=1, readout="last",
                        target_scale=100.0, target_unit="% SOC",
                        info={"source": test[0].source, "train_windows": len(xtr), "test_windows": len(xte),
                              "feature_mean": mean.tolist(), "feature_std": std.tolist()})
    return task, temps


def _rmse_by_temp(pred: torch.Tensor, y: torch.Tensor, temps: np.ndarray) -> dict:
    """RMSE in % SOC per temperature for predictions ``(N,)`` or ``(T, N)`` (→ per-trial summary)."""
    if pred.dim() == 1:
        pred = pred.unsqueeze(0)
    out = {}
    for tc in sorted(set(temps.tolist())):
        m = torch.from_numpy(temps == tc)
        rmse = 100 * ((pred[:, m] - y[m].unsqueeze(0)) ** 2).mean(1).sqrt()
        out[f"{tc:g}"] = rmse
    return out


def _squeeze(out: torch.Tensor) -> torch.Tensor:
    return out.squeeze(-1)


@experiment(
    "soc",
    "Memristor GRU SOC estimation on FUDS at 0/25/45 C (PyBaMM-simulated or CALCE files): RMSE vs bit width (Table 5)",
    SOCConfig,
    quick=dict(battery=dict(temperatures_c=[0.0, 25.0], train_cycles=["us06"], max_hours=0.25),
               window=20, step_s=4, train_stride_s=20, test_stride_s=20, model=dict(hidden=8),
               fp=dict(epochs=3, batch_size=128), qat=dict(epochs=1, batch_size=256), bits=[4, 8], trials=2),
)
def run_soc(cfg: SOCConfig, run: RunFolder) -> dict:
    _threads(cfg.threads)
    runs = soc_runs(cfg.battery)
    if cfg.calce_files:  # real CALCE FUDS files replace the simulated test set
        from ..data.battery import load_calce_fuds

        runs["test"] = [load_calce_fuds(p, cfg.calce_initial_soc, cfg.calce_capacity_ah, t)
                        for p, t in zip(cfg.calce_files, cfg.calce_temperatures_c)]
    task, temps = _soc_task(cfg, runs)
    noise = _noise(cfg.noise_sigma, cfg.crossbar)
    fp_net = _train_fp(run, task, cfg.model, cfg.fp, cfg.seed)
    fp_rmse = {k: round(float(v[0]), 3) for k, v in _rmse_by_temp(_squeeze(predict(fp_net, task.x_test)), task.y_test, temps).items()}
    rows = []
    for b in tqdm(cfg.bits, desc="bit widths"):
        def point(b=b):
            net = _train_qat(run, fp_net, task, b, noise, cfg.qat, cfg.seed + 17 * b)
            sw = _rmse_by_temp(_squeeze(predict(net, task.x_test)), task.y_test, temps)
            hw = _rmse_by_temp(_squeeze(_crossbar_outputs(net, task.x_test, cfg.crossbar, cfg.eval_variation,
                                                          cfg.trials, cfg.seed * 7919 + b)), task.y_test, temps)
            return {"bits": b, "software": {k: round(float(v[0]), 3) for k, v in sw.items()},
                    "crossbar": {k: summary(v / 100) for k, v in hw.items()}}

        rows.append(run.checkpoint(f"bits_{b}", point))
    b0 = cfg.bits[0]
    record_cost(run, lambda: convert_gru(_train_qat(run, fp_net, task, b0, noise, cfg.qat, cfg.seed + 17 * b0), cfg.crossbar,
                                         seed=cfg.seed), task.x_test,
                f"the {b0}-bit QAT GRU on the experiment's crossbar config, without eval_variation")
    table = _soc_table(fp_rmse, rows)
    run.write_csv("results.csv", table)
    _plot_soc(run, table, fp_net, task, temps, cfg)
    sim_source = runs["test"][0].source
    return {
        "data_source": sim_source,
        "substitute": not sim_source.startswith("CALCE"),
        "train_runs": [{"cycle": r.cycle, "temperature_c": r.ambient_c, "initial_soc": r.initial_soc,
                        "seconds": len(r.time_s), "final_soc": round(float(r.soc[-1]), 4)} for r in runs["train"]],
        "test_runs": [{"cycle": r.cycle, "temperature_c": r.ambient_c, "initial_soc": r.initial_soc,
                       "seconds": len(r.time_s), "final_soc": round(float(r.soc[-1]), 4)} for r in runs["test"]],
        "full_precision_rmse": fp_rmse,
        "table": table,
        "points": rows,
        "task": task.info,
        "train_noise_sigma": cfg.noise_sigma,
        "eval_variation": cfg.eval_variation,
    }


def _soc_table(fp_rmse: dict, rows: list[dict]) -> list[dict]:
    def paper(key, t):
        vals = PAPER_TABLE5.get(key)
        tf = float(t)
        return vals[PAPER_TEMPS.index(tf)] if vals and tf in PAPER_TEMPS else None

    table = [{"bits": "fp", **{f"rmse_{t}C": v for t, v in fp_rmse.items()},
              **{f"paper_{t}C": paper("fp", t) for t in fp_rmse}}]
    for r in sorted(rows, key=lambda r: -r["bits"]):
        table.append({"bits": r["bits"], **{f"rmse_{t}C": v for t, v in r["software"].items()},
                      **{f"crossbar_{t}C": r["crossbar"][t]["mean"] for t in r["crossbar"]},
                      **{f"paper_{t}C": paper(r["bits"], t) for t in r["software"]}})
    return table


def _plot_soc(run: RunFolder, table: list[dict], fp_net: GRUNet, task: SequenceTask, temps: np.ndarray,
              cfg: SOCConfig) -> None:
    plt = _plot_setup()
    tlist = sorted(set(temps.tolist()))
    rows = [r for r in table if r["bits"] != "fp"]
    xs = list(range(len(rows)))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    fp_row = next(r for r in table if r["bits"] == "fp")
    for i, tc in enumerate(tlist):
        ax.semilogy(xs, [r[f"rmse_{tc:g}C"] for r in rows], "o-", color=f"C{i}", label=f"this work {tc:g} °C")
        ax.axhline(fp_row[f"rmse_{tc:g}C"], color=f"C{i}", ls="--", lw=0.8, alpha=0.6)
        pp = [r.get(f"paper_{tc:g}C") for r in rows]
        if any(p is not None for p in pp):
            ax.semilogy(xs, [p if p is not None else float("nan") for p in pp], "^:", color=f"C{i}", alpha=0.6,
                        label=f"paper {tc:g} °C")
    ax.set_xticks(xs, [str(r["bits"]) for r in rows])
    ax.set_xlabel("weight / activation bits")
    ax.set_ylabel("SOC RMSE (%)")
    ax.set_title("FUDS SOC RMSE vs bits; dashed: full precision (simulated data)" if not task.info["source"].startswith("CALCE")
                 else "FUDS SOC RMSE vs bits (CALCE)", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax = axes[1]
    pred = _squeeze(predict(fp_net, task.x_test))
    for i, tc in enumerate(tlist):
        m = temps == tc
        t = np.arange(m.sum()) * cfg.test_stride_s / 3600
        ax.plot(t, 100 * task.y_test[m].numpy(), color=f"C{i}", lw=1)
        ax.plot(t, 100 * pred[m].numpy(), color=f"C{i}", lw=0.6, alpha=0.7, ls="--")
    ax.set_xlabel("time on FUDS (h)")
    ax.set_ylabel("SOC (%) — true (solid), full-precision GRU (dashed)")
    ax.grid(alpha=0.3)
    run.save_figure(fig, "soc_rmse_vs_bits.png")
