"""Inference benchmark: 784x256x10 MLP on 10,000 inputs in batches of 100 (plain script, prints a table).

    .venv/bin/python benchmarks/bench_inference.py [--repeats 3] [--threads 2]

Rows: digital torch; one crossbar instance with lognormal variation + stuck-at faults + 8-bit ADC +
read noise; the same for 100 Monte Carlo instances in one batched pass. Bars (issue 2): one noisy
instance <= 2x digital, 100 trials <= 40x one digital pass.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn

from memristive.crossbar import Converter, CrossbarConfig
from memristive.nn import convert
from memristive.nonideal import Lognormal, ReadNoise, StuckAt


def timed(fn, repeats):
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--trials", type=int, default=100)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)).eval()
    x = torch.rand(10_000, 784)
    batches = x.split(100)

    cfg = CrossbarConfig(
        memristor="ti-alox-taox",
        nonidealities=[Lognormal(sigma=0.1), StuckAt(p_hrs=0.01, p_lrs=0.01)],
        read_noise=ReadNoise(sigma=0.02),
        adc=Converter(bits=8),
    )

    import dataclasses

    cfg_range = dataclasses.replace(cfg, read_noise=ReadNoise(sigma=0.02, mode="range"))

    def build(trials, config=cfg):
        hw = convert(model, config, trials=trials, seed=1)
        with torch.no_grad():  # fix each ADC's full scale from a calibration batch (static converters)
            h = x[:500]
            for layer in hw:
                if hasattr(layer, "crossbar"):
                    layer.crossbar.calibrate_adc(h)
                h = layer(h)
        return hw

    @torch.no_grad()
    def run(m):
        for b in batches:
            m(b)

    t_build1 = timed(lambda: build(1), 1)
    hw1 = build(1)
    t_buildN = timed(lambda: build(args.trials), 1)
    hwN = build(args.trials)

    t_dig = timed(lambda: run(model), args.repeats)
    t_one = timed(lambda: run(hw1), args.repeats)
    t_many = timed(lambda: run(hwN), args.repeats)
    hw1r = build(1, cfg_range)
    t_one_r = timed(lambda: run(hw1r), args.repeats)
    load = os.getloadavg()[0]
    rows = [
        ("digital torch (nn.Linear)", t_dig, 1.0, "-"),
        ("crossbar, 1 instance (lognormal+SAF+8b ADC+read noise)", t_one, t_one / t_dig, "<= 2x"),
        ("  same, additive read noise (mode=range, aihwkit-like)", t_one_r, t_one_r / t_dig, "<= 2x"),
        (f"crossbar, {args.trials} instances batched", t_many, t_many / t_dig, "<= 40x"),
    ]
    print(f"\n784x256x10, 10,000 inputs, batch 100, {args.threads} threads, load avg {load:.2f}")
    print(f"{'workload':58s} {'time (s)':>9s} {'x digital':>10s} {'bar':>7s}")
    for name, t, r, bar in rows:
        print(f"{name:58s} {t:9.3f} {r:10.2f} {bar:>7s}")
    print(f"{'build + program, 1 instance':58s} {t_build1:9.3f}")
    print(f"{'build + program, ' + str(args.trials) + ' instances':58s} {t_buildN:9.3f}")
    print(f"per Monte Carlo instance: {t_many / args.trials * 1000:.1f} ms ({t_many / args.trials / t_dig:.2f}x digital)")
    print("note: with relative read noise every read needs a second matmul (the per-cell noise variance), and "
          f"{args.trials} distinct dense instances need {args.trials}x the multiply-adds of one digital pass, "
          "so both ratios have a floor set by arithmetic, not by overhead.")


if __name__ == "__main__":
    main()
