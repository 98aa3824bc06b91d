"""Plain software training and trial-batched evaluation."""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm


def train_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    weight_decay: float = 0.0,
    progress: bool = True,
    desc: str = "train",
) -> list[float]:
    """Adam + cross-entropy. Returns the mean loss per epoch."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    dev = next(model.parameters()).device
    losses = []
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
    for _ in bar:
        perm = torch.randperm(len(x), generator=gen)
        total, n = 0.0, 0
        model.train()
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            xb, yb = x[idx].to(dev), y[idx].to(dev)
            loss = nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            n += len(idx)
        losses.append(total / n)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    model.eval()
    return losses


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    """Accuracy per Monte Carlo trial, shape ``(T,)`` (``(1,)`` for a software model)."""
    dev = next(iter(model.buffers()), next(iter(model.parameters()), None))
    dev = dev.device if dev is not None else torch.device("cpu")
    correct = None
    for i in range(0, len(x), batch_size):
        out = model(x[i : i + batch_size].to(dev))
        if out.dim() == 2:
            out = out.unsqueeze(0)
        hits = (out.argmax(-1) == y[i : i + batch_size].to(dev)).sum(-1).float()
        correct = hits if correct is None else correct + hits
    return (correct / len(x)).cpu()
