"""In-situ training benchmark: pulse-level DTGA epochs on VTEAM pairs (plain script, prints a table).

    .venv/bin/python benchmarks/bench_dtga.py [--threads 1 2] [--noise 0.02] [--synthetic] [--read-back]

(default: 1 thread, the default update rule; ``--read-back`` is the rule that was the default before
issue 15: every device read before each update, GA subtracting the measured change, DT rule ``layer``)

Rows:
* one epoch of the 60,000 MNIST training images on the 784x100x10 network (batch 100, DTGA, VTEAM
  pairs with D2D + P2P noise factor ``--noise``): bar (issue 4) <= 20 s on 2 cores;
* 10,000 samples on a 784x256x10 network, batch 100 — the workload of IBM aihwkit's analog SGD
  (ConstantStepDevice), so the two compare per sample, here with the VTEAM physics included. Where
  aihwkit is importable (``make anchors``; run with ``.venv-anchors/bin/python``) its epoch on the same
  first 10,000 samples is measured in the same run (``bench_analog.aihwkit_epoch``); otherwise no
  figure for aihwkit is printed.

The machine's load average is printed with each run: the pulse update is elementwise-bound, so other
processes on a shared 2-core machine slow it down (and hurt 2 threads more than 1).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from memristive.config import from_dict
from memristive.methods.dtga import DTGAConfig, InSituMLP

from bench_analog import AIHWKIT_MISSING, aihwkit_epoch  # noqa: E402  (same folder: run as a script)


def epoch_time(sizes, w_max, x, y, threads, noise, scheme="dtga", read_back=False) -> tuple[float, float, dict]:
    torch.set_num_threads(threads)
    update = dict(scheme=scheme, **(dict(controller="read", ga_residual="measured", dt_rule="layer") if read_back else {}))
    cfg = from_dict(DTGAConfig, dict(sizes=sizes, w_max=w_max, update=update))
    model = InSituMLP(cfg, trials=1, seed=0, noise=noise)
    model.train_step(x[:100], y[:100])  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    st = model.train_epoch(x, y, torch.Generator().manual_seed(0), progress=False)
    return time.perf_counter() - t0, time.process_time() - c0, st


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1],
                    help="thread counts to measure, e.g. --threads 1 2 (2 threads only pay off on an idle machine)")
    ap.add_argument("--noise", type=float, default=0.02, help="noise factor (D2D = P2P)")
    ap.add_argument("--synthetic", action="store_true", help="random inputs instead of MNIST (no data needed)")
    ap.add_argument("--read-back", action="store_true",
                    help="the pre-issue-15 rule: read every device before each update, GA subtracts the "
                         "measured change, DT rule 'layer'")
    args = ap.parse_args()
    if args.synthetic:
        g = torch.Generator().manual_seed(0)
        x, y = torch.rand(60_000, 784, generator=g), torch.randint(0, 10, (60_000,), generator=g)
        source = "synthetic"
    else:
        from memristive.data import load_mnist

        d = load_mnist()
        x, y, source = d.x_train, d.y_train, d.source
    mode = "read-back controller, layer DT rule" if args.read_back else "default rule"
    print(f"\nPulse-level in-situ training (DTGA, {mode}, VTEAM pairs, noise factor {args.noise}), data: {source}")
    print("wall = elapsed time; cpu = this process's CPU time (with 1 thread: the wall time it would take on an "
          "otherwise idle core)")
    print(f"{'workload':44s} {'thr':>3s} {'load':>5s} {'wall (s)':>8s} {'cpu (s)':>8s} {'us/sample':>9s} {'bar':>14s}")
    aihw = {}
    for threads in args.threads:
        load = os.getloadavg()[0]
        t, c, st = epoch_time([784, 100, 10], [1.0, 4.0], x, y, threads, args.noise, read_back=args.read_back)
        print(f"{'1 epoch, 60k MNIST, 784x100x10, batch 100':44s} {threads:3d} {load:5.2f} {t:8.2f} {c:8.2f} "
              f"{t / len(x) * 1e6:9.1f} {'<= 20 s':>14s}   ({st['pulses']:.3g} pulses)")
        load = os.getloadavg()[0]
        t, c, st = epoch_time([784, 256, 10], [1.0, 4.0], x[:10_000], y[:10_000], threads, args.noise,
                               read_back=args.read_back)
        print(f"{'10k samples, 784x256x10, batch 100':44s} {threads:3d} {load:5.2f} {t:8.2f} {c:8.2f} "
              f"{t / 10_000 * 1e6:9.1f} {'vs aihwkit':>14s}")
        a = aihwkit_epoch(x[:10_000], y[:10_000])
        if a is not None:
            aihw[threads] = a
            print(f"{'  aihwkit AnalogSGD, same 10k samples':44s} {threads:3d} {os.getloadavg()[0]:5.2f} {a[0]:8.2f} "
                  f"{a[1]:8.2f} {a[0] / 10_000 * 1e6:9.1f}   (DTGA/aihwkit: {t / a[0]:.2f} wall, {c / a[1]:.2f} cpu; "
                  "aihwkit: ConstantStepDevice, no device physics)")
    if not aihw:
        print(AIHWKIT_MISSING)


if __name__ == "__main__":
    main()
