"""Sweep declarations: a grid over any config keys of any registered experiment.

A sweep lives in an experiment's config file, next to that experiment's settings::

    experiment: defects            # which experiment (see `memristive list`)
    n_train: 5000                  # ... the experiment's own config (the base of every point)
    sweep:
      quick: false                 # start from the experiment's --quick settings
      trials: 100                  # shortcut for the experiment's `trials` key
      seeds: [0, 1, 2]             # an axis over the experiment's `seed` key
      grid:                        # cartesian product over dotted config keys
        crossbar.read_noise.sigma: [0.0, 0.02, 0.05]
        crossbar.adc.bits: [null, 8, 6]
      zip:                         # optional: keys that vary together (equal-length lists)
        - crossbar.line_resistance.r_row: [1, 2]
          crossbar.line_resistance.r_col: [1, 2]
      imports: []                  # extra modules to import (they may register experiments)
      report: {x: crossbar.read_noise.sigma, metrics: [software_accuracy]}

Points are the product ``zip groups × grid keys × seeds`` in the declared order. Each point's
config is ``experiment defaults < --quick settings (if quick) < base config < point values`` and is
validated up front (a bad key or value stops the sweep before anything runs). A point's **key** is
a hash of its fully resolved config, so re-running a sweep (even an edited one) reuses every point
whose config did not change.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError, apply_overrides, check, from_dict, load_config, to_dict
from ..io import json_default

__all__ = ["SweepSpec", "Point", "load_sweep", "parse_sweep", "set_path"]

_SWEEP_KEYS = {"quick", "trials", "seeds", "grid", "zip", "imports", "report"}


@dataclass
class Point:
    index: int
    key: str
    values: dict[str, Any]  # dotted key -> value for this point (the sweep axes only)
    config: Any  # the resolved experiment config dataclass

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={json.dumps(v)}" for k, v in self.values.items()) or "(base config)"


@dataclass
class SweepSpec:
    experiment: str
    base: dict = field(default_factory=dict)
    quick: bool = False
    trials: int | None = None
    seeds: list[int] | None = None
    grid: dict[str, list] = field(default_factory=dict)
    zip: list[dict[str, list]] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)
    report: dict = field(default_factory=dict)
    source: str | None = None

    # ------------------------------------------------------------------ axes and points
    def axes(self) -> list[list[dict[str, Any]]]:
        """Each axis is a list of {key: value} assignments; points are their product."""
        out: list[list[dict[str, Any]]] = []
        for group in self.zip:
            n = len(next(iter(group.values())))
            out.append([{k: vals[i] for k, vals in group.items()} for i in range(n)])
        for key, vals in self.grid.items():
            out.append([{key: v} for v in vals])
        if self.seeds is not None:
            out.append([{"seed": s} for s in self.seeds])
        return out

    def axis_keys(self) -> list[str]:
        keys = [k for g in self.zip for k in g] + list(self.grid)
        return keys + (["seed"] if self.seeds is not None else [])

    def points(self) -> list[Point]:
        """Every grid point, resolved and validated (raises ConfigError on the first bad one)."""
        self.import_modules()
        from ..experiments import discover

        reg = discover()
        if self.experiment not in reg:
            raise ConfigError(f"experiment={self.experiment!r}: unknown; known: {sorted(reg)}")
        spec = reg[self.experiment]
        fields = set(spec.config_cls.__dataclass_fields__)
        if self.trials is not None and "trials" not in fields:
            raise ConfigError(f"sweep.trials={self.trials}: experiment {self.experiment!r} has no 'trials' setting")
        if self.seeds is not None and "seed" not in fields:
            raise ConfigError(f"sweep.seeds={self.seeds}: experiment {self.experiment!r} has no 'seed' setting")
        base: dict = {}
        if self.quick:
            base = apply_overrides(base, [f"{k}={json.dumps(v)}" for k, v in spec.quick.items()])
        base = _merge(base, self.base)
        if self.trials is not None:
            base["trials"] = self.trials
        points, seen = [], {}
        for i, combo in enumerate(itertools.product(*self.axes())):
            values: dict[str, Any] = {}
            for part in combo:
                values.update(part)
            data = copy.deepcopy(base)
            for key, val in values.items():
                set_path(data, key, copy.deepcopy(val))
            try:
                cfg = from_dict(spec.config_cls, data)
            except ConfigError as exc:
                where = ", ".join(f"{k}={json.dumps(v)}" for k, v in values.items())
                raise ConfigError(f"sweep point {i} ({where}): {exc}") from None
            key = point_key(self.experiment, cfg, self.quick)
            p = Point(i, key, values, cfg)
            if key in seen:
                raise ConfigError(f"sweep points {seen[key].index} ({seen[key].label}) and {i} ({p.label}) resolve "
                                  "to the same config; remove the duplicate values")
            seen[key] = p
            points.append(p)
        return points

    def import_modules(self) -> None:
        for mod in self.imports:
            try:
                importlib.import_module(mod)
            except ImportError as exc:
                raise ConfigError(f"sweep.imports: cannot import {mod!r}: {exc}") from None

    def to_dict(self) -> dict:
        return {"experiment": self.experiment, "quick": self.quick, "trials": self.trials, "seeds": self.seeds,
                "grid": self.grid, "zip": self.zip, "imports": self.imports, "report": self.report,
                "base": self.base, "source": self.source}


def point_key(experiment: str, cfg: Any, quick: bool) -> str:
    blob = json.dumps({"experiment": experiment, "quick": bool(quick), "config": to_dict(cfg)},
                      sort_keys=True, default=json_default)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def set_path(data: dict, dotted: str, value: Any) -> None:
    """``data["a"]["b"]["c"] = value`` for ``"a.b.c"``, creating (or replacing null) sections."""
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"sweep key {dotted!r}: {part!r} holds {nxt!r}, not a section")
        node = nxt
    node[parts[-1]] = value


def _merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _values_list(key: str, vals: Any) -> list:
    check(isinstance(vals, list) and len(vals) >= 1, key, vals, "must be a non-empty list of values")
    return vals


def parse_sweep(data: dict, source: str | None = None, quick: bool | None = None,
                overrides: list[str] | None = None) -> SweepSpec:
    """A :class:`SweepSpec` from a parsed config file (``experiment``, base keys and ``sweep``).

    ``quick`` (if not None) overrides ``sweep.quick``; ``overrides`` (``KEY=VALUE``) edit the base.
    """
    if not isinstance(data, dict):
        raise ConfigError("sweep config: expected a mapping")
    data = dict(data)
    if "experiment" not in data:
        raise ConfigError("sweep config: missing 'experiment: NAME' (see `memristive list`)")
    experiment = data.pop("experiment")
    check(isinstance(experiment, str), "experiment", experiment, "must be an experiment name")
    sw = data.pop("sweep", None)
    if sw is None:
        raise ConfigError("sweep config: missing the 'sweep:' section (grid, seeds, trials, ...)")
    check(isinstance(sw, dict), "sweep", sw, "must be a mapping")
    unknown = sorted(set(sw) - _SWEEP_KEYS)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in sweep; valid keys are {sorted(_SWEEP_KEYS)}")
    grid = sw.get("grid") or {}
    check(isinstance(grid, dict), "sweep.grid", grid, "must map dotted config keys to lists of values")
    grid = {str(k): _values_list(f"sweep.grid.{k}", v) for k, v in grid.items()}
    zips = sw.get("zip") or []
    if isinstance(zips, dict):
        zips = [zips]
    check(isinstance(zips, list), "sweep.zip", zips, "must be a list of {key: [values]} groups")
    zip_groups = []
    for gi, group in enumerate(zips):
        check(isinstance(group, dict) and group, f"sweep.zip[{gi}]", group, "must map keys to equal-length lists")
        group = {str(k): _values_list(f"sweep.zip[{gi}].{k}", v) for k, v in group.items()}
        lengths = {k: len(v) for k, v in group.items()}
        check(len(set(lengths.values())) == 1, f"sweep.zip[{gi}]", lengths, "lists must have equal lengths")
        zip_groups.append(group)
    seeds = sw.get("seeds")
    if seeds is not None:
        if isinstance(seeds, int) and not isinstance(seeds, bool):
            check(seeds >= 1, "sweep.seeds", seeds, "an integer means seeds 0..N-1 and must be >= 1")
            seeds = list(range(seeds))
        check(isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds),
              "sweep.seeds", seeds, "must be a list of integer seeds (or a count N for 0..N-1)")
        check(len(set(seeds)) == len(seeds), "sweep.seeds", seeds, "seeds must be distinct")
    trials = sw.get("trials")
    if trials is not None:
        check(isinstance(trials, int) and not isinstance(trials, bool) and trials >= 1, "sweep.trials", trials,
              "must be an integer >= 1")
    keys = [k for g in zip_groups for k in g] + list(grid) + (["seed"] if seeds is not None else [])
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ConfigError(f"sweep: key(s) {dup} appear on more than one axis")
    if trials is not None and "trials" in keys:
        raise ConfigError("sweep: 'trials' is both a sweep.trials setting and a grid axis; use one")
    imports = sw.get("imports") or []
    check(isinstance(imports, list) and all(isinstance(m, str) for m in imports), "sweep.imports", imports,
          "must be a list of module names")
    report = sw.get("report") or {}
    check(isinstance(report, dict), "sweep.report", report, "must be a mapping (x, metrics)")
    unknown = sorted(set(report) - {"x", "metrics"})
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in sweep.report; valid keys are ['metrics', 'x']")
    q = bool(sw.get("quick", False)) if quick is None else bool(quick)
    base = apply_overrides(data, overrides or []) if overrides else data
    return SweepSpec(experiment=experiment, base=base, quick=q, trials=trials, seeds=seeds, grid=grid,
                     zip=zip_groups, imports=list(imports), report=report, source=source)


def load_sweep(path: str | Path, quick: bool | None = None, overrides: list[str] | None = None) -> SweepSpec:
    """Read a sweep config file (YAML/TOML/JSON)."""
    return parse_sweep(load_config(path), source=str(path), quick=quick, overrides=overrides)
