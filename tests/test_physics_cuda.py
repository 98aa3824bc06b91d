"""The time and circuit physics on CUDA give what they give on the CPU (skipped without a GPU)."""

import pytest
import torch

from memristive.circuit.nonlinear import nonlinear_currents
from memristive.crossbar import Crossbar, CrossbarConfig, Tiling
from memristive.circuit import LineResistance
from memristive.devices import LinearDevice
from memristive.devices.iv import SinhIV
from memristive.drift import YEAR, column_drift_scale, global_drift_scale
from memristive.endurance import Endurance, Wear
from memristive.programming import LinearPulse, write_verify

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = torch.device("cuda")


def _pair(**cfg):
    w = torch.randn(40, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    c = CrossbarConfig(**cfg)
    return (Crossbar.from_weights(w, config=c, trials=3, seed=2),
            Crossbar.from_weights(w, config=c, trials=3, seed=2, device="cuda"))


def test_time_effects_on_cuda():
    dev = LinearDevice(g_min=0.0, g_max=25e-6)
    for eff in ({"kind": "pcm_drift", "read_noise": False}, {"kind": "rram_retention", "sigma": 0.02}):
        cpu, gpu = _pair(memristor=dev, time_effect=eff)
        assert gpu.g_pos.device.type == "cuda"
        # ν / ξ are drawn on the device's generator: move the CPU state over and compare the aging
        gpu.load_state_dict({k: v.to(CUDA) for k, v in cpu.state_dict().items() if isinstance(v, torch.Tensor)} |
                            {k: v for k, v in cpu.state_dict().items() if not isinstance(v, torch.Tensor)})
        for t in (0.0, 3600.0, 10 * YEAR):
            assert torch.allclose(gpu.at(t).g_pos.cpu(), cpu.at(t).g_pos, rtol=1e-12, atol=0)
        eye = torch.eye(40, dtype=torch.float64)
        r0c, r0g = cpu.at(0.0).matmul(eye), gpu.at(0.0).matmul(eye.to(CUDA))
        rtc, rtg = cpu.at(YEAR).matmul(eye), gpu.at(YEAR).matmul(eye.to(CUDA))
        assert torch.allclose(global_drift_scale(r0g, rtg).cpu(), global_drift_scale(r0c, rtc), rtol=1e-10)
        assert torch.allclose(column_drift_scale(r0g, rtg).cpu(), column_drift_scale(r0c, rtc), rtol=1e-10)
    # the PCM 1/f noise draws on the crossbar's own device
    _, gpu = _pair(memristor=dev, time_effect={"kind": "pcm_drift"})
    assert gpu.at(YEAR).g_pos.device.type == "cuda"


def test_nonlinear_read_on_cuda():
    g = 1 / (1e3 + 11e3 * torch.rand(5, 24, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    v = 0.4 * torch.rand(5, 3, 24, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for rr, rc in ((0.0, 0.0), (1.0, 2.0), (1.0, 0.0), (0.0, 2.0)):
        cpu = nonlinear_currents(g, v, SinhIV(4.0), rr, rc)
        gpu = nonlinear_currents(g.to(CUDA), v.to(CUDA), SinhIV(4.0), rr, rc)
        assert gpu.device.type == "cuda"
        assert torch.allclose(gpu.cpu(), cpu, rtol=1e-9, atol=0)
    mem = {"kind": "sinh", "r_on": 1e3, "r_off": 12e3, "b": 3.0}
    cpu, gpu = _pair(memristor=mem, tile=Tiling(16, 16), line_resistance=LineResistance(1.0, 1.0))
    x = torch.rand(6, 40, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert torch.allclose(gpu.matmul(x.to(CUDA)).cpu(), cpu.matmul(x), rtol=1e-9)


def test_write_verify_and_endurance_on_cuda():
    m = LinearPulse(1e-5, 1e-4, step=0.01, noise=0.0)
    target = 1e-5 + 9e-5 * torch.rand(4, 50, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    cpu = write_verify(target, m, tol=0.005, max_pulses=300, adaptive=True)
    gpu = write_verify(target.to(CUDA), m, tol=0.005, max_pulses=300, adaptive=True)
    assert torch.equal(gpu.pulses.cpu(), cpu.pulses) and torch.allclose(gpu.g.cpu(), cpu.g, rtol=1e-12)
    assert torch.allclose(gpu.energy.cpu(), cpu.energy, rtol=1e-12)
    wear = Wear(Endurance(n_th=10, p=0.3, fail_mean=1e9), 1e-5, 1e-4, (4, 50), dtype=torch.float64, device=CUDA)
    wear.record(torch.full((4, 50), 1e4, dtype=torch.float64, device=CUDA))
    worn = write_verify(target.to(CUDA), m, tol=0.005, max_pulses=50, wear=wear)
    assert worn.g.device.type == "cuda" and bool((worn.g <= wear.window()[1] + 1e-18).all())
