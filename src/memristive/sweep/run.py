"""The sweep loop: resolve points, skip finished ones, run the rest on an executor, record each
point atomically the moment it finishes, then write the report."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ..config import ConfigError, to_dict
from .executors import open_executor
from .spec import SweepSpec, load_sweep
from .store import SweepStore
from .worker import run_point

__all__ = ["run_sweep", "SweepOutcome", "SweepError", "plan"]


class SweepError(RuntimeError):
    """The sweep cannot go on (e.g. the local worker processes died); finished points are kept."""


BROKEN_POOL = ("the local worker processes died{when}. If you call run_sweep from a script, put the call under "
               "`if __name__ == \"__main__\":` (workers are started with spawn, which re-imports the script); "
               "otherwise a worker was killed (out of memory?). Finished points are saved; re-run to resume.")


@dataclass
class SweepOutcome:
    path: Path
    total: int
    skipped: int  # already finished before this run
    finished: int  # finished in this run
    failed: list[dict] = field(default_factory=list)
    report: dict | None = None

    @property
    def ok(self) -> bool:
        return not self.failed


def _declaration(spec: SweepSpec, points) -> dict:
    return {
        "experiment": spec.experiment,
        "spec": spec.to_dict(),
        "axes": spec.axis_keys(),
        "points": [{"index": p.index, "key": p.key, "values": p.values, "label": p.label} for p in points],
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def plan(spec: SweepSpec, out: str | Path) -> list[tuple]:
    """``[(point, finished?)]`` without running anything (``memristive sweep --dry-run``)."""
    store = SweepStore(out)
    return [(p, store.is_done(p.key)) for p in spec.points()]


def run_sweep(spec: SweepSpec | str | Path, out: str | Path | None = None, executor: str = "local",
              scheduler: str | None = None, workers: int | None = None, threads: int | None = None,
              progress: bool = True, report: bool = True, dask_processes: bool = True) -> SweepOutcome:
    """Run (or resume) a sweep into folder ``out`` (default ``runs/sweep-<experiment>``)."""
    if executor not in ("local", "dask"):
        raise ConfigError(f"executor={executor!r}: must be 'local' or 'dask'")
    if scheduler and executor != "dask":
        raise ConfigError("--scheduler needs --executor dask")
    for key, val in (("workers", workers), ("threads", threads)):
        if val is not None and not (isinstance(val, int) and not isinstance(val, bool) and val >= 1):
            raise ConfigError(f"{key}={val!r}: must be an integer >= 1 (or None for the default)")
    if not isinstance(spec, SweepSpec):
        spec = load_sweep(spec)
    points = spec.points()  # validates every point before anything runs
    out = Path(out) if out is not None else Path("runs") / f"sweep-{spec.experiment}{'-quick' if spec.quick else ''}"
    store = SweepStore(out)
    store.lock()
    try:
        store.clean_tmp()
        store.write_declaration(_declaration(spec, points))
        todo = [p for p in points if not store.is_done(p.key)]
        outcome = SweepOutcome(out, len(points), len(points) - len(todo), 0)
        bar = tqdm(total=len(points), initial=outcome.skipped, desc=f"sweep {spec.experiment}", unit="point",
                   disable=not progress, dynamic_ncols=True)
        if todo:
            n_workers = workers if (workers is not None or executor == "dask") else min(_auto(len(todo)), len(todo))
            ex = open_executor(executor, n_workers, threads, scheduler, dask_processes)
            bar.write(f"{len(todo)} of {len(points)} point(s) to run on {ex.describe()}; folder {out}")
            cancel = True
            try:
                futures = {}
                for p in todo:
                    task = {"experiment": spec.experiment, "config": to_dict(p.config), "quick": spec.quick,
                            "point_dir": str(store.point_dir(p.key).resolve()), "imports": spec.imports,
                            "threads": ex.threads, "client_pid": os.getpid()}
                    futures[ex.submit(run_point, task, p.key)] = p
                for fut in ex.as_completed(futures):
                    p = futures[fut]
                    try:
                        res = fut.result()
                    except BaseException as exc:  # a worker died (OOM, killed) or the cluster went away
                        if isinstance(exc, KeyboardInterrupt):
                            raise
                        from concurrent.futures.process import BrokenProcessPool

                        if isinstance(exc, BrokenProcessPool):  # every pending point would fail the same way
                            when = " before finishing any point" if outcome.finished == 0 else ""
                            raise SweepError(BROKEN_POOL.format(when=when)) from None
                        res = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "traceback": ""}
                    rec = {"key": p.key, "index": p.index, "values": p.values, "label": p.label,
                           "experiment": spec.experiment, **res}
                    if res.get("status") == "done":
                        store.write_done(rec)
                        outcome.finished += 1
                    else:
                        store.write_failed(rec)
                        outcome.failed.append(rec)
                        bar.write(f"point {p.index} ({p.label}) failed: {res.get('error')}")
                    bar.update(1)
                cancel = False
            finally:
                ex.close(cancel=cancel)
        bar.close()
    finally:
        store.unlock()
    if report:
        from .report import make_report

        outcome.report = make_report(out, progress=False)
    return outcome


def _auto(n_todo: int) -> int:
    from .executors import default_workers

    return min(default_workers(), n_todo)
