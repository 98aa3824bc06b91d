"""What runs on a worker: one grid point = one ordinary experiment run in its own run folder.

The same function runs in the local process pool and on Dask workers. It never raises: failures
come back as ``{"status": "failed", ...}`` records so one bad point does not stop a sweep.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import traceback


def init_worker(threads: int | None = None) -> None:
    """Process-pool initializer: die with the parent (Linux) and set the torch threads."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except Exception:
            pass
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def run_point(task: dict) -> dict:
    """Run one point. ``task``: experiment, config (plain dict), point_dir, quick, imports, threads,
    client_pid. Returns the metrics and timings (status ``done``) or the error (status ``failed``).

    In a worker process (not the sweep process itself) the point's stdout and stderr (progress bars,
    warnings) go to ``<point_dir>/log.txt`` instead of the terminal.
    """
    import contextlib
    from pathlib import Path

    t0 = time.time()
    info = {"host": socket.gethostname(), "pid": os.getpid()}
    with contextlib.ExitStack() as stack:
        if os.getpid() != task.get("client_pid"):
            Path(task["point_dir"]).mkdir(parents=True, exist_ok=True)
            log = stack.enter_context(open(Path(task["point_dir"]) / "log.txt", "a", buffering=1))
            stack.enter_context(contextlib.redirect_stdout(log))
            stack.enter_context(contextlib.redirect_stderr(log))
        try:
            return _run(task, info, t0)
        except BaseException as exc:  # noqa: BLE001 - reported, never raised (KeyboardInterrupt included)
            traceback.print_exc()
            return {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
                    "worker": info, "wall_s": round(time.time() - t0, 3)}


def _run(task: dict, info: dict, t0: float) -> dict:
    import importlib

    for mod in task.get("imports") or []:
        importlib.import_module(mod)
    import torch

    if task.get("threads"):
        torch.set_num_threads(int(task["threads"]))
    from ..config import from_dict
    from ..experiments import discover
    from ..experiments.runner import run_experiment

    name = task["experiment"]
    spec = discover()[name]
    cfg = from_dict(spec.config_cls, task["config"])
    results, run = run_experiment(name, cfg, task["point_dir"], quick=bool(task.get("quick")))
    return {"status": "done", "metrics": results["metrics"], "timings": results["timings"],
            "resumed_checkpoints": results.get("resumed_points", []), "worker": info,
            "wall_s": round(time.time() - t0, 3), "config_hash": results.get("config_hash"),
            "torch_threads": results.get("torch_threads")}
