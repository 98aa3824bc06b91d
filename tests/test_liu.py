"""Liu et al. (DAC 2017) retraining + Hungarian row remapping; Table 1 smoke test."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from memristive.config import ConfigError
from memristive.crossbar import BalancedDifferential, CrossbarConfig, Mapping
from memristive.devices import LinearDevice
from memristive.methods.calibration import CalibratedLinear, calibrated_layers
from memristive.methods.insitu import DeviceArray
from memristive.methods.liu import (
    LiuConfig,
    assignment_cost,
    defect_indicator,
    error_cost,
    hungarian_rows,
    liu_rescue,
    realized_weights,
    significance_cost,
)
from memristive.nn import CrossbarLinear, convert, mlp
from memristive.nonideal import DefectPercent, StuckAt

DEV = LinearDevice(r_on=1e3, r_off=12e3)
G_MIN, G_MAX = 1 / 12e3, 1 / 1e3


def _array(w, trials=1, nonid=(), seed=0, **cfg):
    lin = nn.Linear(w.shape[0], w.shape[1], bias=False)
    with torch.no_grad():
        lin.weight.copy_(w.t())
    layer = CrossbarLinear.from_linear(lin, CrossbarConfig(memristor=DEV, nonidealities=list(nonid), **cfg), trials=trials, seed=seed)
    return layer, DeviceArray(layer.crossbar, w)


def test_significance_cost_by_hand():
    w = torch.tensor([[[1.0, -2.0], [0.5, 0.0]]])  # 2 logical rows, 2 columns
    d = torch.tensor([[[0.0, 1.0], [1.0, 1.0]]])  # physical row 0: col 1 defective; row 1: both
    c = significance_cost(w, d)
    # C[i, r] = Σ_j |w_ij| d_rj
    assert c.tolist() == [[[2.0, 3.0], [0.0, 0.5]]]


def test_hungarian_is_optimal_and_never_worse_than_identity():
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        c = torch.rand(3, 5, 5, generator=g)
        rows = hungarian_rows(c)
        assert all(sorted(r.tolist()) == list(range(5)) for r in rows)  # a permutation
        best = torch.tensor([min(sum(float(c[t, i, p[i]]) for i in range(5)) for p in itertools.permutations(range(5)))
                             for t in range(3)])  # brute force over all 120 assignments
        assert torch.allclose(assignment_cost(c, rows).double(), best.double(), atol=1e-5)


@pytest.mark.parametrize("cost", ["significance", "error"])
def test_remapping_never_worsens_the_cost_on_defective_arrays(cost):
    g = torch.Generator().manual_seed(1)
    w = torch.randn(24, 6, generator=g) * 0.3
    _, arr = _array(w, trials=6, nonid=[StuckAt(p_hrs=0.1, p_lrs=0.05)], seed=2)
    c = significance_cost(w.unsqueeze(0), defect_indicator(arr)) if cost == "significance" else error_cost(w.unsqueeze(0), arr, chunk=5)
    ident = torch.arange(24).expand(6, -1)
    rows = hungarian_rows(c)
    before, after = assignment_cost(c, ident), assignment_cost(c, rows)
    assert (after <= before + 1e-6).all() and (after < before).any()


def test_error_cost_by_hand_for_stuck_at_hrs():
    # differential offset mapping, w_max = 0.5. Physical row 0: G+ of column 0 stuck at G_min.
    w = torch.tensor([[0.5, -0.25], [-0.5, 0.25]])
    layer, arr = _array(w)
    layer.crossbar.stuck_pos[0, 0, 0] = True
    layer.crossbar.g_pos[0, 0, 0] = G_MIN
    arr = DeviceArray(layer.crossbar, w)
    c = error_cost(w.unsqueeze(0), arr)
    # logical row 0 (w = +0.5 in column 0) on physical row 0 loses the positive part: error 0.5;
    # logical row 1 (w = −0.5) does not need G+: error 0.
    assert torch.allclose(c[0], torch.tensor([[0.5, 0.0], [0.0, 0.0]]), atol=1e-6)


def test_realized_weights_hold_stuck_values_and_block_gradients():
    w = torch.tensor([[0.4, -0.2], [0.1, 0.3]])
    layer, arr = _array(w)
    xb = layer.crossbar
    xb.stuck_pos[0, 0, 0] = True  # G+ of w[0, 0] stuck at G_max: realized = (G_max − G−)/k
    xb.g_pos[0, 0, 0] = G_MAX
    xb.stuck_pos[0, 1, 1] = True  # both devices of w[1, 1] stuck at G_min: realized 0, no gradient
    xb.stuck_neg[0, 1, 1] = True
    xb.g_pos[0, 1, 1] = G_MIN
    xb.g_neg[0, 1, 1] = G_MIN
    arr = DeviceArray(xb, w)
    wt = w.unsqueeze(0).clone().requires_grad_(True)
    r = realized_weights(wt, arr)
    k = xb.k
    assert torch.allclose(r[0, 0, 0], torch.tensor((G_MAX - G_MIN) / k), atol=1e-6)  # = w_max = 0.4
    assert r[0, 1, 1] == 0
    assert torch.allclose(r[0, 0, 1], torch.tensor(-0.2)) and torch.allclose(r[0, 1, 0], torch.tensor(0.1))
    r.sum().backward()
    assert wt.grad[0, 1, 1] == 0 and wt.grad[0, 0, 0] == 0  # G+ stuck and w > 0: only G+ would move
    assert wt.grad[0, 0, 1] == 1 and wt.grad[0, 1, 0] == 1


def _toy(trials=3, nonid=None, seed=1):
    torch.manual_seed(0)
    model = mlp([10, 8, 3])
    g = torch.Generator().manual_seed(0)
    x = torch.rand(96, 10, generator=g)
    y = model(x).argmax(-1)
    nonid = nonid if nonid is not None else [StuckAt(p_hrs=0.15, p_lrs=0.05)]
    hw = convert(model, CrossbarConfig(memristor=DEV, nonidealities=nonid), trials=trials, seed=seed)
    return model, hw, x, y


def test_remap_only_model_computes_with_permuted_rows():
    model, hw, x, y = _toy()
    out, stats = liu_rescue(hw, model, x, y, LiuConfig(retrain=False), progress=False)
    for info in stats["layers"]:
        assert info["cost_after"] <= info["cost_before"]
    # stuck-at only, no variation: the array realizes exactly the remapped realized weights
    for lay in calibrated_layers(out):
        arr = DeviceArray(lay.crossbar, lay.crossbar.weights())
        assert torch.allclose(lay.crossbar.weights(), realized_weights(lay.w_ref.unsqueeze(0).expand(arr.w_int.shape), arr), atol=1e-6)
    # remapping keeps every stuck device stuck: the count of stuck devices is unchanged
    for lay_hw, lay in zip([m for m in hw.modules() if isinstance(m, CrossbarLinear)], calibrated_layers(out)):
        assert lay.crossbar.stuck_pos.sum() == lay_hw.crossbar.stuck_pos.sum()
        assert torch.equal(lay.crossbar.stuck_pos.sum(dim=(1, 2)), lay_hw.crossbar.stuck_pos.sum(dim=(1, 2)))


def test_retraining_keeps_stuck_devices_and_range_and_improves_fit():
    model, hw, x, y = _toy(trials=2, nonid=[StuckAt(p_hrs=0.25, p_lrs=0.1)])
    before = (hw(x).argmax(-1) == y).float().mean()
    out, stats = liu_rescue(hw, model, x, y, LiuConfig(remap=False, epochs=15, lr=1e-2, batch_size=32), progress=False)
    with torch.no_grad():
        after = (out(x).argmax(-1) == y).float().mean()
    assert after > before
    assert stats["retrain_loss"][-1] < stats["retrain_loss"][0]
    for lay_hw, lay in zip([m for m in hw.modules() if isinstance(m, CrossbarLinear)], calibrated_layers(out)):
        a, b = lay_hw.crossbar, lay.crossbar
        assert torch.equal(a.g_pos[a.stuck_pos], b.g_pos[b.stuck_pos])  # no remap: same positions, same values
        assert b.g_pos.max() <= G_MAX * (1 + 1e-6) and b.g_pos.min() >= G_MIN * (1 - 1e-6)


def test_liu_with_variation_and_balanced_mapping_runs():
    model, hw, x, y = _toy(trials=2, nonid=[DefectPercent(alpha=0.2)])
    out, stats = liu_rescue(hw, model, x, y, LiuConfig(epochs=1, cost="error", batch_size=32), progress=False)
    assert out(x).shape == (2, 96, 3)
    torch.manual_seed(0)
    model = mlp([10, 8, 3])
    hwb = convert(model, CrossbarConfig(memristor=DEV, mapping=BalancedDifferential(), nonidealities=[StuckAt(p_hrs=0.1)]),
                  trials=2, seed=1)
    out, stats = liu_rescue(hwb, model, x, y, LiuConfig(epochs=1, batch_size=32), progress=False)
    assert all(i["cost_after"] <= i["cost_before"] for i in stats["layers"])


def test_liu_trials_independent():
    model, hw, x, y = _toy(trials=3)
    for m in hw.modules():
        if isinstance(m, CrossbarLinear):
            for name in ("g_pos", "g_neg", "stuck_pos", "stuck_neg"):
                getattr(m.crossbar, name)[2] = getattr(m.crossbar, name)[0]
    out, _ = liu_rescue(hw, model, x, y, LiuConfig(epochs=2, batch_size=32, seed=3), progress=False)
    with torch.no_grad():
        o = out(x)
    assert torch.allclose(o[0], o[2], atol=1e-5) and not torch.allclose(o[0], o[1], atol=1e-4)


def test_liu_config_errors():
    with pytest.raises(ConfigError, match="liu.cost"):
        LiuConfig(cost="magnitude")
    with pytest.raises(ConfigError, match="liu.lr"):
        LiuConfig(lr=-1)


def test_table1_quick_smoke(tmp_path):
    from memristive.experiments import run_experiment

    res, run = run_experiment("calibration-table1", out=tmp_path / "t1", quick=True,
                              overrides=["n_train=1000", "n_test=500", "epochs=1", "sizes=[784,32,10]"])
    assert "energy_per_inference_j" in res["hardware_cost"], res["hardware_cost"]  # the run's cost
    table = res["metrics"]["table"]
    assert set(table) == {"none", "liu", "calibration", "ours"}
    assert set(table["ours"]) == {"W1", "W2", "W1&W2"}
    assert (run.path / "table1.png").is_file() and (run.path / "table1.csv").is_file()
    # the defects of W1 are the same arrays in the "W1" and "W1&W2" cells
    cells = {c["case"]: c for c in res["metrics"]["cells"]}
    assert cells["W2"]["none"]["mean"] >= cells["W1&W2"]["none"]["mean"] - 10
