"""The same code on CUDA: parity with the CPU for the array core, layers and training methods.

Skipped where torch sees no GPU (CI, the development machines); run on a GPU machine with
``pytest tests/test_cuda.py`` (``benchmarks/gpu_check.sh`` does, beside the benchmarks).
"""

from __future__ import annotations

import pytest
import torch

from memristive.crossbar import Converter, Crossbar, CrossbarConfig, Tiling
from memristive.devices import LinearDevice
from memristive.methods.insitu import DeviceArray
from memristive.nn import convert, mlp
from memristive.nonideal import DefectPercent, ReadNoise, StuckAt

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
DEV = LinearDevice(r_on=1e3, r_off=12e3)


@pytest.mark.parametrize("mapping", ["differential", "balanced", "reference"])
def test_ideal_crossbar_matches_cpu(mapping):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(300, 70, generator=g, dtype=torch.float64)
    x = torch.rand(16, 300, generator=g, dtype=torch.float64)
    cfg = CrossbarConfig(memristor=DEV, mapping=mapping, tile=Tiling(128, 64), adc=Converter(bits=8, range=5.0))
    cpu = Crossbar.from_weights(w, config=cfg, trials=3)
    gpu = Crossbar.from_weights(w, config=cfg, trials=3, device="cuda")
    assert gpu.g_pos.is_cuda and gpu.scale.is_cuda
    assert torch.allclose(gpu.matmul(x.cuda()).cpu(), cpu.matmul(x), atol=1e-9)


def test_effects_and_read_noise_run_on_the_gpu_with_the_right_statistics():
    w = torch.randn(256, 64, device="cuda")
    xb = Crossbar.from_weights(w, memristor=DEV, trials=50, nonidealities=[StuckAt(p_hrs=0.1)],
                               read_noise=ReadNoise(0.05), seed=3)
    frac = xb.stuck_pos.float().mean().item()
    assert abs(frac - 0.1) < 0.01
    y1, y2 = xb.matmul(torch.rand(8, 256, device="cuda")), xb.matmul(torch.rand(8, 256, device="cuda"))
    assert y1.is_cuda and torch.isfinite(y1).all() and not torch.equal(y1, y2)


def test_converted_state_moves_between_cpu_and_gpu_exactly():
    torch.manual_seed(0)
    model = mlp([64, 32, 10], activation="relu")
    cfg = CrossbarConfig(memristor=DEV, nonidealities=[DefectPercent(0.1)], adc=Converter(bits=8, range=2.0))
    cpu = convert(model, cfg, trials=4, seed=1)
    gpu = convert(model, cfg, trials=4, seed=2).to("cuda")
    gpu.load_state_dict(cpu.state_dict())
    x = torch.rand(9, 64)
    assert torch.allclose(gpu(x.cuda()).cpu(), cpu(x), atol=1e-5)


def test_insitu_writes_on_the_gpu():
    w = torch.randn(20, 8, dtype=torch.float64)
    xb = Crossbar.from_weights(w, memristor=DEV, trials=2, device="cuda")
    arr = DeviceArray(xb, w.cuda())
    arr.write(torch.full((2, 20, 8), 0.01, dtype=torch.float64, device="cuda"))
    assert torch.allclose(xb.weights().cpu(), (w + 0.01).expand(2, -1, -1), atol=1e-9)


def dtga_pulses_on(device: str) -> tuple[list, torch.Tensor]:
    """The DTGA optimizer on a converted VTEAM twin of a small MLP on ``device``: pulses per step, weights."""
    from torch import nn

    from memristive.methods.analog_optim import DTGA, trial_loss
    from memristive.nn import AppendOne

    torch.manual_seed(0)
    net = nn.Sequential(AppendOne(), nn.Linear(7, 5, bias=False), nn.Sigmoid(), AppendOne(), nn.Linear(6, 3, bias=False))
    cfg = CrossbarConfig(memristor="dtga", mapping={"kind": "balanced-state", "w_max": 6.0}, v_read=0.01)
    model = convert(net, cfg, trials=2).to(device)
    opt = DTGA(model, lr=2.0)
    gen = torch.Generator().manual_seed(1)
    counts = []
    for _ in range(4):
        x, y = torch.rand(8, 6, generator=gen), torch.randint(0, 3, (8,), generator=gen)
        opt.zero_grad()
        trial_loss(model(x.to(device)), y.to(device)).backward()
        opt.step()
        counts.append((opt.totals()["set"], opt.totals()["reset"]))
    return counts, model[1].crossbar.weights().cpu()


def test_dtga_optimizer_on_the_gpu_writes_what_the_cpu_writes():
    cpu, w_cpu = dtga_pulses_on("cpu")
    gpu, w_gpu = dtga_pulses_on("cuda")
    assert gpu == cpu  # the same pulse counts (the plan is deterministic; rounding ties are measure-zero)
    assert torch.allclose(w_gpu, w_cpu, atol=1e-5)
