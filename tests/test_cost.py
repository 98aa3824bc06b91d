"""First-order cost model: every formula against a hand calculation on a tiny array."""

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from memristive.config import ConfigError, load_config
from memristive.crossbar import Converter, Crossbar, CrossbarConfig, Tiling
from memristive.devices import LinearDevice
from memristive.hardware import (TECH_PRESETS, Architecture, ConverterTech, converter_area, converter_energy,
                                 crossbar_layers, inference_cost, programming_cost, technology, write_energy)
from memristive.nn import convert

ROOT = Path(__file__).resolve().parents[1]
G_MIN, G_MAX = 1e-6, 1e-4


def _tech(**kw) -> "Technology":  # noqa: F821
    """Round numbers so every hand calculation below is easy to follow."""
    base = dict(name="test", node_nm=100, cell_area_f2=10, t_read=1e-8,
                adc=ConverterTech(fom_walden=1e-15, sample_rate=1e9, area_per_level=2.0),
                dac=ConverterTech(fom_walden=1e-14, sample_rate=1e7, area_per_level=0.5),
                sense_power=1e-6, sense_area=3.0, wire_cap_per_um=1e-16, cell_pitch_f=2, add_energy=1e-13,
                v_write=2.0, t_write=5e-8, step_fraction=0.25)
    base.update(kw)
    return technology(base)


def _linear(w_out_in, **cfg) -> nn.Module:
    """A one-layer converted model holding ``w`` (nn.Linear layout: out × in)."""
    lin = nn.Linear(w_out_in.shape[1], w_out_in.shape[0], bias=False)
    with torch.no_grad():
        lin.weight.copy_(w_out_in)
    dev = cfg.pop("memristor", LinearDevice(g_min=G_MIN, g_max=G_MAX))
    return convert(nn.Sequential(lin), CrossbarConfig(memristor=dev, **cfg))


# 2×2 weights (inputs × outputs) = [[1, -1], [0.5, 0]]; offset differential pairs, k = (G_MAX − G_MIN)/1:
#   G+ = [[G_MAX, G_MIN], [G_MIN + k/2, G_MIN]],  G− = [[G_MIN, G_MAX], [G_MIN, G_MIN]]
W22 = torch.tensor([[1.0, 0.5], [-1.0, 0.0]])  # nn.Linear layout (out × in)
K = G_MAX - G_MIN
ROW1 = G_MAX + G_MIN + G_MIN + G_MAX  # Σ_j G over row 1's four cells
ROW2 = (G_MIN + K / 2) + G_MIN + G_MIN + G_MIN


def test_converter_energy_walden_thermal_floor_and_speed_corner():
    c = ConverterTech(fom_walden=1e-15, sample_rate=1e9, area_per_level=2.0)
    assert converter_energy(4, c) == pytest.approx(16e-15)  # FOM · 2^b
    assert converter_area(4, c) == pytest.approx(32.0)  # a_level · 2^b
    hot = dataclasses.replace(c, fom_schreier_db=150.0)
    # 12 bits: thermal ½·10^((6.02·12 + 1.76 − 150)/10) = ½·10^(−7.5476) beats 1e-15 · 4096
    assert converter_energy(12, hot) == pytest.approx(0.5 * 10 ** ((6.02 * 12 + 1.76 - 150) / 10))
    assert converter_energy(2, hot) == pytest.approx(4e-15)  # Walden wins at low resolution
    fast = dataclasses.replace(c, corner_hz=2.5e8)
    assert converter_energy(4, fast) == pytest.approx(16e-15 * 4)  # f_s / f_corner = 4
    with pytest.raises(ValueError):
        converter_energy(0, c)


