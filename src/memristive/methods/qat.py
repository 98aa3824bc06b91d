"""Full precision → quantization-aware training with weight noise → crossbar evaluation.

Generic over *sequence model + dataset tensors + task type*:

* a :class:`SequenceTask` holds ``x_*`` ``(N, L, features)`` and targets ``y_*``, and says whether it
  is ``classification`` (cross-entropy; metric: accuracy) or ``regression`` (MSE; metric: RMSE in
  target units × ``target_scale``, e.g. 100 to report a [0, 1] state of charge in %);
* the model is any ``nn.Module`` with ``set_quant(quant, noise)`` (e.g. :class:`memristive.nn.GRUNet`)
  mapping ``(B, L, F)`` to ``(B, out)`` or ``(B, L, out)``; converted (crossbar) models return a
  leading Monte Carlo trial dimension, and every metric here is then per trial, shape ``(T,)``.

Pipeline (:func:`fp_then_qat`)::

    1. train in full precision                      (quant=None, no noise)
    2. copy, set QuantConfig (+ WeightNoise σ), continue training (QAT) *through the crossbar model*:
       the model is converted (memristive.nn.convert_gru) onto a training array whose devices carry
       the noise as device variation (``{kind: variation, sigma: σ, mode}``, the WeightNoise's device);
       every step programs the quantized weights (integer codes on device levels) onto fresh devices,
       activation ranges are observed (EMA), gradients pass straight through (memristive.nn.base);
       the trained weights and ranges are written back into the software model
    3. evaluate in software, or program onto crossbars (memristive.nn.convert_gru) under device
       variation and evaluate all Monte Carlo trials at once (evaluate_crossbar)

Training: Adam, optional cosine learning-rate decay, gradient-norm clipping, seeded shuffling.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Literal

import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import check
from ..crossbar import CrossbarConfig
from ..nonideal import DeviceVariation
from ..quant import QuantConfig, WeightNoise

__all__ = ["SequenceTask", "TrainConfig", "train_model", "predict", "task_loss", "task_metric", "evaluate",
           "quantize_finetune", "fp_then_qat", "evaluate_crossbar", "training_array"]


@dataclass
class SequenceTask:
    """Tensors of a sequence task. ``kind`` is ``classification`` or ``regression``.

    Classification: ``y`` int64 class indices ``(N,)`` (or ``(N, L)`` per step). Regression: ``y``
    float ``(N,)``, ``(N, out)``, ``(N, L)`` or ``(N, L, out)``; the metric is RMSE × ``target_scale``.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    kind: Literal["classification", "regression"] = "classification"
    name: str = "task"
    num_outputs: int | None = None
    readout: Literal["last", "all"] = "last"
    target_scale: float = 1.0
    target_unit: str = ""
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        check(self.kind in ("classification", "regression"), "task.kind", self.kind,
              "must be 'classification' or 'regression'")
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.dim() != 3:
                raise ValueError(f"task {self.name!r}: x_{split} must be (N, steps, features), got {tuple(x.shape)}")
            if len(x) != len(y):
                raise ValueError(f"task {self.name!r}: x_{split} has {len(x)} sequences, y_{split} has {len(y)}")
            if not torch.isfinite(x).all():
                raise ValueError(f"task {self.name!r}: x_{split} contains NaN or infinite values")
        if self.num_outputs is None:
            if self.kind == "classification":
                self.num_outputs = int(max(self.y_train.max(), self.y_test.max())) + 1
            else:
                per_seq_dims = 2 if self.readout == "all" else 1
                self.num_outputs = 1 if self.y_train.dim() == per_seq_dims else self.y_train.shape[-1]

    @property
    def input_size(self) -> int:
        return self.x_train.shape[-1]

    @property
    def metric_name(self) -> str:
        return "accuracy" if self.kind == "classification" else "rmse"


@dataclass
class TrainConfig:
    """One training phase (Adam)."""

    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    schedule: Literal["constant", "cosine"] = "cosine"

    def __post_init__(self) -> None:
        check(self.epochs >= 0, "train.epochs", self.epochs, "must be >= 0")
        check(self.lr > 0, "train.lr", self.lr, "must be > 0")
        check(self.batch_size >= 1, "train.batch_size", self.batch_size, "must be >= 1")
        check(self.weight_decay >= 0, "train.weight_decay", self.weight_decay, "must be >= 0")
        if self.grad_clip is not None:
            check(self.grad_clip > 0, "train.grad_clip", self.grad_clip, "must be > 0 (or null for none)")


