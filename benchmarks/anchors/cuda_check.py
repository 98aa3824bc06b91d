"""CUDA check of the crossbar read: no-grad vs autograd read, read-noise std vs the hand formula, on a GPU.

    python benchmarks/anchors/cuda_check.py      (needs torch with CUDA)
"""
import math

import torch

from memristive.crossbar import Converter, Crossbar
from memristive.devices import LinearDevice
from memristive.nonideal import ReadNoise

if not torch.cuda.is_available():
    raise SystemExit("cuda_check.py: no CUDA device here")
dev = LinearDevice(r_on=1e3, r_off=12e3)
torch.manual_seed(0)
w = torch.randn(64, 8, device="cuda")
x = torch.rand(5, 64, device="cuda")
xb = Crossbar.from_weights(w, memristor=dev, adc=Converter(bits=6), trials=3)
xb.calibrate_adc(x)
with torch.no_grad():
    fast = xb.matmul(x)
slow = xb.matmul(x.clone().requires_grad_(True)).detach()
step = xb.adc_range.item() / 31 / (0.2 * 1e3 * xb.k)
print("cuda fast vs autograd read: max diff in ADC steps", float((fast - slow).abs().max() / step), fast.device)
for mode in ("range", "relative"):
    xn = Crossbar.from_weights(w.double(), memristor=dev, read_noise=ReadNoise(0.05, mode), trials=4000, seed=2)
    v = x[:2].double() * 0.2
    with torch.no_grad():
        out = xn.mvm(v)
    gp, gn = xn.conductances
    if mode == "range":
        std = 0.05 * dev.g_range * math.sqrt(2) * v.norm(dim=-1, keepdim=True) * 1e3
    else:
        std = (v * v @ (0.05**2 * (gp[0] ** 2 + gn[0] ** 2))).sqrt() * 1e3
    lo, hi = (out.std(0) / std).aminmax()
    print(f"{mode} cuda read-noise std / hand formula: min {float(lo):.3f} max {float(hi):.3f}")
