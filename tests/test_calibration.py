"""Calibration (inputs split), threshold-gated in-situ training, device writes; Fig. 6 smoke test.

Expected values are hand calculations from the formulas in the module docstrings of
memristive.methods.calibration and memristive.methods.insitu.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from memristive.config import ConfigError, from_dict
from memristive.crossbar import BalancedDifferential, Crossbar, CrossbarConfig, Mapping, ReferenceColumn
from memristive.devices import LinearDevice
from memristive.methods.calibration import (
    CalibratedLinear,
    CalibrationConfig,
    calibrate,
    calibrated_output,
    kmeans,
    nearest_standard,
    standard_mode,
    trial_matmul,
)
from memristive.methods.insitu import (
    DeviceArray,
    InSituConfig,
    PulsedArray,
    insitu_train,
    linear_pulse_response,
    output_gate,
    update_gate,
)
from memristive.nn import CrossbarLinear, convert, mlp
from memristive.nonideal import DefectPercent, StuckAt

DEV = LinearDevice(r_on=1e3, r_off=12e3)
G_MIN, G_MAX = 1 / 12e3, 1 / 1e3
# the earlier reconstruction: exact writes, output gate, distillation from the standard output
EXACT = dict(write_model="exact", gate="output", loss="standard")


def _layer(w_io: torch.Tensor, trials=1, **cfg) -> CrossbarLinear:
    lin = nn.Linear(w_io.shape[0], w_io.shape[1], bias=False, dtype=w_io.dtype)
    with torch.no_grad():
        lin.weight.copy_(w_io.t())
    return CrossbarLinear.from_linear(lin, CrossbarConfig(memristor=DEV, **cfg), trials=trials, seed=3)


# ------------------------------------------------------------------------------------------ calibration
def test_calibrated_output_formula():
    # V̂ = V_STD + V̂' − δ'
    assert torch.equal(calibrated_output(torch.tensor([2.0]), torch.tensor([1.0]), torch.tensor([0.5])), torch.tensor([2.5]))


def test_calibration_removes_known_weight_error_exactly():
    torch.manual_seed(0)
    w = torch.tensor([[0.5, -0.25], [0.1, 0.4], [-0.3, 0.2]], dtype=torch.float64)
    layer = _layer(w)  # float64 throughout
    xb = layer.crossbar
    # a known error: device (0, 1) of G+ drifts up by 2e-4 S  ->  ΔW[0, 1] = 2e-4 / k
    xb.g_pos[0, 0, 1] += 2e-4
    d_w = torch.zeros_like(w)
    d_w[0, 1] = 2e-4 / xb.k
    x_std = torch.tensor([[0.2, 0.6, 0.4]], dtype=torch.float64)
    cal = CalibratedLinear(layer, w, x_std)
    x = torch.tensor([[1.0, 0.0, 0.5], [0.2, 0.6, 0.4]], dtype=torch.float64)
    y = cal(x)[0]
    # by hand: V̂ = x·W + (x − x_STD)·ΔW
    expect = x @ w + (x - x_std) @ d_w
    assert torch.allclose(y, expect, rtol=0, atol=1e-12)
    # an input equal to the standard is reproduced exactly, the uncalibrated array is not
    assert torch.allclose(y[1], (x_std @ w)[0], rtol=0, atol=1e-12)
    assert not torch.allclose(xb.matmul(x)[0, 1], (x_std @ w)[0], atol=1e-6)


def test_calibration_removes_constant_output_offset_exactly():
    w = torch.tensor([[0.5, -0.25], [0.1, 0.4]])
    layer = _layer(w)
    offset = torch.tensor([0.3, -0.7])
    orig = layer.crossbar.matmul
    layer.crossbar.matmul = lambda x: orig(x) + offset  # an array with a constant output offset c
    for standard in (torch.zeros(1, 2), torch.tensor([[0.3, 0.9]])):
        cal = CalibratedLinear(layer, w, standard)
        x = torch.tensor([[1.0, 0.5], [0.0, 0.25]])
        assert torch.allclose(cal(x)[0], x @ w, atol=1e-6)  # ideal array + offset: exactly x·W back


def test_nearest_standard_and_per_sample_correction():
    s = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    x = torch.tensor([[0.1, 0.2], [0.9, 0.7], [0.6, 0.6]])
    assert nearest_standard(x, s).tolist() == [0, 1, 1]
    xt = torch.stack([x, x.flip(0)])
    assert nearest_standard(xt, s).tolist() == [[0, 1, 1], [1, 1, 0]]
    # the correction uses each sample's own standard: error scales with ‖x − x_STD(x)‖
    w = torch.tensor([[0.5], [-0.25]])
    layer = _layer(w)
    layer.crossbar.g_pos[0, 1, 0] += 1e-4  # ΔW[1, 0] = 1e-4 / k
    dw = 1e-4 / layer.crossbar.k
    cal = CalibratedLinear(layer, w, s)
    y = cal(x)[0, :, 0]
    expect = (x @ w)[:, 0] + (x[:, 1] - s[nearest_standard(x, s), 1]) * dw
    assert torch.allclose(y, expect, atol=1e-6)


def test_kmeans_finds_separated_clusters():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(200, 2, generator=g) * 0.05 + torch.tensor([0.0, 0.0])
    b = torch.randn(100, 2, generator=g) * 0.05 + torch.tensor([3.0, 1.0])
    c = kmeans(torch.cat([a, b]), 2, generator=torch.Generator().manual_seed(1))
    c = c[c[:, 0].argsort()]
    assert torch.allclose(c[0], a.mean(0), atol=1e-5) and torch.allclose(c[1], b.mean(0), atol=1e-5)


def test_trial_matmul_matches_per_trial_products_and_gradients():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 4, generator=g)
    w = torch.randn(3, 4, 2, generator=g, requires_grad=True)
    y = trial_matmul(x, w)
    ref = torch.stack([x @ w[t] for t in range(3)])
    assert torch.allclose(y, ref, atol=1e-6)
    (y * torch.arange(30.0).view(3, 5, 2)).sum().backward()
    gw = w.grad.clone()
    w.grad = None
    (ref * torch.arange(30.0).view(3, 5, 2)).sum().backward()
    assert torch.allclose(gw, w.grad, atol=1e-5)


def test_calibrate_model_standards_and_standard_mode():
    torch.manual_seed(0)
    model = mlp([6, 4, 3])
    x = torch.rand(50, 6)
    hw = convert(model, CrossbarConfig(memristor=DEV, nonidealities=[DefectPercent(alpha=0.3)]), trials=2, seed=1)
    cal = calibrate(hw, model, x, CalibrationConfig(standard="mean"))
    layers = [m for m in cal.modules() if isinstance(m, CalibratedLinear)]
    assert len(layers) == 2
    assert torch.allclose(layers[0].standards[0], x.mean(0), atol=1e-6)
    assert torch.allclose(layers[1].standards[0], model[1](model[0](x)).mean(0), atol=1e-6)
    with standard_mode(cal):
        assert torch.allclose(cal(x), model(x), atol=1e-5)
    none = calibrate(hw, model, None, CalibrationConfig(standard="none"))
    assert torch.allclose(none(x), hw(x))  # no standards: the raw array output
    near = calibrate(hw, model, x, CalibrationConfig(standard="nearest", n_standards=5))
    assert [m.n_standards for m in near.modules() if isinstance(m, CalibratedLinear)] == [5, 5]
    with pytest.raises(ValueError, match="needs calibration inputs"):
        calibrate(hw, model, None, CalibrationConfig(standard="mean"))
    with pytest.raises(ConfigError, match="calibration.standard"):
        CalibrationConfig(standard="median")


def test_calibrated_model_state_dict_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = mlp([6, 4, 3])
    x = torch.rand(20, 6)
    hw = convert(model, CrossbarConfig(memristor=DEV, nonidealities=[DefectPercent(alpha=0.3)]), trials=2, seed=1)
    cal = calibrate(hw, model, x)
    torch.save(cal, tmp_path / "m.pt")
    again = torch.load(tmp_path / "m.pt", weights_only=False)
    assert torch.allclose(again(x), cal(x))
    cfg = CrossbarConfig(memristor=DEV, nonidealities=[DefectPercent(alpha=0.3)])
    fresh = calibrate(convert(model, cfg, trials=2, seed=5), model, x)  # other seed: other defects
    fresh.load_state_dict(cal.state_dict())
    assert torch.allclose(fresh(x), cal(x), atol=1e-6)
    other = calibrate(convert(model, CrossbarConfig(memristor=DEV), trials=2, seed=5), model, x)
    with pytest.raises(ConfigError, match="different config.*nonidealities"):
        other.load_state_dict(cal.state_dict())


# ------------------------------------------------------------------------------------------ device writes
def test_device_array_write_offset_mapping_by_hand():
    w = torch.tensor([[0.5, -0.5], [0.25, 0.0]])
    layer = _layer(w)
    xb = layer.crossbar
    k = xb.k  # (G_max − G_min) / 0.5
    arr = DeviceArray(xb, w)
    dw = torch.tensor([[[0.1, 0.0], [0.0, -0.2]]])
    arr.write(dw)
    # W_int = [[0.5 (clipped at w_max), -0.5], [0.25, -0.2]]
    assert torch.allclose(xb.g_pos[0], torch.tensor([[G_MAX, G_MIN], [G_MIN + k * 0.25, G_MIN]]), rtol=1e-6)
    assert torch.allclose(xb.g_neg[0], torch.tensor([[G_MIN, G_MAX], [G_MIN, G_MIN + k * 0.2]]), rtol=1e-6)
    # only G−(1, 1) changed target: one write; the clipped weight's target did not change
    assert arr.writes("pos").sum() == 0 and arr.writes("neg").tolist() == [[[0, 0], [0, 1]]]


def test_device_array_balanced_and_reference_writes():
    w = torch.tensor([[0.4, -0.2]])
    for mapping in (BalancedDifferential(), ReferenceColumn()):
        layer = _layer(w, mapping=mapping)
        arr = DeviceArray(layer.crossbar, w)
        arr.write(torch.tensor([[[-0.05, 0.1]]]))
        assert torch.allclose(layer.crossbar.weights()[0], torch.tensor([[0.35, -0.1]]), atol=1e-6)
        arr.write(torch.tensor([[[0.2, 0.0]]]))  # beyond w_max = 0.4: the device saturates at its bound
        assert torch.allclose(layer.crossbar.weights()[0], torch.tensor([[0.4, -0.1]]), atol=1e-6)


def test_device_levels_and_range_obeyed_by_writes():
    dev = LinearDevice(r_on=1e3, r_off=12e3, levels=5)
    lin = nn.Linear(3, 2, bias=False)
    layer = CrossbarLinear.from_linear(lin, CrossbarConfig(memristor=dev), trials=2, seed=0)
    arr = DeviceArray(layer.crossbar, lin.weight.detach().t())
    g = torch.Generator().manual_seed(0)
    step = (G_MAX - G_MIN) / 4
    for _ in range(5):
        arr.write(torch.randn(2, 3, 2, generator=g))
        for which in ("pos", "neg"):
            gg = getattr(layer.crossbar, f"g_{which}")
            assert gg.min() >= G_MIN * (1 - 1e-6) and gg.max() <= G_MAX * (1 + 1e-6)
            q = (gg - G_MIN) / step
            assert torch.allclose(q, q.round(), atol=1e-4)


def test_device_gain_persists_for_varied_devices():
    w = torch.tensor([[0.5, 0.25]])
    layer = _layer(w)
    xb = layer.crossbar
    xb.g_pos[0, 0, 1] *= 2.0  # a varied device: G = 2·s
    arr = DeviceArray(xb, w)
    arr.write(torch.tensor([[[0.0, 0.1]]]))
    s = G_MIN + xb.k * 0.35
    assert torch.allclose(xb.g_pos[0, 0, 1], torch.tensor(2 * s), rtol=1e-6)


def test_device_array_rejects_bad_updates():
    w = torch.tensor([[0.5, 0.25]])
    arr = DeviceArray(_layer(w).crossbar, w)
    with pytest.raises(ValueError, match="NaN or infinite"):
        arr.write(torch.tensor([[[float("nan"), 0.0]]]))
    with pytest.raises(ValueError, match="beyond the array's range"):
        arr.program(torch.tensor([[0.7, 0.0]]))


# ------------------------------------------------------------------------------------------ in-situ training
def _toy(trials=3, alpha=0.3, seed=1, **cfg):
    torch.manual_seed(0)
    model = mlp([8, 6, 3])
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 8, generator=g)
    y = model(x).argmax(-1)
    hw = convert(model, CrossbarConfig(memristor=DEV, nonidealities=[DefectPercent(alpha=alpha)], **cfg), trials=trials, seed=seed)
    return model, hw, x, y


def test_stuck_devices_never_change_during_insitu_training():
    model, hw, x, y = _toy()
    cal = calibrate(hw, model, x)
    before = [(m.crossbar.g_pos.clone(), m.crossbar.g_neg.clone(), m.crossbar.stuck_pos.clone(), m.crossbar.stuck_neg.clone())
              for m in cal.modules() if isinstance(m, CalibratedLinear)]
    assert sum(int(b[2].sum() + b[3].sum()) for b in before) > 0
    stats = insitu_train(cal, x, y, InSituConfig(epochs=3, lr=0.5, batch_size=16, threshold=0.0, gate="none"), progress=False)
    assert stats["writes_per_trial_mean"] > 0
    for (gp, gn, sp, sn), m in zip(before, [m for m in cal.modules() if isinstance(m, CalibratedLinear)]):
        assert torch.equal(m.crossbar.g_pos[sp], gp[sp]) and torch.equal(m.crossbar.g_neg[sn], gn[sn])
        assert not torch.equal(m.crossbar.g_pos[~sp], gp[~sp])  # the others did move


def test_stuck_devices_get_no_writes_counted():
    model, hw, x, y = _toy()
    cal = calibrate(hw, model, x)
    layers = [m for m in cal.modules() if isinstance(m, CalibratedLinear)]
    arrays = [DeviceArray(m.crossbar, m.w_ref) for m in layers]
    insitu_train(cal, x, y, InSituConfig(epochs=2, lr=0.5, batch_size=16, gate="none"), arrays=arrays, progress=False)
    for a, m in zip(arrays, layers):
        assert a.writes("pos")[m.crossbar.stuck_pos].sum() == 0
        assert a.writes("pos").sum() > 0
        assert int(a.blocked().sum()) > 0  # writes were commanded to stuck devices, without effect


def test_output_gate_blocks_updates_within_threshold():
    # a defect-free array reproduces the standard output: the output gate never opens, nothing is written
    model, hw, x, y = _toy(alpha=0.0)
    cal = calibrate(hw, model, x)
    g0 = [m.crossbar.g_pos.clone() for m in cal.modules() if isinstance(m, CalibratedLinear)]
    stats = insitu_train(cal, x, y, InSituConfig(epochs=5, lr=1.0, batch_size=16, threshold=1e-2, **EXACT), progress=False)
    assert stats["writes_per_trial_mean"] == 0
    assert stats["epochs_run"] == 1  # converged: every sample within the threshold
    assert all(torch.equal(a, m.crossbar.g_pos) for a, m in zip(g0, [m for m in cal.modules() if isinstance(m, CalibratedLinear)]))
    # the same array without the gate is written
    cal2 = calibrate(hw, model, x)
    assert insitu_train(cal2, x, y, InSituConfig(epochs=1, lr=1.0, batch_size=16, gate="none", loss="labels",
                                                 write_model="exact"), progress=False)["writes_per_trial_mean"] > 0


def test_threshold_controls_gated_samples_and_writes():
    model, hw, x, y = _toy(alpha=0.4)
    big = insitu_train(calibrate(hw, model, x), x, y, InSituConfig(epochs=1, lr=0.5, batch_size=16, threshold=2.0, **EXACT),
                       progress=False)
    assert big["writes_per_trial_mean"] == 0 and big["history"][0]["gated_fraction_mean"] == 0
    small = insitu_train(calibrate(hw, model, x), x, y, InSituConfig(epochs=1, lr=0.5, batch_size=16, threshold=0.0, **EXACT),
                         progress=False)
    assert small["writes_per_trial_mean"] > 0 and small["history"][0]["gated_fraction_mean"] > 0


def test_gate_functions_by_hand():
    out = torch.tensor([[[0.0, 0.0], [2.0, 0.0]]])
    std = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    # softmax([2, 0]) = [0.8808, 0.1192] vs [0.5, 0.5]: d = 0.3808
    assert output_gate(out, std, 0.38).tolist() == [[False, True]]
    assert output_gate(out, std, 0.39).tolist() == [[False, False]]
    dw = torch.tensor([0.02, -0.005, -0.03, 0.01])
    assert torch.equal(update_gate(dw, 1e-2), torch.tensor([0.02, 0.0, -0.03, 0.0]))


def test_update_gate_limits_written_devices():
    model, hw, x, y = _toy(alpha=0.4)
    writes = [insitu_train(calibrate(hw, model, x), x, y, InSituConfig(epochs=1, lr=0.5, batch_size=16, gate=gate, threshold=th,
                                                                       write_model="exact", loss="standard"),
                           progress=False)["writes_per_trial_mean"]
              for gate, th in (("none", 0.0), ("update", 1e-4), ("update", 1e-3), ("update", 1.0))]
    assert writes[0] > writes[1] > writes[2] > 0 and writes[3] == 0  # a larger threshold writes less


@pytest.mark.parametrize("model_kw", [dict(write_model="exact", gate="output", loss="standard"),
                                      dict(write_model="pulsed", write_noise=0.0)])
def test_insitu_trials_independent_and_seeded(model_kw):
    model, hw, x, y = _toy(trials=3)
    # make trial 2 an exact copy of trial 0: training must treat them identically (no cross-talk)
    for m in hw.modules():
        if isinstance(m, CrossbarLinear):
            for name in ("g_pos", "g_neg", "stuck_pos", "stuck_neg"):
                getattr(m.crossbar, name)[2] = getattr(m.crossbar, name)[0]
    cfg = InSituConfig(epochs=2, lr=0.5, batch_size=16, threshold=1e-3, seed=4, **model_kw)
    a = calibrate(hw, model, x)
    sa = insitu_train(a, x, y, cfg, progress=False)
    out = a(x)
    assert torch.allclose(out[0], out[2], atol=1e-6)
    assert not torch.allclose(out[0], out[1], atol=1e-4)
    assert sa["writes_per_trial"][0] == sa["writes_per_trial"][2]
    # same seed -> same result
    b = calibrate(hw, model, x)
    insitu_train(b, x, y, cfg, progress=False)
    assert torch.equal(b(x), out)
    # changing trial 1's array does not change what trial 0 learns
    hw2 = copy.deepcopy(hw)
    for m in hw2.modules():
        if isinstance(m, CrossbarLinear):
            m.crossbar.g_pos[1] = m.crossbar.g_pos[1] * 1.3
    c = calibrate(hw2, model, x)
    insitu_train(c, x, y, cfg, progress=False)
    assert torch.allclose(c(x)[0], out[0], atol=1e-6)


# Pulsed writes are checked at MNIST scale in tests/test_papers.py: on this random-init 8×6×3 toy
# (labels = the model's own argmax, tiny logit margins) one pulse is 2 % of w_max and 40 label-loss
# steps do not reliably raise accuracy (measured: 1 of 4 arrays improves).
@pytest.mark.parametrize("kw", [EXACT])
def test_insitu_improves_defective_arrays(kw):
    model, hw, x, y = _toy(trials=4, alpha=0.4)
    cal = calibrate(hw, model, x)
    with torch.no_grad():
        before = (cal(x).argmax(-1) == y).float().mean()
    insitu_train(cal, x, y, InSituConfig(epochs=10, lr=0.5, batch_size=16, threshold=1e-3, **kw), progress=False)
    with torch.no_grad():
        after = (cal(x).argmax(-1) == y).float().mean()
    assert after > before


def test_insitu_with_nonideal_periphery_uses_array_values():
    from memristive.crossbar import Converter

    model, hw, x, y = _toy(trials=2, alpha=0.3, adc=Converter(bits=6))
    cal = calibrate(hw, model, x)
    stats = insitu_train(cal, x, y, InSituConfig(epochs=1, lr=0.5, batch_size=16, threshold=1e-3), progress=False)
    assert stats["writes_per_trial_mean"] > 0
    lay = next(m for m in cal.modules() if isinstance(m, CalibratedLinear))
    delta = lay.delta.clone()
    lay.recalibrate()
    assert torch.equal(delta, lay.delta)  # recalibrated after the last write


def test_insitu_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="insitu.gate"):
        InSituConfig(gate="sometimes")
    with pytest.raises(ConfigError, match="insitu.lr"):
        InSituConfig(lr=0)
    with pytest.raises(ConfigError, match="insitu.write_model"):
        InSituConfig(write_model="ideal")
    with pytest.raises(ConfigError, match="insitu.pulses"):
        InSituConfig(pulses=0)
    with pytest.raises(ConfigError, match="insitu.write_noise"):
        InSituConfig(write_noise=-0.1)
    assert InSituConfig().pulses is None and InSituConfig().write_noise is None  # 100 / 0.03 for a linear device
    with pytest.raises(ConfigError, match="insitu.write_variation"):
        InSituConfig(write_variation="redraw")  # belongs to the exact write model
    model, hw, x, y = _toy()
    with pytest.raises(ValueError, match="calibrate"):
        insitu_train(hw, x, y)


# ------------------------------------------------------------------------------------------ core fixes used here
def test_balanced_mapping_by_hand():
    w = torch.tensor([[0.5, -0.25]])
    xb = Crossbar.from_weights(w, memristor=DEV, mapping=BalancedDifferential())
    mid, k = (G_MIN + G_MAX) / 2, (G_MAX - G_MIN) / 0.5
    assert torch.allclose(xb.g_pos[0], torch.tensor([[G_MAX, mid - k * 0.125]]), rtol=1e-6)
    assert torch.allclose(xb.g_neg[0], torch.tensor([[G_MIN, mid + k * 0.125]]), rtol=1e-6)
    assert torch.allclose(xb.weights()[0], w, atol=1e-6)
    with pytest.raises(ConfigError, match=r"mapping\.(scheme|balanced).*renamed"):
        from_dict(CrossbarConfig, {"mapping": {"scheme": "reference", "balanced": True}})


def test_reference_and_balanced_float32_programming_does_not_trip_range_check():
    # k·W + b rounds a few ulps below G_min in float32; the range check must tolerate rounding
    w = torch.randn(784, 100, generator=torch.Generator().manual_seed(0))
    for m in (ReferenceColumn(), BalancedDifferential()):
        xb = Crossbar.from_weights(w, memristor=DEV, mapping=m)
        assert torch.allclose(xb.weights()[0], w, atol=1e-5)


# ------------------------------------------------------------------------------------------ experiment
def test_fig6_quick_smoke(tmp_path):
    from memristive.experiments import run_experiment

    quick = ["defect_percents=[0,20]", "trials=2", "n_train=1000", "n_test=500", "epochs=1"]
    res, run = run_experiment("calibration-fig6", out=tmp_path / "fig6", quick=True, overrides=quick)
    assert "energy_per_inference_j" in res["hardware_cost"], res["hardware_cost"]  # the run's cost
    pts = res["metrics"]["points"]
    assert [p["defect_percent"] for p in pts] == [0, 20]
    assert pts[0]["none"]["mean"] == pts[0]["calibration"]["mean"]  # no defects: calibration changes nothing
    assert 0 < pts[1]["insitu"]["mean"] <= 100 and pts[1]["insitu_stats"]["write_model"] == "pulsed"
    assert (run.path / "fig6.png").is_file() and (run.path / "fig6.csv").is_file()
    # resumable: a second run serves every point from its checkpoint
    res2, _ = run_experiment("calibration-fig6", out=tmp_path / "fig6", quick=True, overrides=quick)
    assert sorted(res2["resumed_points"]) == ["fig6_0", "fig6_20", "software_model"]
    assert res2["metrics"]["points"] == pts


def test_fig6_none_curve_matches_defects_experiment():
    from memristive.data import Dataset
    from memristive.experiments.calibration import Fig6Config, fig6_point
    from memristive.experiments.defects import DefectsConfig, evaluate_defects

    torch.manual_seed(0)
    model = mlp([12, 6, 3])
    g = torch.Generator().manual_seed(0)
    x = torch.rand(60, 12, generator=g)
    y = model(x).argmax(-1)
    data = Dataset(x, y, x, y, "toy", "toy")
    fig = Fig6Config(trials=5, insitu=InSituConfig(epochs=1, n_train=20), calibration=CalibrationConfig(n_samples=60))
    p = fig6_point(model, data, fig, 16, seed=17, progress=False)
    ref = evaluate_defects(model, data, DefectsConfig(trials=5), 16, 17)
    assert p["none"]["mean"] == round(float(ref.double().mean()) * 100, 3)


def test_mapping_and_threshold_studies_quick_smoke(tmp_path):
    from memristive.experiments import run_experiment

    small = ["n_train=1000", "n_test=500", "epochs=1", "trials=2"]
    res, run = run_experiment("calibration-mapping", out=tmp_path / "map", quick=True, overrides=small)
    assert "energy_per_inference_j" in res["hardware_cost"], res["hardware_cost"]  # the run's cost
    rows = {r["variant"]: r for r in res["metrics"]["rows"]}
    assert rows["balanced"]["harmful_stuck_fraction_W1"] == 1.0  # every balanced device sits above G_min
    assert 0.3 < rows["offset (default)"]["harmful_stuck_fraction_W1"] < 0.7  # ~half sit at G_min
    assert (run.path / "mapping.png").is_file()
    res, run = run_experiment("calibration-threshold", out=tmp_path / "th", quick=True,
                              overrides=small + ["insitu.n_train=400", "gates=[both]"])
    assert "energy_per_inference_j" in res["hardware_cost"], res["hardware_cost"]  # the run's cost
    before = res["metrics"]["before_insitu"]
    assert before["none"] != before["calibration"]  # measured on the same arrays, before and after calibrate()
    by_th = {r["threshold"]: r for r in res["metrics"]["rows"]}
    assert by_th[0.1]["writes_per_device_mean"] <= by_th[0.0]["writes_per_device_mean"]
    assert (run.path / "threshold.png").is_file()


def test_redraw_write_variation_only_touches_varied_written_devices():
    w = torch.tensor([[0.5, 0.25, -0.25]])
    layer = _layer(w, trials=2)
    xb = layer.crossbar
    xb.g_pos[:, 0, 1] *= 2.0  # varied device (gain 2)
    xb.stuck_pos[:, 0, 0] = True  # a stuck device
    arr = DeviceArray(xb, w, write_variation="redraw", seed=0)
    g0 = xb.g_pos.clone()
    arr.write(torch.tensor([[[0.0, 0.1, 0.0]]]))
    s = G_MIN + xb.k * 0.35
    gain = xb.g_pos[:, 0, 1] / s
    assert not torch.allclose(gain, torch.full_like(gain, 2.0))  # the varied device landed at a fresh factor
    assert gain[0] != gain[1]  # independently per trial
    assert torch.equal(xb.g_pos[:, 0, 0], g0[:, 0, 0]) and torch.equal(xb.g_pos[:, 0, 2], g0[:, 0, 2])
    arr.write(torch.tensor([[[0.0, 0.0, -0.1]]]))  # a non-varied device is written: exactly on target
    assert torch.allclose(xb.g_neg[:, 0, 2], torch.full((2,), G_MIN + xb.k * 0.35), rtol=1e-6)
    assert torch.allclose(xb.g_pos[:, 0, 1], gain * s, rtol=1e-6)  # the varied device was not written again: unchanged
    with pytest.raises(ConfigError, match="write_variation"):
        DeviceArray(xb, w, write_variation="sometimes")


# ------------------------------------------------------------------------------------------ pulsed writes
def test_linear_pulse_response_by_hand():
    g = torch.tensor([5e-4, 5e-4, 9.9e-4, 1e-4, 5e-4], dtype=torch.float64)
    n = torch.tensor([3.0, -2.0, 5.0, -4.0, 0.0], dtype=torch.float64)
    dg = 1e-5
    out = linear_pulse_response(g, n, dg, 0.0, G_MIN, G_MAX)
    # 5e-4 + 3·1e-5; 5e-4 − 2·1e-5; 9.9e-4 + 5e-5 stops at G_max; 1e-4 − 4e-5 stops at G_min; n = 0 untouched
    expect = torch.tensor([5.3e-4, 4.8e-4, G_MAX, G_MIN, 5e-4], dtype=torch.float64)
    assert torch.allclose(out, expect, rtol=0, atol=1e-15)
    # write noise: a train of n pulses spreads as η·√n pulses (the n independent pulses' sum)
    big = torch.full((200_000,), 16.0, dtype=torch.float64)
    g0 = torch.full_like(big, 5e-4)
    noisy = linear_pulse_response(g0, big, dg, 0.1, G_MIN, G_MAX, torch.Generator().manual_seed(0))
    steps = (noisy - g0) / dg
    assert float(steps.mean()) == pytest.approx(16.0, abs=0.01)
    assert float(steps.std()) == pytest.approx(0.1 * 4.0, rel=0.02)


def test_pulsed_array_writes_by_hand():
    # offset pairs, w_max = 0.5: k = (G_max − G_min)/0.5; 100 pulses per range: ΔG = range/100, one pulse on each
    # device of a pair moves W by 2·ΔG/k = 0.01
    w = torch.tensor([[0.5, 0.25, -0.25]], dtype=torch.float64)
    lay = _layer(w, trials=2)
    xb = lay.crossbar
    xb.stuck_pos[1, 0, 1] = True  # trial 1: G+ of the middle cell is stuck
    arr = PulsedArray(xb, pulses=100, write_noise=0.0)
    assert arr.pulse_weight == pytest.approx(0.01)
    w0 = xb.weights().clone()
    arr.write(torch.tensor([[[0.0, 0.03, 0.004]]], dtype=torch.float64))  # 0.03 → 3 pulses per side; 0.004 → 0 (< ½ pulse)
    got = xb.weights()
    # cell 0: nothing; cell 2: below half a pulse, lost
    assert torch.equal(got[:, 0, 0], w0[:, 0, 0]) and torch.equal(got[:, 0, 2], w0[:, 0, 2])
    # cell 1, trial 0: G+ up 3 pulses, G− down 3 pulses but it sits at G_min already → +0.015 only
    assert float(got[0, 0, 1] - w0[0, 0, 1]) == pytest.approx(0.015, rel=1e-9)
    # trial 1: G+ is stuck, G− cannot go below G_min: nothing moves; the stuck device's train is counted as blocked
    assert float(got[1, 0, 1]) == pytest.approx(float(w0[1, 0, 1]), abs=1e-12)
    assert arr.blocked().tolist() == [0, 1]
    assert arr.writes("pos")[:, 0, 1].tolist() == [1, 0] and int(arr.pulses_sent("pos")[0, 0, 1]) == 3
    assert int(arr.writes("neg")[0, 0, 1]) == 1  # the pulse train was sent (and hit the bound)
    # a negative update on cell 0 (G+ at G_max): G+ down, G− up
    arr.write(torch.tensor([[[-0.02, 0.0, 0.0]]], dtype=torch.float64))
    assert float(xb.weights()[0, 0, 0]) == pytest.approx(0.48, rel=1e-9)


def test_pulsed_array_on_a_device_with_levels_steps_one_level():
    dev = LinearDevice(r_on=1e3, r_off=12e3, levels=16)
    xb = Crossbar.from_weights(torch.tensor([[0.5, -0.5]], dtype=torch.float64), memristor=dev, trials=1)
    with pytest.raises(ConfigError, match="pulses=100.*15"):
        PulsedArray(xb, pulses=100)
    assert PulsedArray(xb, pulses=15).dg == pytest.approx(dev.g_range / 15)


def test_pulsed_array_uses_the_memristors_own_pulse_response():
    from memristive.devices import device_from_spec

    dev = device_from_spec({"kind": "constant-step", "g_min": G_MIN, "g_max": G_MAX, "dw_min": 0.02})
    w = torch.tensor([[0.4, -0.2]], dtype=torch.float64)
    xb = Crossbar.from_weights(w, memristor=dev, mapping=BalancedDifferential(), trials=1)
    with pytest.raises(ConfigError, match="pulses"):
        PulsedArray(xb, pulses=100)  # the device sets its own step
    arr = PulsedArray(xb)
    assert arr.dg == pytest.approx(0.02 * (G_MAX - G_MIN), rel=1e-9)  # the controller's estimate of one pulse
    g0 = xb.g_pos.clone()
    arr.write(torch.tensor([[[0.0, 2 * arr.pulse_weight]]], dtype=torch.float64))  # 2 pulses on each device
    assert float(xb.g_pos[0, 0, 1] - g0[0, 0, 1]) == pytest.approx(2 * 0.02 * (G_MAX - G_MIN), rel=1e-6)
    assert torch.equal(xb.g_pos[0, 0, 0], g0[0, 0, 0])


def test_pulsed_array_balanced_and_reference_split():
    w = torch.tensor([[0.4, -0.2]], dtype=torch.float64)
    for mapping, sides in ((BalancedDifferential(), 2), (ReferenceColumn(), 1)):
        xb = Crossbar.from_weights(w, memristor=DEV, mapping=mapping, trials=1)
        arr = PulsedArray(xb, pulses=50, write_noise=0.0)
        dw = torch.tensor([[[0.0, 3 * arr.pulse_weight]]], dtype=torch.float64)
        before = xb.weights().clone()
        arr.write(dw)
        assert float(xb.weights()[0, 0, 1] - before[0, 0, 1]) == pytest.approx(3 * arr.pulse_weight, rel=1e-9)
        assert int(arr.pulses_sent("pos")[0, 0, 1]) == 3 and len(arr.sides) == sides


def test_pulsed_writes_never_read_conductances_and_count_reads():
    model, hw, x, y = _toy(trials=2, alpha=0.3)
    cal = calibrate(hw, model, x)
    st = insitu_train(cal, x, y, InSituConfig(epochs=1, lr=0.5, batch_size=16, threshold=1e-3), progress=False)
    # 4 batches of 16 through 2 layers: 128 forward MVMs, 64 transposed reads (layer 2), 1 standard per layer per write
    assert st["reads_per_trial"] == {"forward": 128, "backward": 64, "calibration": 8, "reference_forward": 0}
    assert st["write_model"] == "pulsed" and st["pulses_per_device_mean"] >= st["writes_per_device_mean"] > 0
    ex = insitu_train(calibrate(hw, model, x), x, y, InSituConfig(epochs=1, lr=0.5, batch_size=16, **EXACT), progress=False)
    assert ex["reads_per_trial"]["reference_forward"] == 64  # the exact reconstruction distils from the reference


def test_pulsed_threshold_trades_writes_for_accuracy():
    model, hw, x, y = _toy(trials=4, alpha=0.4)
    stats = [insitu_train(calibrate(hw, model, x), x, y, InSituConfig(epochs=3, lr=0.5, batch_size=16, threshold=th),
                          progress=False) for th in (0.0, 1e-2, 1e-1)]
    w = [s["writes_per_device_mean"] for s in stats]
    assert w[0] > w[1] > w[2] == 0  # a larger threshold writes less; above every update nothing is written
