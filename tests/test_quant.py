"""Quantizers, observers, STE and weight noise against hand calculations."""

import math

import pytest
import torch

from memristive.config import ConfigError
from memristive.crossbar import Crossbar, CrossbarConfig
from memristive.devices import preset
from memristive.nonideal import DeviceVariation, conductance_variation
from memristive.quant import (
    ActQuant,
    Observer,
    QuantConfig,
    QuantLinear,
    WeightNoise,
    asymmetric_qparams,
    calibration,
    column_scale,
    quantize_asymmetric,
    quantize_symmetric,
    quantize_weight,
    ste_round,
    symmetric_codes,
    weight_codes,
    weight_noise,
)

@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny recurrent ops: one thread (OpenMP spin-waits collapse on a busy shared CPU)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


ALL_BITS = list(range(2, 17))


def test_symmetric_hand_example_2_and_3_bit():
    w = torch.tensor([-1.0, -0.4, 0.2, 0.6, 0.26])
    # 2 bit: Q = 1, s = 1 -> codes round(w) in {-1, 0, 1}
    assert torch.equal(quantize_symmetric(w, 2), torch.tensor([-1.0, -0.0, 0.0, 1.0, 0.0]))
    # 3 bit: Q = 3, s = 1/3 -> codes round(3w) = [-3, -1, 1, 2, 1]
    expect = torch.tensor([-3.0, -1.0, 1.0, 2.0, 1.0]) / 3
    assert torch.allclose(quantize_symmetric(w, 3), expect)


@pytest.mark.parametrize("bits", ALL_BITS)
def test_symmetric_levels_and_round_trip(bits):
    g = torch.Generator().manual_seed(bits)
    w = torch.randn(40, 30, generator=g, dtype=torch.float64)
    Q = 2 ** (bits - 1) - 1
    q, s = symmetric_codes(w, bits)
    assert float(s) == pytest.approx(float(w.abs().max()) / Q)
    assert torch.equal(q, q.round()) and q.abs().max() == Q  # max|W| lands exactly on the top code
    wq = quantize_symmetric(w, bits)
    assert torch.allclose(wq, q * s)
    assert len(torch.unique(wq)) <= 2 * Q + 1
    assert (wq - w).abs().max() <= float(s) / 2 + 1e-12  # nothing clipped, error at most half a step
    assert torch.allclose(quantize_symmetric(wq, bits), wq)  # idempotent round trip
    # quantizing a tensor already on the grid returns it unchanged
    grid = torch.arange(-Q, Q + 1, dtype=torch.float64) * 0.01
    assert torch.allclose(quantize_symmetric(grid, bits), grid)


@pytest.mark.parametrize("bits", [2, 4, 6, 8])
def test_per_channel_and_per_gate_scales(bits):
    Q = 2 ** (bits - 1) - 1
    w = torch.tensor([[1.0, -0.5, 4.0, 0.1], [-2.0, 0.25, 1.0, -0.2]])
    s = column_scale(w, bits, "channel")
    assert torch.allclose(s, torch.tensor([2.0, 0.5, 4.0, 0.2]) / Q)
    s = column_scale(w, bits, "gate", groups=2)  # columns (0,1) and (2,3)
    assert torch.allclose(s, torch.tensor([2.0, 2.0, 4.0, 4.0]) / Q)
    s = column_scale(w, bits, "tensor")
    assert torch.allclose(s, torch.full((4,), 4.0 / Q))
    q, s = weight_codes(w, bits, "channel")
    assert torch.equal(q.abs().amax(0), torch.full((4,), float(Q)))
    wq, w_max = quantize_weight(w, bits, "channel")
    assert torch.allclose(wq, q * s) and torch.allclose(w_max, torch.tensor([2.0, 0.5, 4.0, 0.2]))


def test_asymmetric_hand_example():
    # range [-1, 3], 2 bits: N = 3, s = 4/3, z = round(0.75) = 1 -> levels (q - 1)·4/3 = -4/3, 0, 4/3, 8/3
    s, z = asymmetric_qparams(-1.0, 3.0, 2)
    assert float(s) == pytest.approx(4 / 3) and int(z) == 1
    a = torch.tensor([-2.0, -0.5, 0.0, 0.7, 2.1, 5.0], dtype=torch.float64)
    out = quantize_asymmetric(a, 2, -1.0, 3.0)
    expect = torch.tensor([-4 / 3, 0.0, 0.0, 4 / 3, 8 / 3, 8 / 3], dtype=torch.float64)
    assert torch.allclose(out, expect)
    # a range not containing 0 is widened to contain it: [0.5, 1] -> [0, 1]
    s, z = asymmetric_qparams(0.5, 1.0, 8)
    assert float(s) == pytest.approx(1 / 255) and int(z) == 0


