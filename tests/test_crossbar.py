import io

import pytest
import torch
from torch import nn

from memristive.config import ConfigError, from_dict
from memristive.crossbar import (Converter, Crossbar, CrossbarConfig, OffsetDifferential, ReferenceColumn, Tiling,
                                 uniform_quantize)
from memristive.devices import LinearDevice
from memristive.nn import Abs, CrossbarLinear, convert, mlp
from memristive.nonideal import DefectPercent, Lognormal, ReadNoise, StuckAt

DEV = LinearDevice(r_on=1e3, r_off=12e3)


def test_mvm_equals_hand_computation():
    torch.manual_seed(0)
    w = torch.randn(6, 4, dtype=torch.float64)
    xb = Crossbar.from_weights(w, memristor=DEV, mapping="differential", r_s=2e3, trials=1)
    gp, gn = xb.conductances
    v = torch.rand(3, 6, dtype=torch.float64) * 0.2
    expected = torch.zeros(3, 4, dtype=torch.float64)
    for b in range(3):  # independent hand computation: sum_i V_i (G+_ij - G-_ij) R_s
        for j in range(4):
            expected[b, j] = sum(v[b, i] * (gp[0, i, j] - gn[0, i, j]) * 2e3 for i in range(6))
    assert torch.allclose(xb.mvm(v)[0], expected, rtol=1e-12)
    # and in weight units it is x @ W
    assert torch.allclose(xb.matmul(v / 0.2)[0], (v / 0.2) @ w, rtol=1e-9)


def test_reference_scheme_matmul():
    w = torch.randn(10, 7, dtype=torch.float64)
    xb = Crossbar.from_weights(w, memristor=DEV, mapping="reference")
    x = torch.rand(5, 10, dtype=torch.float64)
    assert torch.allclose(xb.matmul(x)[0], x @ w, rtol=1e-9)
    assert xb.counts()["cols"] == 8


def test_trial_dimension_and_broadcasting():
    w = torch.randn(20, 5)
    xb = Crossbar.from_weights(w, trials=4, nonidealities=[Lognormal(0.3)], seed=3)
    assert xb.g_pos.shape == (4, 20, 5)
    x = torch.rand(8, 20)
    y_shared = xb.matmul(x)
    assert y_shared.shape == (4, 8, 5)
    y_per = xb.matmul(x.expand(4, 8, 20))
    assert torch.allclose(y_shared, y_per)
    # each trial equals a single-trial computation with that trial's conductances
    for t in range(4):
        assert torch.allclose(y_shared[t], x @ xb.weights()[t], rtol=1e-4, atol=1e-5)
    # trials are different device instances
    assert not torch.allclose(xb.weights()[0], xb.weights()[1])
    with pytest.raises(ValueError, match="trials"):
        xb.matmul(torch.rand(3, 8, 20))
    with pytest.raises(ValueError, match="rows"):
        xb.matmul(torch.rand(8, 21))


def test_same_seed_same_crossbar():
    w = torch.randn(30, 10)
    nl = [DefectPercent(alpha=0.2)]
    a = Crossbar.from_weights(w, trials=3, nonidealities=nl, seed=11)
    b = Crossbar.from_weights(w, trials=3, nonidealities=nl, seed=11)
    c = Crossbar.from_weights(w, trials=3, nonidealities=nl, seed=12)
    assert torch.equal(a.g_pos, b.g_pos) and torch.equal(a.g_neg, b.g_neg)
    assert not torch.equal(a.g_pos, c.g_pos)


def test_stuck_masks_follow_faults():
    w = torch.randn(200, 50)
    xb = Crossbar.from_weights(w, memristor=DEV, trials=2, nonidealities=[StuckAt(p_hrs=0.1)], seed=0)
    assert torch.all(xb.g_pos[xb.stuck_pos] == DEV.g_min)
    assert xb.stuck_pos.float().mean().item() == pytest.approx(0.1, abs=0.02)


def test_uniform_quantizer_levels():
    x = torch.linspace(-1.2, 1.2, 1001)
    q = uniform_quantize(x, 3, 1.0, signed=True)
    # signed 3 bits: q in {-3..3} * 1/3, saturating at +-1
    assert torch.allclose(torch.unique(q), torch.tensor([-1, -2 / 3, -1 / 3, 0, 1 / 3, 2 / 3, 1.0]), atol=1e-6)
    u = uniform_quantize(torch.linspace(0, 1, 1001), 2, 1.0, signed=False)
    assert torch.allclose(torch.unique(u), torch.tensor([0, 1 / 3, 2 / 3, 1.0]), atol=1e-6)
    # straight-through gradient
    x = torch.tensor([0.3], requires_grad=True)
    uniform_quantize(x, 4, 1.0).sum().backward()
    assert x.grad.item() == 1.0


