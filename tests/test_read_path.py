"""The crossbar's in-place inference read (no autograd) against the autograd read and hand formulas."""

import math

import pytest
import torch

from memristive.crossbar import Converter, Crossbar
from memristive.crossbar.core import _normal_like
from memristive.devices import LinearDevice
from memristive.nonideal import Lognormal, ReadNoise

DEV = LinearDevice(r_on=1e3, r_off=12e3)


@pytest.mark.parametrize("trials", [1, 3])
def test_no_grad_read_equals_autograd_read_with_adc(trials):
    torch.manual_seed(0)
    w = torch.randn(40, 7)
    x = torch.rand(5, 40)
    xb = Crossbar.from_weights(w, memristor=DEV, nonidealities=[Lognormal(0.1)], adc=Converter(bits=6), trials=trials)
    xb.calibrate_adc(x)
    with torch.no_grad():
        fast = xb.matmul(x)
        fast_v = xb.mvm(x * 0.2)
    slow = xb.matmul(x.clone().requires_grad_(True))
    slow_v = xb.mvm((x * 0.2).requires_grad_(True))
    step_w = xb.adc_range.item() / 31 / (0.2 * xb.config.r_s * xb.k)  # one ADC code in weight units
    assert (fast - slow.detach()).abs().max() <= step_w * 1.0001  # a tie may round either way
    assert torch.isclose(fast, slow.detach(), rtol=1e-5, atol=1e-6 * step_w).float().mean() > 0.99
    assert torch.allclose(fast_v, slow_v.detach(), rtol=1e-5, atol=xb.adc_range.item() / 31 * 1.0001)
    # and the codes are the hand-computed ones: Δ·clamp(round(v·G·R_s/Δ))
    delta = xb.adc_range.item() / 31
    hand = (torch.round((x * 0.2) @ xb.g_diff() * xb.config.r_s / delta).clamp(-31, 31) * delta)
    assert torch.isclose(fast_v, hand, rtol=1e-5, atol=1e-9).float().mean() > 0.99


@pytest.mark.parametrize("mode", ["range", "relative"])
def test_no_grad_read_noise_has_the_hand_computed_std(mode):
    torch.manual_seed(1)
    T, sigma = 4000, 0.05
    w = torch.randn(30, 4, dtype=torch.float64)
    v = torch.rand(2, 30, dtype=torch.float64) * 0.2
    xb = Crossbar.from_weights(w, memristor=DEV, read_noise=ReadNoise(sigma, mode), trials=T, seed=2)
    with torch.no_grad():
        out = xb.mvm(v)  # (T, 2, 4)
    gp, gn = xb.conductances
    clean = (v @ (gp[0] - gn[0])) * xb.config.r_s
    if mode == "range":  # every device: std σ·(G_max − G_min), two devices per output
        std = sigma * DEV.g_range * math.sqrt(2.0) * v.norm(dim=-1, keepdim=True) * xb.config.r_s
    else:  # std σ·G per device
        std = (v * v @ (sigma**2 * (gp[0] ** 2 + gn[0] ** 2))).sqrt() * xb.config.r_s
    assert torch.allclose(out.mean(0), clean, atol=4 * (std / math.sqrt(T)).max().item())
    assert torch.allclose(out.std(0), std.expand_as(clean), rtol=0.05)


def test_normal_like_keeps_a_transposed_layout_and_is_standard_normal():
    g = torch.Generator().manual_seed(0)
    t = torch.empty(300, 50, 40).transpose(0, 1)  # the trials-side-by-side GEMM output's layout
    z = _normal_like(t, g)
    assert z.shape == t.shape and z.stride() == t.stride()
    assert abs(z.mean().item()) < 0.01 and abs(z.std().item() - 1) < 0.01
    # every part of the storage drawn (no stale memory): each slice along every dimension is N(0, 1)
    for dim in range(3):
        other = tuple(d for d in range(3) if d != dim)
        assert ((z.std(dim=other) - 1).abs() < 0.1).all() and (z.mean(dim=other).abs() < 0.1).all()


def test_set_adc_range_fixes_one_arrays_full_scale():
    """Two arrays sharing one config object each keep their own full scale; codes = hand formula."""
    from memristive.config import ConfigError
    from memristive.crossbar import CrossbarConfig

    torch.manual_seed(3)
    cfg = CrossbarConfig(memristor=DEV, adc=Converter(bits=5))
    a = Crossbar.from_weights(torch.randn(20, 4), config=cfg)
    b = Crossbar.from_weights(torch.randn(20, 4) * 3, config=cfg)
    a.set_adc_range(0.01)
    b.set_adc_range(0.5)
    x = torch.rand(6, 20)
    for xb, fs in ((a, 0.01), (b, 0.5)):
        with torch.no_grad():
            out = xb.mvm(x * 0.2)
        delta = fs / 15
        hand = torch.round((x * 0.2) @ xb.g_diff() * xb.config.r_s / delta).clamp(-15, 15) * delta
        assert torch.isclose(out, hand, rtol=1e-5, atol=1e-9).float().mean() > 0.99
    assert cfg.adc.range is None  # the shared config is untouched
    for bad in (0.0, -1.0, math.inf, True):
        with pytest.raises(ConfigError, match="adc_range="):
            a.set_adc_range(bad)