@pytest.mark.parametrize("bits", ALL_BITS)
def test_asymmetric_levels_round_trip_and_kernel(bits):
    lo, hi = -0.37, 1.21
    N = 2**bits - 1
    s, z = asymmetric_qparams(lo, hi, bits)
    assert float(s) == pytest.approx((hi - lo) / N)
    assert int(z) == round(-lo / float(s))
    a = torch.linspace(-1, 2, 5001, dtype=torch.float64)
    q = quantize_asymmetric(a, bits, lo, hi)
    inside = (a >= lo) & (a <= hi)
    assert (q[inside] - a[inside]).abs().max() <= float(s) / 2 + 1e-9
    assert len(torch.unique(q)) <= N + 1
    assert torch.allclose(quantize_asymmetric(q, bits, lo, hi), q)  # grid values are fixed points
    assert float(quantize_asymmetric(torch.zeros(1, dtype=torch.float64), bits, lo, hi)) == 0.0
    codes = torch.round(q / s) + z
    assert codes.min() >= 0 and codes.max() <= N
    # the module (PyTorch fused fake-quant kernel) agrees with the reference formula
    aq = ActQuant(bits, observer="minmax").double()
    aq.observer.observe(torch.tensor([lo, hi], dtype=torch.float64))
    aq.eval()
    r = -1 + 3 * torch.rand(5000, generator=torch.Generator().manual_seed(bits), dtype=torch.float64)  # no exact ties
    diff = (aq(r) - quantize_asymmetric(r, bits, lo, hi)).abs()
    # the kernel works in float32: near a rounding tie it may pick the neighbouring level
    assert diff.max() <= float(s) * (1 + 1e-6) + 1e-6
    assert (diff > 1e-6).float().mean() < 0.01


