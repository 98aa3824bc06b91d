"""Sweeps: grids over any experiment's config keys, resumable and parallel (local pool or Dask).

* :mod:`.spec`      — the ``sweep:`` section of an experiment config, grid expansion, point keys
* :mod:`.store`     — the sweep folder: one atomically written record per finished point, a lock
* :mod:`.executors` — ``local`` (process pool) and ``dask`` (``dask.distributed``), one interface
* :mod:`.worker`    — what runs per point (an ordinary experiment run in its own run folder)
* :mod:`.run`       — the loop: skip finished points, run the rest, record each as it finishes
* :mod:`.report`    — summary table, long tables, aggregates over seeds and plots
"""

from .executors import DaskExecutor, LocalExecutor, open_executor
from .report import flatten_metrics, format_table, make_report
from .run import SweepError, SweepOutcome, plan, run_sweep
from .spec import Point, SweepSpec, load_sweep, parse_sweep
from .store import SweepLocked, SweepStore

__all__ = [
    "SweepSpec",
    "Point",
    "load_sweep",
    "parse_sweep",
    "SweepStore",
    "SweepLocked",
    "LocalExecutor",
    "DaskExecutor",
    "open_executor",
    "run_sweep",
    "plan",
    "SweepOutcome",
    "SweepError",
    "make_report",
    "flatten_metrics",
    "format_table",
]
