"""Fig. 6 timing (calibration paper): the default ``calibration-fig6`` run, printed as a table row.

    .venv/bin/python benchmarks/bench_calibration.py                 # full default run (11 points x 100 trials)
    .venv/bin/python benchmarks/bench_calibration.py --points 2      # first 2 defect points, extrapolated
    .venv/bin/python benchmarks/bench_calibration.py --from runs/calibration-fig6/results.json

The run goes into a fresh temporary folder (no resumed checkpoints). The bar (issue 3): the default
Fig. 6 run, 100 Monte Carlo arrays per point batched, finishes within 15 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

BAR_S = 15 * 60


def row(total: float, software: float, points: dict[str, float], n_points: int, threads: int, load: float,
        measured: int) -> str:
    per_point = sum(points.values()) / max(len(points), 1)
    estimate = software + per_point * n_points
    note = "" if measured == n_points else f" (measured {measured} of {n_points} points, extrapolated)"
    ok = "yes" if estimate <= BAR_S else "NO"
    return (f"| calibration-fig6 default: 784x100x10, {n_points} defect points x 100 trials, 3 curves{note} | "
            f"{threads} | {load:.1f} | {software:.0f} | {per_point:.0f} | {estimate:.0f} ({estimate / 60:.1f} min) | "
            f"<= {BAR_S} s: {ok} |")


HEADER = ("| workload | threads | load avg | software training (s) | per defect point (s) | total (s) | bar |\n"
          "|---|---|---|---|---|---|---|")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--points", type=int, default=None, help="time only the first N defect points and extrapolate")
    ap.add_argument("--from", dest="source", default=None, help="print the row of an existing run's results.json")
    args = ap.parse_args()

    if args.source:
        res = json.loads(Path(args.source).read_text())
        t = res["timings"]
        points = {k: v for k, v in t.items() if k.startswith("fig6_")}
        n = len(res["config"]["defect_percents"])
        print(HEADER)
        print(row(t["total_s"], t.get("software_model", 0.0), points, n, args.threads, float("nan"), len(points)))
        if res.get("resumed_points"):
            print(f"note: {len(res['resumed_points'])} checkpoints were resumed in that run; their time is not included")
        return

    import torch

    torch.set_num_threads(args.threads)
    from memristive.experiments import discover, run_experiment
    from memristive.experiments.runner import build_config

    spec = discover()["calibration-fig6"]
    cfg = build_config(spec)
    n_points = len(cfg.defect_percents)
    if args.points:
        cfg.defect_percents = cfg.defect_percents[: args.points]
    import resource

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    with tempfile.TemporaryDirectory(prefix="bench-cal-") as tmp:
        t0 = time.perf_counter()
        res, _ = run_experiment("calibration-fig6", cfg, out=Path(tmp) / "run")
        total = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    t = res["timings"]
    points = {k: v for k, v in t.items() if k.startswith("fig6_")}
    load = os.getloadavg()[0]
    print(HEADER)
    print(row(total, t.get("software_model", 0.0), points, n_points, args.threads, load, len(points)))
    print(f"measured wall time {total:.0f} s, CPU time {cpu:.0f} s (CPU/threads = {cpu / args.threads:.0f} s: the wall "
          f"time to expect on {args.threads} otherwise idle cores); per point: "
          + ", ".join(f"{k[5:]}%: {v:.0f} s" for k, v in points.items()))


if __name__ == "__main__":
    main()
