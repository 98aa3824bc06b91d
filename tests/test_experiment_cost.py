"""Every experiment's results.json carries ``hardware_cost`` (experiments.common.record_cost).

Which tests cover which experiments' results.json: the fast smoke tests of each experiment assert the
entry (tests/test_cli.py defects, test_calibration.py fig6/mapping/threshold, test_liu.py table1,
test_drift.py, test_irdrop.py, test_iv.py, test_write_verify.py, test_hardware.py hardware-cost,
test_gru.py gru-variation, test_trajectories.py, test_urbansound.py bits/snr, test_battery.py soc,
test_cost.py cost-accuracy, test_dtga.py dtga-mnist/noise/ablation/regime); the rest are run here with tiny configs
(:func:`test_quick_runs_of_the_other_experiments_record_cost`); and the slow
``test_cli.py::test_every_experiment_quick_end_to_end`` checks every registered experiment's --quick run.
"""

import json
import warnings
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from memristive.config import ConfigError
from memristive.crossbar import CrossbarConfig
from memristive.devices import LinearDevice
from memristive.experiments.common import CostConfig, CostSpec, record_cost
from memristive.experiments.folder import RunFolder
from memristive.experiments.registry import REGISTRY, build_config, discover, experiment, get
from memristive.experiments.runner import run_experiment
from memristive.hardware import TECH_PRESETS
from memristive.nn import convert

# 2 inputs × 2 outputs on offset differential pairs, G in [1e-5, 1e-4] S, w_max = max|W| = 1, so
# k = 9e-5 S per unit weight, G+ = 1e-5 + k·max(W, 0), G− = 1e-5 + k·max(−W, 0).
# nn.Linear weight (out × in) [[0.5, 1.0], [-1.0, 0.25]]: input row 0 holds 0.5 (out 0) and −1 (out 1),
# input row 1 holds 1.0 and 0.25.
W = torch.tensor([[0.5, 1.0], [-1.0, 0.25]])
ROW0 = (1e-5 + 0.45e-4) + 1e-5 + 1e-5 + (1e-5 + 0.9e-4)  # G+ and G− of both cells of row 0 = 1.75e-4 S
ROW1 = (1e-5 + 0.9e-4) + (1e-5 + 0.225e-4) + 1e-5 + 1e-5  # = 1.525e-4 S
V_READ = 0.2


def _model() -> nn.Module:
    lin = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(W)
    return convert(nn.Sequential(lin), CrossbarConfig(memristor=LinearDevice(g_min=1e-5, g_max=1e-4), v_read=V_READ))


@dataclass
class _Cfg(CostConfig):
    seed: int = 0


def test_record_cost_read_energy_is_v2_g_t_per_cell_by_hand(tmp_path):
    run = RunFolder(tmp_path, "toy", _Cfg())
    x = torch.tensor([[1.0, 0.5], [0.2, 1.0], [9.0, 9.0]])  # cost.inputs = 2: the third input is not used
    run.config.cost.inputs = 2
    record_cost(run, _model(), x, "tiny", training=[{"label": "t", "pulses": 100, "trials": 2, "recorded_energy_j": 4e-9}])
    c = run.hardware_cost
    t_r = TECH_PRESETS["neurosim-22nm"].t_read
    assert t_r == 10e-9 and c["tech"] == "neurosim-22nm" and c["inputs"] == 2
    # per inference: t_r · Σ_i v_i² Σ_j G_ij with v = 0.2·x (ideal DAC):
    #   x = (1, 0.5): 0.04·1.75e-4 + 0.01·1.525e-4 = 8.525e-6;  x = (0.2, 1): 0.0016·1.75e-4 + 0.04·1.525e-4 = 6.38e-6
    assert ROW0 == pytest.approx(1.75e-4) and ROW1 == pytest.approx(1.525e-4)
    expected = 10e-9 * (8.525e-6 + 6.38e-6) / 2  # 7.4525e-14 J
    assert c["energy_breakdown_j"]["array"] == pytest.approx(expected, rel=1e-6)
    assert c["energy_per_inference_j"] > c["energy_breakdown_j"]["array"]  # + DAC, ADC, drivers, sense
    assert c["cells"] == 8 and c["unread_layers"] == []
    assert c["programming"]["pulses"] > 0 and c["programming"]["energy_j"] > 0
    # in-situ writes: 100 pulses over 2 arrays = 50 per array, at V_w = 2 V, t_w = 10 ns, on the mean
    # conductance of the 8 cells (ROW0 + ROW1)/8: 50 · 4 · 1e-8 · 4.09375e-5 = 8.1875e-11 J
    (tw,) = c["training_writes"]
    assert tw["pulses_per_array"] == 50 and tw["energy_j"] == pytest.approx(8.1875e-11, rel=1e-6)
    assert tw["recorded_energy_j"] == pytest.approx(2e-9)
    # a second call is a variant of the same entry, under its label
    record_cost(run, _model(), x, "again", label="b")
    assert c["variants"]["b"]["energy_breakdown_j"]["array"] == pytest.approx(expected, rel=1e-6)


