"""Experiments: each is a config dataclass plus a function, registered by name.

Add one by writing a module in this package that uses :func:`experiment`; it is discovered
automatically (no central list to edit). ``memristive list`` shows them all.

* :mod:`.registry` — ``@experiment``, :func:`discover`, :func:`build_config`
* :mod:`.folder`   — :class:`RunFolder` (atomic writes, checkpoints), the folder lock and owner check
* :mod:`.runner`   — :func:`run_experiment` (validate, lock, claim, run, write results.json)
"""

from __future__ import annotations

from .folder import RunFolder
from .registry import REGISTRY, ExperimentSpec, build_config, discover, experiment
from .runner import run_experiment

__all__ = ["REGISTRY", "ExperimentSpec", "RunFolder", "experiment", "run_experiment", "discover", "build_config"]
