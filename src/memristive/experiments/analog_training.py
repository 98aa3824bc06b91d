"""``memristive run analog-training``: in-situ analog training, every optimizer × device × network.

A 784×256×10 ReLU MLP (no bias) and LeNet-5 (:func:`~memristive.experiments.cnn.lenet5`, its biases
digital) are converted to crossbars (balanced pairs, fixed ``w_max``) of each pulsed device and
trained from the same initial weights on the same mini-batches by each optimizer of
:mod:`memristive.methods.analog_optim`; after every epoch the test accuracy (per Monte Carlo trial),
the pulses written and the programming energy are recorded. One table (CSV + results.json) and one
plot per dataset. A digital SGD run of the same network is the reference line.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ..config import check
from ..crossbar import CrossbarConfig
from ..devices import DEVICES, PRESETS, device_from_spec
from ..devices.pulsed import SoftBoundsDevice
from ..devices.vteam import VTEAMDevice
from ..endurance import Endurance
from ..methods.analog_optim import DTGA, AnalogSGD, MixedPrecision, TikiTaka, trial_loss
from ..nn import convert, mlp
from .cnn import lenet5
from .common import CostConfig, load_data, record_cost, record_cost_unavailable
from .runner import RunFolder, experiment

OPTIMIZERS = ("sgd-stochastic", "sgd-deterministic", "manhattan", "mixed-precision", "tiki-taka", "tiki-taka-v2")
# off by default (not in the measured table): DTGA (methods.analog_optim.DTGA, its default UpdateRule), VTEAM devices only
EXTRA_OPTIMIZERS = ("dtga",)
MODELS = ("mlp", "lenet5")


@dataclass
class AnalogTrainingConfig(CostConfig):
    """Optimizers × devices × networks × datasets. ``devices`` are preset names (``memristive devices``)
    or a registered kind with its defaults; ``dtga`` is the VTEAM preset of the DTGA work; ``models``:
    ``mlp`` (``sizes``, no bias) and/or ``lenet5`` (biases trained digitally by SGD at ``lr``, as in the
    periphery); ``lr`` is the learning rate of every optimizer's gradient step (Tiki-Taka: onto the
    fast array), ``transfer_lr`` Tiki-Taka's transfer rate and ``transfer_rows`` the rows of the fast
    array read per mini-batch (100 = one per sample, as aihwkit's default ``transfer_every`` = 1
    mat-vec; all rows of a layer with fewer). ``lenet_n_train``/``lenet_epochs`` (null: ``n_train``/``epochs``)
    size LeNet-5's training separately (its convolutions update on every patch: more work per image).
    Arrays are balanced pairs centred at each device's mid state (``balanced-state``; for devices linear
    in conductance the same as ``balanced``) with ``w_max`` (``device_w_max`` per device: VTEAM's pairs
    centred at s = ½ can be programmed to |W| ≤ 0.18·w_max only — the conductance below the mid state is
    0.8·10⁻⁵ S of its 9·10⁻⁵ S range — so LeNet-5's initial kernels (|W| ≤ 0.2) need w_max ≥ 1.1)."""

    datasets: list[str] = field(default_factory=lambda: ["mnist", "fashion-mnist"])
    models: list[str] = field(default_factory=lambda: list(MODELS))
    optimizers: list[str] = field(default_factory=lambda: list(OPTIMIZERS))
    devices: list[str] = field(default_factory=lambda: ["symmetric-constant-step", "asymmetric-soft-bounds", "dtga"])
    sizes: list[int] = field(default_factory=lambda: [784, 256, 10])
    activation: str = "relu"
    w_max: float = 1.0
    device_w_max: dict[str, float] = field(default_factory=lambda: {"dtga": 2.0})
    lr: float = 0.1
    transfer_lr: float = 1.0
    transfer_rows: int = 100
    manhattan_threshold: float = 0.0
    bl: int = 31
    epochs: int = 2
    batch_size: int = 100
    n_train: int | None = 20000
    n_test: int | None = None
    lenet_n_train: int | None = 10000
    lenet_epochs: int | None = 3
    trials: int = 1
    seed: int = 0
    threads: int = 1
    # wear of the written devices (memristive.endurance): every pulse is charged; null = devices never wear
    endurance: Endurance | None = None

    def __post_init__(self) -> None:
        for d in self.datasets:
            check(d in ("mnist", "fashion-mnist"), "datasets", d, "each must be 'mnist' or 'fashion-mnist'")
        check(len(self.models) >= 1, "models", self.models, f"need at least one of {list(MODELS)}")
        for m in self.models:
            check(m in MODELS, "models", m, f"each must be one of {list(MODELS)}")
        for o in self.optimizers:
            check(o in OPTIMIZERS + EXTRA_OPTIMIZERS, "optimizers", o, f"each must be one of {list(OPTIMIZERS + EXTRA_OPTIMIZERS)}")
        for d in self.devices:
            check(isinstance(d, str) and (d in PRESETS or d in DEVICES), "devices", d,
                  f"each must be a device preset {sorted(PRESETS)} or a registered kind {sorted(DEVICES)}")
            dev = device_for(d)
            check(getattr(dev, "has_pulse_response", False), "devices", d,
                  "must have a pulse response (in-situ training writes pulses)")
            check("dtga" not in self.optimizers or isinstance(dev, VTEAMDevice), "devices", d,
                  "each must be a VTEAM device (e.g. 'dtga') when optimizers include 'dtga'")
        check(self.sizes[0] == 784, "sizes", self.sizes, "must start with 784 (28x28 images)")
        check(len(self.sizes) >= 2 and all(int(s) >= 1 for s in self.sizes), "sizes", self.sizes, "need >= 2 positive sizes")
        for d, v in self.device_w_max.items():
            check(d in PRESETS or d in DEVICES, "device_w_max", d,
                  f"keys must be device presets {sorted(PRESETS)} or registered kinds {sorted(DEVICES)}")
            check(isinstance(v, (int, float)) and v > 0, f"device_w_max.{d}", v, "must be > 0")
        for key in ("w_max", "lr", "transfer_lr"):
            check(getattr(self, key) > 0, key, getattr(self, key), "must be > 0")
        check(self.transfer_rows >= 1, "transfer_rows", self.transfer_rows, "must be >= 1")
        check(self.manhattan_threshold >= 0, "manhattan_threshold", self.manhattan_threshold, "must be >= 0")
        check(self.epochs >= 1, "epochs", self.epochs, "must be >= 1")
        check(self.lenet_epochs is None or self.lenet_epochs >= 1, "lenet_epochs", self.lenet_epochs, "must be >= 1 or null")
        for key in ("n_train", "lenet_n_train", "n_test"):
            v = getattr(self, key)
            check(v is None or v >= 1, key, v, "must be >= 1 or null (all)")
        check(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")
        check(self.trials >= 1, "trials", self.trials, "must be >= 1")
        check(self.threads >= 1, "threads", self.threads, "must be >= 1")

    def train_size(self, model: str) -> int | None:
        return self.lenet_n_train if model == "lenet5" else self.n_train

    def n_epochs(self, model: str) -> int:
        return self.lenet_epochs if model == "lenet5" and self.lenet_epochs is not None else self.epochs


def device_for(name: str):
    """A preset by name, else a registered kind with its default parameters."""
    return device_from_spec(name if name in PRESETS else {"kind": name}, "devices")


def build_network(model: str, cfg: AnalogTrainingConfig) -> torch.nn.Module:
    """The digital network (seeded as in every run of this experiment)."""
    torch.manual_seed(cfg.seed)
    return lenet5(1, 10, 28) if model == "lenet5" else mlp(cfg.sizes, cfg.activation)


def inputs(model: str, x: torch.Tensor) -> torch.Tensor:
    """Flattened images ``(N, 784)`` as the network takes them."""
    return x.view(-1, 1, 28, 28) if model == "lenet5" else x


def make_optimizer(name: str, model, cfg: AnalogTrainingConfig, seed: int):
    stoch = {"kind": "stochastic", "bl": cfg.bl}
    if name == "sgd-stochastic":
        return AnalogSGD(model, lr=cfg.lr, scheme=stoch, seed=seed, endurance=cfg.endurance)
    if name == "sgd-deterministic":
        return AnalogSGD(model, lr=cfg.lr, scheme="deterministic", seed=seed, endurance=cfg.endurance)
    if name == "manhattan":
        return AnalogSGD(model, lr=cfg.lr, scheme={"kind": "manhattan", "threshold": cfg.manhattan_threshold}, seed=seed,
                         endurance=cfg.endurance)
    if name == "mixed-precision":
        return MixedPrecision(model, lr=cfg.lr, seed=seed, endurance=cfg.endurance)
    if name == "dtga":
        return DTGA(model, lr=cfg.lr, seed=seed, endurance=cfg.endurance)
    return TikiTaka(model, lr=cfg.lr, transfer_lr=cfg.transfer_lr, n_rows_per_transfer=cfg.transfer_rows, scheme=stoch,
                    buffered=name == "tiki-taka-v2", seed=seed, endurance=cfg.endurance)


@torch.no_grad()
def accuracy(model, x, y, batch: int = 2000) -> torch.Tensor:
    correct = None
    for i in range(0, len(x), batch):
        hit = (model(x[i : i + batch]).argmax(-1) == y[i : i + batch]).sum(-1).double()
        correct = hit if correct is None else correct + hit
    return correct / len(x)


def train_one(cfg: AnalogTrainingConfig, data, model_name: str, opt_name: str, dev_name: str,
              progress: bool = True) -> dict:
    """Train one optimizer on one device; per-epoch accuracy (per trial), cumulative pulses and energy.
    Digital parameters (LeNet-5's biases) get plain SGD at the same ``lr``."""
    dev = device_for(dev_name)
    net = build_network(model_name, cfg)
    xcfg = CrossbarConfig(memristor=dev, mapping={"kind": "balanced-state", "w_max": cfg.device_w_max.get(dev_name, cfg.w_max)}, v_read=0.01)
    model = convert(net, xcfg, trials=cfg.trials, seed=cfg.seed)
    opt = make_optimizer(opt_name, model, cfg, cfg.seed)
    biases = [p for n, p in model.named_parameters() if n.endswith("bias")]
    digital = torch.optim.SGD(biases, lr=cfg.lr) if biases else None
    x_train, x_test = inputs(model_name, data.x_train), inputs(model_name, data.x_test)
    gen = torch.Generator().manual_seed(cfg.seed)
    epochs = []
    t0 = time.perf_counter()
    for e in range(cfg.n_epochs(model_name)):
        perm = torch.randperm(len(x_train), generator=gen)
        steps = range(0, len(perm), cfg.batch_size)
        for i in tqdm(steps, desc=f"{model_name} {opt_name} / {dev_name} epoch {e + 1}", disable=not progress,
                      leave=False):
            idx = perm[i : i + cfg.batch_size]
            opt.zero_grad()
            if digital is not None:
                digital.zero_grad()
            trial_loss(model(x_train[idx]), data.y_train[idx]).backward()
            opt.step()
            if digital is not None:
                # trial_loss sums over trials: the shared bias's gradient is the trials' sum; use their mean
                for p in biases:
                    if p.grad is not None:
                        p.grad.div_(cfg.trials)
                digital.step()
        if isinstance(opt, DTGA):
            opt.new_epoch()  # the decay threshold rule's epoch
        acc = accuracy(model, x_test, data.y_test)
        tot = opt.totals()
        epochs.append({"epoch": e + 1, "accuracy": (acc * 100).tolist(), "accuracy_mean": float(acc.mean() * 100),
                       "pulses": tot["pulses"], "energy_j": tot["energy"], "wall_s": time.perf_counter() - t0,
                       **({"endurance": tot["endurance"]} if "endurance" in tot else {})})
    opt.close()
    return {"model": model_name, "optimizer": opt_name, "device": dev_name, "device_params": repr(dev),
            "epochs": epochs}


def digital_reference(cfg: AnalogTrainingConfig, data, model_name: str) -> list[float]:
    """Test accuracy per epoch of the same network trained by digital SGD (same lr, batches, init)."""
    net = build_network(model_name, cfg)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr)
    x_train, x_test = inputs(model_name, data.x_train), inputs(model_name, data.x_test)
    gen = torch.Generator().manual_seed(cfg.seed)
    out = []
    for _ in range(cfg.n_epochs(model_name)):
        perm = torch.randperm(len(x_train), generator=gen)
        for i in range(0, len(perm), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x_train[idx]), data.y_train[idx]).backward()
            opt.step()
        with torch.no_grad():
            out.append(float((net(x_test).argmax(-1) == data.y_test).double().mean() * 100))
    return out