def test_dac_and_adc_in_crossbar():
    w = torch.randn(16, 4, dtype=torch.float64)
    x = torch.rand(10, 16, dtype=torch.float64)
    xb = Crossbar.from_weights(w, dac=Converter(bits=2, range=1.0, signed=False))
    xq = uniform_quantize(x, 2, 1.0, signed=False)
    assert torch.allclose(xb.matmul(x)[0], xq @ w)
    xb2 = Crossbar.from_weights(w, adc=Converter(bits=4, range=0.5))
    v = xb2.mvm(x * 0.2)[0]
    step = 0.5 / 7
    assert torch.allclose(v / step, torch.round(v / step), atol=1e-6)
    assert v.abs().max() <= 0.5 + 1e-9


def test_tiled_adc_sums_per_tile_partials():
    w = torch.randn(10, 3, dtype=torch.float64)
    x = torch.rand(4, 10, dtype=torch.float64) * 0.2
    adc = Converter(bits=3, range=0.4)
    xb = Crossbar.from_weights(w, adc=adc, tile=Tiling(rows=4, cols=8))
    g = xb.g_diff()[0]
    expected = sum(adc((x[:, s:s + 4] @ g[s:s + 4]) * xb.config.r_s) for s in (0, 4, 8))
    assert torch.allclose(xb.mvm(x)[0], expected)
    c = xb.counts()
    assert (c["row_tiles"], c["col_tiles"], c["tiles"], c["cells"]) == (3, 1, 3, 60)


def test_tile_counts():
    c = OffsetDifferential().tile_counts(784, 100, Tiling(128, 128))
    assert (c["row_tiles"], c["col_tiles"], c["tiles"], c["cells"]) == (7, 2, 14, 784 * 200)  # 200 columns, 64 pairs per tile
    c = ReferenceColumn().tile_counts(784, 100, Tiling(128, 128))
    assert (c["col_tiles"], c["cols"]) == (1, 101)


def test_read_noise_has_the_per_cell_distribution():
    """Output-space read noise must equal the sum of independent per-cell noise (checked by brute force)."""
    torch.manual_seed(0)
    w = torch.randn(12, 3, dtype=torch.float64)
    x = torch.rand(1, 12, dtype=torch.float64)
    rn = ReadNoise(0.05, "relative")
    xb = Crossbar.from_weights(w, memristor=DEV, read_noise=rn, trials=20000, seed=1)
    out = xb.mvm(x * 0.2)[:, 0, :]  # (T, 3)
    gp, gn = xb.conductances
    # brute force: sample per-cell noise explicitly
    g = torch.Generator().manual_seed(5)
    T = 20000
    gp_n = gp[:1] * (1 + 0.05 * torch.randn(T, 12, 3, generator=g, dtype=torch.float64))
    gn_n = gn[:1] * (1 + 0.05 * torch.randn(T, 12, 3, generator=g, dtype=torch.float64))
    brute = ((x * 0.2) @ (gp_n - gn_n))[:, 0, :] * xb.config.r_s
    assert torch.allclose(out.mean(0), brute.mean(0), rtol=0.01, atol=1e-4)
    assert torch.allclose(out.std(0), brute.std(0), rtol=0.05)
    assert out.std(0).min() > 0


def test_bad_configs():
    with pytest.raises(ConfigError, match="unknown"):
        from_dict(CrossbarConfig, {"devise": "ti-alox-taox"})
    with pytest.raises(ConfigError, match="g_min"):
        from_dict(CrossbarConfig, {"memristor": {"g_min": 1e-3, "g_max": 1e-4}})
    with pytest.raises(ConfigError, match="bits"):
        from_dict(CrossbarConfig, {"adc": {"bits": 0}})
    with pytest.raises(ConfigError, match="r_s"):
        from_dict(CrossbarConfig, {"r_s": -5})
    with pytest.raises(ConfigError, match="p_hrs"):
        from_dict(CrossbarConfig, {"nonidealities": [{"kind": "stuck_at", "p_hrs": 1.2}]})
    with pytest.raises(ConfigError, match="sigma"):
        from_dict(CrossbarConfig, {"read_noise": {"sigma": -1}})
    with pytest.raises(ConfigError, match="scheme"):
        from_dict(CrossbarConfig, {"mapping": {"scheme": "triple"}})
    with pytest.raises(ValueError, match="NaN"):
        Crossbar.from_weights(torch.tensor([[float("nan"), 1.0]]))
    with pytest.raises(ConfigError, match="trials"):
        Crossbar.from_weights(torch.ones(2, 2), trials=0)


def test_config_from_yaml_round_trip(tmp_path):
    from memristive.config import load_config, to_dict

    p = tmp_path / "xb.yaml"
    p.write_text("memristor: {r_on: 1000, r_off: 12000}\nnonidealities:\n  - {kind: defect_percent, alpha: 0.1}\n"
                 "adc: {bits: 8}\ntile: {rows: 128, cols: 128}\n")
    cfg = from_dict(CrossbarConfig, load_config(p))
    assert cfg.memristor.g_max == pytest.approx(1e-3)
    assert isinstance(cfg.nonidealities[0], DefectPercent)
    again = from_dict(CrossbarConfig, to_dict(cfg))
    assert to_dict(again) == to_dict(cfg)


