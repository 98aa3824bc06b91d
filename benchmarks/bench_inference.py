"""Inference benchmark: 784x256x10 MLP on 10,000 inputs in batches of 100 (plain script, prints a table).

    .venv/bin/python benchmarks/bench_inference.py [--threads 1 2] [--repeats 5] [--trials 100] [--device cuda]

Rows (one device instance = lognormal variation + stuck-at faults + static 8-bit ADC + read noise):
one instance with additive read noise (``mode: range``), one with relative read noise, and 100 Monte
Carlo instances in one batched pass (each with its own variation, faults and read noise). Every ratio
is against the digital torch pass measured in the same round and is printed beside

* its **floor**, set by arithmetic: one instance needs one matmul of the digital pass's size (floor
  1×); relative read noise needs a second one for the per-cell noise variance Σ v²·Var(G) (2×);
  100 distinct dense instances need 100× the multiply-adds (with relative read noise 200×);
* the **bar** of issue 14: one instance ≤ 1.3× digital (additive) / ≤ 2.3× (relative), 100 instances
  ≤ 1.15× their floor (≤ 115×);
* the **GEMM** column: the same run's time of only the matmuls that workload needs (same shapes, no
  noise, no converters), × digital — what the floor costs on this machine;
* the **bare** column: the same read written as the fewest torch operations, with no library around
  them — the GEMM(s), one ``normal_`` draw per output (torch's CPU generator), the ADC's round and
  clamp, one affine pass (step, bias), ReLU. It is what the workload costs in torch itself, the noise
  draw included; ``lib/bare`` is memristive's overhead over it.

Times are medians over ``--repeats`` rounds; in each round every workload runs once, in turn.
``--clock cpu`` times the process's CPU time instead of the elapsed time (steadier on a shared VM).
``--device cuda`` runs the same code on a GPU (``--threads`` then only sets the host's torch threads).
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


def rounds(funcs: dict, repeats: int, sync=lambda: None, clock=time.perf_counter) -> dict[str, list[float]]:
    for f in funcs.values():  # warm-up
        f()
    times: dict[str, list[float]] = {k: [] for k in funcs}
    for _ in range(repeats):
        for k, f in funcs.items():
            sync()
            t0 = clock()
            f()
            sync()
            times[k].append(clock() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall: elapsed time; cpu: the process's CPU time (on a shared VM it leaves out the time "
                         "the hypervisor gave the core to someone else; CPU runs only)")
    args = ap.parse_args()
    try:
        dev = torch.device(args.device)
        torch.empty(1, device=dev)
    except (RuntimeError, AssertionError) as e:
        ap.error(f"--device={args.device!r}: not usable here ({e})")
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if args.clock == "cpu" and dev.type != "cpu":
        ap.error("--clock cpu: CPU runs only (a GPU's work is not the host's CPU time)")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.repeats < 1 or args.trials < 1 or any(t < 1 for t in args.threads):
        ap.error(f"--repeats={args.repeats}, --trials={args.trials}, --threads={args.threads}: all must be >= 1")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)).eval().to(dev)
    x = torch.rand(10_000, 784).to(dev)
    batches = x.split(100)
    T = args.trials

    def cfg(mode: str) -> CrossbarConfig:
        return CrossbarConfig(
            memristor="ti-alox-taox",
            nonidealities=[Lognormal(sigma=0.1), StuckAt(p_hrs=0.01, p_lrs=0.01)],
            read_noise=ReadNoise(sigma=0.02, mode=mode),
            adc=Converter(bits=8),
        )

    def build(trials: int, mode: str):
        hw = convert(model, cfg(mode), trials=trials, seed=1)
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

    # the bare arithmetic of each workload: GEMMs of the same shapes, nothing else
    w1, w2 = torch.randn(784, 256, device=dev), torch.randn(256, 10, device=dev)
    w1T, w2T = torch.randn(784, T * 256, device=dev), torch.randn(T, 256, 10, device=dev)

    @torch.no_grad()
    def gemm(n_mm: int, trials: int):
        def f():
            for b in batches:
                for _ in range(n_mm):
                    if trials == 1:
                        (b @ w1) @ w2
                    else:
                        h = (b @ w1T).view(100, trials, 256).transpose(0, 1)
                        torch.matmul(h, w2T)
        return f

    # the bare read: the fewest torch operations for the same physics, no library (see the docstring)
    gen = torch.Generator(device=dev).manual_seed(0)
    v1, v2 = w1.abs() * 1e-3, w2.abs() * 1e-3  # per-cell noise variances (relative read noise)
    v1T, v2T = w1T.abs() * 1e-3, w2T.abs() * 1e-3
    b1, b2 = torch.randn(256, device=dev), torch.randn(10, device=dev)
    scale1, scale2 = 127 / (w1.abs().sum(0).max().item() * 0.5), 127 / (w2.abs().sum(0).max().item() * 5)

    def bare_layer(h, w, var, b, unit, trials):
        if h.dim() == 2 and trials > 1:  # shared inputs: the trials side by side
            cols = w.shape[-1] // trials
            y = (h @ w).view(h.shape[0], trials, cols).transpose(0, 1)
            eps = torch.empty(h.shape[0], trials, cols, device=dev).normal_(generator=gen).transpose(0, 1)
        else:
            y = torch.matmul(h, w)
            eps = torch.empty_like(y).normal_(generator=gen)
        std = torch.linalg.vector_norm(h, dim=-1, keepdim=True) if var is None else torch.matmul(h * h, var).sqrt_()
        y.mul_(unit).addcmul_(eps, std, value=0.02 * unit).round_().clamp_(-127, 127)
        return torch.add(b, y, alpha=1 / unit, out=y)

    @torch.no_grad()
    def bare(relative: bool, trials: int):
        l1 = (w1T, v1T) if trials > 1 else (w1, v1)
        l2 = (w2T, v2T) if trials > 1 else (w2, v2)

        def f():
            for b in batches:
                h = bare_layer(b, l1[0], l1[1] if relative else None, b1, scale1, trials).relu_()
                bare_layer(h, l2[0], l2[1] if relative else None, b2, scale2, trials)
        return f

    t0 = time.perf_counter()
    hw_add, hw_rel = build(1, "range"), build(1, "relative")
    t_build1 = (time.perf_counter() - t0) / 2
    t0 = time.perf_counter()
    hw_many = build(T, "range")
    t_build_many = time.perf_counter() - t0

    rows = [  # key, label, floor (x digital), bar (x digital), gemm key, bare key
        ("add", "1 instance, additive read noise (mode: range)", 1.0, 1.3, "g1", "b_add"),
        ("rel", "1 instance, relative read noise", 2.0, 2.3, "g2", "b_rel"),
        ("many", f"{T} instances, one batched pass (additive)", float(T), 1.15 * T, "gT", "b_many"),
    ]
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    print(f"\n{name}, torch {torch.__version__}: 784x256x10 MLP, 10,000 inputs, batch 100; each instance: lognormal 0.1 + stuck-at 1%+1% + static 8-bit ADC"
          " + read noise 0.02")
    for threads in args.threads:
        torch.set_num_threads(threads)
        load = os.getloadavg()[0]
        times = rounds({
            "dig": lambda: run(model), "add": lambda: run(hw_add), "rel": lambda: run(hw_rel),
            "many": lambda: run(hw_many), "g1": gemm(1, 1), "g2": gemm(2, 1), "gT": gemm(1, T),
            "b_add": bare(False, 1), "b_rel": bare(True, 1), "b_many": bare(False, T),
        }, args.repeats, sync, clock)
        ratio = {k: statistics.median(t / d for t, d in zip(ts, times["dig"])) for k, ts in times.items()}
        med = {k: statistics.median(ts) for k, ts in times.items()}
        print(f"\n{threads} host thread(s), load average {load:.2f} -> {os.getloadavg()[0]:.2f}, median of {args.repeats}, "
              f"{args.clock} clock")
        print(f"{'workload':48s} {'time (s)':>9s} {'x digital':>10s} {'floor':>7s} {'GEMM':>7s} {'bare':>7s} "
              f"{'lib/bare':>8s} {'bar':>8s} {'met':>4s} {'bare met':>8s}")
        print(f"{'digital torch (nn.Linear)':48s} {med['dig']:9.3f} {1.0:10.2f}")
        for key, label, floor, bar, gk, bk in rows:
            met = "yes" if ratio[key] <= bar else "NO"
            bare_met = "yes" if ratio[bk] <= bar else "NO"
            print(f"{label:48s} {med[key]:9.3f} {ratio[key]:10.2f} {floor:7.0f} {ratio[gk]:7.2f} {ratio[bk]:7.2f} "
                  f"{ratio[key] / ratio[bk]:8.2f} {'<= ' + f'{bar:g}':>8s} {met:>4s} {bare_met:>8s}")
        print(f"per Monte Carlo instance: {med['many'] / T * 1000:.1f} ms ({ratio['many'] / T:.2f}x digital)")
    print(f"\nbuild + program (ADC calibration included): 1 instance {t_build1:.3f} s, {T} instances {t_build_many:.3f} s")


if __name__ == "__main__":
    main()
