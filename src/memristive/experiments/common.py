"""Pieces shared by experiments: the software baseline model and its config, checks, summaries."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ..config import ConfigError, check
from ..data import DATASETS, load_dataset
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
