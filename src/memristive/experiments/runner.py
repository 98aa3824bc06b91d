"""Run folders (atomic, resumable, seeded) and the experiment registry."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..config import ConfigError, apply_overrides, from_dict, load_config, to_dict

REGISTRY: dict[str, "ExperimentSpec"] = {}


@dataclass
class ExperimentSpec:
    name: str
    description: str
    config_cls: type
    fn: Callable[[Any, "RunFolder"], dict]
    quick: dict


def experiment(name: str, description: str, config: type, quick: dict | None = None):
    """Register ``fn(cfg, run) -> metrics`` as experiment ``name``.

    ``quick`` holds config overrides for ``--quick`` (small data, few trials; under a minute).
    """

    def wrap(fn):
        if name in REGISTRY:
            raise RuntimeError(f"experiment {name!r} registered twice")
        REGISTRY[name] = ExperimentSpec(name, description, config, fn, dict(quick or {}))
        return fn

    return wrap


# ------------------------------------------------------------------------------ atomic writes
def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _json_default(obj):
    try:
        import numpy as np
        import torch

        if isinstance(obj, torch.Tensor):
            return obj.tolist()
        if isinstance(obj, (np.generic,)):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:
        pass
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj):
        return to_dict(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def versions() -> dict:
    import numpy
    import torch

    from .. import __version__

    out = {"memristive": __version__, "python": platform.python_version(), "torch": torch.__version__,
           "numpy": numpy.__version__, "platform": platform.platform()}
    try:
        root = Path(__file__).resolve().parents[3]
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if commit.returncode == 0:
            out["git_commit"] = commit.stdout.strip()
    except Exception:
        pass
    return out


class RunFolder:
    """A run's output folder. All writes are atomic; :meth:`checkpoint` makes runs resumable.

    Checkpoints are keyed by a hash of the resolved config, so a folder re-used with a different
    config never serves stale points.
    """

    def __init__(self, path: str | Path, name: str, config: Any) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.config = config
        self.config_dict = to_dict(config)
        blob = json.dumps(self.config_dict, sort_keys=True, default=_json_default).encode()
        self.config_hash = hashlib.sha256(blob).hexdigest()[:12]
        self.points = self.path / "points" / self.config_hash
        self.timings: dict[str, float] = {}
        self.resumed: list[str] = []

    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, data: Any) -> Path:
        p = self.file(name)
        atomic_write_bytes(p, json.dumps(data, indent=2, default=_json_default).encode())
        return p

    def write_csv(self, name: str, rows: list[dict]) -> Path:
        buf = io.StringIO()
        if rows:
            fields = list(rows[0].keys())
            for r in rows[1:]:
                fields += [k for k in r if k not in fields]
            w = csv.DictWriter(buf, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
        p = self.file(name)
        atomic_write_bytes(p, buf.getvalue().encode())
        return p

    def save_figure(self, fig, name: str) -> Path:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=130, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(fig)
        p = self.file(name)
        atomic_write_bytes(p, buf.getvalue())
        return p

    def checkpoint(self, key: str, compute: Callable[[], Any]) -> Any:
        """Return the stored JSON result for ``key`` or compute, store (atomically) and return it."""
        p = self.points / f"{key}.json"
        if p.is_file():
            try:
                data = json.loads(p.read_text())
                self.resumed.append(key)
                return data
            except json.JSONDecodeError:
                p.unlink()  # a torn file cannot happen with atomic writes, but be safe
        t0 = time.perf_counter()
        result = compute()
        self.timings[key] = time.perf_counter() - t0
        atomic_write_bytes(p, json.dumps(result, default=_json_default).encode())
        return result

    def checkpoint_torch(self, key: str, compute: Callable[[], Any]) -> Any:
        """Like :meth:`checkpoint` for torch objects (state dicts, tensors)."""
        import torch

        p = self.points / f"{key}.pt"
        if p.is_file():
            self.resumed.append(key)
            return torch.load(p, weights_only=False)
        t0 = time.perf_counter()
        result = compute()
        self.timings[key] = time.perf_counter() - t0
        buf = io.BytesIO()
        torch.save(result, buf)
        atomic_write_bytes(p, buf.getvalue())
        return result


def build_config(spec: ExperimentSpec, config_file: str | None = None, overrides: list[str] | None = None,
                 quick: bool = False) -> Any:
    """defaults < --quick < config file < KEY=VALUE overrides."""
    data: dict = {}
    if quick:
        data = apply_overrides(data, [f"{k}={json.dumps(v)}" for k, v in spec.quick.items()])
    if config_file:
        file_data = load_config(config_file)
        if "experiment" in file_data:
            if file_data["experiment"] != spec.name:
                raise ConfigError(f"config file is for experiment {file_data['experiment']!r}, not {spec.name!r}")
            file_data = {k: v for k, v in file_data.items() if k != "experiment"}
        data = _merge(data, file_data)
    data = apply_overrides(data, overrides or [])
    return from_dict(spec.config_cls, data, prefix=spec.name)


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def run_experiment(name: str, config: Any = None, out: str | Path | None = None, *, quick: bool = False,
                   config_file: str | None = None, overrides: list[str] | None = None) -> tuple[dict, RunFolder]:
    """Run experiment ``name``; returns ``(results, run_folder)``. Writes results.json there."""
    from . import discover

    registry = discover()
    if name not in registry:
        raise ConfigError(f"unknown experiment {name!r}; run 'memristive list' (known: {sorted(registry)})")
    spec = registry[name]
    if config is None:
        config = build_config(spec, config_file, overrides, quick)
    out = Path(out) if out is not None else Path("runs") / (name + ("-quick" if quick else ""))
    run = RunFolder(out, name, config)
    seed = getattr(config, "seed", None)
    if seed is not None:
        import torch

        torch.manual_seed(seed)
    t0 = time.perf_counter()
    metrics = spec.fn(config, run)
    total = time.perf_counter() - t0
    results = {
        "experiment": name,
        "description": spec.description,
        "quick": quick,
        "config": run.config_dict,
        "config_hash": run.config_hash,
        "metrics": metrics,
        "timings": {"total_s": round(total, 3), **{k: round(v, 3) for k, v in run.timings.items()}},
        "resumed_points": run.resumed,
        "versions": versions(),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    run.write_json("results.json", results)
    return results, run
