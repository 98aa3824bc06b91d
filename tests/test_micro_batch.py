"""memristive.nn.micro_batch: the CPU evaluation batch of a converted model, against hand arithmetic."""

import math

import pytest
import torch
from torch import nn

from memristive.crossbar import CrossbarConfig
from memristive.methods.software import accuracy
from memristive.nn import convert, micro_batch
from memristive.nonideal import DeviceVariation, ReadNoise


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 10, bias=False)).eval()


def test_micro_batch_is_the_hand_computed_cache_budget():
    """T = 50 instances; per input (all instances, float32): conv out 4·8·8·50·4 B = 51,200 B, ReLU
    51,200 B, Flatten 51,200 B, linear 10·50·4 = 2,000 B; weights (G+ layout) 9·4·50·4 + 256·10·50·4 =
    519,200 B. Budget 1 MiB: hi = 1,048,576 // 51,200 = 20; lo = ⌈519,200 / 155,600⌉ = 4 → 20."""
    hw = convert(_cnn(), CrossbarConfig(nonidealities=[DeviceVariation(0.1)]), trials=50, seed=1)
    x = torch.rand(7, 1, 8, 8)
    assert micro_batch(hw, x, 100, budget_bytes=2**20) == 20
    assert micro_batch(hw, x, 12, budget_bytes=2**20) == 12  # never above the batch asked for
    # a tiny budget: the weight floor lo = 4 holds
    assert micro_batch(hw, x, 100, budget_bytes=1000) == 4
    # a dense model: weights dominate, so the batch stays large (lo = ⌈784·256·50·4 / per input⌉)
    torch.manual_seed(1)
    mlp = convert(nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)).eval(), CrossbarConfig(),
                  trials=50, seed=1)
    per_input = (256 + 256 + 10) * 50 * 4
    lo = math.ceil((784 * 256 + 256 * 10) * 50 * 4 / per_input)
    assert micro_batch(mlp, torch.rand(3, 784), 10_000, budget_bytes=2**20) == lo


def test_one_instance_keeps_the_batch_and_bad_arguments_are_refused():
    hw = convert(_cnn(), CrossbarConfig(), trials=1, seed=1)
    assert micro_batch(hw, torch.rand(2, 1, 8, 8), 64) == 64
    assert micro_batch(_cnn(), torch.rand(2, 1, 8, 8), 64) == 64  # a software model
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="batch="):
            micro_batch(hw, torch.rand(2, 1, 8, 8), bad)
    with pytest.raises(ValueError, match="budget_bytes="):
        micro_batch(hw, torch.rand(2, 1, 8, 8), 8, budget_bytes=0)
    with pytest.raises(ValueError, match="example"):
        micro_batch(hw, torch.rand(0, 1, 8, 8), 8)


def test_the_probe_leaves_later_read_noise_unchanged_and_micro_batches_give_the_same_accuracy():
    cfg = CrossbarConfig(nonidealities=[DeviceVariation(0.1)], read_noise=ReadNoise(0.05, "range"))
    a, b = convert(_cnn(), cfg, trials=20, seed=3), convert(_cnn(), cfg, trials=20, seed=3)
    x = torch.rand(6, 1, 8, 8)
    with torch.no_grad():
        a(x), b(x)  # both generators in use
        micro_batch(a, x, 100, budget_bytes=2**16)
        assert torch.equal(a(x), b(x))
    # without read noise a read is deterministic: accuracy per instance is the same in any batch
    clean = convert(_cnn(), CrossbarConfig(nonidealities=[DeviceVariation(0.2)]), trials=20, seed=3)
    y = torch.randint(0, 10, (40,))
    xs = torch.rand(40, 1, 8, 8)
    bs = micro_batch(clean, xs, 40, budget_bytes=2**16)
    assert bs < 40
    assert torch.equal(accuracy(clean, xs, y, batch_size=bs), accuracy(clean, xs, y, batch_size=40))
