"""Hardware-aware training of converted models, and the trial-aware loss.

A model from :func:`memristive.nn.convert` keeps its weights as trainable parameters. In training
mode (``model.train()``) every crossbar layer programs its current weights onto fresh device instances
on each forward pass (the variation, faults and levels of its config drawn anew), reads them through
DAC/ADC, and passes gradients straight through (:mod:`memristive.nn.base`). After training,
:func:`memristive.nn.program` writes the trained weights onto fresh devices for evaluation::

    hw = convert(model, CrossbarConfig(nonidealities=[DeviceVariation(0.1)]))   # the training array
    train_classifier(hw, x, y, epochs=3)            # hardware-aware: one device draw per step
    program(hw, eval_config, trials=100, seed=1)    # 100 fresh instances for evaluation
    accuracy(hw, x_test, y_test)                    # (100,)

The same loop trains a software model (outputs ``(B, C)``) or a converted one (outputs ``(T, B, C)``:
the loss averages over all trials).
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

__all__ = ["trial_cross_entropy", "train_classifier"]


def trial_cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``(B, C)`` or ``(T, B, C)`` outputs against labels ``(B,)`` (mean over trials)."""
    if out.dim() == y.dim() + 2:
        y = y.unsqueeze(0).expand(out.shape[0], *y.shape)
        out, y = out.reshape(-1, out.shape[-1]), y.reshape(-1)
    return nn.functional.cross_entropy(out, y)


def train_classifier(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int = 10, lr: float = 1e-3,
                     batch_size: int = 128, seed: int = 0, weight_decay: float = 0.0, progress: bool = True,
                     desc: str = "train", augment=None) -> list[float]:
    """Adam + cross-entropy on a software or converted model (hardware-aware). Returns the mean loss
    per epoch; ``torch.manual_seed(seed)`` fixes the shuffling and the device draws of every step.
    ``augment(xb, generator)`` (optional) transforms each batch."""
    if epochs < 0 or lr <= 0 or batch_size < 1:
        raise ValueError(f"train_classifier: epochs={epochs} (>= 0), lr={lr} (> 0), batch_size={batch_size} (>= 1)")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params or epochs == 0:
        model.eval()
        return []
    dev = params[0].device
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    losses = []
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
    for _ in bar:
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            xb, yb = x[idx].to(dev), y[idx].to(dev)
            if augment is not None:
                xb = augment(xb, gen)
            loss = trial_cross_entropy(model(xb), yb)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{desc}: the loss became {float(loss)}; lower the learning rate")
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(x))
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    model.eval()
    return losses