def test_convert_save_and_load(tmp_path):
    torch.manual_seed(0)
    model = mlp([20, 8, 3])
    hw = convert(model, CrossbarConfig(nonidealities=[DefectPercent(0.1)]), trials=5, seed=2)
    assert isinstance(hw[0], CrossbarLinear) and isinstance(hw[1], Abs)
    x = torch.rand(7, 20)
    y = hw(x)
    assert y.shape == (5, 7, 3)
    # ideal conversion reproduces the software model
    ideal = convert(model, CrossbarConfig(), trials=1)
    assert torch.allclose(ideal(x)[0], model(x), atol=1e-5)
    # torch.save of the whole model and load_state_dict into a fresh conversion
    buf = io.BytesIO()
    torch.save(hw, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert torch.allclose(loaded(x), y)
    fresh = convert(model, CrossbarConfig(nonidealities=[DefectPercent(0.1)]), trials=5, seed=99)
    assert not torch.allclose(fresh(x), y)
    fresh.load_state_dict(hw.state_dict())
    assert torch.allclose(fresh(x), y)


def test_crossbar_linear_bias_and_gradients():
    lin = nn.Linear(5, 3)
    layer = CrossbarLinear.from_linear(lin, trials=2)
    x = torch.rand(4, 5, requires_grad=True)
    y = layer(x)
    assert torch.allclose(y[0], lin(x), atol=1e-5)
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_reference_column_read_noise_is_shared_across_columns():
    """With one reference device per row, its read noise is common to all columns: outputs correlate."""
    torch.manual_seed(0)
    w = torch.randn(8, 2, dtype=torch.float64)
    x = torch.rand(1, 8, dtype=torch.float64)
    T, s = 40000, 0.05
    xb = Crossbar.from_weights(w, memristor=DEV, mapping="reference", read_noise=ReadNoise(s, "range"), trials=T, seed=3)
    out = xb.mvm(x * 0.2)[:, 0, :] / xb.config.r_s
    var_one = (s * DEV.g_range) ** 2 * float(((x * 0.2) ** 2).sum())
    # by hand: each column has its own cell noise plus the shared reference noise
    assert out.var(0).tolist() == pytest.approx([2 * var_one] * 2, rel=0.04)
    cov = ((out[:, 0] - out[:, 0].mean()) * (out[:, 1] - out[:, 1].mean())).mean().item()
    assert cov == pytest.approx(var_one, rel=0.06)
    # differential pairs have independent noise per column
    xd = Crossbar.from_weights(w, memristor=DEV, read_noise=ReadNoise(s, "range"), trials=T, seed=3)
    od = xd.mvm(x * 0.2)[:, 0, :] / xd.config.r_s
    assert od.var(0).tolist() == pytest.approx([2 * var_one] * 2, rel=0.04)
    assert abs(torch.corrcoef(od.T)[0, 1].item()) < 0.03


def test_derived_cache_follows_buffer_changes():
    w = torch.randn(6, 3, dtype=torch.float64)
    xb = Crossbar.from_weights(w, memristor=DEV)
    x = torch.rand(2, 6, dtype=torch.float64)
    y0 = xb.matmul(x)
    xb.g_pos.mul_(1.1)  # in-place change
    assert torch.allclose(xb.matmul(x)[0], x @ xb.weights()[0])
    xb.g_pos = xb.g_pos.clone() * 0.5  # buffer replaced by a new tensor
    assert torch.allclose(xb.matmul(x)[0], x @ xb.weights()[0])
    xb.program(w)
    assert torch.allclose(xb.matmul(x), y0)


def test_partial_nested_override_keeps_the_experiments_own_defaults():
    from dataclasses import dataclass, field

    from memristive.nonideal import ReadNoise

    @dataclass
    class Exp:
        crossbar: CrossbarConfig = field(default_factory=lambda: CrossbarConfig(
            adc=Converter(bits=8, range=2.0), read_noise=ReadNoise(0.03, "range")))

    cfg = from_dict(Exp, {"crossbar": {"adc": {"range": 1.0}, "read_noise": {"sigma": 0.05}}})
    assert (cfg.crossbar.adc.bits, cfg.crossbar.adc.range) == (8, 1.0)
    assert (cfg.crossbar.read_noise.sigma, cfg.crossbar.read_noise.mode) == (0.05, "range")
    # a device mapping replaces the whole device (resistances vs conductances never mix)
    cfg = from_dict(Exp, {"crossbar": {"memristor": {"g_min": 1e-6, "g_max": 1e-4}}})
    assert cfg.crossbar.memristor.g_max == pytest.approx(1e-4) and cfg.crossbar.adc.bits == 8
