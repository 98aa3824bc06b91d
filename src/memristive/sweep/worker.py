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
    """Process-pool initializer: die with the parent (Linux), quiet progress bars, torch threads."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except Exception:
            pass
    os.environ["TQDM_DISABLE"] = "1"
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def run_point(task: dict) -> dict:
    """Run one point. ``task``: experiment, config (plain dict), point_dir, quick, imports, threads,
    client_pid. Returns the metrics and timings (status ``done``) or the error (status ``failed``)."""
    t0 = time.time()
    info = {"host": socket.gethostname(), "pid": os.getpid()}
    try:
        import importlib

        if os.getpid() != task.get("client_pid"):
            os.environ["TQDM_DISABLE"] = "1"  # a worker process: no progress bars on its stderr
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
        cfg = from_dict(spec.config_cls, task["config"], prefix=name)
        results, run = run_experiment(name, cfg, task["point_dir"], quick=bool(task.get("quick")))
        return {"status": "done", "metrics": results["metrics"], "timings": results["timings"],
                "resumed_checkpoints": results.get("resumed_points", []), "worker": info,
                "wall_s": round(time.time() - t0, 3), "config_hash": results.get("config_hash")}
    except BaseException as exc:  # noqa: BLE001 - reported, never raised (KeyboardInterrupt included)
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
                "worker": info, "wall_s": round(time.time() - t0, 3)}