def test_array_energy_is_v2_g_t_from_the_actual_inputs():
    tech = _tech()
    model = _linear(W22, v_read=0.2)
    x = torch.tensor([[1.0, 0.5], [0.0, 1.0]])  # two inferences, different inputs
    cost = inference_cost(model, x, tech)
    L = cost["layers"][0]
    v_r = 0.2
    e1 = tech.t_read * ((1.0 * v_r) ** 2 * ROW1 + (0.5 * v_r) ** 2 * ROW2)
    e2 = tech.t_read * ((1.0 * v_r) ** 2 * ROW2)
    assert L["energy_j"]["array"] == pytest.approx((e1 + e2) / 2, rel=1e-6)
    # an average input (0.5, 0.75) would give a different number: the cost follows the real inputs
    e_avg = tech.t_read * ((0.5 * v_r) ** 2 * ROW1 + (0.75 * v_r) ** 2 * ROW2)
    assert not math.isclose(L["energy_j"]["array"], e_avg, rel_tol=1e-3)
    # row drivers: C_row = c_wire_per_cell · 4 physical columns, Σ v² over rows and inferences
    sum_v2 = ((1.0 * v_r) ** 2 + (0.5 * v_r) ** 2 + (1.0 * v_r) ** 2) / 2
    assert L["energy_j"]["driver"] == pytest.approx(tech.wire_cap_per_cell * 4 * sum_v2)
    assert tech.wire_cap_per_cell == pytest.approx(1e-16 * 2 * 0.1)  # F/µm · pitch (2F) · F (0.1 µm)
    assert cost["assumed_bits"] == ["adc", "input"]  # ideal converters: their cost assumes 8 bits
    assert L["energy_j"]["adc"] == pytest.approx(2 * 1e-15 * 2**8)


def test_converters_sense_digital_latency_and_area_counts_3x2():
    # 3 inputs × 2 outputs, differential, tiles of 2 rows × 4 columns (2 weight columns):
    # 2 row tiles, 1 column tile; 4-bit ADC, 6-bit DAC, amplitude inputs, 1 column per ADC
    w = torch.tensor([[0.5, -0.25, 1.0], [0.0, 0.75, -1.0]])
    tech = _tech()
    model = _linear(w, adc=Converter(bits=4), dac=Converter(bits=6), tile=Tiling(2, 4))
    arch = Architecture(cols_per_adc=1)
    L = inference_cost(model, torch.rand(5, 3), tech, arch)["layers"][0]
    assert (L["tiles"], L["adcs"], L["dacs"], L["sense"]) == (2, 2 * 2, 3, 2 * 2)
    assert L["conversions_per_inference"] == 2 * 2  # 2 row tiles × 2 outputs × 1 cycle
    assert L["energy_j"]["adc"] == pytest.approx(4 * 1e-15 * 2**4)
    assert L["energy_j"]["dac"] == pytest.approx(3 * 1e-14 * 2**6)  # one DAC conversion per row
    assert L["energy_j"]["sense"] == pytest.approx(4 * 1e-6 * 1e-8)  # P_sense · t_read per column per tile
    assert L["energy_j"]["digital"] == pytest.approx(2 * (2 - 1) * 1e-13)  # merge 2 row-tile partials per output
    assert L["latency_s"] == pytest.approx(1e-8 + 1 / 1e9)  # t_read + 1 conversion per ADC at 1 GS/s
    F2 = 0.1**2
    assert L["area_um2"]["array"] == pytest.approx(3 * 4 * 10 * F2)  # 12 cells × 10 F²
    assert L["area_um2"]["adc"] == pytest.approx(4 * 2.0 * 2**4)
    assert L["area_um2"]["dac"] == pytest.approx(3 * 0.5 * 2**6)
    assert L["area_um2"]["sense"] == pytest.approx(4 * 3.0)
    e = L["energy_j"]
    assert e["total"] == pytest.approx(sum(v for k, v in e.items() if k != "total"))
    # 8 columns per ADC: one ADC per tile converts both columns in turn
    L8 = inference_cost(model, torch.rand(5, 3), tech, Architecture(cols_per_adc=8))["layers"][0]
    assert L8["adcs"] == 2 and L8["latency_s"] == pytest.approx(1e-8 + 2 / 1e9)


def test_bit_serial_inputs_and_weight_slices():
    tech = _tech()
    model = _linear(W22, v_read=0.2)
    x = torch.tensor([[1.0, 0.5]])  # 2-bit codes: round(x / max · 3) = [3, 2] -> popcounts [2, 1]
    arch = Architecture(input_mode="bit_serial", input_bits=2, adc_bits=3, cols_per_adc=2, weight_slices=3)
    L = inference_cost(model, x, tech, arch)["layers"][0]
    assert L["read_cycles"] == 2
    assert L["energy_j"]["array"] == pytest.approx(3 * tech.t_read * 0.04 * (2 * ROW1 + 1 * ROW2), rel=1e-6)
    assert L["conversions_per_inference"] == 2 * 1 * 2 * 3  # cycles × row tiles × outputs × slices
    assert L["energy_j"]["adc"] == pytest.approx(12 * 1e-15 * 2**3)
    assert L["energy_j"]["dac"] == pytest.approx(2 * 2 * 3 * 1e-14 * 2)  # 1-bit DAC per row, cycle, slice copy
    assert L["energy_j"]["digital"] == pytest.approx(2 * (3 * 1 * 2 - 1) * 1e-13)
    assert L["latency_s"] == pytest.approx(2 * (1e-8 + 2 / 1e9))


