"""Write-verify programming: convergence, pulse counts, time and energy against hand calculations."""

import math

import pytest
import torch

from memristive.config import ConfigError
from memristive.devices import LinearDevice, VTEAMDevice
from memristive.devices.vteam import Pulse, conductance, drive
from memristive.programming import LinearPulse, VTEAMPulse, WriteVerify, write_verify

G0, G1 = 1e-5, 1e-4
RNG = G1 - G0


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_deterministic_single_pulses_hand_count_time_energy():
    m = LinearPulse(G0, G1, step=0.01, noise=0.0, v_set=1.2, v_reset=-1.0, width=50e-9)
    target = torch.tensor([G0 + 0.237 * RNG], dtype=torch.float64)
    res = write_verify(target, m, tol=0.004, max_pulses=100, v_read=0.2, t_read=1e-7)
    # by hand: after n pulses the error is |0.237 − 0.01 n|·range; n = 24 is the first within 0.004
    assert res.pulses.item() == 24 and res.reads.item() == 25 and bool(res.converged.item())
    assert res.g.item() == pytest.approx(G0 + 0.24 * RNG, rel=1e-12)
    gs = [G0 + 0.01 * k * RNG for k in range(25)]
    e_pulses = sum(1.2 ** 2 * 50e-9 * (gs[k] + gs[k + 1]) / 2 for k in range(24))
    e_reads = sum(0.2 ** 2 * 1e-7 * gs[k] for k in range(25))
    assert res.energy.item() == pytest.approx(e_pulses + e_reads, rel=1e-12)
    assert res.time.item() == pytest.approx(24 * 50e-9 + 25 * 1e-7, rel=1e-12)


def test_adaptive_trains_and_reset_direction():
    m = LinearPulse(G0, G1, step=0.01, noise=0.0, width=50e-9)
    target = torch.tensor([G0 + 0.237 * RNG, G0 + 0.5 * RNG], dtype=torch.float64)
    start = torch.tensor([G0, G1], dtype=torch.float64)  # second device must RESET down by 50 steps
    res = write_verify(target, m, start, tol=0.004, adaptive=True, max_train=16)
    # device 0: trains of 16 then round(0.077/0.01) = 8 pulses -> 24 pulses, 3 reads
    assert res.pulses.tolist() == [24.0, 50.0]
    assert res.reads.tolist() == [3.0, 5.0]  # 16+16+16+2 for the second
    assert res.converged.all()
    assert res.g[1].item() == pytest.approx(G0 + 0.5 * RNG, rel=1e-12)


def test_pulse_budget_stops_and_reports_unconverged():
    m = LinearPulse(G0, G1, step=0.01, noise=0.0)
    target = torch.full((3,), G0 + 0.5 * RNG, dtype=torch.float64)
    res = write_verify(target, m, tol=0.001, max_pulses=10)
    assert res.pulses.eq(10).all() and not res.converged.any()
    assert torch.allclose(res.g, torch.full_like(target, G0 + 0.1 * RNG), rtol=1e-12)
    assert write_verify(target, m, tol=0.001, max_pulses=0).pulses.eq(0).all()


def test_noisy_write_verify_lands_within_tolerance():
    m = LinearPulse(G0, G1, step=0.02, noise=0.5)
    target = G0 + RNG * torch.rand(5, 200, generator=gen(1), dtype=torch.float64)
    res = write_verify(target, m, tol=0.01, max_pulses=300, adaptive=True, generator=gen(2))
    assert res.converged.float().mean() > 0.99
    err = (res.g - target)[res.converged].abs() / RNG
    assert err.max() <= 0.01 + 1e-12  # no verify noise: a converged device is truly within tolerance
    # more pulses than the noise-free nominal count on average (noise causes corrections)
    nominal = torch.clamp(torch.ceil(((target - G0) / RNG - 0.01) / 0.02), min=0)
    assert res.pulses.mean() > nominal.mean()
    # same seed, same result; tighter tolerance costs more pulses and gives a smaller error
    again = write_verify(target, m, tol=0.01, max_pulses=300, adaptive=True, generator=gen(2))
    assert torch.equal(again.g, res.g) and torch.equal(again.pulses, res.pulses)
    tight = write_verify(target, m, tol=0.003, max_pulses=300, adaptive=True, generator=gen(2))
    assert tight.pulses.mean() > res.pulses.mean()
    assert (tight.g - target).pow(2).mean() < (res.g - target).pow(2).mean()


def test_verify_read_noise_limits_precision():
    m = LinearPulse(G0, G1, step=0.002, noise=0.0)
    target = G0 + RNG * torch.rand(4000, generator=gen(3), dtype=torch.float64)
    res = write_verify(target, m, tol=0.002, max_pulses=1000, read_noise=0.01, adaptive=True, max_train=64,
                       generator=gen(4))
    rms = ((res.g - target) / RNG).pow(2).mean().sqrt().item()
    assert 0.002 < rms < 0.02  # the verify read, not the tolerance, sets the final error