def test_a_model_without_crossbars_is_recorded_unavailable_with_a_warning(tmp_path):
    run = RunFolder(tmp_path, "toy", _Cfg())
    with pytest.warns(UserWarning, match="could not be computed"):
        record_cost(run, nn.Linear(2, 2), torch.rand(3, 2), "software only")
    assert "no crossbar layers" in run.hardware_cost["unavailable"]


def test_bad_tech_preset_is_a_one_line_config_error_before_any_work():
    with pytest.raises(ConfigError) as e:
        build_config(get("defects"), overrides=["cost.tech=32nm"], quick=True)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("cost.tech='32nm'") and "isaac-32nm" in msg and "neurosim-22nm" in msg
    with pytest.raises(ConfigError, match=r"cost.inputs=0"):
        build_config(get("soc"), overrides=["cost.inputs=0"])
    with pytest.raises(ConfigError, match=r"cost.arch.cols_per_adc=0"):
        build_config(get("dtga-mnist"), overrides=["cost.arch.cols_per_adc=0"])
    with pytest.raises(ConfigError, match=r"tech=\{'t_read': 1e-08\}: give 'preset: NAME'"):
        CostSpec(tech={"t_read": 1e-8})
    ok = build_config(get("cnn-variation"), overrides=["cost.tech.preset=isaac-32nm", "cost.tech.t_read=5e-8"])
    assert ok.cost.tech == {"preset": "isaac-32nm", "t_read": 5e-8}


def test_every_experiment_config_has_a_cost_section_or_its_own_tech():
    for name, spec in discover().items():
        cfg = build_config(spec, quick=True)
        assert isinstance(getattr(cfg, "cost", None), CostSpec) or hasattr(cfg, "tech"), name


def test_the_cost_section_does_not_change_the_checkpoint_hash(tmp_path):
    a = RunFolder(tmp_path / "a", "x", build_config(get("defects"), quick=True))
    b = RunFolder(tmp_path / "b", "x", build_config(get("defects"), overrides=["cost.tech=isaac-32nm"], quick=True))
    c = RunFolder(tmp_path / "c", "x", build_config(get("defects"), overrides=["trials=2"], quick=True))
    assert a.config_hash != b.config_hash  # results.json still tells the configs apart
    assert a.points.name == b.points.name != c.points.name


def test_a_finished_run_is_recosted_under_another_technology_from_its_points(tmp_path):
    over = ["steps=20", "trials=1", "optimizers=[sgd-stochastic]"]
    a, _ = run_experiment("analog-toy", out=tmp_path / "t", overrides=over)
    b, _ = run_experiment("analog-toy", out=tmp_path / "t", overrides=over + ["cost.tech=isaac-32nm"])
    assert set(b["resumed_points"]) == {"toy__sgd-stochastic", "toy__digital"} and b["metrics"] == a["metrics"]
    assert a["hardware_cost"]["tech"] == "neurosim-22nm" and b["hardware_cost"]["tech"] == "isaac-32nm"
    ta, tb = TECH_PRESETS["neurosim-22nm"].t_read, TECH_PRESETS["isaac-32nm"].t_read  # 10 ns, 100 ns: E_array ∝ t_r
    ea, eb = (r["hardware_cost"]["energy_breakdown_j"]["array"] for r in (a, b))
    assert eb == pytest.approx(ea * tb / ta, rel=1e-6)
    with pytest.raises(ConfigError, match="another config"):  # any other change is still refused
        run_experiment("analog-toy", out=tmp_path / "t", overrides=over[:1] + ["trials=2", over[2]])