def test_programming_pulses_and_energy_by_hand():
    # 4-level device 1..4 µS: step 1 µS. Weights [[1, -1/3], [2/3, 0]] (inputs × outputs), k = 3 µS:
    # G+ = [[4, 1], [3, 1]] µS (pulses 3, 0, 2, 0), G− = [[1, 2], [1, 1]] µS (pulses 0, 1, 0, 0)
    dev = LinearDevice(g_min=1e-6, g_max=4e-6, levels=4)
    w = torch.tensor([[1.0, 2 / 3], [-1 / 3, 0.0]])
    model = _linear(w, memristor=dev, v_read=0.2)
    tech = _tech()
    p = programming_cost(model, tech)["total"]
    assert p["pulses"] == 6
    trapezoid = 3 * (1e-6 + 4e-6) / 2 + 2 * (1e-6 + 3e-6) / 2 + 1 * (1e-6 + 2e-6) / 2  # Σ n·(G_min + G)/2
    assert p["energy_j"] == pytest.approx(trapezoid * (2.0**2 * 5e-8 + 0.2**2 * 1e-8), rel=1e-6)
    assert p["time_s"] == pytest.approx(6 * (5e-8 + 1e-8) / 1)  # one tile
    # analog device: steps of step_fraction · range = 0.25 · 3 µS
    model2 = _linear(w, memristor=LinearDevice(g_min=1e-6, g_max=4e-6), v_read=0.2)
    assert programming_cost(model2, tech)["total"]["pulses"] == 4 + 0 + 3 + 0 + 0 + 2 + 0 + 0  # ⌈3/.75⌉, ⌈2/.75⌉, ⌈1/.75⌉


def test_in_situ_write_energy():
    writes = torch.tensor([[2, 0], [1, 3]])
    g = torch.tensor([[1e-5, 2e-5], [3e-5, 4e-5]])
    e = write_energy(writes, g, _tech(), pulses_per_write=2)
    assert e == pytest.approx(2 * 2.0**2 * 5e-8 * (2 * 1e-5 + 1 * 3e-5 + 3 * 4e-5))
    # (trials, rows, cols): mean over trials of each trial's total (trial 2 has no writes)
    e3 = write_energy(torch.stack([writes, torch.zeros_like(writes)]), g, _tech(), pulses_per_write=2)
    assert e3 == pytest.approx(e / 2)


def test_any_module_with_a_crossbar_attribute_is_costed_and_matmul_is_restored():
    class Custom(nn.Module):  # e.g. a later convolution layer: owns a crossbar, calls matmul on patches
        def __init__(self):
            super().__init__()
            self.crossbar = Crossbar.from_weights(torch.tensor([[1.0, -1.0], [0.5, 0.0]]),
                                                  memristor=LinearDevice(g_min=G_MIN, g_max=G_MAX))

        def forward(self, x):
            return self.crossbar.matmul(x.reshape(-1, 2))

    m = Custom()
    assert [n for n, _ in crossbar_layers(m)] == ["Custom"]
    cost = inference_cost(m, torch.tensor([[[1.0, 0.5], [0.0, 1.0]]]), _tech(), n_inferences=1)
    L = cost["layers"][0]
    assert L["vectors_per_inference"] == 2  # two patches in one inference
    assert "matmul" not in m.crossbar.__dict__  # the recording wrapper is gone
    with pytest.raises(ValueError, match="no crossbar layers"):
        inference_cost(nn.Linear(2, 2), torch.rand(1, 2))