@experiment(
    "analog-training",
    "784x256x10 MLP and LeNet-5 trained in situ on pulsed devices: analog SGD (stochastic/deterministic), "
    "Manhattan, mixed precision, Tiki-Taka v1/v2 x symmetric constant step / asymmetric soft bounds / VTEAM ('dtga')",
    AnalogTrainingConfig,
    quick=dict(n_train=2000, lenet_n_train=500, n_test=500, epochs=1, lenet_epochs=1),
)
def run_analog_training(cfg: AnalogTrainingConfig, run: RunFolder) -> dict:
    torch.set_num_threads(cfg.threads)
    tables = {}
    for ds in cfg.datasets:
        tables[ds] = {}
        for model_name in cfg.models:
            data = load_data(ds, cfg.train_size(model_name), cfg.n_test)
            ref = run.checkpoint(f"{ds}__{model_name}__digital", lambda: digital_reference(cfg, data, model_name))
            rows = []
            for opt_name in cfg.optimizers:
                for dev_name in cfg.devices:
                    res = run.checkpoint(f"{ds}__{model_name}__{opt_name}__{dev_name}",
                                         lambda: train_one(cfg, data, model_name, opt_name, dev_name))
                    for ep in res["epochs"]:
                        rows.append({"dataset": ds, "model": model_name, "optimizer": opt_name, "device": dev_name,
                                     "epoch": ep["epoch"], "accuracy_mean": round(ep["accuracy_mean"], 3),
                                     "pulses": ep["pulses"], "energy_j": ep["energy_j"], "wall_s": round(ep["wall_s"], 2)})
            run.write_csv(f"{ds}_{model_name}.csv", rows)
            final = [r for r in rows if r["epoch"] == cfg.n_epochs(model_name)]
            tables[ds][model_name] = {"digital_sgd": [round(a, 3) for a in ref], "data_source": data.source,
                                      "n_train": len(data.x_train), "epochs": cfg.n_epochs(model_name), "final": final}
            _plot(run, ds, model_name, rows, ref, cfg)
    _record_costs(cfg, run, tables)
    return {"tables": tables}


