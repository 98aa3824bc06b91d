"""Low-level file I/O used by every layer that writes files: atomic writes, JSON encoding, a git probe.

Nothing here imports from the rest of memristive except :mod:`memristive.config` (``ConfigError``,
``to_dict``; it imports nothing of memristive), so any module may use it without an upward import.

* Writes go to a temporary file in the target folder, are fsync'ed and renamed over the final name
  (POSIX rename is atomic): a reader sees the old file or the complete new one, never a torn one.
* Written files get mode 0644 (readable by others; ``mkstemp`` alone would leave 0600).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterable

from .config import ConfigError, to_dict

__all__ = [
    "FILE_MODE",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_write_csv",
    "csv_bytes",
    "json_default",
    "dumps",
    "read_json",
    "git_commit",
    "clean_tmp",
    "check_output_folder",
    "FolderLock",
    "FolderLocked",
]

FILE_MODE = 0o644


def atomic_write_bytes(path: str | Path, data: bytes, mode: int = FILE_MODE) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename); the file gets ``mode``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str, mode: int = FILE_MODE) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), mode)


def json_default(obj: Any) -> Any:
    """``json.dumps(default=...)`` for tensors, numpy values, paths and config dataclasses."""
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    try:
        import torch

        if isinstance(obj, torch.Tensor):
            return obj.tolist()
        if isinstance(obj, (torch.device, torch.dtype)):
            return str(obj)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_dict(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(data: Any, indent: int | None = 2, sort_keys: bool = False) -> str:
    """JSON text of ``data`` (see :func:`json_default` for what is encoded beyond plain JSON)."""
    return json.dumps(data, indent=indent, sort_keys=sort_keys, default=json_default)


def atomic_write_json(path: str | Path, data: Any, indent: int | None = 2) -> Path:
    return atomic_write_text(path, dumps(data, indent=indent))


def csv_bytes(rows: Iterable[dict]) -> bytes:
    """CSV of dict rows; the columns are the union of the rows' keys in first-seen order."""
    rows = list(rows)
    buf = io.StringIO()
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    if fields:
        w = csv.DictWriter(buf, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue().encode("utf-8")


def atomic_write_csv(path: str | Path, rows: Iterable[dict]) -> Path:
    return atomic_write_bytes(path, csv_bytes(rows))


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; raises ``ValueError`` (with the path) when it is empty, torn or not JSON."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{str(path)!r} is not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not valid JSON ({exc})") from None


def finite_json(data: Any) -> bool:
    """True if every float in ``data`` is finite (NaN/inf are not valid JSON)."""
    if isinstance(data, float):
        return math.isfinite(data)
    if isinstance(data, dict):
        return all(finite_json(v) for v in data.values())
    if isinstance(data, (list, tuple)):
        return all(finite_json(v) for v in data)
    return True


def clean_tmp(*folders: str | Path) -> list[Path]:
    """Remove temporary files left in ``folders`` by atomic writes that were killed midway."""
    removed = []
    for d in map(Path, folders):
        if d.is_dir():
            for p in d.glob(".*.tmp"):
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def check_output_folder(path: str | Path, key: str = "out") -> Path:
    """Create ``path`` (a folder) or raise a ConfigError saying why it cannot be used."""
    path = Path(path)
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.is_dir():
            raise ConfigError(f"{key}={str(path)!r}: {str(parent)!r} is an existing file, not a folder; "
                              "choose another output folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{key}={str(path)!r}: cannot create the folder ({exc.strerror or exc})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}={str(path)!r}: the folder is not writable; choose another output folder")
    return path


class FolderLocked(ConfigError):
    """Another process is using this output folder."""


class FolderLock:
    """An exclusive ``flock`` on ``DIR/.lock`` (released by the kernel when the process dies, so a
    killed run never leaves a stale lock). ``what`` names the kind of user in the error message."""

    def __init__(self, path: str | Path, what: str = "run", error: type = FolderLocked) -> None:
        self.path = Path(path)
        self.what = what
        self.error = error
        self._fd: int | None = None

    def acquire(self) -> "FolderLock":
        import fcntl

        check_output_folder(self.path)
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = os.pread(fd, 64, 0).decode(errors="replace").strip()
            os.close(fd)
            raise self.error(f"out={str(self.path)!r}: the folder is in use by another {self.what} "
                               f"(pid {other or '?'}); wait for it or use another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def git_commit(path: str | Path | None = None) -> str | None:
    """The commit of the git checkout holding ``path`` (default: this package), or None."""
    root = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        r = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None
