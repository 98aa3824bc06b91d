"""Endurance charged by every in-situ method: hand-counted pulses, worn windows, failed devices, and
``endurance=None`` (or an endurance that never acts) leaving every result bit for bit unchanged."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from memristive.config import ConfigError, apply_overrides, from_dict
from memristive.crossbar import CrossbarConfig
from memristive.devices import LinearDevice
from memristive.devices.pulsed import ConstantStepDevice
from memristive.endurance import Endurance, Wear, endurance_window
from memristive.experiments.dtga import DTGACompareConfig
from memristive.methods.analog_optim import AnalogSGD, TikiTaka, trial_loss
from memristive.methods.calibration import CalibratedLinear, calibrate
from memristive.methods.dtga import DTGAConfig, InSituMLP
from memristive.methods.insitu import DeviceArray, InSituConfig, PulsedArray, insitu_train
from memristive.nn import CrossbarLinear, convert, mlp
from memristive.nonideal import DefectPercent

DEV = LinearDevice(r_on=1e3, r_off=12e3)
G_MIN, G_MAX = 1 / 12e3, 1 / 1e3
R = G_MAX - G_MIN
NEVER = Endurance(n_th=1e12, fail_mean=math.inf)  # charged, but never narrows and never fails


# ============================================================================ the rule
def test_wear_write_only_written_devices_and_index_forms_agree():
    cfg = Endurance(n_th=10, p=1.0, fail_mean=math.inf)
    g_before = torch.tensor([[0.0, 0.5, 1.0], [0.2, 0.9, 0.1]], dtype=torch.float64)
    g_after = torch.tensor([[0.95, 0.05, 1.2], [0.2, 0.9, 0.1]], dtype=torch.float64)
    pulses = torch.tensor([[40.0, -40.0, 5.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    full = Wear(cfg, 0.0, 1.0, (2, 3), dtype=torch.float64)
    out = full.write(g_before, g_after, pulses)
    # 40 writes, n_th = 10, p = 1: f = 1/4, window [0.5 − 0.5/4, 0.5 + 0.5/4] = [0.375, 0.625]
    assert out[0].tolist() == pytest.approx([0.625, 0.375, 1.2])  # 5 writes <= n_th: where the model put it
    assert torch.equal(out[1], g_after[1]) and full.writes.tolist() == [[40, 40, 5], [0, 0, 0]]
    sel = (torch.tensor([0, 0, 0]), torch.tensor([0, 1, 2]))  # the written devices only
    for index in (sel, torch.tensor([0, 1, 2])):  # tuple of index tensors, flat positions
        w = Wear(cfg, 0.0, 1.0, (2, 3), dtype=torch.float64)
        assert torch.equal(w.write(g_before[sel], g_after[sel], pulses[sel], index=index), out[sel])
        assert torch.equal(w.writes, full.writes)


# ============================================================================ in-situ (calibration paper)
def _one_layer(w: torch.Tensor, trials: int = 1) -> CrossbarLinear:
    lin = nn.Linear(w.shape[0], w.shape[1], bias=False, dtype=w.dtype)
    with torch.no_grad():
        lin.weight.copy_(w.t())
    cfg = CrossbarConfig(memristor=DEV, mapping={"kind": "differential", "w_max": 1.0})
    return CrossbarLinear.from_linear(lin, cfg, trials=trials, seed=0)


def test_insitu_pulsed_write_lands_in_the_worn_window_by_hand():
    w = torch.zeros(2, 1, dtype=torch.float64)
    xb = _one_layer(w).crossbar  # both devices of both cells at G_min; k = R / 1
    arr = PulsedArray(xb, pulses=100, write_noise=0.0, endurance=Endurance(n_th=10, p=1.0, fail_mean=math.inf))
    arr.write(torch.tensor([[[1.6], [0.0]]], dtype=torch.float64))
    # n = round(k·ΔW/(2·ΔG_pulse)) = round(1.6·R/(2·R/100)) = 80 pulses: +80 on G+, −80 on G−
    assert arr.pulses_sent("pos")[0, :, 0].tolist() == [80, 0] and arr.pulses_sent("neg")[0, :, 0].tolist() == [80, 0]
    assert arr.wear["pos"].writes[0, :, 0].tolist() == [80, 0] and arr.wear["neg"].writes[0, :, 0].tolist() == [80, 0]
    # f = (80/10)^−1 = 1/8: window [G_c − R/16, G_c + R/16]; a fresh device would reach G_min + 0.8 R
    lo, hi = G_MIN + 0.5 * R - R / 16, G_MIN + 0.5 * R + R / 16
    assert float(xb.g_pos[0, 0, 0]) == pytest.approx(hi, rel=1e-12)
    assert float(xb.g_neg[0, 0, 0]) == pytest.approx(lo, rel=1e-12)  # RESET pulses land at the raised floor
    wlo, whi = endurance_window(torch.tensor(80.0, dtype=torch.float64), G_MIN, G_MAX, 10, 1.0)
    assert (float(wlo), float(whi)) == pytest.approx((lo, hi), rel=1e-12)
    assert float(xb.g_pos[0, 1, 0]) == G_MIN and float(xb.g_neg[0, 1, 0]) == G_MIN  # not written
    assert float(xb.weights()[0, 0, 0]) == pytest.approx(0.125, rel=1e-9)  # (G+ − G−)/k = (R/8)/R


def _toy(trials=3, alpha=0.3):
    torch.manual_seed(0)
    model = mlp([8, 6, 3])
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 8, generator=g)
    y = model(x).argmax(-1)
    hw = convert(model, CrossbarConfig(memristor=DEV, nonidealities=[DefectPercent(alpha=alpha)]), trials=trials, seed=1)
    return model, hw, x, y


def _g_all(model):
    return torch.cat([torch.cat([m.crossbar.g_pos.flatten(), m.crossbar.g_neg.flatten()])
                      for m in model.modules() if isinstance(m, CalibratedLinear)])


@pytest.mark.parametrize("write_model", ["pulsed", "exact"])
def test_insitu_endurance_off_or_inert_changes_nothing(write_model):
    runs = []
    for end in (None, NEVER):
        model, hw, x, y = _toy()
        cal = calibrate(hw, model, x)
        cfg = InSituConfig(epochs=2, lr=0.5, batch_size=16, write_model=write_model, endurance=end)
        stats = insitu_train(cal, x, y, cfg, progress=False)
        runs.append((_g_all(cal), stats))
    (g0, s0), (g1, s1) = runs
    assert torch.equal(g0, g1)
    assert "endurance" not in s0 and s1["endurance"]["failed"] == 0
    assert s0["history"] == s1["history"] and torch.equal(s0["writes_per_trial"], s1["writes_per_trial"])
    # what was charged is what the method counts: pulses (pulsed) or writes (exact), per device
    key = "pulses_per_device_mean" if write_model == "pulsed" else "writes_per_device_mean"
    assert s1["endurance"]["pulses_per_device_mean"] == pytest.approx(s0[key], rel=1e-12)


@pytest.mark.parametrize("write_model", ["pulsed", "exact"])
def test_insitu_failed_devices_stick_after_the_first_write(write_model):
    model, hw, x, y = _toy(alpha=0.0)
    cal = calibrate(hw, model, x)
    layers = [m for m in cal.modules() if isinstance(m, CalibratedLinear)]
    end = Endurance(fail_mean=1e-3, fail_sigma=0.0, stuck="lrs")  # every device fails at its first write
    if write_model == "pulsed":
        arrays = [PulsedArray(m.crossbar, endurance=end, seed=i) for i, m in enumerate(layers)]
        count = lambda a, s: a.pulses_sent(s)  # noqa: E731
    else:
        arrays = [DeviceArray(m.crossbar, m.w_ref, endurance=end, seed=i) for i, m in enumerate(layers)]
        count = lambda a, s: a.writes(s)  # noqa: E731
    before = [{s: getattr(m.crossbar, f"g_{s}").clone() for s in a.sides} for a, m in zip(arrays, layers)]
    stats = insitu_train(cal, x, y, InSituConfig(epochs=1, lr=0.5, batch_size=64, gate="none",
                                                 write_model=write_model), arrays=arrays, progress=False)
    n_written = 0
    for a, m, b in zip(arrays, layers, before):
        for s in a.sides:
            g, written = getattr(m.crossbar, f"g_{s}"), count(a, s) > 0
            assert bool(written.any())
            assert torch.equal(g[written], torch.full_like(g[written], G_MAX))  # stuck at LRS
            assert torch.equal(g[~written], b[s][~written])  # never written: untouched
            assert torch.equal(a.wear[s].failed, written)
            n_written += int(written.sum())
    assert stats["endurance"]["failed"] == n_written


def test_exact_writes_charge_one_per_changed_device_and_wear_follows_a_row_permutation():
    w = torch.tensor([[0.5, -0.5], [0.25, 0.0], [0.1, 0.2]], dtype=torch.float64)
    xb = _one_layer(w, trials=2).crossbar
    arr = DeviceArray(xb, w, endurance=Endurance(n_th=1e9, fail_mean=1e9))
    arr.write(torch.tensor([[0.0, 0.0], [0.0, -0.2], [0.1, 0.0]], dtype=torch.float64))
    arr.write(torch.tensor([[0.0, 0.0], [0.0, -0.1], [0.0, 0.0]], dtype=torch.float64))
    # offset pairs: G− of cell (1, 1) changes twice (0 -> 0.2 -> 0.3); G+ of (2, 0) once; nothing else
    expect_neg = torch.tensor([[0.0, 0.0], [0.0, 2.0], [0.0, 0.0]], dtype=torch.float64).expand(2, -1, -1)
    expect_pos = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]], dtype=torch.float64).expand(2, -1, -1)
    assert torch.equal(arr.wear["neg"].writes, expect_neg) and torch.equal(arr.wear["pos"].writes, expect_pos)
    rows = torch.tensor([[2, 0, 1], [1, 2, 0]])
    arr.permute_rows(rows)
    for t in range(2):
        assert torch.equal(arr.wear["pos"].writes[t], expect_pos[t][rows[t]])
        assert torch.equal(arr.wear["neg"].writes[t], expect_neg[t][rows[t]])


def test_insitu_endurance_config_nests_and_validates():
    cfg = from_dict(InSituConfig, apply_overrides({}, ["endurance.n_th=100", "endurance.stuck=lrs"]))
    assert cfg.endurance == Endurance(n_th=100.0, stuck="lrs")
    assert from_dict(InSituConfig, {}).endurance is None
    with pytest.raises(ConfigError, match=r"insitu\.endurance\.n_th=0"):
        from_dict(DTGACompareConfig, apply_overrides({}, ["insitu.endurance.n_th=0"]))  # any experiment's nesting
    with pytest.raises(ConfigError, match="endurance"):
        InSituConfig(endurance=3)


# ============================================================================ DTGA
def _dtga_cfg(**kw) -> DTGAConfig:
    base = dict(sizes=[20, 8, 3], w_max=[4.0, 6.0], lr=0.5, batch_size=16)
    base.update(kw)
    return from_dict(DTGAConfig, base)


def _toy_data(n=96):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 20, generator=g)
    return x, x[:, :3].argmax(1).long()


def test_dtga_endurance_off_or_inert_changes_nothing():
    x, y = _toy_data()
    out = []
    for end in (None, NEVER):
        model = InSituMLP(_dtga_cfg(endurance=end), trials=2, seed=0, noise=0.02)  # D2D ranges differ per device
        st = model.train_epoch(x, y, torch.Generator().manual_seed(1), progress=False)
        out.append((model.weights(), st))
    for a, b in zip(out[0][0], out[1][0]):
        assert torch.equal(a, b)
    assert out[0][1]["pulses"] == out[1][1]["pulses"] and out[0][1]["energy"] == out[1][1]["energy"]
    assert "endurance" not in out[0][1]
    assert out[1][1]["endurance"]["pulses_per_device_mean"] * out[1][1]["endurance"]["devices"] == out[1][1]["pulses"]


def test_dtga_charges_each_train_to_the_pulsed_device():
    cfg = _dtga_cfg(update=dict(scheme="baseline", max_pulses=3), endurance=Endurance(n_th=1e9, fail_mean=math.inf))
    layer = InSituMLP(cfg, trials=2, seed=0).layers[0]
    acc = torch.full_like(layer.accumulator, 100 * layer.dw0)  # every weight fires, capped at 3 pulses
    acc[:, ::2] *= -1
    total = 0.0
    for step in range(1, 3):
        _, st = layer.apply_update(acc, cfg.update, 0, None)
        total += st["set"] + st["reset"]
        # exactly one device of every pair got a 3-pulse train per step
        assert torch.equal(layer.wear_pos.writes + layer.wear_neg.writes, torch.full_like(acc, 3.0 * step))
        assert bool(((layer.wear_pos.writes % 3) == 0).all())
    assert total == 2 * 3 * acc.numel() == float(layer.wear_pos.writes.sum() + layer.wear_neg.writes.sum())


def test_dtga_failed_devices_stick_at_their_own_hrs():
    cfg = _dtga_cfg(update=dict(scheme="baseline", max_pulses=2), endurance=Endurance(fail_mean=1e-3, fail_sigma=0.0))
    model = InSituMLP(cfg, trials=2, seed=0, noise=0.03)
    layer = model.layers[0]
    before = layer.crossbar.g_pos.clone(), layer.crossbar.g_neg.clone()
    acc = torch.zeros_like(layer.accumulator)
    acc[:, 0] = 100 * layer.dw0  # only row 0 fires
    layer.apply_update(acc, cfg.update, 0, None)
    r_off = layer.cells.r_off  # per device (D2D): (trials, 2, rows, cols)
    for i, (side, wear) in enumerate((("pos", layer.wear_pos), ("neg", layer.wear_neg))):
        g = getattr(layer.crossbar, f"g_{side}")
        hit = wear.writes > 0
        assert not bool(hit[:, 1:].any())
        assert torch.equal(wear.failed, hit)
        assert torch.allclose(g[hit], (1.0 / r_off[:, i])[hit], rtol=1e-6)
        assert torch.equal(g[~hit], before[i][~hit])
    assert bool(((layer.wear_pos.writes > 0) ^ (layer.wear_neg.writes > 0))[:, 0].all())  # one device per pair
    assert model.endurance_stats()["failed"] == int(layer.wear_pos.failed.sum() + layer.wear_neg.failed.sum())


# ============================================================================ analog optimizers
def _linear_model(w: torch.Tensor, dev, trials: int = 1) -> nn.Module:
    lin = nn.Linear(w.shape[0], w.shape[1], bias=False)
    with torch.no_grad():
        lin.weight.copy_(w.t())
    cfg = CrossbarConfig(memristor=dev, mapping={"kind": "balanced", "w_max": 1.0})
    return convert(nn.Sequential(lin), cfg, trials=trials, seed=0)


def test_analog_sgd_charges_one_pulse_per_device_and_clamps_by_hand():
    dev = ConstantStepDevice(g_min=0.0, g_max=1.0, dw_min=0.01)
    model = _linear_model(torch.tensor([[0.9, 0.0]]), dev)  # balanced: G± = 0.5 ± W/2 -> (0.95, 0.05), (0.5, 0.5)
    opt = AnalogSGD(model, lr=1.0, scheme={"kind": "manhattan"}, endurance=Endurance(n_th=1, p=1.0, fail_mean=math.inf))
    xb = model[0].crossbar
    for _ in range(2):
        opt.zero_grad()
        (model(torch.ones(1, 1)) * torch.tensor([1.0, 1.0])).sum().backward()  # ∂L/∂W > 0: one lowering pulse
        opt.step()
    wears = opt.writers["0"].wear_pos, opt.writers["0"].wear_neg
    assert all(torch.equal(w.writes, torch.full((1, 1, 2), 2.0)) for w in wears)  # 1 pulse per device per step
    # step 1: writes = 1 = n_th, no narrowing: G+ 0.95 -> 0.94; step 2: writes = 2, f = 1/2, window [0.25, 0.75]
    assert xb.g_pos[0, 0].tolist() == pytest.approx([0.75, 0.48], abs=1e-6)
    assert xb.g_neg[0, 0].tolist() == pytest.approx([0.25, 0.52], abs=1e-6)
    tot = opt.totals()
    assert tot["pulses"] == 8 and tot["endurance"]["pulses_per_device_mean"] == 2.0 and tot["endurance"]["failed"] == 0


def test_analog_endurance_inert_changes_nothing_and_resumes():
    from memristive.devices.pulsed import pulsed_preset

    x, y = torch.rand(16, 6, generator=torch.Generator().manual_seed(1)), torch.arange(16) % 3

    def run(end, n=3, state=None):
        torch.manual_seed(0)
        cfg = CrossbarConfig(memristor=pulsed_preset("reram-sb"), mapping={"kind": "balanced", "w_max": 1.0})
        m = convert(mlp([6, 5, 3], "relu"), cfg, trials=2)
        opt = TikiTaka(m, lr=0.1, buffered=True, n_rows_per_transfer=2, seed=3, endurance=end)
        if state is not None:
            m.load_state_dict(state[0])
            opt.load_state_dict(state[1])
        for i in range(n):
            opt.zero_grad()
            trial_loss(m(x[i % 2 * 8:(i % 2 + 1) * 8]), y[i % 2 * 8:(i % 2 + 1) * 8]).backward()
            opt.step()
        return m, opt

    (m0, o0), (m1, o1) = run(None), run(NEVER)
    assert all(torch.equal(a, b) for a, b in zip(m0.state_dict().values(), m1.state_dict().values())
               if isinstance(a, torch.Tensor))
    assert o0.totals()["pulses"] == o1.totals()["pulses"] and "endurance" not in o0.totals()
    worn = Endurance(n_th=3, p=0.5, fail_mean=40, fail_sigma=0.3)
    m2, o2 = run(worn)
    saved = copy.deepcopy(m2.state_dict()), copy.deepcopy(o2.state_dict())
    for _ in range(2):
        o2.zero_grad()
        trial_loss(m2(x[:8]), y[:8]).backward()
        o2.step()
    m3, o3 = run(worn, n=0, state=saved)
    for _ in range(2):
        o3.zero_grad()
        trial_loss(m3(x[:8]), y[:8]).backward()
        o3.step()
    assert o2.totals() == o3.totals() and o2.totals()["endurance"]["pulses_per_device_max"] > 3
    assert all(torch.equal(a, b) for a, b in zip(m2.state_dict().values(), m3.state_dict().values())
               if isinstance(a, torch.Tensor))


# ============================================================================ CUDA (skipped without)
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_endurance_methods_on_cuda_match_cpu():
    x, y = _toy_data(48)
    end = Endurance(n_th=2, p=0.5, fail_mean=30, fail_sigma=0.3)
    res = []
    for device in ("cpu", "cuda"):
        model = InSituMLP(_dtga_cfg(endurance=end, update=dict(scheme="baseline")), trials=2, seed=0).to(device)
        model.train_epoch(x, y, torch.Generator().manual_seed(1), progress=False)
        res.append((model.endurance_stats(), [w.cpu() for w in model.weights()]))
    assert res[0][0]["failed"] == res[1][0]["failed"] and res[1][0]["failed"] > 0
    for a, b in zip(res[0][1], res[1][1]):
        assert torch.allclose(a, b, atol=1e-4)
    layer = _one_layer(torch.zeros(2, 1, dtype=torch.float64)).to("cuda")
    arr = PulsedArray(layer.crossbar, pulses=100, write_noise=0.0, endurance=Endurance(n_th=10, p=1.0, fail_mean=math.inf))
    arr.write(torch.tensor([[[1.6], [0.0]]], dtype=torch.float64, device="cuda"))
    assert float(layer.crossbar.g_pos[0, 0, 0]) == pytest.approx(G_MIN + 0.5 * R + R / 16, rel=1e-12)


# ============================================================================ the experiment
def test_endurance_experiment_quick(tmp_path):
    from memristive.experiments import run_experiment

    res, run = run_experiment("endurance", out=tmp_path / "e", quick=True)
    rows = res["metrics"]["rows"]
    assert [r["endurance"] for r in rows][0] == "none" and len(rows) == 2
    assert rows[0]["failed_fraction"] == 0 and rows[1]["failed_fraction"] > 0  # n_th = 3, ~20 pulses to fail
    assert rows[1]["window_fraction_mean"] < 1
    for f in ("endurance.csv", "accuracy_vs_epoch.png", "results.json"):
        assert (run.path / f).is_file()
    hc = res["hardware_cost"]  # the cost of the configuration (issue 17): inference + every run's writes
    assert "unavailable" not in hc and hc["energy_per_inference_j"] > 0
    assert [w["label"] for w in hc["training_writes"]] == [r["endurance"] for r in rows]
    with pytest.raises(ConfigError, match="insitu.endurance"):
        run_experiment("endurance", out=tmp_path / "x", quick=True, overrides=["insitu.endurance.n_th=5"])


def test_analog_experiments_expose_endurance(tmp_path):
    """analog-toy / analog-training take an `endurance` section: the optimizers charge their pulses
    (failed devices reported), and without it the results are those of a run that never heard of it."""
    from memristive.experiments import run_experiment

    base = ["steps=30", "trials=2", "optimizers=[sgd-stochastic]"]
    off, _ = run_experiment("analog-toy", out=tmp_path / "off", overrides=base)
    worn, _ = run_experiment("analog-toy", out=tmp_path / "on", overrides=base + [
        "endurance.n_th=1", "endurance.fail_mean=2", "endurance.fail_sigma=0"])
    toy_off = next(v for v in _find_rows(off["metrics"]) if v.get("optimizer") == "sgd-stochastic")
    toy_on = next(v for v in _find_rows(worn["metrics"]) if v.get("optimizer") == "sgd-stochastic")
    assert "endurance" not in toy_off
    e = toy_on["endurance"]
    assert e["failed"] > 0 and e["pulses_per_device_mean"] > 0  # every device pulsed twice has failed
    assert toy_on["rms_error"] != toy_off["rms_error"]
    with pytest.raises(ConfigError, match="endurance.n_th"):
        run_experiment("analog-training", out=tmp_path / "bad", overrides=["endurance.n_th=0"])


def _find_rows(metrics):
    """Every dict with an 'optimizer' key anywhere in a metrics tree."""
    if isinstance(metrics, dict):
        if "optimizer" in metrics:
            yield metrics
        for v in metrics.values():
            yield from _find_rows(v)
    elif isinstance(metrics, list):
        for v in metrics:
            yield from _find_rows(v)
