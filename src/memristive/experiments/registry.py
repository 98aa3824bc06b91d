"""The experiment registry: ``@experiment(name, description, ConfigClass, quick=...)`` and config building.

Experiments register themselves where they are defined; :func:`discover` imports every module of
this package so that ``memristive list`` sees them all (no central list to edit).
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable

from ..config import ConfigError, apply_overrides, from_dict, load_config

__all__ = ["REGISTRY", "ExperimentSpec", "experiment", "discover", "get", "build_config", "check_finite"]

REGISTRY: dict[str, "ExperimentSpec"] = {}
_INFRA = {"registry", "folder", "runner", "common"}  # modules of this package that define no experiment
_LOADED = False


@dataclass
class ExperimentSpec:
    name: str
    description: str
    config_cls: type
    fn: Callable[[Any, Any], dict]  # fn(config, run_folder) -> metrics
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


def discover() -> dict[str, ExperimentSpec]:
    """Import every module of :mod:`memristive.experiments` so its experiments register themselves."""
    global _LOADED
    if not _LOADED:
        pkg = importlib.import_module(__package__)
        for mod in pkgutil.iter_modules(pkg.__path__):
            if mod.name not in _INFRA and not mod.name.startswith("_"):
                importlib.import_module(f"{__package__}.{mod.name}")
        _LOADED = True
    return REGISTRY


def get(name: str) -> ExperimentSpec:
    """The registered experiment ``name``, or a ConfigError listing the known ones."""
    reg = discover()
    if not isinstance(name, str) or name not in reg:
        raise ConfigError(f"experiment={name!r}: unknown experiment; known: {', '.join(sorted(reg))} (see 'memristive list')")
    return reg[name]


def build_config(spec: ExperimentSpec, config_file: str | None = None, overrides: list[str] | None = None,
                 quick: bool = False) -> Any:
    """defaults < --quick < config file < KEY=VALUE overrides; validated (the config's ``__post_init__``)."""
    data: dict = {}
    if quick:
        data = apply_overrides(data, [f"{k}={json.dumps(v)}" for k, v in spec.quick.items()])
    if config_file:
        file_data = load_config(config_file)
        if "experiment" in file_data:
            if file_data["experiment"] != spec.name:
                raise ConfigError(f"experiment={file_data['experiment']!r} in config file {str(config_file)!r}: "
                                  f"this command runs {spec.name!r}")
            file_data = {k: v for k, v in file_data.items() if k != "experiment"}
        if "sweep" in file_data:
            raise ConfigError(f"sweep: config file {str(config_file)!r} declares a sweep; run it with "
                              f"'memristive sweep {config_file}' (or drop the 'sweep:' section)")
        data = merge(data, file_data)
    data = apply_overrides(data, overrides or [])
    cfg = from_dict(spec.config_cls, data)  # keys as the user writes them: n_train, crossbar.adc.bits
    check_finite(cfg)
    return cfg


def check_finite(config: Any) -> None:
    """Every number in an experiment config is finite (no experiment takes inf or NaN anywhere);
    the ConfigError names the first offending key."""
    import math

    from ..config import to_dict

    def walk(node: Any, key: str) -> None:
        if isinstance(node, float) and not math.isfinite(node):
            raise ConfigError(f"{key}={node!r}: must be a finite number (inf and NaN are not allowed)")
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(node, (list, tuple)):
            for i, v in enumerate(node):
                walk(v, f"{key}[{i}]")

    walk(to_dict(config), "")


def merge(a: dict, b: dict) -> dict:
    """``b`` laid over ``a`` (nested mappings merged key by key)."""
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
