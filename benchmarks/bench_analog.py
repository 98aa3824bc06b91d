"""Analog SGD benchmark: one epoch, constant-step device, 784x256x10 MLP, 10,000 samples, batch 100.

    .venv/bin/python benchmarks/bench_analog.py [--threads 1] [--repeats 3] [--synthetic]

Prints the wall time of one analog-SGD epoch (stochastic pulse trains, BL 31 with update and BL
management, aihwkit's default ``ConstantStepDevice`` parameters: device-to-device and
cycle-to-cycle variation) and of one digital SGD epoch on the same batches, their ratio, the
arithmetic floor of the ratio (the analog epoch's forward + backward alone, i.e. the same matmuls
through the crossbar with no update), and the bar: memristive's analog-SGD epoch at most half of
aihwkit's for the same epoch.
Where aihwkit is importable (build it with ``make anchors``, run this script with
``.venv-anchors/bin/python`` and ``PYTHONPATH=src``), its ``AnalogSGD`` epoch (same network, batches,
lr, ``ConstantStepDevice``) is measured in the same run and the bar is checked against that
measurement. Without aihwkit no figure for it is printed: the bar is reported as unverified (a claim
about another tool's speed comes only from a measurement in the same run).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn

from memristive.crossbar import CrossbarConfig
from memristive.methods.analog_optim import AnalogSGD, trial_loss
from memristive.nn import convert, mlp

AIHWKIT_MISSING = ("aihwkit not importable: bar unverified (build it with `make anchors`, "
                   "run with .venv-anchors/bin/python)")


def batches(n: int, bs: int):
    return [slice(i, i + bs) for i in range(0, n, bs)]


def clocks():
    return time.perf_counter(), time.process_time()


def since(t0) -> tuple[float, float]:
    return time.perf_counter() - t0[0], time.process_time() - t0[1]


def sgd_epoch(model, opt, x, y) -> tuple[float, float]:
    """(wall, CPU) seconds of one epoch of ``opt`` on ``model`` (batch 100, cross-entropy)."""
    t0 = clocks()
    for s in batches(len(x), 100):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[s]), y[s]).backward()
        opt.step()
    return since(t0)


def digital_epoch(x, y, seed=0) -> tuple[float, float]:
    torch.manual_seed(seed)
    model = mlp([784, 256, 10], "relu", bias=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return sgd_epoch(model, opt, x, y)


def analog_model(seed=0, pair="pos"):
    """aihwkit's weight range [-0.6, 0.6] with 1200 steps per device: with one device pulsed per
    weight (G- a fixed reference) the device range covers 2·0.6 (w_max 1.2 on balanced pairs); with
    both devices pulsed, each covers half (w_max 0.6). Either way one pulse is 0.001 in weight."""
    torch.manual_seed(seed)
    cfg = CrossbarConfig(memristor="aihwkit-constant-step",
                         mapping={"kind": "balanced", "w_max": 1.2 if pair == "pos" else 0.6})
    return convert(mlp([784, 256, 10], "relu", bias=False), cfg, trials=1, seed=seed)


def analog_epoch(x, y, seed=0, update=True, pair="pos") -> tuple[tuple[float, float], dict]:
    model = analog_model(seed, pair)
    opt = AnalogSGD(model, lr=0.1, scheme="stochastic", seed=seed, pair=pair)
    opt.zero_grad()
    trial_loss(model(x[:100]), y[:100]).backward()
    opt.step()  # warm-up (draws the device parameters)
    t0 = clocks()
    for s in batches(len(x), 100):
        opt.zero_grad()
        trial_loss(model(x[s]), y[s]).backward()
        if update:
            opt.step()
    return since(t0), opt.totals()


def aihwkit_epoch(x, y, seed=0) -> tuple[float, float] | None:
    """aihwkit's AnalogSGD epoch on the same network and batches (``SingleRPUConfig(ConstantStepDevice())``,
    lr 0.1, aihwkit's default stochastic pulse trains), or None where aihwkit is not installed."""
    try:
        from aihwkit.nn import AnalogLinear
        from aihwkit.optim import AnalogSGD as AihwSGD
        from aihwkit.simulator.configs import SingleRPUConfig
        try:
            from aihwkit.simulator.configs import ConstantStepDevice
        except ImportError:  # older layout
            from aihwkit.simulator.configs.devices import ConstantStepDevice
    except ImportError:
        return None
    torch.manual_seed(seed)
    rpu = SingleRPUConfig(device=ConstantStepDevice())
    model = nn.Sequential(AnalogLinear(784, 256, bias=False, rpu_config=rpu), nn.ReLU(),
                          AnalogLinear(256, 10, bias=False, rpu_config=rpu))
    opt = AihwSGD(model.parameters(), lr=0.1)
    opt.regroup_param_groups(model)
    return sgd_epoch(model, opt, x, y)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--synthetic", action="store_true", help="random inputs instead of MNIST")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.synthetic:
        g = torch.Generator().manual_seed(0)
        x, y, source = torch.rand(10_000, 784, generator=g), torch.randint(0, 10, (10_000,), generator=g), "synthetic"
    else:
        from memristive.data import load_mnist

        d = load_mnist()
        x, y, source = d.x_train[:10_000], d.y_train[:10_000], d.source
    runs = {"digital": [], "floor": [], "pos": [], "both": [], "aihwkit": []}
    tots = {}
    for r in range(args.repeats):
        runs["digital"].append(digital_epoch(x, y, r))
        a = aihwkit_epoch(x, y, r)
        if a is not None:
            runs["aihwkit"].append(a)
        runs["floor"].append(analog_epoch(x, y, r, update=False)[0])
        for pair in ("pos", "both"):
            t, tots[pair] = analog_epoch(x, y, r, pair=pair)
            runs[pair].append(t)
    med = {k: (statistics.median(v[0] for v in vs), statistics.median(v[1] for v in vs)) for k, vs in runs.items() if vs}
    dw, dc = med["digital"]
    print(f"\nAnalog SGD epoch, 784x256x10 ReLU MLP, 10,000 samples ({source}), batch 100, "
          f"{args.threads} thread(s), load {os.getloadavg()[0]:.2f}, median of {args.repeats}")
    print("wall = elapsed; cpu = this process's CPU time (1 thread: the wall time on an otherwise idle core)")
    print(f"{'workload':62s} {'wall (s)':>9s} {'cpu (s)':>8s} {'ratio wall':>10s} {'ratio cpu':>9s}")
    rows = [("digital", "digital SGD epoch (torch.optim.SGD, nn.Linear)"),
            ("floor", "analog forward+backward only (floor: no update)"),
            ("pos", "analog SGD, one device per weight (pair=pos, as aihwkit)"),
            ("both", "analog SGD, both devices of each pair pulsed (pair=both)"),
            ("aihwkit", "aihwkit AnalogSGD, ConstantStepDevice (same run)")]
    for key, label in rows:
        if key not in med:
            print(f"{label:62s} not measured ({AIHWKIT_MISSING})")
            continue
        w, c = med[key]
        print(f"{label:62s} {w:9.3f} {c:8.3f} {w / dw:10.2f} {c / dc:9.2f}")
    w, c = med["pos"]
    print(f"ratio to digital (pair=pos) {w / dw:.2f} wall / {c / dc:.2f} cpu; floor {med['floor'][0] / dw:.2f} / "
          f"{med['floor'][1] / dc:.2f}")
    if "aihwkit" in med:
        aw, ac = med["aihwkit"]
        ok = w <= aw / 2 and c <= ac / 2
        print(f"memristive / aihwkit analog-SGD epoch (measured in this run): {w / aw:.2f} wall / {c / ac:.2f} cpu; "
              f"bar <= 0.50: {'met' if ok else 'NOT met'} (aihwkit {aw / dw:.2f}x / {ac / dc:.2f}x digital)")
    else:
        print(f"memristive / aihwkit: {AIHWKIT_MISSING}")
    for pair in ("pos", "both"):
        print(f"pulses in the last epoch (pair={pair}): {tots[pair]['pulses']:.4g}, programming energy "
              f"{tots[pair]['energy']:.3g} J")
    for k, vs in runs.items():
        print(f"  {k:8s} wall {[round(v[0], 3) for v in vs]} cpu {[round(v[1], 3) for v in vs]}")


if __name__ == "__main__":
    main()