def test_vteam_write_verify_hand_count():
    dev = VTEAMDevice()  # MemTorch defaults, no window, linear R(s)
    pulse = Pulse()
    m = VTEAMPulse(dev, pulse)
    u = float(drive(torch.tensor(pulse.v_set, dtype=torch.float64), **dev.rate_params())) * pulse.width
    target = torch.tensor([2e-3, 5e-3], dtype=torch.float64)
    tol = 0.005
    res = write_verify(target, m, tol=tol, max_pulses=500)
    rng = dev.g_max - dev.g_min
    for i, tgt in enumerate(target.tolist()):
        s, n = 1.0, 0  # reset state (R_off); every SET pulse moves s by u (< 0) exactly
        while abs(1 / (dev.r_on + (dev.r_off - dev.r_on) * s) - tgt) > tol * rng:
            s, n = max(s + u, 0.0), n + 1
        assert res.pulses[i].item() == n
        assert res.g[i].item() == pytest.approx(1 / (dev.r_on + (dev.r_off - dev.r_on) * s), rel=1e-9)
    assert res.converged.all()
    # with pulse-to-pulse noise it still converges (more or fewer pulses, same tolerance)
    noisy = write_verify(target.repeat(100), VTEAMPulse(dev, pulse, p2p=0.3), tol=tol, max_pulses=500,
                         adaptive=True, generator=gen(5))
    assert noisy.converged.all()
    assert ((noisy.g - target.repeat(100)).abs() <= tol * rng + 1e-15).all()


def test_write_verify_effect_replaces_an_assumed_error():
    dev = LinearDevice(g_min=G0, g_max=G1)
    eff = WriteVerify(tol=0.01, step=0.01, noise=0.3, max_pulses=200)
    target = G0 + RNG * torch.rand(2, 30, 20, generator=gen(6))
    g, stuck = eff.apply(target, dev, gen(7))
    assert stuck is None and g.shape == target.shape
    res = eff.program(target, dev, gen(7))
    assert torch.equal(res.g, g)  # same generator state, same result
    conv = res.converged
    assert conv.float().mean() > 0.99
    assert ((g - target)[conv].abs() <= 0.01 * RNG * (1 + 1e-5)).all()
    assert res.pulses.sum() > 0
    # as a crossbar effect in a config: the programming error is what write-verify leaves
    from memristive.crossbar import Crossbar, CrossbarConfig
    from memristive.config import from_dict

    cfg = from_dict(CrossbarConfig, {"memristor": {"kind": "linear", "g_min": G0, "g_max": G1},
                                     "nonidealities": [{"kind": "write_verify", "tol": 0.02, "max_pulses": 400}]})
    w = torch.randn(30, 5, generator=gen(8))
    xb = Crossbar.from_weights(w, config=cfg, trials=2, seed=3)
    ideal = Crossbar.from_weights(w, memristor=cfg.memristor, trials=1)
    err = (xb.g_pos - ideal.g_pos) / RNG
    assert err.abs().max() <= 0.02 + 1e-6 and err.abs().max() > 0
    with pytest.raises(ConfigError, match="write_verify.tol"):
        WriteVerify(tol=0)
    with pytest.raises(ConfigError, match="pulse.step"):
        WriteVerify(step=2.0)
    with pytest.raises(ValueError, match="outside the device range"):
        write_verify(torch.tensor([2 * G1]), LinearPulse(G0, G1))


def test_write_verify_experiment_smoke(tmp_path):
    from memristive.experiments.runner import run_experiment

    results, _ = run_experiment("write-verify", out=tmp_path / "wv", quick=True,
                                overrides=["n_train=600", "n_test=200", "trials=1", "tolerances=[0.05, 0.01]",
                                           "models=[linear]"])
    assert "energy_per_inference_j" in results["hardware_cost"], results["hardware_cost"]  # the run's cost
    pts = results["metrics"]["points"]
    assert [p["tol"] for p in pts] == [0.05, 0.01]
    for p in pts:
        assert p["converged_fraction"] == 1.0 and p["max_error_rel"] <= p["tol"] * (1 + 1e-5)
    assert pts[1]["rms_error_rel"] < pts[0]["rms_error_rel"] and pts[1]["energy_mean_J"] > 0


def test_write_verify_through_a_devices_own_pulse_response():
    from memristive.devices import device_from_spec
    from memristive.programming import DevicePulse

    dev = device_from_spec({"kind": "constant-step", "g_min": G0, "g_max": G1, "dw_min": 0.01})
    m = DevicePulse(dev)
    target = torch.tensor([G0 + 0.237 * RNG], dtype=torch.float64)
    res = write_verify(target, m, tol=0.004, max_pulses=100)
    # constant step of 1 % of the range: the same hand count as the linear pulse model (24 pulses)
    assert res.pulses.item() == 24 and bool(res.converged.item())
    assert res.g.item() == pytest.approx(G0 + 0.24 * RNG, rel=1e-9)
    assert res.energy.item() > 24 * dev.v_pulse ** 2 * dev.t_pulse * G0  # pulses at >= G_min
    noisy = device_from_spec({"kind": "soft-bounds", "g_min": G0, "g_max": G1, "dw_min": 0.01, "dw_min_std": 0.3})
    tgt = G0 + RNG * 0.8 * torch.rand(300, generator=gen(9), dtype=torch.float64)
    res = WriteVerify(tol=0.01, max_pulses=400).program(tgt, noisy, gen(10))
    # asymmetric soft bounds + 30 % cycle noise: nearly all land within tolerance (a few may oscillate)
    assert res.converged.float().mean() >= 0.99
    assert ((res.g - tgt)[res.converged].abs() <= 0.01 * RNG * (1 + 1e-9)).all()
    with pytest.raises(ConfigError, match="no pulse response"):
        DevicePulse(LinearDevice(g_min=G0, g_max=G1))