def _record_costs(cfg: AnalogTrainingConfig, run: RunFolder, tables: dict) -> None:
    """Hardware cost of each network at its initial weights on the first device, with the write cost of
    every optimizer/device/dataset's recorded pulses (the first network is the entry, others variants)."""
    if not cfg.devices:
        record_cost_unavailable(run, "no device in 'devices'")
        return
    dev_name = cfg.devices[0]
    x_test = load_data(cfg.datasets[0], None, cfg.n_test).x_test
    for model_name in cfg.models:
        xcfg = CrossbarConfig(memristor=device_for(dev_name), v_read=0.01,
                              mapping={"kind": "balanced-state", "w_max": cfg.device_w_max.get(dev_name, cfg.w_max)})
        writes = [{"label": f"{r['dataset']} {model_name} {r['optimizer']} {r['device']}", "pulses": r["pulses"],
                   "trials": cfg.trials, "recorded_energy_j": r["energy_j"]}
                  for t in tables.values() for r in t[model_name]["final"]]
        record_cost(run, lambda: convert(build_network(model_name, cfg), xcfg, trials=1, seed=cfg.seed),
                    inputs(model_name, x_test), f"the {model_name} at its initial weights on {dev_name}",
                    label=model_name, training=writes)


def _plot(run: RunFolder, ds: str, model_name: str, rows: list[dict], ref: list[float], cfg: AnalogTrainingConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    devices = sorted({r["device"] for r in rows}, key=cfg.devices.index)
    fig, axes = plt.subplots(1, max(1, len(devices)), figsize=(4.2 * max(1, len(devices)), 3.8), sharey=True, squeeze=False)
    epochs = list(range(1, cfg.n_epochs(model_name) + 1))
    for ax, dev in zip(axes[0], devices):
        for j, opt in enumerate(cfg.optimizers):
            pts = [r for r in rows if r["device"] == dev and r["optimizer"] == opt]
            if pts:
                ax.plot([p["epoch"] for p in pts], [p["accuracy_mean"] for p in pts], marker="o", color=f"C{j}", label=opt)
        ax.plot(epochs, ref, ls="--", color="gray", label="digital SGD")
        ax.set_title(dev, fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][0].legend(fontsize=7, loc="lower right")
    net = "LeNet-5" if model_name == "lenet5" else f"{'×'.join(map(str, cfg.sizes))} MLP"
    fig.suptitle(f"{ds}: {net} trained in situ ({cfg.train_size(model_name) or 'all'} training images)", fontsize=10)
    run.save_figure(fig, f"{ds}_{model_name}_accuracy.png")


# ============================================================================ the Tiki-Taka toy problem
@dataclass
class AnalogToyConfig(CostConfig):
    """Noisy linear regression ``y = x W* + ε`` (8 inputs, 4 outputs, |W*| ≤ 0.5, ε ~ N(0, noise²)),
    batch 8, on balanced pairs of symmetric soft-bounds devices (``dw_min`` per pulse, w_max = 1):
    the device drifts to its symmetry point under zero-mean noisy updates, so plain analog SGD
    settles biased towards W = 0; Tiki-Taka should not. Error = RMS(W − W*) per trial."""

    optimizers: list[str] = field(default_factory=lambda: ["sgd-stochastic", "mixed-precision", "tiki-taka", "tiki-taka-v2"])
    steps: int = 2000
    trials: int = 8
    dw_min: float = 0.01
    noise: float = 0.5
    lr: float = 0.05
    transfer_lr: float = 0.05
    seed: int = 0
    # wear of the written devices (memristive.endurance); null = devices never wear
    endurance: Endurance | None = None

    def __post_init__(self) -> None:
        for o in self.optimizers:
            check(o in OPTIMIZERS, "optimizers", o, f"each must be one of {list(OPTIMIZERS)}")
        check(self.steps >= 1, "steps", self.steps, "must be >= 1")
        check(self.trials >= 1, "trials", self.trials, "must be >= 1")
        check(0 < self.dw_min <= 0.1, "dw_min", self.dw_min, "must lie in (0, 0.1]")
        for key in ("noise", "lr", "transfer_lr"):
            check(getattr(self, key) >= 0 if key == "noise" else getattr(self, key) > 0, key, getattr(self, key),
                  "must be >= 0" if key == "noise" else "must be > 0")


def toy_regression(cfg: AnalogToyConfig, opt_name: str, progress: bool = True) -> dict:
    from ..devices.pulsed import SoftBoundsDevice

    g = torch.Generator().manual_seed(cfg.seed)
    w_true = (torch.rand(8, 4, generator=g) * 2 - 1) * 0.5
    lin = torch.nn.Linear(8, 4, bias=False)
    torch.nn.init.zeros_(lin.weight)
    xcfg = CrossbarConfig(memristor=SoftBoundsDevice(dw_min=cfg.dw_min), mapping={"kind": "balanced", "w_max": 1.0})
    model = convert(torch.nn.Sequential(lin), xcfg, trials=cfg.trials, seed=cfg.seed)
    stoch = {"kind": "stochastic"}
    if opt_name.startswith("tiki-taka"):
        opt = TikiTaka(model, lr=cfg.lr, transfer_lr=cfg.transfer_lr, scheme=stoch, buffered=opt_name == "tiki-taka-v2",
                       seed=cfg.seed, endurance=cfg.endurance)
    elif opt_name == "mixed-precision":
        opt = MixedPrecision(model, lr=cfg.lr, seed=cfg.seed, endurance=cfg.endurance)
    else:
        scheme = {"sgd-stochastic": stoch, "sgd-deterministic": "deterministic", "manhattan": "manhattan"}[opt_name]
        opt = AnalogSGD(model, lr=cfg.lr, scheme=scheme, seed=cfg.seed, endurance=cfg.endurance)
    t0 = time.perf_counter()
    for _ in tqdm(range(cfg.steps), desc=f"toy {opt_name}", disable=not progress, leave=False):
        x = torch.randn(8, 8, generator=g)
        y = x @ w_true + cfg.noise * torch.randn(8, 4, generator=g)
        opt.zero_grad()
        (0.5 * ((model(x) - y) ** 2).sum(-1).mean(-1).sum()).backward()
        opt.step()
    err = ((model[0].crossbar.weights() - w_true) ** 2).mean(dim=(1, 2)).sqrt()
    return {"optimizer": opt_name, "rms_error": err.tolist(), "rms_error_mean": float(err.mean()),
            "rms_error_min": float(err.min()), "rms_error_max": float(err.max()),
            "rms_target": float(w_true.pow(2).mean().sqrt()), "pulses": opt.totals()["pulses"],
            "wall_s": time.perf_counter() - t0,
            **({"endurance": opt.totals()["endurance"]} if cfg.endurance is not None else {})}


def toy_digital(cfg: AnalogToyConfig) -> dict:
    """The same regression, same data stream, plain digital SGD at the same lr (the noise floor)."""
    g = torch.Generator().manual_seed(cfg.seed)
    w_true = (torch.rand(8, 4, generator=g) * 2 - 1) * 0.5
    w = torch.zeros(8, 4, requires_grad=True)
    opt = torch.optim.SGD([w], lr=cfg.lr)
    for _ in range(cfg.steps):
        x = torch.randn(8, 8, generator=g)
        y = x @ w_true + cfg.noise * torch.randn(8, 4, generator=g)
        opt.zero_grad()
        (0.5 * ((x @ w - y) ** 2).sum(-1).mean()).backward()
        opt.step()
    err = float(((w.detach() - w_true) ** 2).mean().sqrt())
    return {"optimizer": "digital-sgd", "rms_error": [err], "rms_error_mean": err, "rms_error_min": err,
            "rms_error_max": err, "rms_target": float(w_true.pow(2).mean().sqrt()), "pulses": 0.0, "wall_s": 0.0}


def _zero(m: torch.nn.Module) -> None:
    if isinstance(m, torch.nn.Linear):
        torch.nn.init.zeros_(m.weight)


@experiment(
    "analog-toy",
    "Tiki-Taka vs analog SGD on a noisy linear regression with symmetric soft-bounds devices (RMS weight error)",
    AnalogToyConfig,
    quick=dict(steps=300, trials=2),
)
def run_analog_toy(cfg: AnalogToyConfig, run: RunFolder) -> dict:
    rows = [run.checkpoint(f"toy__{o}", lambda: toy_regression(cfg, o)) for o in cfg.optimizers]
    rows.append(run.checkpoint("toy__digital", lambda: toy_digital(cfg)))
    run.write_csv("toy.csv", [{k: v for k, v in r.items() if k != "rms_error"} for r in rows])
    xcfg = CrossbarConfig(memristor=SoftBoundsDevice(dw_min=cfg.dw_min), mapping={"kind": "balanced", "w_max": 1.0})
    x = torch.randn(cfg.cost.inputs, 8, generator=torch.Generator().manual_seed(cfg.seed))
    record_cost(run, lambda: convert(torch.nn.Sequential(torch.nn.Linear(8, 4, bias=False)).apply(_zero), xcfg), x,
                "the 8x4 toy array at W = 0 (its start) on N(0, 1) inputs",
                training=[{"label": r["optimizer"], "pulses": r["pulses"], "trials": cfg.trials} for r in rows[:-1]])
    return {"rows": rows}
