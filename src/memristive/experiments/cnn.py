"""``memristive run cnn-variation``: CNNs on crossbars, software vs hardware-aware training.

Two networks, the field's standard small benchmarks:

* **LeNet-5** on MNIST: conv 5×5 (6, padding 2) → ReLU → max-pool → conv 5×5 (16) → ReLU → max-pool →
  400 → 120 → 84 → 10 (ReLU), 61,706 weights;
* **a small ResNet** on Fashion-MNIST (CIFAR-10 when ``cifar-10-batches-py`` is in the data folder,
  ``resnet_dataset=auto``): conv 3×3 (w) + BN → three basic blocks (w, 2w, 4w channels, stride 1, 2, 2,
  1×1 projection shortcuts) → global average pool → linear, ``w = resnet_width`` (8 by default).

Each is trained in software (``epochs``, Adam), then fine-tuned for ``hwa_epochs`` two ways from the
same software model: *hardware-aware* (every step programs the weights onto fresh devices with
relative conductance variation ``train_variation``, :mod:`memristive.nn.train`) and, as the control
with the same extra epochs, on ideal arrays. All three are evaluated on ``trials`` Monte Carlo device
instances (the same instances for every model: the seed rule of :func:`memristive.nn.convert`) against

* device variation ``σ`` (multiplicative Gaussian on each conductance, ``{kind: variation}``),
* stuck-at faults, a fraction ``p`` of devices (half at G_min, half at G_max),
* ADC bits (per column, ideal devices; the converter auto-ranges per read).

Every layer is on crossbars (``digital_layers`` keeps named layers digital).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import check
from ..crossbar import Converter, CrossbarConfig
from ..data import load_dataset
from ..methods.software import accuracy
from ..nn import convert, micro_batch, program
from ..nn.train import train_classifier
from ..nonideal import DeviceVariation, StuckAt
from .common import CostConfig, record_cost, summary
from .runner import RunFolder, experiment

__all__ = ["lenet5", "small_resnet", "BasicBlock", "CNNVariationConfig"]

# software: trained in software; software_ft: + hwa_epochs on ideal arrays (the control);
# hardware_aware: + hwa_epochs hardware-aware on arrays with variation train_variation
MODELS = ("software", "software_ft", "hardware_aware")


def lenet5(in_channels: int = 1, classes: int = 10, size: int = 28) -> nn.Sequential:
    """LeNet-5 (ReLU, max-pool) for ``size×size`` inputs (28 → 400 features before the classifier)."""
    feat = ((size + 4 - 4) // 2 - 4) // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * feat * feat, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, classes))


class BasicBlock(nn.Module):
    """ResNet basic block: conv-BN-ReLU-conv-BN + shortcut (1×1 conv + BN when the shape changes), ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


