"""Experiments: each is a config dataclass plus a function, registered by name.

Add one by writing a module in this package that uses :func:`experiment`; it is discovered
automatically (no central list to edit). ``memristive list`` shows them all.
"""

from __future__ import annotations

import importlib
import pkgutil

from .runner import REGISTRY, ExperimentSpec, RunFolder, experiment, run_experiment

_LOADED = False


def discover() -> dict[str, ExperimentSpec]:
    """Import every module of this package so its experiments register themselves."""
    global _LOADED
    if not _LOADED:
        for mod in pkgutil.iter_modules(__path__):
            if mod.name not in ("runner",) and not mod.name.startswith("_"):
                importlib.import_module(f"{__name__}.{mod.name}")
        _LOADED = True
    return REGISTRY


__all__ = ["REGISTRY", "ExperimentSpec", "RunFolder", "experiment", "run_experiment", "discover"]
