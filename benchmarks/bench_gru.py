"""CrossbarGRU speed against torch.nn.GRU on the same batch (plain script, prints a table).

    .venv/bin/python benchmarks/bench_gru.py [--threads 1 2] [--batch 256] [--steps 64] [--hidden 128]

Inference (no grad) of a 2-layer GRU, input 20 features. Rows per thread count:

* ``torch.nn.GRU`` -- the fused PyTorch kernel (the reference);
* ``CrossbarGRU ideal``         -- converted, full precision, ideal devices, one device instance;
* ``CrossbarGRU 6-bit + 10 %``  -- 6-bit weights (codes on the devices) and activations, 10 %
  multiplicative device variation, one device instance: the issue's bar is <= 3x nn.GRU;
* ``... 6-bit + 10 %, T=16``    -- 16 Monte Carlo device instances in one call (time per instance);
* ``QAT training step``         -- forward + backward of the noise-aware QAT model vs nn.GRU's.

Times are the median of ``--repeat`` runs after a warm-up. The load average is printed: on a
shared 2-core machine other processes slow small recurrent kernels (and hurt 2 threads more than 1).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from memristive.crossbar import CrossbarConfig
from memristive.nn import CrossbarGRU, GRUNet, QuantGRU
from memristive.nonideal import DeviceVariation
from memristive.quant import QuantConfig, WeightNoise, calibration


def timed(fn, repeat: int) -> tuple[float, float]:
    """Median wall time and median CPU time of this process (robust to other load at 1 thread)."""
    fn()  # warm-up
    ts, cs = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    return statistics.median(ts), statistics.median(cs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--inputs", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    torch.manual_seed(0)
    ref = torch.nn.GRU(args.inputs, args.hidden, args.layers, batch_first=True).eval()
    x = torch.randn(args.batch, args.steps, args.inputs)
    q = QuantGRU.from_gru(ref, quant=QuantConfig(weight_bits=6))
    with torch.no_grad(), calibration(q):
        q.eval()(x)  # activation ranges
    ideal = CrossbarGRU.from_gru(ref, trials=1)
    varied = CrossbarConfig(nonidealities=[DeviceVariation(0.10)])
    hw6 = CrossbarGRU.from_gru(q, varied, trials=1, seed=1)
    hw6_t = CrossbarGRU.from_gru(q, varied, trials=16, seed=1)
    net_ref = GRUNet(args.inputs, args.hidden, args.layers, 10)
    net_qat = GRUNet(args.inputs, args.hidden, args.layers, 10).set_quant(QuantConfig(6), WeightNoise(0.1))
    net_qat.load_state_dict(net_ref.state_dict(), strict=False)

    def train_step(net):
        net.train()
        net.zero_grad()
        net(x).sum().backward()

    print(f"GRU {args.inputs}->{args.layers}x{args.hidden}, batch {args.batch}, {args.steps} steps; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"{'threads':>7}  {'case':<42} {'wall (ms)':>10} {'x nn.GRU':>9} {'CPU (ms)':>10} {'x nn.GRU':>9}")
    for th in args.threads:
        torch.set_num_threads(th)
        with torch.no_grad():
            rows = [("torch.nn.GRU", timed(lambda: ref(x), args.repeat)),
                    ("CrossbarGRU ideal, 1 instance", timed(lambda: ideal(x), args.repeat)),
                    ("CrossbarGRU 6-bit + 10 % var, 1 instance", timed(lambda: hw6(x), args.repeat))]
            w, c = timed(lambda: hw6_t(x), max(1, args.repeat // 2))
            rows.append(("  same, T=16 instances (per instance)", (w / 16, c / 16)))
        rows.append(("train step nn.GRU (fwd+bwd)", timed(lambda: train_step(net_ref), args.repeat)))
        rows.append(("train step QAT 6-bit + noise (fwd+bwd)", timed(lambda: train_step(net_qat), args.repeat)))
        for i, (name, (w, c)) in enumerate(rows):
            w0, c0 = rows[0][1] if i < 4 else rows[4][1]
            print(f"{th:>7}  {name:<42} {1e3 * w:>10.1f} {w / w0:>9.2f} {1e3 * c:>10.1f} {c / c0:>9.2f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
