"""How many inputs a converted model should read at once (CPU evaluation of many device instances).

A converted model with ``T`` instances turns a batch of ``B`` inputs into ``T·B`` sample-instances in
every layer. On a CPU the passes after each array (BatchNorm, ReLU, residual adds, the ADC) are
memory-bound: once a layer's ``(T, B, …)`` activation outgrows the cache, every pass streams it from
memory, and a 100-instance convolutional network runs about 2× slower than it would in cache-sized
pieces. Smaller batches are not free either: every micro-batch streams all ``T`` instances' weights
once, which dominates for dense layers (a 784×256 layer at ``T = 100`` is 80 MB of weights).

:func:`micro_batch` picks the batch from one probe pass on a single input: the largest ``B`` whose
biggest activation, ``T·B·(elements per sample)·(bytes per element)``, fits ``budget_bytes``, but
never so small that the weights streamed per input exceed the activations written per input
(``B ≥ weight bytes / activation bytes per input``), and never above ``batch``. On CUDA (or with one
instance) it returns ``batch``: there larger batches only help.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import CrossbarMatrix

__all__ = ["micro_batch", "DEFAULT_BUDGET_BYTES"]

DEFAULT_BUDGET_BYTES = 32 * 2**20  # about a server core's share of last-level cache, with room


def _trials(model: nn.Module) -> int:
    return max((m.trials for m in model.modules() if isinstance(m, CrossbarMatrix)), default=1)


@torch.no_grad()
def micro_batch(model: nn.Module, example: torch.Tensor, batch: int,
                budget_bytes: int = DEFAULT_BUDGET_BYTES) -> int:
    """The number of inputs to evaluate ``model`` on at once, at most ``batch`` (see the module
    docstring). ``example``: one input or a batch of them, in the model's input layout (only its first
    input is run). The probe pass restores every array's read-noise generator afterwards, so later
    reads draw exactly the noise they would have drawn without it."""
    if not (isinstance(batch, int) and not isinstance(batch, bool) and batch >= 1):
        raise ValueError(f"batch={batch!r}: must be an integer >= 1")
    if not (isinstance(budget_bytes, int) and not isinstance(budget_bytes, bool) and budget_bytes >= 1):
        raise ValueError(f"budget_bytes={budget_bytes!r}: must be an integer >= 1")
    if not isinstance(example, torch.Tensor) or example.dim() < 1 or example.shape[0] < 1:
        raise ValueError("example: expected a tensor with at least one input along its first dimension")
    trials = _trials(model)
    if trials <= 1 or example.device.type != "cpu":
        return batch
    sizes: list[int] = []

    def record(_module, _inputs, output):
        if isinstance(output, torch.Tensor):
            sizes.append(output.numel() * output.element_size())

    arrays = [m for m in model.modules() if isinstance(m, CrossbarMatrix)]
    probed = arrays + [m for m in model.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(record) for m in probed]
    states = [a.crossbar.read_noise_state() for a in arrays]
    try:
        model(example[:1])
    finally:
        for h in handles:
            h.remove()
        for a, st in zip(arrays, states):  # the probe leaves the read noise of later reads unchanged
            a.crossbar.set_read_noise_state(st)
    if not sizes:
        return batch
    per_input = sum(sizes)  # bytes of activations written per input (all instances)
    weights = sum(a.crossbar.g_pos.numel() * a.crossbar.g_pos.element_size() for a in arrays)
    lo = math.ceil(weights / per_input)
    hi = budget_bytes // max(sizes)
    return int(min(batch, max(1, lo, hi)))
