"""Run folders: where one experiment run writes its results (atomically) and its checkpoints (resumable).

::

    DIR/run.json                  who owns the folder: experiment, config, config hash, torch threads
    DIR/results.json, *.csv, *.png the run's results (written by the experiment and the runner)
    DIR/points/<hash>/<key>.json  finished points (JSON), written once, atomically
    DIR/points/<hash>/<key>.pt    torch checkpoints (state dicts)
    DIR/.lock                     held (flock) while a run uses the folder

``<hash>`` is the hash of the resolved config *and* the torch thread count (results depend on it at
float precision: a software model trained on 1 and 2 threads differs by ~1e-6), so a folder re-used
with another config or on another thread count never serves stale points. The config's ``cost``
section (:class:`memristive.experiments.common.CostSpec`) is left out of that hash and of the
folder's owner check: it only feeds the ``hardware_cost`` entry of results.json, which is computed
afresh at the end of every run (so a finished run is re-costed under another technology at once). A checkpoint that cannot be
read back (torn, truncated, empty, or not what the experiment expects) is discarded with a warning and
recomputed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable

from ..config import ConfigError, to_dict
from ..io import (FolderLock, FolderLocked, atomic_write_bytes, atomic_write_csv, atomic_write_json,  # noqa: F401
                  check_output_folder, dumps, json_default)

__all__ = ["RunFolder", "FolderLock", "FolderLocked", "config_hash", "check_output_folder", "claim_folder",
           "torch_threads", "CheckpointWarning"]

CHECKPOINT_FORMAT = 1


class CheckpointWarning(UserWarning):
    """A stored checkpoint could not be used; it was discarded and is recomputed."""


def torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def config_hash(config_dict: dict, threads: int | None = None) -> str:
    """12 hex digits identifying a resolved config (and, if given, the torch thread count)."""
    data: Any = config_dict if threads is None else {"config": config_dict, "torch_threads": int(threads)}
    blob = json.dumps(data, sort_keys=True, default=json_default).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


COST_SECTION = "cost"  # the config section that never changes a checkpointed point (see the module docstring)


def points_config(config_dict: dict) -> dict:
    """The part of a resolved config that checkpointed points depend on (all but the ``cost`` section)."""
    if isinstance(config_dict, dict):
        return {k: v for k, v in config_dict.items() if k != COST_SECTION}
    return config_dict


def claim_folder(path: Path, experiment: str, config_dict: dict, threads: int, overwrite: bool = False) -> None:
    """Refuse a folder that holds a run of another experiment or config (unless ``overwrite``), then
    write ``run.json`` naming this run as the folder's owner."""
    owner = None
    for name in ("run.json", "results.json"):
        p = path / name
        if p.is_file():
            try:
                owner = json.loads(p.read_text())
            except (ValueError, UnicodeDecodeError):
                owner = None
            if isinstance(owner, dict) and "config" in owner:
                break
            owner = None
    if owner is not None and not overwrite:
        # the cost section only feeds hardware_cost, recomputed by every run: another cost is the same run
        old, new = points_config(owner.get("config")), points_config(config_dict)
        same = owner.get("experiment") == experiment and _canon(old) == _canon(new)
        if not same:
            diff = _config_diff(old, new) if owner.get("experiment") == experiment else []
            what = (f"experiment {owner.get('experiment')!r}" if owner.get("experiment") != experiment
                    else "another config (" + ", ".join(diff[:4]) + (", ..." if len(diff) > 4 else "") + ")")
            raise ConfigError(f"out={str(path)!r}: the folder holds a run of {what}; use another --out, or "
                              "--overwrite to replace it")
    atomic_write_json(path / "run.json", {"experiment": experiment, "config": config_dict,
                                          "config_hash": config_hash(config_dict, threads), "torch_threads": threads,
                                          "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def _canon(d: Any) -> str:
    return json.dumps(d, sort_keys=True, default=json_default)


def _config_diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            out += _config_diff(old.get(k), new.get(k), f"{prefix}.{k}" if prefix else str(k))
        return out
    if _canon(old) != _canon(new):
        return [f"{prefix}: {json.dumps(old, default=json_default)} -> {json.dumps(new, default=json_default)}"]
    return []


class RunFolder:
    """A run's output folder. All writes are atomic (files 0644); :meth:`checkpoint` makes runs resumable.

    Checkpoints live in ``points/<hash>``, where the hash covers the resolved config and the torch
    thread count, so a folder re-used with a different config never serves stale points.
    """

    def __init__(self, path: str | Path, name: str, config: Any, threads: int | None = None) -> None:
        self.path = check_output_folder(path)
        self.name = name
        self.config = config
        self.config_dict = to_dict(config)
        self.threads = torch_threads() if threads is None else int(threads)
        self.config_hash = config_hash(self.config_dict, self.threads)
        self.points = self.path / "points" / config_hash(points_config(self.config_dict), self.threads)
        self.hardware_cost: dict | None = None  # set by experiments.common.record_cost; the runner writes it
        self.timings: dict[str, float] = {}
        self.resumed: list[str] = []
        self.discarded: list[str] = []

    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, data: Any) -> Path:
        return atomic_write_json(self.file(name), data)

    def write_csv(self, name: str, rows: list[dict]) -> Path:
        return atomic_write_csv(self.file(name), rows)

    def save_figure(self, fig, name: str) -> Path:
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=130, bbox_inches="tight")
        plt.close(fig)
        return atomic_write_bytes(self.file(name), buf.getvalue())

    def _discard(self, p: Path, key: str, why: str) -> None:
        warnings.warn(f"checkpoint {str(p)!r} {why}; discarded, recomputing {key!r}", CheckpointWarning, stacklevel=3)
        p.unlink(missing_ok=True)
        self.discarded.append(key)

    def checkpoint(self, key: str, compute: Callable[[], Any], validate: Callable[[Any], Any] | None = None) -> Any:
        """The stored JSON result for ``key``, or compute, store (atomically) and return it.

        A stored record that is unreadable, not a record of ``key``, or rejected by ``validate`` (which
        raises on a bad value) is discarded with a :class:`CheckpointWarning` and recomputed.
        """
        p = self.points / f"{key}.json"
        if p.is_file():
            why = None
            try:
                rec = json.loads(p.read_text())
            except (ValueError, UnicodeDecodeError):
                why, rec = "is not valid JSON (torn or truncated)", None
            if why is None and not (isinstance(rec, dict) and rec.get("format") == CHECKPOINT_FORMAT
                                    and rec.get("key") == key and "value" in rec):
                why = "is not a checkpoint record of this key"
            if why is None and validate is not None:
                try:
                    validate(rec["value"])
                except Exception as exc:  # noqa: BLE001 - any rejection means: recompute
                    why = f"holds an unusable value ({type(exc).__name__}: {exc})"
            if why is None:
                self.resumed.append(key)
                return rec["value"]
            self._discard(p, key, why)
        t0 = time.perf_counter()
        result = compute()
        self.timings[key] = time.perf_counter() - t0
        rec = {"format": CHECKPOINT_FORMAT, "key": key, "value": result}
        atomic_write_bytes(p, dumps(rec, indent=None).encode())
        return result

    def checkpoint_torch(self, key: str, compute: Callable[[], Any], validate: Callable[[Any], Any] | None = None) -> Any:
        """Like :meth:`checkpoint` for torch objects (state dicts, tensors, plain containers of them).

        Loaded with ``weights_only=True``; a file torch cannot load (truncated, corrupt) or that
        ``validate`` rejects (e.g. ``model.load_state_dict``) is discarded with a warning and recomputed.
        """
        import torch

        p = self.points / f"{key}.pt"
        if p.is_file():
            try:
                value = torch.load(p, weights_only=True, map_location="cpu")
                if validate is not None:
                    validate(value)
            except Exception as exc:  # noqa: BLE001 - unpickling errors have many types
                self._discard(p, key, f"cannot be used ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})")
            else:
                self.resumed.append(key)
                return value
        t0 = time.perf_counter()
        result = compute()
        self.timings[key] = time.perf_counter() - t0
        buf = io.BytesIO()
        torch.save(result, buf)
        atomic_write_bytes(p, buf.getvalue())
        return result
