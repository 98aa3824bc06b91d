"""Battery SOC data: speed traces, road-load current, windows, the CALCE loader (tiny generated
files) and, when PyBaMM is installed, a short simulation."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from memristive.config import ConfigError
from memristive.data import DataError
from memristive.data import battery as B


def _write_cycle(path, t, v, bom=False):
    with open(path, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as f:
        w = csv.writer(f)
        w.writerow(["cycSecs", "cycMps", "cycGrade", "cycRoadType"])
        for a, b in zip(t, v):
            w.writerow([a, b, 0, 0])


def test_read_speed_trace_resamples_to_1s(tmp_path):
    _write_cycle(tmp_path / "c.csv", [0, 2, 4], [0.0, 4.0, 2.0], bom=True)
    t, v = B.read_speed_trace(tmp_path / "c.csv")
    assert t.tolist() == [0, 1, 2, 3, 4] and v.tolist() == [0, 2, 4, 3, 2]
    _write_cycle(tmp_path / "bad.csv", [0, 1, 1], [0, 1, 2])
    with pytest.raises(DataError, match="increase"):
        B.read_speed_trace(tmp_path / "bad.csv")
    _write_cycle(tmp_path / "neg.csv", [0, 1], [0, -1])
    with pytest.raises(DataError, match="negative"):
        B.read_speed_trace(tmp_path / "neg.csv")
    (tmp_path / "cols.csv").write_text("a,b\n1,2\n2,3\n")
    with pytest.raises(DataError, match="cycSecs"):
        B.read_speed_trace(tmp_path / "cols.csv")
    with pytest.raises(DataError, match="unknown drive cycle"):
        B.load_drive_cycle("nedc", tmp_path)


def test_battery_power_hand_calculation():
    veh = B.Vehicle(mass_kg=1000, c_rr=0.01, cd_a_m2=0.5, air_density=1.2, drivetrain_efficiency=0.8, regen_fraction=0.5)
    # constant 20 m/s: rolling 1000·9.81·0.01 = 98.1 N, drag ½·1.2·0.5·400 = 120 N → 4362 W at the wheel
    t = np.arange(10.0)
    p = B.battery_power(t, np.full(10, 20.0), veh)
    np.testing.assert_allclose(p, (98.1 + 120.0) * 20 / 0.8)
    # braking from 10 m/s at −2 m/s² (mid-trace, central differences are exact for a line)
    v = np.array([10.0, 8.0, 6.0])
    p = B.battery_power(np.arange(3.0), v, veh)
    wheel = 8.0 * (1000 * -2.0 + 98.1 + 0.5 * 1.2 * 0.5 * 64)
    assert p[1] == pytest.approx(0.5 * wheel)
    assert B.battery_power(np.arange(3.0), np.zeros(3), veh).tolist() == [0, 0, 0]  # standing: no rolling loss


def test_current_scale_maps_the_reference_peak():
    t = np.arange(100.0)
    v = np.clip(np.sin(t / 15) * 15, 0, None)
    k = B.current_scale(5.0, 2.0, reference=(t, v))
    i = k * B.battery_power(t, v)
    assert i.max() == pytest.approx(10.0)  # 2C of 5 Ah
    tt, ii = B.cycle_current(t, v, k, repeats=3)
    assert len(ii) == 300 and tt[-1] == 299 and np.allclose(ii[:100], ii[200:])
    with pytest.raises(ValueError):
        B.current_scale(0.0, 2.0, reference=(t, v))


def _run(n, soc0=0.9, amb=25.0):
    t = np.arange(float(n))
    i = np.full(n, 2.0)
    soc = soc0 - np.cumsum(np.r_[0, i[1:]]) / 3600 / 5.0
    return B.SOCRun(t, i, 3.5 + 0.5 * soc, np.full(n, amb), soc, amb, "test", soc0, 5.0, "unit test")


def test_make_windows_shapes_values_and_standardisation():
    runs = [_run(50), _run(30, amb=0.0)]
    x, y, mean, std = B.make_windows(runs, length=10, stride=5)
    assert x.shape == (9 + 5, 10, 3) and y.shape == (14, 10)  # ends at 9,14,…,49 and 9,…,29
    assert torch.allclose(y[0], torch.tensor(runs[0].soc[:10], dtype=torch.float32))
    assert torch.allclose(y[-1, -1], torch.tensor(runs[1].soc[29], dtype=torch.float32))
    feats = np.concatenate([r.features() for r in runs])
    np.testing.assert_allclose(mean, feats.mean(0), rtol=1e-5)
    x2, _, m2, s2 = B.make_windows([_run(20)], 10, 10, mean, std)  # reuse training statistics
    assert np.array_equal(m2, mean) and x2.shape == (2, 10, 3)
    with pytest.raises(DataError, match="fewer than a window"):
        B.make_windows([_run(5)], 10, 1)
    with pytest.raises(DataError):
        B.SOCRun(np.arange(3.0), np.zeros(2), np.zeros(3), np.zeros(3), np.zeros(3), 25, "x", 1, 1, "x")


def test_measurement_noise_statistics():
    n = 20000
    run = {"time_s": np.arange(n), "voltage_v": np.full(n, 3.7), "current_a": np.zeros(n), "temperature_c": np.full(n, 25.0),
           "soc": np.linspace(1, 0, n)}
    noisy = B.add_measurement_noise(run, 0.002, 0.01, 0.2, seed=3)
    assert np.std(noisy["voltage_v"]) == pytest.approx(0.002, rel=0.05)
    assert np.std(noisy["current_a"]) == pytest.approx(0.01, rel=0.05)
    assert np.std(noisy["temperature_c"]) == pytest.approx(0.2, rel=0.05)
    assert np.array_equal(noisy["soc"], run["soc"])


def _write_calce(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Data_Point", "Test_Time(s)", "Step_Index", "Current(A)", "Voltage(V)", "Charge_Capacity(Ah)",
                    "Discharge_Capacity(Ah)", "Temperature (C)_1"])
        w.writerows(rows)


def test_calce_loader(tmp_path):
    # 2 s sampling, 1 A discharge (Arbin sign: negative) for 3600 s in step 7, a rest in step 6 before it
    rows = [[k, 2.0 * k, 6, 0.0, 4.0, 0, 0, 25.0] for k in range(5)]
    rows += [[k, 2.0 * k, 7, -1.0, 3.9, 0, 0, 26.0] for k in range(5, 5 + 1801)]
    _write_calce(tmp_path / "fuds.csv", rows)
    run = B.load_calce_fuds(tmp_path / "fuds.csv", initial_soc=0.8, capacity_ah=2.0, ambient_c=25.0, steps=[7])
    assert run.time_s[0] == 0 and np.all(np.diff(run.time_s) == 1.0) and len(run.time_s) == 3601  # 1 s grid
    assert np.allclose(run.current_a, 1.0)  # + = discharge
    assert run.soc[0] == pytest.approx(0.8) and run.soc[-1] == pytest.approx(0.8 - 1.0 / 2.0)  # 1 Ah of 2 Ah
    assert np.allclose(run.temperature_c, 26.0) and "CALCE" in run.source
    whole = B.load_calce_fuds(tmp_path / "fuds.csv", 0.8, 2.0, 25.0)
    assert whole.soc[0] == pytest.approx(0.8) and len(whole.time_s) == 2 * 1805 + 1
    with pytest.raises(DataError, match="Step_Index in"):
        B.load_calce_fuds(tmp_path / "fuds.csv", 0.8, 2.0, 25.0, steps=[99])
    (tmp_path / "nov.csv").write_text("Test_Time(s),Current(A)\n0,1\n1,1\n2,1\n")
    with pytest.raises(DataError, match="voltage"):
        B.load_calce_fuds(tmp_path / "nov.csv", 0.8, 2.0, 25.0)
    with pytest.raises(DataError, match="unsupported"):
        (tmp_path / "x.mat").write_text("")
        B.load_calce_fuds(tmp_path / "x.mat", 0.8, 2.0, 25.0)
    with pytest.raises(ConfigError, match="initial_soc"):
        B.load_calce_fuds(tmp_path / "fuds.csv", 1.5, 2.0, 25.0)


def test_sim_config_validation():
    with pytest.raises(ConfigError, match="test cycle"):
        B.BatterySimConfig(train_cycles=["us06", "fuds"])
    with pytest.raises(ConfigError, match="temperatures_c"):
        B.BatterySimConfig(temperatures_c=[100.0])
    with pytest.raises(ConfigError, match="cycle"):
        B.BatterySimConfig(train_cycles=["nedc"])


def test_pybamm_simulation_is_physical_and_cached(tmp_path):
    pytest.importorskip("pybamm", reason="PyBaMM is the optional 'battery' extra (pip install 'memristive[battery]')")
    folder = tmp_path / "drive-cycles"
    folder.mkdir()
    t = np.arange(0, 121)
    v = np.clip(np.sin(np.pi * t / 120) * 20, 0, None)  # one 2-minute trip
    for name in B.DRIVE_CYCLES:
        _write_cycle(folder / f"{name}.csv", t, v)
    cfg = B.BatterySimConfig(parameter_set="Chen2020", model="SPM", max_hours=240 / 3600, rtol=1e-5, atol=1e-7)
    run = B.simulate_cycle("udds", 25.0, 0.9, cfg, cache_dir=tmp_path / "cache", root=tmp_path)
    n = len(run["time_s"])
    assert n == 241 and np.all(np.diff(run["time_s"]) == 1)
    # the true SOC is coulomb counting of the simulated current
    q = np.concatenate([[0], np.cumsum(0.5 * (run["current_a"][1:] + run["current_a"][:-1]))]) / 3600
    np.testing.assert_allclose(run["soc"], 0.9 - q / float(run["capacity_ah"]), atol=2e-4)
    assert run["current_a"].max() == pytest.approx(2.0 * float(run["capacity_ah"]), rel=0.02)  # peak 2C
    assert 3.0 < run["voltage_v"].min() < run["voltage_v"].max() < 4.4
    assert run["temperature_c"].max() > 25.0  # Joule heating
    assert list((tmp_path / "cache").glob("*.npz"))
    again = B.simulate_cycle("udds", 25.0, 0.9, cfg, cache_dir=tmp_path / "cache", root=tmp_path)
    assert np.array_equal(again["voltage_v"], run["voltage_v"])


def test_soc_experiment_smoke(tmp_path, monkeypatch):
    """``memristive run soc`` end to end on two short simulated temperatures (needs PyBaMM)."""
    pytest.importorskip("pybamm", reason="PyBaMM is the optional 'battery' extra (pip install 'memristive[battery]')")
    from memristive.experiments import run_experiment

    monkeypatch.setenv("MEMRISTIVE_DATA", str(tmp_path))
    (tmp_path / "drive-cycles").mkdir()
    t = np.arange(0, 121)
    for k, name in enumerate(B.DRIVE_CYCLES):  # short synthetic trips instead of the fastsim download
        _write_cycle(tmp_path / "drive-cycles" / f"{name}.csv", t, np.clip(np.sin(np.pi * t / (60 + 20 * k)) * 20, 0, None))
    over = ["battery.max_hours=0.05", "battery.parameter_set=Chen2020", "battery.model=SPM", "window=10", "step_s=4",
            "train_stride_s=8", "test_stride_s=8"]
    res, run = run_experiment("soc", out=tmp_path / "soc", quick=True, overrides=over)
    assert "energy_per_inference_j" in res["hardware_cost"], res["hardware_cost"]  # the run's cost
    m = res["metrics"]
    assert m["substitute"] and "simulated" in m["data_source"]
    assert [r["bits"] for r in m["table"]] == ["fp", 8, 4]
    assert set(m["full_precision_rmse"]) == {"0", "25"} and m["table"][0]["paper_25C"] == 0.58
    assert all(v >= 0 for v in m["full_precision_rmse"].values())
    assert (run.path / "soc_rmse_vs_bits.png").is_file()


def test_soc_experiment_helpers_by_hand():
    from memristive.experiments.audio_soc import SOCConfig, _decimate, _rmse_by_temp, _soc_task

    run = _run(10)
    d = _decimate(run, 2)
    assert len(d.time_s) == 5 and d.current_a.tolist() == [2.0] * 5
    assert d.time_s.tolist() == [0.5, 2.5, 4.5, 6.5, 8.5]  # means of each pair
    assert np.allclose(d.soc, run.soc[1::2])  # SOC at the end of each averaged step
    # RMSE per temperature, in % SOC: errors 0.01 and 0.03 at 0 °C, 0.02 at 25 °C
    pred = torch.tensor([0.51, 0.47, 0.52])
    y = torch.tensor([0.50, 0.50, 0.50])
    out = _rmse_by_temp(pred, y, np.array([0.0, 0.0, 25.0]))
    assert float(out["0"][0]) == pytest.approx(100 * np.sqrt((0.01**2 + 0.03**2) / 2), rel=1e-5)
    assert float(out["25"][0]) == pytest.approx(2.0, rel=1e-5)
    trials = _rmse_by_temp(torch.stack([pred, y]), y, np.array([0.0, 0.0, 25.0]))
    assert trials["25"].tolist() == pytest.approx([2.0, 0.0], abs=1e-5)  # one RMSE per Monte Carlo trial
    # windows: train on two runs, test on runs at two temperatures; the target is the last step's SOC
    runs = {"train": [_run(400), _run(300, amb=0.0)], "test": [_run(200, amb=0.0), _run(200, amb=25.0)]}
    cfg = SOCConfig(window=10, step_s=2, train_stride_s=20, test_stride_s=10)
    task, temps = _soc_task(cfg, runs)
    assert task.x_train.shape[1:] == (10, 3) and task.kind == "regression" and task.target_scale == 100.0
    assert len(task.x_test) == len(temps) == 2 * len(range(9, 100, 5))
    assert sorted(set(temps.tolist())) == [0.0, 25.0]
    assert float(task.y_test[0]) == pytest.approx(runs["test"][0].soc[19], abs=1e-6)  # 10 steps × 2 s
