"""The sweep folder: one atomically written file per finished point.

::

    DIR/sweep.json          the declaration and its points (key, index, values), rewritten at each start
    DIR/points/<key>.json   a finished point's record: values, metrics, timings, worker (written once)
    DIR/points/<key>/       that point's own run folder (results.json, CSV, plots, checkpoints)
    DIR/failed/<key>.json   the last failure of a point (deleted once it succeeds)
    DIR/report/             `memristive report DIR` output
    DIR/.lock               held (flock) while a sweep runs on the folder

A point is finished exactly when ``points/<key>.json`` exists. Records are written to a temporary
file, fsync'ed and renamed over the final name (POSIX rename is atomic), so a crash or SIGKILL at any
moment leaves either the complete record or none; stray temporary files are removed at the next
start. The lock is an ``flock`` the kernel releases when the process dies, so a killed sweep never
leaves a stale lock.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

from ..config import ConfigError
from ..io import FolderLock, FolderLocked, atomic_write_json, clean_tmp

__all__ = ["SweepStore", "SweepLocked"]


class SweepLocked(FolderLocked):
    """Another sweep process is running on this folder."""


class SweepStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.points_dir = self.path / "points"
        self.failed_dir = self.path / "failed"
        self._lock: FolderLock | None = None

    # ------------------------------------------------------------------ locking
    def lock(self) -> None:
        self._lock = FolderLock(self.path, "sweep", SweepLocked).acquire()

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # ------------------------------------------------------------------ files
    def _write(self, path: Path, data: Any) -> None:
        atomic_write_json(path, data, indent=1)

    def clean_tmp(self) -> list[Path]:
        """Remove temporary files left by writes that were killed midway."""
        return clean_tmp(self.path, self.points_dir, self.failed_dir)

    def write_declaration(self, decl: dict) -> None:
        self._write(self.path / "sweep.json", decl)

    def declaration(self) -> dict:
        p = self.path / "sweep.json"
        if not p.is_file():
            raise ConfigError(f"{str(self.path)!r} is not a sweep folder (no sweep.json); run `memristive sweep` first")
        return json.loads(p.read_text())

    def record_path(self, key: str) -> Path:
        return self.points_dir / f"{key}.json"

    def point_dir(self, key: str) -> Path:
        return self.points_dir / key

    def record(self, key: str) -> dict | None:
        """The finished record of point ``key``, or None. A file that is not a complete record (torn,
        empty, ``{}``, another key's) is moved aside to ``<key>.json.corrupt`` with a warning, and the
        point counts as not finished (it runs again)."""
        p = self.record_path(key)
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = None
        if isinstance(data, dict) and data.get("status") == "done" and data.get("key") == key \
                and isinstance(data.get("metrics"), dict):
            return data
        warnings.warn(f"sweep record {str(p)!r} is not a complete point record; moved aside to "
                      f"{p.name}.corrupt, the point runs again", RuntimeWarning, stacklevel=2)
        p.rename(p.with_suffix(".json.corrupt"))
        return None

    def is_done(self, key: str) -> bool:
        return self.record(key) is not None

    def write_done(self, record: dict) -> None:
        record = {**record, "status": "done", "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self._write(self.record_path(record["key"]), record)
        (self.failed_dir / f"{record['key']}.json").unlink(missing_ok=True)

    def write_failed(self, record: dict) -> None:
        record = {**record, "status": "failed", "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self._write(self.failed_dir / f"{record['key']}.json", record)

    def failure(self, key: str) -> dict | None:
        p = self.failed_dir / f"{key}.json"
        try:
            return json.loads(p.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