def test_ste_gradients():
    x = torch.tensor([0.2, 0.7, -1.4], requires_grad=True)
    ste_round(x).sum().backward()
    assert torch.equal(x.grad, torch.ones(3))
    w = torch.randn(5, 4, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    quantize_symmetric(w, 4).mul(torch.arange(20.0).reshape(5, 4)).sum().backward()
    assert torch.allclose(w.grad, torch.arange(20.0).reshape(5, 4))  # identity: no weight is clipped
    a = torch.tensor([-3.0, -0.5, 0.5, 2.9, 3.5], requires_grad=True)
    quantize_asymmetric(a, 4, -1.0, 3.0).sum().backward()
    assert torch.equal(a.grad, torch.tensor([0.0, 1.0, 1.0, 1.0, 0.0]))  # clipped STE
    aq = ActQuant(4, observer="fixed", natural_range=(-1.0, 3.0))
    a2 = a.detach().clone().requires_grad_(True)
    aq(a2).sum().backward()
    assert torch.equal(a2.grad, torch.tensor([0.0, 1.0, 1.0, 1.0, 0.0]))


def test_observers():
    mm, ema = Observer("minmax"), Observer("ema", momentum=0.1)
    b1, b2 = torch.tensor([-1.0, 2.0]), torch.tensor([-3.0, 1.0])
    for o in (mm, ema):
        o.observe(b1)
        o.observe(b2)
    assert (float(mm.min_val), float(mm.max_val)) == (-3.0, 2.0)
    assert float(ema.min_val) == pytest.approx(0.9 * -1 + 0.1 * -3)
    assert float(ema.max_val) == pytest.approx(0.9 * 2 + 0.1 * 1)
    fixed = Observer("fixed", fixed_range=(0.0, 1.0))
    fixed.observe(torch.tensor([5.0]))
    assert (float(fixed.min_val), float(fixed.max_val)) == (0.0, 1.0)
    with pytest.raises(ValueError):
        Observer("median")


def test_actquant_observes_in_training_and_calibration_only():
    aq = ActQuant(6, observer="minmax")
    aq.eval()
    with pytest.raises(RuntimeError, match="no observed range"):
        aq(torch.ones(3))
    with calibration(aq):
        aq(torch.tensor([-1.0, 1.0]))
    aq(torch.tensor([-5.0, 5.0]))  # eval: no update
    assert (float(aq.observer.min_val), float(aq.observer.max_val)) == (-1.0, 1.0)
    aq.train()
    aq(torch.tensor([-5.0, 5.0]))
    assert float(aq.observer.max_val) == 5.0
    assert ActQuant(None)(torch.tensor([0.123])).item() == pytest.approx(0.123)


def test_quant_config_validation():
    for bad in (1, 17):
        with pytest.raises(ConfigError, match="weight_bits"):
            QuantConfig(weight_bits=bad)
    with pytest.raises(ConfigError, match="granularity"):
        QuantConfig(granularity="row")
    assert QuantConfig(weight_bits=6).activation_bits == 6
    assert QuantConfig(weight_bits=6, act_bits=8).activation_bits == 8
    assert QuantConfig(weight_bits=6, activations=False).activation_bits is None
    with pytest.raises(ConfigError, match="noise.sigma"):
        WeightNoise(sigma=-0.1)
    with pytest.raises(ConfigError, match="variation.mode"):
        DeviceVariation(0.1, mode="uniform")


# ------------------------------------------------------------------------------------ noise
def _dev():
    return preset("ti-alox-taox")  # 1-12 kOhm: G_min/(G_max - G_min) = (1/12)/(1 - 1/12) = 1/11


@pytest.mark.parametrize("mode", ["multiplicative", "additive", "lognormal"])
def test_weight_noise_statistics(mode):
    sigma, n = 0.1, 200_000
    w = torch.tensor([-0.5, 0.0, 0.25, 1.0], dtype=torch.float64)
    c = 1 / 11
    g = torch.Generator().manual_seed(0)
    s = weight_noise(w, sigma, mode, 1.0, _dev(), generator=g, samples=n, clip=False)  # the unbounded formula
    gp, gn = c + w.clamp(min=0), c + (-w).clamp(min=0)
    if mode == "multiplicative":
        mean, var = w, sigma**2 * (gp**2 + gn**2)
    elif mode == "additive":
        mean, var = w, torch.full_like(w, 2 * sigma**2)
    else:
        m1, v1 = math.exp(sigma**2 / 2), (math.exp(sigma**2) - 1) * math.exp(sigma**2)
        mean, var = (gp - gn) * m1, (gp**2 + gn**2) * v1
    se = (var / n).sqrt()
    assert ((s.mean(0) - mean).abs() <= 5 * se).all()
    assert torch.allclose(s.var(0), var, rtol=0.03)


def test_weight_noise_fresh_each_call_and_straight_through():
    w = torch.tensor([0.3, -0.2, 0.9], requires_grad=True)
    noise = WeightNoise(0.2)
    a, b = noise(w, 1.0), noise(w, 1.0)
    assert not torch.equal(a, b)
    (a * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert torch.equal(w.grad, torch.tensor([1.0, 2.0, 3.0]))
    assert torch.equal(WeightNoise(0.0)(w, 1.0), w)


def test_training_noise_matches_crossbar_variation():
    """The weight-unit training noise has the distribution a varied crossbar shows (same σ, mode)."""
    torch.manual_seed(0)
    w = torch.tensor([[0.5, -1.0, 0.0], [0.25, 0.75, -0.5]], dtype=torch.float64)
    sigma, T = 0.15, 20000
    cfg = CrossbarConfig(nonidealities=[{"kind": "variation", "sigma": sigma}])
    xb = Crossbar.from_weights(w, config=cfg, trials=T, seed=1)
    hw = xb.weights()  # (T, 2, 3)
    sw = weight_noise(w, sigma, "multiplicative", float(w.abs().max()), _dev(),
                      generator=torch.Generator().manual_seed(2), samples=T)
    assert torch.allclose(hw.std(0), sw.std(0), rtol=0.05)
    # both keep conductances in the device range (default clip): the same mean, pulled in at |W| = w_max
    assert torch.allclose(hw.mean(0), sw.mean(0), atol=0.01)
    assert float(hw.mean(0)[0, 1]) > -0.97


def test_conductance_variation_modes():
    g = torch.full((100_000,), 5e-4, dtype=torch.float64)
    gen = torch.Generator().manual_seed(3)
    m = conductance_variation(g, 0.1, "multiplicative", 1e-3, gen)
    assert m.std().item() == pytest.approx(5e-5, rel=0.02)
    a = conductance_variation(g, 0.1, "additive", 1e-3, gen)
    assert a.std().item() == pytest.approx(1e-4, rel=0.02)
    ln = conductance_variation(g, 0.1, "lognormal", 1e-3, gen)
    assert (ln > 0).all() and torch.log(ln / 5e-4).std().item() == pytest.approx(0.1, rel=0.02)


def test_quant_linear_matches_linear_and_quantizes_bias_row():
    torch.manual_seed(0)
    ql = QuantLinear(5, 3)
    x = torch.randn(4, 5)
    ref = torch.nn.functional.linear(x, ql.weight, ql.bias)
    assert torch.allclose(ql(x), ref)
    ql.quant = QuantConfig(weight_bits=3, granularity="tensor")
    m = ql.matrix()
    s = m.detach().abs().max() / 3
    expect = x @ (torch.round(m / s) * s)[:5] + (torch.round(m / s) * s)[5]
    assert torch.allclose(ql(x), expect, atol=1e-6)
