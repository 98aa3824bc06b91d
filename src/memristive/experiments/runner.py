"""Run one registered experiment into a run folder: validate, lock, claim, run, write results.json.

The pieces live in their own modules: the registry and config building in :mod:`.registry`, run
folders and checkpoints in :mod:`.folder`, atomic writes and JSON encoding in :mod:`memristive.io`.
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path
from typing import Any

from ..io import git_commit
from .folder import FolderLock, RunFolder, claim_folder, torch_threads
from .registry import REGISTRY, ExperimentSpec, build_config, check_finite, experiment, get

__all__ = ["run_experiment", "default_out", "versions", "REGISTRY", "ExperimentSpec", "RunFolder", "experiment",
           "build_config"]


def versions() -> dict:
    import numpy
    import torch

    from .. import __version__

    out = {"memristive": __version__, "python": platform.python_version(), "torch": torch.__version__,
           "numpy": numpy.__version__, "platform": platform.platform()}
    commit = git_commit()
    if commit:
        out["git_commit"] = commit
    return out


def default_out(name: str, quick: bool) -> Path:
    return Path("runs") / (name + ("-quick" if quick else ""))


def run_experiment(name: str, config: Any = None, out: str | Path | None = None, *, quick: bool = False,
                   config_file: str | None = None, overrides: list[str] | None = None, overwrite: bool = False,
                   threads: int | None = None) -> tuple[dict, RunFolder]:
    """Run experiment ``name``; returns ``(results, run_folder)`` and writes results.json there.

    Before any work: the config is resolved and validated, the output folder is checked (creatable,
    writable), locked (one run per folder) and claimed (a folder holding a run of another config is
    refused unless ``overwrite``). ``threads`` sets torch's thread count (default: leave it); the
    count is part of the checkpoint hash and of results.json.
    """
    spec = get(name)
    if config is None:
        config = build_config(spec, config_file, overrides, quick)
    elif not isinstance(config, spec.config_cls):
        from ..config import ConfigError

        raise ConfigError(f"config={type(config).__name__}: experiment {name!r} takes a {spec.config_cls.__name__}")
    check_finite(config)
    if threads is not None:
        from ..config import check

        check(isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1, "threads", threads,
              "must be an integer >= 1 (torch threads)")
        import torch

        torch.set_num_threads(threads)
    out = Path(out) if out is not None else default_out(name, quick)
    with FolderLock(out, "run"):
        run = RunFolder(out, name, config)
        claim_folder(run.path, name, run.config_dict, run.threads, overwrite=overwrite)
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
            "torch_threads": torch_threads(),
            "metrics": metrics,
            # the cost of the run's configuration on the hardware model (experiments.common.record_cost)
            "hardware_cost": run.hardware_cost if run.hardware_cost is not None else {
                "unavailable": f"experiment {name!r} recorded no model to cost (it does not call "
                               "experiments.common.record_cost)"},
            "timings": {"total_s": round(total, 3), **{k: round(v, 3) for k, v in run.timings.items()}},
            "resumed_points": run.resumed,
            "discarded_checkpoints": run.discarded,
            "versions": versions(),
            "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        run.write_json("results.json", results)
    return results, run