def small_resnet(in_channels: int = 1, classes: int = 10, width: int = 8) -> nn.Sequential:
    """A ResNet-8: stem + 3 basic blocks (width, 2·width, 4·width) + pool + linear."""
    w = width
    return nn.Sequential(
        nn.Conv2d(in_channels, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
        BasicBlock(w, w, 1), BasicBlock(w, 2 * w, 2), BasicBlock(2 * w, 4 * w, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, classes))


@dataclass
class CNNVariationConfig(CostConfig):
    """LeNet-5 / small ResNet: software vs hardware-aware training under variation, faults, ADC bits."""

    networks: list[str] = field(default_factory=lambda: ["lenet5", "resnet"])
    lenet_dataset: str = "mnist"
    resnet_dataset: str = "auto"
    resnet_width: int = 8
    epochs: int = 3
    hwa_epochs: int = 1
    lr: float = 2e-3
    hwa_lr: float = 5e-4
    batch_size: int = 128
    train_variation: float = 0.3
    # sized for a shared 2-core CPU (about 45 minutes); widen the grids and n_test on a quiet machine
    variations: list[float] = field(default_factory=lambda: [0.0, 0.2, 0.3, 0.4])
    stuck_at: list[float] = field(default_factory=lambda: [0.01, 0.03])
    adc_bits: list[int] = field(default_factory=lambda: [4, 6])
    trials: int = 100
    n_train: int | None = 10000
    n_test: int | None = 300
    models: list[str] = field(default_factory=lambda: ["software_ft", "hardware_aware"])
    # inputs per forward pass in evaluation; "auto": memristive.nn.micro_batch (≤ 100), cache-sized
    # pieces of the T·B sample-instances on a CPU (same accuracies; about 2× faster at 100 instances)
    eval_batch: int | str = 100
    digital_layers: list[str] = field(default_factory=list)
    crossbar: CrossbarConfig = field(default_factory=CrossbarConfig)
    threads: int = 0
    seed: int = 0
    # seed of the Monte Carlo device instances (None: derived from `seed`); a sweep over it with one
    # trained model splits many instances into independent points (benchmarks/anchors/sweep-resnet.yaml)
    instance_seed: int | None = None
    # a software model's state dict (torch.save) to evaluate instead of training one (one network only)
    software_checkpoint: str | None = None

    def __post_init__(self) -> None:
        for n in self.networks:
            check(n in ("lenet5", "resnet"), "networks", n, "each network must be 'lenet5' or 'resnet'")
        check(self.lenet_dataset in ("mnist", "fashion-mnist", "cifar10"), "lenet_dataset", self.lenet_dataset,
              "must be mnist, fashion-mnist or cifar10")
        check(self.resnet_dataset in ("auto", "mnist", "fashion-mnist", "cifar10"), "resnet_dataset",
              self.resnet_dataset, "must be auto (CIFAR-10 when present, else Fashion-MNIST), mnist, fashion-mnist or cifar10")
        check(self.resnet_width >= 1, "resnet_width", self.resnet_width, "must be >= 1")
        check(self.epochs >= 1, "epochs", self.epochs, "must be >= 1")
        check(self.hwa_epochs >= 1, "hwa_epochs", self.hwa_epochs, "must be >= 1")
        check(self.lr > 0 and self.hwa_lr > 0, "lr/hwa_lr", (self.lr, self.hwa_lr), "must be > 0")
        check(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")
        check(self.eval_batch == "auto" or (isinstance(self.eval_batch, int) and not isinstance(self.eval_batch, bool)
                                            and self.eval_batch >= 1),
              "eval_batch", self.eval_batch, "must be an integer >= 1 or 'auto'")
        check(0 <= self.train_variation < 1, "train_variation", self.train_variation, "a relative σ in [0, 1)")
        for v in self.variations:
            check(0 <= v < 1, "variations", v, "each variation is a relative σ in [0, 1)")
        for p in self.stuck_at:
            check(0 <= p <= 1, "stuck_at", p, "each stuck-at fraction must lie in [0, 1]")
        for b in self.adc_bits:
            check(isinstance(b, int) and 2 <= b <= 32, "adc_bits", b, "each ADC width must be an integer in [2, 32]")
        check(self.trials >= 1, "trials", self.trials, "must be >= 1")
        for m in self.models:
            check(m in MODELS, "models", m, f"each model must be one of {list(MODELS)}")
        if self.instance_seed is not None:
            check(isinstance(self.instance_seed, int) and not isinstance(self.instance_seed, bool)
                  and self.instance_seed >= 0, "instance_seed", self.instance_seed, "must be an integer >= 0 (or null)")
        if self.software_checkpoint is not None:
            check(len(self.networks) == 1, "software_checkpoint", self.software_checkpoint,
                  f"needs exactly one network in 'networks' (got {self.networks})")
            software_state_file(self.software_checkpoint, self.networks[0])  # exists, unambiguous


def software_state_file(path: str, network: str):
    """The file behind ``software_checkpoint``: a state-dict file, or a cnn-variation run folder holding
    exactly one trained ``{network}_software.pt`` (``points/<config hash>/``)."""
    from pathlib import Path

    from ..config import ConfigError

    p = Path(str(path))
    if p.is_dir():
        found = sorted(p.glob(f"points/*/{network}_software.pt"))
        if len(found) != 1:
            raise ConfigError(f"software_checkpoint={str(path)!r}: a run folder must hold exactly one "
                              f"points/*/{network}_software.pt (found {len(found)})")
        return found[0]
    check(p.is_file(), "software_checkpoint", str(path),
          "must be an existing state-dict file or a cnn-variation run folder that trained this network")
    return p


def _dataset(name: str, n_train, n_test):
    if name == "cifar10":
        from ..data.cifar import load_cifar10

        data = load_cifar10()
        shape = (3, 32, 32)
    else:
        data = load_dataset(name)
        shape = (1, 28, 28)
    if n_train or n_test:
        data = data.subset(n_train, n_test)
    return data, shape


def _resnet_dataset(cfg: CNNVariationConfig) -> str:
    if cfg.resnet_dataset != "auto":
        return cfg.resnet_dataset
    from ..data.cifar import cifar10_dir
    from ..data.mnist import DataError

    try:
        cifar10_dir()
        return "cifar10"
    except DataError:
        return "fashion-mnist"


def _augment_flip(xb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    flip = torch.rand(len(xb), generator=gen) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1).to(xb.device), xb.flip(-1), xb)


def _eval_points(cfg: CNNVariationConfig) -> list[tuple[str, float, CrossbarConfig]]:
    base = cfg.crossbar
    pts = []
    for v in cfg.variations:
        pts.append(("variation", v, dataclasses.replace(base, nonidealities=[*base.nonidealities, DeviceVariation(v)])))
    for p in cfg.stuck_at:
        pts.append(("stuck_at", p, dataclasses.replace(base, nonidealities=[*base.nonidealities,
                                                                               StuckAt(p_hrs=p / 2, p_lrs=p / 2)])))
    for b in cfg.adc_bits:
        pts.append(("adc_bits", b, dataclasses.replace(base, adc=Converter(bits=b))))
    return pts


def run_network(run: RunFolder, cfg: CNNVariationConfig, net_name: str) -> dict:
    ds_name = cfg.lenet_dataset if net_name == "lenet5" else _resnet_dataset(cfg)
    data, shape = _dataset(ds_name, cfg.n_train, cfg.n_test)
    x_tr, x_te = data.x_train.view(-1, *shape), data.x_test.view(-1, *shape)
    augment = _augment_flip if ds_name == "cifar10" else None

    def make():
        torch.manual_seed(cfg.seed)
        if net_name == "lenet5":
            return lenet5(shape[0], 10, shape[1])
        return small_resnet(shape[0], 10, cfg.resnet_width)

    digital = {n: None for n in cfg.digital_layers}

    def train_sw():
        m = make()
        train_classifier(m, x_tr, data.y_train, cfg.epochs, cfg.lr, cfg.batch_size, cfg.seed, augment=augment,
                         desc=f"{net_name}: software")
        return m.state_dict()

    sw = make()
    if cfg.software_checkpoint is not None:
        state = torch.load(software_state_file(cfg.software_checkpoint, net_name), weights_only=True, map_location="cpu")
        try:
            sw.load_state_dict(state)
        except (RuntimeError, KeyError, TypeError) as exc:
            raise ValueError(f"software_checkpoint={cfg.software_checkpoint!r}: not a state dict of this {net_name} "
                             f"(width {cfg.resnet_width}, {shape[0]} input channels): {str(exc).splitlines()[0]}") from None
    else:
        sw.load_state_dict(run.checkpoint_torch(f"{net_name}_software", train_sw))
    sw.eval()

    def finetune(train_cfg: CrossbarConfig, key: str):
        def go():
            hw = convert(sw, train_cfg, trials=1, seed=cfg.seed + 1, layer_configs=digital)
            train_classifier(hw, x_tr, data.y_train, cfg.hwa_epochs, cfg.hwa_lr, cfg.batch_size, cfg.seed + 1,
                             augment=augment, desc=f"{net_name}: {key}")
            return hw.state_dict()

        hw = convert(sw, train_cfg, trials=1, seed=cfg.seed + 1, layer_configs=digital)
        hw.load_state_dict(run.checkpoint_torch(f"{net_name}_{key}", go))
        return hw.eval()

    hwa_cfg = dataclasses.replace(cfg.crossbar, nonidealities=[*cfg.crossbar.nonidealities,
                                                               DeviceVariation(cfg.train_variation)])
    build = {
        "software": lambda: convert(sw, cfg.crossbar, trials=1, seed=cfg.seed + 1, layer_configs=digital),
        "software_ft": lambda: finetune(cfg.crossbar, "software_ft"),
        "hardware_aware": lambda: finetune(hwa_cfg, "hardware_aware"),
    }
    models = {name: build[name]() for name in cfg.models}
    _, report = convert(sw, cfg.crossbar, trials=1, layer_configs=digital, report=True)
    sw_acc = round(100 * float(accuracy(sw, x_te, data.y_test)[0]), 2)  # the software model, in software
    rows = []
    pts = _eval_points(cfg)
    inst = cfg.seed * 100003 if cfg.instance_seed is None else 1_000_003 * (cfg.instance_seed + 1)
    for i, (sweep, value, xcfg) in enumerate(tqdm(pts, desc=f"{net_name}: {cfg.trials} instances")):
        for name, base in models.items():
            def point(base=base, xcfg=xcfg, i=i):
                m = program(copy.deepcopy(base), xcfg, trials=cfg.trials, seed=inst + 7919 * (i + 1))
                bs = micro_batch(m, x_te, 100) if cfg.eval_batch == "auto" else cfg.eval_batch
                return summary(accuracy(m, x_te, data.y_test, batch_size=bs))

            res = run.checkpoint(f"{net_name}_{sweep}_{value:g}_{name}", point)
            rows.append({"network": net_name, "dataset": ds_name, "sweep": sweep, "value": value, "model": name, **res})
    first = next(iter(models))
    record_cost(run, models[first], x_te, f"{net_name} ({first}) on the experiment's crossbar config", label=net_name)
    # one record per evaluation point, labelled uniquely (sweep reports flatten it to scalar columns)
    per_point = [{"point": f"{r['sweep']}={r['value']:g} {r['model']}",
                 **{k: r[k] for k in ("mean", "std", "min", "max", "trials")}} for r in rows]
    return {"dataset": ds_name, "source": data.source, "software": sw_acc, "accuracy": per_point, "rows": rows,
            "report": report.to_dict(), "report_text": str(report),
            "weights": sum(p.numel() for p in sw.parameters())}


def _plot(run: RunFolder, results: dict, cfg: CNNVariationConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweeps = [("variation", "device variation σ"), ("stuck_at", "stuck-at fraction p"), ("adc_bits", "ADC bits")]
    nets = list(results)
    fig, axes = plt.subplots(len(nets), 3, figsize=(13, 3.6 * len(nets)), squeeze=False)
    labels = {"software": "software", "software_ft": "software + ideal fine-tune",
              "hardware_aware": f"hardware-aware (σ_train={cfg.train_variation:g})"}
    for r, net in enumerate(nets):
        rows = results[net]["rows"]
        for c, (sweep, xlabel) in enumerate(sweeps):
            ax = axes[r][c]
            for k, (name, label) in enumerate(labels.items()):
                rr = [x for x in rows if x["sweep"] == sweep and x["model"] == name]
                if not rr:
                    continue
                ax.errorbar([x["value"] for x in rr], [x["mean"] for x in rr], yerr=[x["std"] for x in rr],
                            marker="o", capsize=3, color=f"C{k}", label=label)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("test accuracy (%)")
            ax.set_title(f"{net} on {results[net]['dataset']} ({cfg.trials} instances)", fontsize=9)
            ax.grid(alpha=0.3)
            if c == 0:
                ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    run.save_figure(fig, "accuracy.png")


@experiment(
    "cnn-variation",
    "LeNet-5 (MNIST) and a small ResNet (Fashion-MNIST / CIFAR-10) on crossbars: software vs hardware-aware "
    "training vs device variation, stuck-at faults, ADC bits (Monte Carlo)",
    CNNVariationConfig,
    quick=dict(n_train=1500, n_test=200, epochs=1, hwa_epochs=1, lr=0.01, trials=4, variations=[0.0, 0.3],
               stuck_at=[0.02], adc_bits=[4], resnet_width=4),
)
def run_cnn_variation(cfg: CNNVariationConfig, run: RunFolder) -> dict:
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    results = {net: run_network(run, cfg, net) for net in cfg.networks}
    rows = [r for net in results.values() for r in net["rows"]]
    run.write_csv("results.csv", rows)
    _plot(run, results, cfg)
    table = []
    for net, res in results.items():
        for r in res["rows"]:
            if r["model"] != "hardware_aware":
                continue
            sw = next((x for x in res["rows"] if x["sweep"] == r["sweep"] and x["value"] == r["value"]
                       and x["model"] == "software_ft"), None)
            if sw is None:
                continue
            table.append({"network": net, "sweep": r["sweep"], "value": r["value"], "software_ft": sw["mean"],
                          "hardware_aware": r["mean"], "gain": round(r["mean"] - sw["mean"], 3)})
    run.write_csv("gain.csv", table)
    return {net: {k: v for k, v in res.items() if k != "rows"} for net, res in results.items()} | {"gain": table}
