"""Executors: a local process pool or a Dask cluster, behind one tiny interface.

Both expose ``submit(fn, arg, key) -> future``, ``as_completed(futures)`` and ``close()``; futures
have ``.result()``. The sweep loop (:func:`memristive.sweep.run_sweep`) is the same for both.

``local``: :class:`concurrent.futures.ProcessPoolExecutor` with the ``spawn`` start method (safe
with torch's thread pools); workers are killed with the sweep process (``PR_SET_PDEATHSIG``).

``dask``: ``dask.distributed``. Without a scheduler address a ``LocalCluster`` on the loopback
interface (``processes=True``, one thread per worker, no dashboard) is started and closed with the
sweep; with an address (``tcp://host:8786``) the sweep connects to that existing cluster. Its
workers need ``memristive`` installed and, for the per-point run folders, the sweep folder on a
shared filesystem (the finished-point records are always written by the sweep process itself).
"""

from __future__ import annotations

import os
import uuid
from typing import Any, Callable, Iterable, Iterator

__all__ = ["LocalExecutor", "DaskExecutor", "open_executor", "default_workers"]


def default_workers() -> int:
    """Half the cores (at least 1): each point gets two torch threads."""
    return max(1, (os.cpu_count() or 2) // 2)


class LocalExecutor:
    kind = "local"

    def __init__(self, workers: int, threads: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from .worker import init_worker

        self.workers, self.threads = workers, threads
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=init_worker, initargs=(threads,))

    def submit(self, fn: Callable, arg: Any, key: str):
        return self.pool.submit(fn, arg)

    def as_completed(self, futures: Iterable) -> Iterator:
        from concurrent.futures import as_completed

        return as_completed(list(futures))

    def describe(self) -> str:
        return f"local process pool, {self.workers} worker(s)"

    def close(self, cancel: bool = False) -> None:
        if cancel:
            procs = list(getattr(self.pool, "_processes", {}).values())
            self.pool.shutdown(wait=False, cancel_futures=True)
            for p in procs:  # points in flight are lost anyway; do not leave them running
                if p.is_alive():
                    p.kill()
            for p in procs:
                p.join(timeout=5)
        else:
            self.pool.shutdown(wait=True)


class DaskExecutor:
    kind = "dask"

    def __init__(self, workers: int, threads: int, scheduler: str | None = None, processes: bool = True) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            from ..config import ConfigError

            raise ConfigError("executor 'dask' needs dask.distributed: pip install 'memristive[sweep]'") from None
        self.cluster = None
        if scheduler:
            self.client = Client(scheduler, timeout="30s")
        else:
            self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                                        host="127.0.0.1", protocol="tcp://", dashboard_address=None, scheduler_port=0,
                                        silence_logs=40)
            self.client = Client(self.cluster)
        self.workers, self.threads = workers, threads
        self.scheduler = scheduler

    def submit(self, fn: Callable, arg: Any, key: str):
        # pure=False: a re-submitted point really runs again; the key makes the dashboard readable
        return self.client.submit(fn, arg, key=f"memristive-point-{key}-{uuid.uuid4().hex[:8]}", pure=False)

    def as_completed(self, futures: Iterable) -> Iterator:
        from distributed import as_completed

        return iter(as_completed(list(futures)))

    def describe(self) -> str:
        if self.scheduler:
            return f"dask cluster at {self.scheduler}"
        return f"dask LocalCluster ({self.workers} worker(s), {self.client.scheduler.address})"

    def close(self, cancel: bool = False) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def open_executor(kind: str, workers: int | None = None, threads: int | None = None, scheduler: str | None = None,
                  processes: bool = True):
    """``local`` or ``dask``; ``workers`` defaults to half the cores, ``threads`` (torch threads per
    point) to ``cores // workers``."""
    from ..config import ConfigError

    if kind not in ("local", "dask"):
        raise ConfigError(f"executor={kind!r}: must be 'local' or 'dask'")
    if scheduler and kind != "dask":
        raise ConfigError("--scheduler needs --executor dask")
    for key, val in (("workers", workers), ("threads", threads)):
        if val is not None and not (isinstance(val, int) and not isinstance(val, bool) and val >= 1):
            raise ConfigError(f"{key}={val!r}: must be an integer >= 1 (or None for the default)")
    workers = workers if workers is not None else default_workers()
    if threads is None and not scheduler:  # on an existing cluster the workers keep their own setting
        threads = max(1, (os.cpu_count() or 1) // workers)
    if kind == "local":
        return LocalExecutor(workers, threads)
    return DaskExecutor(workers, threads, scheduler, processes)