def _match(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Drop a trailing size-1 output so regression outputs take the target's shape."""
    if pred.dim() == y.dim() + 1 and pred.shape[-1] == 1:
        pred = pred.squeeze(-1)
    return pred


def task_loss(task: SequenceTask, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy (classification) or MSE (regression) for software outputs ``(B, …)``."""
    if task.kind == "classification":
        return nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
    return nn.functional.mse_loss(_match(out, y), y.to(out.dtype))


def train_model(model: nn.Module, task: SequenceTask, cfg: TrainConfig, seed: int = 0, progress: bool = True,
                desc: str = "train") -> list[float]:
    """Train ``model`` in place on the task's training split; returns the mean loss per epoch."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the training noise uses the global generator
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.epochs == 0 or not params:
        model.eval()
        return []
    dev = params[0].device
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(task.x_train)
    steps = cfg.epochs * ((n + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if cfg.schedule == "cosine" else None
    losses = []
    trial_model = _is_trial_model(model)
    bar = tqdm(range(cfg.epochs), desc=desc, disable=not progress, leave=False)
    for _ in bar:
        model.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            xb, yb = task.x_train[idx].to(dev), task.y_train[idx].to(dev)
            out = model(xb)
            if trial_model:  # a crossbar model in training: (T, B, …) with T fresh device draws
                yb = yb.unsqueeze(0).expand(out.shape[0], *yb.shape).reshape(-1, *yb.shape[1:])
                out = out.reshape(-1, *out.shape[2:])
            loss = task_loss(task, out, yb)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{desc}: the loss became {float(loss)}; lower the learning rate")
            opt.zero_grad()
            loss.backward()
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            if sched is not None:
                sched.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / n)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    model.eval()
    return losses


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Outputs over ``x`` in batches: ``(N, …)`` for a software model, ``(T, N, …)`` for a crossbar one."""
    model.eval()
    ref = next(iter(model.buffers()), None)
    ref = ref if ref is not None else next(model.parameters())
    outs = []
    for i in range(0, len(x), batch_size):
        outs.append(model(x[i : i + batch_size].to(ref.device)).cpu())
    return torch.cat(outs, 1 if _is_trial_model(model) else 0)


def _is_trial_model(model: nn.Module) -> bool:
    from ..crossbar import Crossbar

    return any(isinstance(m, Crossbar) for m in model.modules())


def task_metric(task: SequenceTask, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-trial metric of outputs ``(T, N, …)``: accuracy in [0, 1] or RMSE × target_scale."""
    if task.kind == "classification":
        hits = (out.argmax(-1) == y.unsqueeze(0)).float()
        return hits.reshape(hits.shape[0], -1).mean(1)
    pred = _match(out, y.unsqueeze(0))
    err = (pred - y.unsqueeze(0).to(pred.dtype)) ** 2
    return err.reshape(err.shape[0], -1).mean(1).sqrt() * task.target_scale


def evaluate(model: nn.Module, task: SequenceTask, split: str = "test", batch_size: int = 512) -> torch.Tensor:
    """Per-trial metric on a split, shape ``(T,)`` (``(1,)`` for a software model)."""
    x, y = getattr(task, f"x_{split}"), getattr(task, f"y_{split}")
    out = predict(model, x, batch_size)
    if not _is_trial_model(model):
        out = out.unsqueeze(0)
    return task_metric(task, out, y)


def training_array(noise: WeightNoise | None) -> CrossbarConfig:
    """The array QAT trains on: ideal periphery, the noise's memristor and mapping, its σ as device variation."""
    if noise is None:
        return CrossbarConfig()
    effects = [DeviceVariation(noise.sigma, noise.mode)] if noise.sigma > 0 else []
    return CrossbarConfig(memristor=noise.memristor, mapping=noise.mapping, nonidealities=effects)


def quantize_finetune(fp_model: nn.Module, task: SequenceTask, quant: QuantConfig | None, noise: WeightNoise | None,
                      cfg: TrainConfig, seed: int = 0, progress: bool = True, desc: str = "QAT") -> nn.Module:
    """A copy of ``fp_model`` (a :class:`memristive.nn.GRUNet`) with ``quant`` set, trained with ``cfg``
    through its crossbar model on :func:`training_array` (``noise``) -- hardware-aware QAT."""
    from ..nn.gru import convert_gru

    model = copy.deepcopy(fp_model)
    model.set_quant(quant, None)
    hw = convert_gru(model, training_array(noise), trials=1, seed=seed)
    train_model(hw, task, cfg, seed=seed, progress=progress, desc=desc)
    hw.export_to(model)
    return model.eval()


def fp_then_qat(make_model: Callable[[], nn.Module], task: SequenceTask, fp: TrainConfig, qat: TrainConfig,
                quant: QuantConfig | None, noise: WeightNoise | None = None, seed: int = 0,
                progress: bool = True) -> tuple[nn.Module, nn.Module]:
    """Train full precision, then QAT (+ noise). Returns ``(fp_model, qat_model)``."""
    torch.manual_seed(seed)
    fp_model = make_model()
    train_model(fp_model, task, fp, seed=seed, progress=progress, desc="full precision")
    qat_model = quantize_finetune(fp_model, task, quant, noise, qat, seed=seed + 1, progress=progress)
    return fp_model, qat_model


def evaluate_crossbar(model: nn.Module, task: SequenceTask, config=None, trials: int = 1, seed: int = 0,
                      batch_size: int = 256) -> torch.Tensor:
    """Program ``model`` onto ``trials`` crossbar instances (``config``) and return the per-trial metric."""
    from ..nn.gru import convert_gru

    hw = convert_gru(model, config, trials=trials, seed=seed)
    return evaluate(hw, task, batch_size=batch_size)
