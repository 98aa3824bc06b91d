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


@pytest.mark.parametrize("via", ["mvm", "matmul"])
@pytest.mark.parametrize("mode", ["range", "relative"])
def test_no_grad_read_noise_has_the_hand_computed_std(mode, via):
    torch.manual_seed(1)
    T, sigma = 4000, 0.05
    w = torch.randn(30, 4, dtype=torch.float64)
    v = torch.rand(2, 30, dtype=torch.float64) * 0.2
    xb = Crossbar.from_weights(w, memristor=DEV, read_noise=ReadNoise(sigma, mode), trials=T, seed=2)
    with torch.no_grad():  # (T, 2, 4) volts; matmul reads x = v / v_read and answers in weight units
        out = xb.mvm(v) if via == "mvm" else xb.matmul(v / 0.2) * (0.2 * xb.config.r_s * xb.k)
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


@pytest.mark.parametrize("trials,per_trial", [(1, False), (3, False), (3, True)])
@pytest.mark.parametrize("noise", [None, "range", "relative"])
def test_eval_read_with_scale_and_bias_equals_the_autograd_read(trials, per_trial, noise):
    """``matmul(x, scale, bias)`` without autograd (the lean eval read: one affine pass after the ADC)
    gives the autograd read's ADC codes — the same noise draws included — then ``·scale + bias``."""
    torch.manual_seed(4)
    w = torch.randn(40, 7)
    x = torch.rand(trials, 5, 40) if per_trial else torch.rand(5, 40)
    scale, bias = torch.rand(7) + 0.5, torch.randn(7)
    rn = ReadNoise(0.02, noise) if noise else None
    fast_xb = Crossbar.from_weights(w, memristor=DEV, nonidealities=[Lognormal(0.1)], adc=Converter(bits=6),
                                    read_noise=rn, trials=trials, seed=5)
    slow_xb = Crossbar.from_weights(w, memristor=DEV, nonidealities=[Lognormal(0.1)], adc=Converter(bits=6),
                                    read_noise=rn, trials=trials, seed=5)
    for xb in (fast_xb, slow_xb):
        xb.set_adc_range(0.4)
    with torch.no_grad():
        fast = fast_xb.matmul(x, scale, bias)
    slow = slow_xb.matmul(x.clone().requires_grad_(True), scale, bias).detach()
    step_w = 0.4 / 31 / (0.2 * DEV_RS * fast_xb.k)  # one ADC code in weight units
    assert fast.shape == (trials, 5, 7)
    codes_f, codes_s = (fast - bias) / (scale * step_w), (slow - bias) / (scale * step_w)
    if not (noise and trials > 1 and not per_trial):
        # the codes: equal except where a float tie rounds the other way (the autograd read scales in
        # another order); the draws land on the same outputs in both reads (the lean read draws
        # shared-input trials in the side-by-side GEMM's memory order, so those differ)
        assert (codes_f - codes_s).abs().max() <= 1.001
        assert (codes_f.round() == codes_s.round()).float().mean() > 0.99
    # and the values are the hand formula on the codes: Δ·code·scale + bias
    assert torch.allclose(fast, codes_f.round() * scale * step_w + bias, rtol=1e-5, atol=1e-6)


DEV_RS = 1e3  # CrossbarConfig's default feedback resistance


@pytest.mark.parametrize("noise", [None, "range", "relative"])
@pytest.mark.parametrize("dac", [None, 6])
@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_eval_read_refuses_non_finite_inputs(dac, bad, noise):
    """The lean read checks a sum it makes anyway (the noise std, or the GEMM output) and scans the
    inputs only when it is not finite; a DAC, which would saturate an Inf, is checked before. Finite
    inputs that overflow are not refused."""
    xb = Crossbar.from_weights(torch.randn(8, 4), memristor=DEV, adc=Converter(bits=6),
                               dac=Converter(bits=dac, range=1.0) if dac else Converter(),
                               read_noise=ReadNoise(0.02, noise) if noise else None)
    xb.set_adc_range(0.4)
    x = torch.rand(3, 8)
    x[1, 2] = bad
    with torch.no_grad(), pytest.raises(ValueError, match="x: input contains NaN or infinite values"):
        xb.matmul(x)
    with torch.no_grad():  # finite, not refused; the column sums overflow
        huge = xb.matmul(torch.full((1, 8), 3e38))
    if noise is None:  # the ADC saturates the overflow (with noise, an overflowed sum + ±inf noise can be NaN)
        assert torch.isfinite(huge).all()