def test_technology_presets_yaml_copies_and_overrides():
    for name, node in (("neurosim-22nm", "22nm"), ("isaac-32nm", "32nm")):
        assert technology(load_config(ROOT / "configs" / f"tech-{node}.yaml")) == TECH_PRESETS[name]
        t = TECH_PRESETS[name]
        for key in ("node_nm", "cell_area_f2", "t_read", "adc.fom_walden", "dac.fom_walden", "sense_power", "add_energy"):
            assert key in t.sources, f"{name}: no source for {key}"
    t = technology({"preset": "neurosim-22nm", "adc": {"fom_walden": 2e-15}})
    assert t.adc.fom_walden == 2e-15 and t.adc.sample_rate == TECH_PRESETS["neurosim-22nm"].adc.sample_rate
    assert t.t_read == 1e-8
    with pytest.raises(ConfigError, match="tech.t_read"):
        technology({"preset": "neurosim-22nm", "t_read": -1})
    with pytest.raises(ConfigError, match="unknown key"):
        technology({"preset": "neurosim-22nm", "t_reed": 1e-9})
    with pytest.raises(ConfigError, match="unknown technology preset"):
        technology("7nm")
    with pytest.raises(ConfigError, match="arch.input_mode"):
        Architecture(input_mode="pwm")


def test_cost_cli_prints_table_and_rejects_bad_input(tmp_path):
    from typer.testing import CliRunner

    from memristive.cli import app

    r = CliRunner().invoke(app, ["cost", "mnist-mlp", "--set", "inputs=random", "--set", "n_inputs=4",
                                 "--program", "--out", str(tmp_path / "c.json")])
    assert r.exit_code == 0, r.output
    assert "total" in r.output and "one-shot programming" in r.output and (tmp_path / "c.json").is_file()
    spec = tmp_path / "spec.yaml"
    spec.write_text("model: mnist-mlp\nsizes: [20, 5, 3]\ninputs: random\nn_inputs: 3\narch: {cols_per_adc: 0}\n")
    r = CliRunner().invoke(app, ["cost", str(spec)])
    assert r.exit_code == 2 and "arch.cols_per_adc=0" in r.output
    r = CliRunner().invoke(app, ["cost", "nonsense"])
    assert r.exit_code == 2 and "not a built-in model" in r.output


def test_cost_accuracy_experiment_small(tmp_path):
    from memristive.experiments import discover, run_experiment
    from memristive.experiments.runner import build_config

    cfg = build_config(discover()["cost-accuracy"], None,
                       ["n_train=600", "n_test=200", "epochs=1", "adc_bits=[3,8]", "tiles=[64]", "cost_inputs=20",
                        "trials=1"], quick=True)
    res, _ = run_experiment("cost-accuracy", cfg, tmp_path / "ca", quick=True)
    assert "energy_per_inference_j" in res["hardware_cost"], res["hardware_cost"]  # the run's cost
    pts = res["metrics"]["points"]
    assert [p["adc_bits"] for p in pts] == [3, 8]
    assert pts[1]["adc_nj"] == pytest.approx(pts[0]["adc_nj"] * 2**5, rel=1e-3)  # Walden: 2^b per conversion
    assert (tmp_path / "ca" / "results.csv").is_file() and (tmp_path / "ca" / "accuracy_vs_energy.png").is_file()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cost_on_cuda_matches_cpu():
    from memristive.nn import mlp

    torch.manual_seed(0)
    cfg = CrossbarConfig(adc=Converter(bits=6), dac=Converter(bits=8), tile=Tiling(32, 32))
    cpu = convert(mlp([40, 20, 5]), cfg, trials=3, seed=1)
    gpu = convert(mlp([40, 20, 5]), cfg, trials=3, seed=1).to("cuda")
    gpu.load_state_dict(cpu.state_dict())
    x = torch.rand(6, 40)
    for arch in (Architecture(), Architecture(input_mode="bit_serial", input_bits=4)):
        a = inference_cost(cpu, x, _tech(), arch)["total"]
        b = inference_cost(gpu, x.cuda(), _tech(), arch)["total"]
        for k, v in a["energy_j"].items():
            assert b["energy_j"][k] == pytest.approx(v, rel=1e-5), k
        assert b["latency_s"] == a["latency_s"] and b["area_mm2"] == a["area_mm2"]
    assert programming_cost(gpu, _tech())["total"]["pulses"] == programming_cost(cpu, _tech())["total"]["pulses"]
