"""Pieces shared by experiments: the software baseline model and its config, checks, summaries, and
the hardware cost every experiment records in its results.json (:class:`CostConfig`, :func:`record_cost`)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from ..config import ConfigError, check, to_dict
from ..data import DATASETS, load_dataset
from ..hardware import (Architecture, cost_summary, crossbar_layers, inference_cost, programming_cost, technology,
                        write_energy)
from ..methods.software import train_classifier
from ..nn import mlp
from .folder import RunFolder

MAX_SEED = 2**32  # seeds are combined (seed·100003 + i, seed + 1000·layer) and must stay 64-bit


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_int(value: Any, key: str, lo: int, hi: int | None = None) -> None:
    rng = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
    check(is_int(value) and value >= lo and (hi is None or value <= hi), key, value, f"must be an integer {rng}")


def check_number(value: Any, key: str, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
                 what: str | None = None) -> None:
    """A finite real number in ``[lo, hi]`` (``(lo, hi]`` if ``lo_open``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and lo is not None:
        ok = value > lo if lo_open else value >= lo
    if ok and hi is not None:
        ok = value <= hi
    if what is None:
        left = ("(" if lo_open else "[") + (f"{lo:g}" if lo is not None else "-inf")
        what = f"must be a finite number in {left}, {hi:g}]" if hi is not None else (
            f"must be a finite number {'>' if lo_open else '>='} {lo:g}" if lo is not None else "must be a finite number")
    check(ok, key, value, what)


def check_seed(seed: Any, key: str = "seed") -> None:
    check(is_int(seed) and 0 <= seed < MAX_SEED, key, seed, "must be an integer in [0, 2**32)")


def check_values(values: Any, key: str, lo: float, hi: float | None, unit: str = "") -> None:
    """A non-empty list of distinct finite numbers in ``[lo, hi]`` whose checkpoint keys (``value_key``) differ."""
    check(isinstance(values, (list, tuple)) and len(values) >= 1, key, values, "needs at least one value")
    seen: dict[str, float] = {}
    for i, v in enumerate(values):
        check_number(v, f"{key}[{i}]", lo, hi, what=f"must be a finite number in [{lo:g}, {hi:g}]{unit}" if hi is not None
                     else f"must be a finite number >= {lo:g}{unit}")
        k = value_key(v)
        check(k not in seen, key, values, f"values {seen.get(k)!r} and {v!r} are the same to 12 significant digits")
        seen[k] = v


def value_key(v: float) -> str:
    """How a swept number appears in checkpoint keys: 12 significant digits (``10``, ``0.05``)."""
    return format(float(v), ".12g")


def check_defect_model(beta: Any, sigma_low: Any, sigma_high: Any) -> None:
    """The defect-percent model's shared fields (see :class:`memristive.nonideal.DefectPercent`)."""
    check_number(beta, "beta", 0.0, 1.0, what="must be a finite number in [0, 1] (fraction of defects that are stuck)")
    check_number(sigma_low, "sigma_low", 0.0, what="must be a finite number >= 0 (lognormal sigma)")
    check_number(sigma_high, "sigma_high", 0.0, what="must be a finite number >= 0 (lognormal sigma)")


# ------------------------------------------------------------------------------------ hardware cost
@dataclass
class CostSpec:
    """How an experiment's ``hardware_cost`` entry of results.json is computed (:mod:`memristive.hardware`).

    ``tech``: a technology preset name (``memristive.hardware.TECH_PRESETS``) or a mapping (``preset``
    plus field overrides, or every field of :class:`~memristive.hardware.Technology`); ``arch``: how the
    arrays are read (:class:`~memristive.hardware.Architecture`); ``inputs``: how many of the
    experiment's own inputs (test samples) the inference cost is averaged over.

    The section only feeds ``hardware_cost``, which is computed afresh at the end of every run; it is
    left out of the checkpoint hash and the folder's owner check (:mod:`memristive.experiments.folder`), so
    re-running a finished run with ``--set cost.tech=isaac-32nm`` re-costs it from its stored points.
    """

    tech: str | dict = "neurosim-22nm"
    arch: Architecture = field(default_factory=Architecture)
    inputs: int = 64

    def __post_init__(self) -> None:
        tech = technology(self.tech)  # unknown preset / bad field: a ConfigError naming tech, the value and the presets
        if isinstance(self.tech, dict):  # overrides as typed values ("5e-8" from --set is a YAML string)
            self.tech = {k: v if k == "preset" else to_dict(getattr(tech, k)) for k, v in self.tech.items()}
        check_int(self.inputs, "inputs", 1)


@dataclass
class CostConfig:
    """Mixin of every experiment config: the ``cost`` section (:class:`CostSpec`)."""

    cost: CostSpec = field(default_factory=CostSpec)


def cost_spec(config: Any) -> CostSpec:
    """The cost settings of an experiment config: its ``cost`` section, or (experiments about the cost
    model itself) its own top-level ``tech``/``arch``."""
    if isinstance(getattr(config, "cost", None), CostSpec):
        return config.cost
    if hasattr(config, "tech"):
        inputs = getattr(config, "cost_inputs", getattr(config, "images", CostSpec.inputs))
        return CostSpec(tech=config.tech, arch=getattr(config, "arch", Architecture()), inputs=inputs)
    raise TypeError(f"{type(config).__name__} has neither a 'cost' section (CostConfig) nor 'tech'")


def _cells_and_mean_g(model: nn.Module) -> tuple[int, float]:
    """Physical cells of one array instance and their mean conductance over cells and trials."""
    cells, g_sum, g_n = 0, 0.0, 0
    for _, xb in crossbar_layers(model):
        for g in (xb.g_pos.detach(), xb.g_neg.detach()):
            cells += g[0].numel()
            g_sum += float(g.double().sum())
            g_n += g.numel()
    return cells, g_sum / max(g_n, 1)


def _training_writes(entries: list[dict], model: nn.Module, tech) -> list[dict]:
    """First-order write energy of in-situ training from the pulse counts an experiment recorded.

    Each entry: ``label`` and either ``pulses`` (total over ``trials`` arrays) or ``pulses_per_device``;
    optional ``recorded_energy_j`` (total over ``trials``: the experiment's own device-model energy).
    Energy per array ``= pulses · V_w² · t_w · Ḡ`` (:func:`memristive.hardware.write_energy`) with Ḡ the
    mean conductance of the costed arrays.
    """
    cells, g_mean = _cells_and_mean_g(model)
    out = []
    for e in entries:
        trials = max(int(e.get("trials", 1)), 1)
        if "pulses_per_device" in e:
            pulses = float(e["pulses_per_device"]) * cells
        else:
            pulses = float(e["pulses"]) / trials
        row = {"label": e["label"], "pulses_per_array": pulses,
               "energy_j": write_energy(torch.tensor(pulses), torch.tensor(g_mean), tech)}
        if e.get("recorded_energy_j") is not None:
            row["recorded_energy_j"] = float(e["recorded_energy_j"]) / trials
        out.append(row)
    return out


def _cost_entry(model: nn.Module, x: torch.Tensor, spec: CostSpec, what: str, computed: dict | None,
                training: list[dict] | None) -> dict:
    tech = technology(spec.tech)
    x = x[: spec.inputs]
    cost = computed if computed is not None else inference_cost(model, x, tech, spec.arch)
    entry = {"model": what, "inputs": int(x.shape[0]), **cost_summary(cost)}
    prog = programming_cost(model, tech)["total"]
    entry["programming"] = {"pulses": prog["pulses"], "energy_j": prog["energy_j"], "time_s": prog["time_s"],
                            "note": "one-shot write-verify from G_min (memristive.hardware.programming_cost)"}
    if training:
        entry["training_writes"] = _training_writes(training, model, tech)
    return entry


def record_cost(run: RunFolder, model: "nn.Module | Callable[[], nn.Module]", x: "torch.Tensor | Callable[[], torch.Tensor]",
                what: str, label: str | None = None, training: list[dict] | None = None,
                computed: dict | None = None) -> dict | None:
    """Cost the experiment's converted ``model`` on the first ``cost.inputs`` of its own inputs ``x``
    and keep it on ``run`` for results.json's ``hardware_cost`` (written by the runner).

    ``model``/``x`` may be zero-argument callables (built only here). ``what`` says which model was
    costed; ``training`` adds the write cost of in-situ training from recorded pulse counts (see
    :func:`_training_writes`); ``computed`` is an :func:`~memristive.hardware.inference_cost` result
    the experiment already has. The first call is the entry; later calls (another network, device
    or tiling of the same run) go under ``variants[label]``. A model that cannot be costed is
    recorded as ``{"unavailable": reason}`` with a warning, so a finished run always keeps its results.
    """
    spec = cost_spec(run.config)
    resumed = len(run.resumed)
    try:
        m = model if isinstance(model, nn.Module) else model()
        xs = x if isinstance(x, torch.Tensor) else x()
        entry = _cost_entry(m, xs, spec, what, computed, training)
    except Exception as exc:  # noqa: BLE001 - the run's own results must survive a cost failure
        warnings.warn(f"hardware cost of {what!r} could not be computed: {type(exc).__name__}: {exc}", stacklevel=2)
        entry = {"unavailable": f"{what}: {type(exc).__name__}: {exc}"}
    finally:  # reloading the run's own checkpointed models to cost them is not a resumed step
        del run.resumed[resumed:]
    return _keep(run, entry, label or what)


def record_mlp_cost(run: RunFolder, model: nn.Module, data, crossbar, what: str | None = None, label: str | None = None,
                    training: list[dict] | None = None, seed: int = 0) -> dict | None:
    """:func:`record_cost` of a software model converted with ``crossbar`` (one instance) on ``data.x_test``."""
    from ..nn import convert

    what = what or "the software-trained model converted with the experiment's crossbar config (without the swept effect)"
    return record_cost(run, lambda: convert(model, crossbar, trials=1, seed=seed), data.x_test, what, label, training)


def record_cost_unavailable(run: RunFolder, reason: str) -> dict:
    """Record why this run has no hardware cost (e.g. a model that is not on crossbars)."""
    return _keep(run, {"unavailable": reason}, "unavailable")


def _keep(run: RunFolder, entry: dict, label: str) -> dict:
    if run.hardware_cost is None:
        run.hardware_cost = entry
    else:
        run.hardware_cost.setdefault("variants", {})[label] = entry
    return entry


# ------------------------------------------------------------------------------------ software MLP
@dataclass
class SoftwareMLPConfig:
    """The software-trained MLP that the crossbar experiments start from (shared config fields).

    Every value is checked here, including against the dataset (input and output sizes, sample
    counts), so a config that passes ``--show-config`` runs.
    """

    dataset: str = "mnist"
    sizes: list[int] = field(default_factory=lambda: [784, 100, 10])
    activation: str = "abs"
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 128
    n_train: int | None = None
    n_test: int | None = None

    def __post_init__(self) -> None:
        check(self.dataset in DATASETS, "dataset", self.dataset, f"must be one of {sorted(DATASETS)}")
        info = DATASETS[self.dataset]
        check(isinstance(self.sizes, list) and len(self.sizes) >= 2 and all(is_int(s) and s >= 1 for s in self.sizes),
              "sizes", self.sizes, "must be a list of at least two layer sizes >= 1 (input, ..., classes)")
        check(self.sizes[0] == info["features"], "sizes", self.sizes,
              f"the first size must be {self.dataset}'s {info['features']} input features")
        check(self.sizes[-1] == info["classes"], "sizes", self.sizes,
              f"the last size must be {self.dataset}'s {info['classes']} classes")
        try:
            mlp([1, 1, 1], activation=self.activation)  # the layer library owns the list of activations
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(str(exc)) from None
        check_int(self.epochs, "epochs", 0)
        check_number(self.lr, "lr", 0.0, lo_open=True)
        check_int(self.batch_size, "batch_size", 1)
        if self.n_train is not None:
            check_int(self.n_train, "n_train", 1, info["n_train"])
        if self.n_test is not None:
            check_int(self.n_test, "n_test", 1, info["n_test"])
        if hasattr(self, "trials"):
            check_int(self.trials, "trials", 1)
        if hasattr(self, "seed"):
            check_seed(self.seed)
        if hasattr(self, "beta"):
            check_defect_model(self.beta, self.sigma_low, self.sigma_high)

    def check_subsets(self) -> None:
        """Sample counts of nested methods (``insitu.n_train``, ``liu.n_train``, ``calibration.n_samples``)
        must fit in the dataset. They are caps: a run with a smaller ``n_train`` uses at most its own
        training set (so ``--set n_train=5000`` needs no matching edit of every nested count)."""
        have = DATASETS[self.dataset]["n_train"]
        for section, name in (("insitu", "n_train"), ("liu", "n_train"), ("calibration", "n_samples")):
            sub = getattr(self, section, None)
            n = getattr(sub, name, None) if sub is not None else None
            if n is not None:
                check(n <= have, f"{section}.{name}", n, f"must be <= the {have} training samples of {self.dataset}, "
                      "or null for all")


_FULL: dict = {}


def load_data(name: str, n_train: int | None, n_test: int | None):
    """``memristive.data.load_dataset(name)`` parsed once per process (several experiments in one
    session share it), then its first ``n_train`` / ``n_test`` samples (a ConfigError names the key
    when there are fewer)."""
    if name not in _FULL:
        _FULL[name] = load_dataset(name)
    data = _FULL[name]
    return data.subset(n_train, n_test) if (n_train is not None or n_test is not None) else data


def software_mlp(run: RunFolder, data, sizes: list[int], epochs: int, lr: float, batch_size: int,
                 seed: int, activation: str = "abs", bias: bool = False, key: str = "software_model"):
    """Train (or resume) the software MLP; its state dict is checkpointed in the run folder (a stored
    state dict that does not fit the model is discarded with a warning and the model retrained)."""
    torch.manual_seed(seed)
    model = mlp(sizes, activation=activation, bias=bias)

    def train():
        train_classifier(model, data.x_train, data.y_train, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                         desc="software training")
        return model.state_dict()

    def fits(state) -> None:
        mlp(sizes, activation=activation, bias=bias).load_state_dict(state)
        for k, v in state.items():
            if not torch.isfinite(v).all():
                raise ValueError(f"{k} holds NaN or infinite values")

    model.load_state_dict(run.checkpoint_torch(key, train, validate=fits))
    model.eval()
    return model


def summary(acc: torch.Tensor) -> dict:
    """Mean, spread and range of per-trial accuracies, in percent."""
    a = acc.double() * 100
    return {
        "mean": round(float(a.mean()), 3),
        "std": round(float(a.std()) if a.numel() > 1 else 0.0, 3),
        "min": round(float(a.min()), 3),
        "max": round(float(a.max()), 3),
        "trials": int(a.numel()),
    }


def check_summary(value: Any) -> None:
    """Validator for a stored :func:`summary` (a checkpointed point must hold its numbers)."""
    need = ("mean", "std", "min", "max", "trials")
    if not isinstance(value, dict) or any(k not in value for k in need):
        raise ValueError(f"expected a summary with {list(need)}")