def test_the_runner_records_an_experiment_that_costs_nothing(tmp_path):
    @experiment("cost-test-silent", "an experiment that records no model", _Cfg)
    def _silent(cfg, run):
        return {"ok": 1}

    try:
        res, _ = run_experiment("cost-test-silent", out=tmp_path / "s")
    finally:
        REGISTRY.pop("cost-test-silent")
    assert "recorded no model to cost" in res["hardware_cost"]["unavailable"]
    assert json.loads((tmp_path / "s" / "results.json").read_text())["hardware_cost"] == res["hardware_cost"]


def assert_costed(res: dict) -> None:
    """A results dict whose hardware_cost was computed (not recorded as unavailable)."""
    hc = res["hardware_cost"]
    assert "unavailable" not in hc, hc
    assert hc["energy_per_inference_j"] > 0 and hc["latency_s"] > 0 and hc["area_mm2"] > 0 and hc["inputs"] >= 1
    assert hc["programming"]["pulses"] >= 0
    for v in hc.get("variants", {}).values():
        assert "unavailable" not in v and v["energy_per_inference_j"] > 0


# the experiments no fast smoke test elsewhere runs, with configs small enough for a few seconds each
TINY = {
    "analog-toy": ["steps=20", "trials=1", "optimizers=[sgd-stochastic]"],
    "dtga-fashion": ["n_train=200", "n_test=100", "schemes=[dtga]"],
    "dtga-optimizer": ["n_train=200", "n_test=100", "schemes=[dtga]", "trainer_noise=[0.0]"],
    "cost-neurosim-vgg8": [],
    "analog-training": ["n_train=200", "n_test=100", "datasets=[mnist]", "optimizers=[sgd-deterministic]",
                        "devices=[symmetric-constant-step]", "sizes=[784,16,10]"],
    "cnn-variation": ["networks=[lenet5]", "n_train=100", "n_test=50", "trials=1", "variations=[0.0]", "stuck_at=[]",
                      "adc_bits=[]", "models=[software]"],
}


# experiments whose own fast smoke test asserts the entry (see the module docstring)
SMOKE_TESTED = {"defects", "calibration-fig6", "calibration-mapping", "calibration-threshold", "calibration-table1",
                "drift", "ir-drop", "nonlinear-iv", "write-verify", "hardware-cost", "gru-variation", "trajectories",
                "urbansound-bits", "urbansound-snr", "soc", "cost-accuracy", "dtga-mnist", "dtga-noise", "dtga-ablation",
                "dtga-regime", "endurance"}


def test_every_registered_experiment_has_a_fast_cost_check():
    """A new experiment needs a line in TINY (or an assert in its own smoke test and SMOKE_TESTED)."""
    ours = {n for n, spec in discover().items() if spec.fn.__module__.startswith("memristive.experiments.")}
    assert ours == SMOKE_TESTED | set(TINY), ours ^ (SMOKE_TESTED | set(TINY))  # (test plugins' toys aside)


@pytest.mark.parametrize("name", sorted(TINY))  # 1-4 s each
def test_quick_runs_of_the_other_experiments_record_cost(name, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a cost failure warns: fail instead
        res, _ = run_experiment(name, out=tmp_path / name, quick=True, overrides=TINY[name])
    assert_costed(res)
    if name.startswith(("dtga", "analog")):
        assert res["hardware_cost"]["training_writes"], "in-situ training records its write cost"


def test_gru_and_conv_fast_paths_are_read_through_the_crossbars_when_costed():
    """Ideal converters let GRU/conv layers skip Crossbar.matmul (one matmul with the weights); the
    cost forces the read path, so every array's inputs are seen, and the outputs do not change."""
    from memristive.hardware import inference_cost
    from memristive.nn.base import read_through_crossbars
    from memristive.nn.gru import CrossbarGRUNet, GRUNet

    torch.manual_seed(0)
    hw = CrossbarGRUNet.from_net(GRUNet(3, 4, 1, 2), CrossbarConfig()).eval()
    x = torch.randn(5, 6, 3)
    with torch.no_grad():
        fast = hw(x)
        with read_through_crossbars():
            read = hw(x)
    torch.testing.assert_close(read, fast, rtol=1e-5, atol=1e-6)
    cost = inference_cost(hw, x)
    assert cost["unread_layers"] == [] and all(L["energy_j"]["array"] > 0 for L in cost["layers"])
    assert cost["layers"][0]["vectors_per_inference"] == 6  # one read per time step
    conv = convert(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2)), CrossbarConfig())
    c = inference_cost(conv, torch.rand(2, 1, 4, 4))
    assert c["unread_layers"] == [] and c["layers"][0]["vectors_per_inference"] == 4  # 2×2 output positions
