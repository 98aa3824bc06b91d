"""Endurance: window narrowing with write count, failure, and its cost inside write-verify."""

import math

import pytest
import torch

from memristive.config import ConfigError
from memristive.endurance import Endurance, Wear, endurance_factor, endurance_window
from memristive.programming import LinearPulse, write_verify

G0, G1 = 1e-5, 1e-4


def test_window_hand_values():
    n = torch.tensor([0.0, 1e4, 1e5, 1e6], dtype=torch.float64)
    f = endurance_factor(n, 1e4, 0.2)
    assert torch.allclose(f, torch.tensor([1.0, 1.0, 10 ** -0.2, 10 ** -0.4], dtype=torch.float64), rtol=1e-14)
    lo, hi = endurance_window(n, G0, G1, 1e4, 0.2)
    gc = 0.5 * (G0 + G1)
    assert torch.allclose(hi, gc + (G1 - gc) * f, rtol=1e-14)
    assert torch.allclose(lo, gc - (gc - G0) * f, rtol=1e-14)
    assert lo[0].item() == pytest.approx(G0, rel=1e-14) and hi[0].item() == pytest.approx(G1, rel=1e-14)
    lo2, hi2 = endurance_window(n, G0, G1, 1e4, 0.2, g_c=2e-5)  # asymmetric convergence point
    assert hi2[3].item() == pytest.approx(2e-5 + (G1 - 2e-5) * 10 ** -0.4)
    assert lo2[3].item() == pytest.approx(2e-5 - (2e-5 - G0) * 10 ** -0.4)


def test_wear_clamps_then_sticks():
    cfg = Endurance(n_th=10, p=0.5, fail_mean=100, fail_sigma=0.0, stuck="lrs")
    wear = Wear(cfg, G0, G1, (3,), dtype=torch.float64)
    g = torch.tensor([G0, G1, 5e-5], dtype=torch.float64)
    out, failed = wear.constrain(g)
    assert torch.equal(out, g) and not failed.any()
    wear.record(torch.tensor([40.0, -40.0, 0.0], dtype=torch.float64))  # 4x the threshold: f = 1/2
    out, failed = wear.constrain(g)
    gc = 0.5 * (G0 + G1)
    assert out[0].item() == pytest.approx(gc - (gc - G0) / 2) and out[1].item() == pytest.approx(gc + (G1 - gc) / 2)
    assert out[2].item() == 5e-5 and not failed.any()
    wear.record(torch.tensor([60.0, 0.0, 0.0], dtype=torch.float64))  # device 0 reaches 100 writes: fails at LRS
    out, failed = wear.constrain(g)
    assert failed.tolist() == [True, False, False] and out[0].item() == G1
    out, _ = wear.constrain(torch.tensor([G0, G0, G0], dtype=torch.float64))
    assert out[0].item() == G1  # stays stuck
    with pytest.raises(ConfigError, match="endurance.stuck"):
        Endurance(stuck="middle")


def test_failure_thresholds_are_lognormal_per_device():
    wear = Wear(Endurance(fail_mean=1e5, fail_sigma=0.5), G0, G1, (20000,), torch.Generator().manual_seed(0),
                dtype=torch.float64)
    logs = torch.log(wear.n_fail)
    assert logs.mean().item() == pytest.approx(math.log(1e5), abs=4 * 0.5 / math.sqrt(20000))
    assert logs.std().item() == pytest.approx(0.5, rel=0.03)


def test_worn_devices_cost_write_verify_its_precision():
    target = torch.full((200,), G0 + 0.95 * (G1 - G0), dtype=torch.float64)  # near G_max
    m = LinearPulse(G0, G1, step=0.01, noise=0.0)
    fresh = write_verify(target, m, tol=0.01, max_pulses=200)
    assert fresh.converged.all()
    wear = Wear(Endurance(n_th=10, p=0.3, fail_mean=math.inf), G0, G1, (200,), dtype=torch.float64)
    wear.record(torch.full((200,), 1e4, dtype=torch.float64))  # already cycled 10^4 times: window shrunk
    worn = write_verify(target, m, tol=0.01, max_pulses=200, wear=wear)
    hi = wear.window()[1]
    assert not worn.converged.any()  # the target lies outside the narrowed window
    assert torch.allclose(worn.g, hi, rtol=1e-12)
    assert worn.pulses.eq(200).all() and wear.writes.min().item() == 1e4 + 200
