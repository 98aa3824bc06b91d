"""Pieces shared by experiments: the software baseline model, plots, summaries."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from ..data import Dataset, load_dataset
from ..methods.software import train_classifier
from ..nn import mlp
from .runner import RunFolder


@dataclass
class SoftwareMLPConfig:
    """The software-trained MLP that the crossbar experiments start from (shared config fields)."""

    dataset: str = "mnist"
    sizes: list[int] = field(default_factory=lambda: [784, 100, 10])
    activation: str = "abs"
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 128
    n_train: int | None = None
    n_test: int | None = None


def load_data(name: str, n_train: int | None, n_test: int | None) -> Dataset:
    data = load_dataset(name)
    if n_train or n_test:
        data = data.subset(n_train, n_test)
    return data


def software_mlp(run: RunFolder, data: Dataset, sizes: list[int], epochs: int, lr: float, batch_size: int,
                 seed: int, activation: str = "abs", bias: bool = False, key: str = "software_model"):
    """Train (or resume) the software MLP; its state dict is checkpointed in the run folder."""
    torch.manual_seed(seed)
    model = mlp(sizes, activation=activation, bias=bias)

    def train():
        train_classifier(model, data.x_train, data.y_train, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                         desc="software training")
        return model.state_dict()

    model.load_state_dict(run.checkpoint_torch(key, train))
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


def replace(cfg, **changes):
    return dataclasses.replace(cfg, **changes)
