"""Bad input, API and CLI: every case must end in a clear one-line error that names the key (issue 16).

Each case says which error class it expects and which key the message must name (as ``KEY=`` or
``KEY[i]=``, so a doubled prefix such as ``adc.converter.bits`` does not count). Cases whose fix
belongs to the array core are ``xfail(strict=True, reason="core: ...")`` until it lands.

``python tests/test_bad_input.py`` prints the tally: clear error / traceback (wrong error class,
message without the key, or several lines) / silent (accepted).
"""

from __future__ import annotations

import gzip
import json
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from memristive.config import ConfigError


@dataclass
class Case:
    id: str
    fn: Callable[..., Any]  # called with a tmp folder; must raise
    exc: type | tuple[type, ...]
    key: str  # the message must name it as KEY= / KEY[i]= / 'KEY' (see _names_key)
    core: str | None = None  # xfail reason: the fix belongs to core files


def _names_key(msg: str, key: str) -> bool:
    """``key`` (or one of ``a|b``) appears as a whole dotted name: not inside a longer dotted path, so
    ``adc.converter.bits`` does not name ``adc.bits``."""
    for alt in key.split("|"):
        k = re.escape(alt)
        if re.search(rf"(^|[\s.'\"(\[/-]){k}(\[\d+\])?(=|'|\"|:|\s|\)|,|$)", msg):
            return True
    return False


CASES: list[Case] = []


def case(id: str, exc=ConfigError, key: str = "", core: str | None = None):
    def wrap(fn):
        CASES.append(Case(id, fn, exc, key, core))
        return fn

    return wrap


# ----------------------------------------------------------------------------------- experiment configs
def _build(exp: str, *overrides: str):
    from memristive.experiments.registry import build_config, get

    return build_config(get(exp), None, list(overrides), quick=False)


MLP_EXPERIMENTS = ["defects", "calibration-fig6", "calibration-table1", "calibration-mapping", "calibration-threshold",
                   "ir-drop"]
COMMON = [  # (override, key) that every MLP experiment must reject
    ("n_train=-5", "n_train"), ("n_train=0", "n_train"), ("n_train=70000", "n_train"), ("n_test=0", "n_test"),
    ("n_test=20000", "n_test"), ("lr=-1", "lr"), ("lr=0", "lr"), ("lr=.inf", "lr"), ("batch_size=0", "batch_size"),
    ("epochs=-1", "epochs"), ("sizes=[100, 10]", "sizes"), ("sizes=[784, 100, 5]", "sizes"), ("sizes=[784]", "sizes"),
    ("sizes=[784, 0, 10]", "sizes"), ("activation=gelu", "activation"), ("dataset=cifar10", "dataset"),
    ("trials=0", "trials"), ("seed=-1", "seed"), ("seed=18446744073709551617", "seed"), ("trails=3", "trails"),
]
for _exp in MLP_EXPERIMENTS:
    for _ov, _key in COMMON:
        if _exp == "calibration-table1" and _key == "sizes" and _ov == "sizes=[784, 0, 10]":
            continue
        CASES.append(Case(f"{_exp}:{_ov}", (lambda tmp, e=_exp, o=_ov: _build(e, o)), ConfigError, _key))

DEFECT_MODEL = [("beta=2", "beta"), ("beta=-0.1", "beta"), ("sigma_low=-1", "sigma_low"), ("sigma_high=.inf", "sigma_high")]
for _exp in ["defects", "calibration-fig6", "calibration-table1", "calibration-threshold"]:
    for _ov, _key in DEFECT_MODEL:
        CASES.append(Case(f"{_exp}:{_ov}", (lambda tmp, e=_exp, o=_ov: _build(e, o)), ConfigError, _key))

SPECIFIC = [
    ("defects", "defect_percents=[]", "defect_percents", None),
    ("defects", "defect_percents=[101]", "defect_percents", None),
    ("defects", "defect_percents=[-1]", "defect_percents", None),
    ("defects", "defect_percents=[10, 10]", "defect_percents", None),
    ("defects", "defect_percents=[10, 10.0000000000001]", "defect_percents", None),
    ("defects", "defect_percents=abc", "defect_percents", None),
    ("defects", "defect_percents=[.nan]", "defect_percents", None),
    ("defects", "crossbar.read_noise.sigma=.inf", "crossbar.read_noise.sigma", None),
    ("defects", "crossbar.read_noise.sigma=-1", "crossbar.read_noise.sigma",
     None),
    ("defects", "crossbar.r_s=.inf", "crossbar.r_s", None),
    ("defects", "crossbar.r_s=-5", "crossbar.r_s", None),
    ("defects", "crossbar.adc.bits=0", "crossbar.adc.bits", None),
    ("defects", "crossbar.adc.bits=1.5", "crossbar.adc.bits", None),
    ("defects", "crossbar.tile.rows=0", "crossbar.tile.rows", None),
    ("defects", "crossbar.bogus=1", "bogus", None),
    ("defects", "crossbar.nonidealities=[{kind: nope}]", "kind", None),
    ("calibration-fig6", "defect_percents=[]", "defect_percents", None),
    ("calibration-fig6", "insitu.n_train=70000", "insitu.n_train", None),
    ("calibration-fig6", "insitu.lr=.inf", "insitu.lr", None),
    ("calibration-fig6", "calibration.n_samples=99999", "calibration.n_samples", None),
    ("calibration-table1", "headline_percent=7", "headline_percent", None),
    ("calibration-table1", "cases=[W3]", "cases", None),
    ("calibration-table1", "cases=[]", "cases", None),
    ("calibration-table1", "sizes=[784, 100, 100, 10]", "sizes", None),
    ("calibration-table1", "liu.n_train=99999", "liu.n_train", None),
    ("calibration-mapping", "variants=[nope]", "variants", None),
    ("calibration-mapping", "variants=[]", "variants", None),
    ("calibration-threshold", "gates=[sometimes]", "gates", None),
    ("calibration-threshold", "thresholds=[-0.1]", "thresholds", None),
    ("calibration-threshold", "thresholds=[]", "thresholds", None),
    ("calibration-threshold", "defect_percent=120", "defect_percent", None),
    ("ir-drop", "wire_resistances=[-1]", "wire_resistances", None),
    ("ir-drop", "wire_resistances=[]", "wire_resistances", None),
    ("ir-drop", "tile_sizes=[1]", "tile_sizes", None),
    ("ir-drop", "tile_sizes=[32, 32]", "tile_sizes", None),
    ("ir-drop", "timing_batch=0", "timing_batch", None),
    ("ir-drop", "solver=magic", "solver", None),
    ("cnn-variation", "instance_seed=-1", "instance_seed", None),
    ("cnn-variation", "instance_seed=1.5", "instance_seed", None),
    ("cnn-variation", "software_checkpoint=/no/such/file.pt", "software_checkpoint", None),
    ("cnn-variation", "eval_batch=fast", "eval_batch", None),
    ("cnn-variation", "eval_batch=0", "eval_batch", None),
]
for _exp, _ov, _key, _core in SPECIFIC:
    CASES.append(Case(f"{_exp}:{_ov}", (lambda tmp, e=_exp, o=_ov: _build(e, o)), ConfigError, _key, _core))


@case("cnn-variation: software_checkpoint with two networks", ConfigError, "software_checkpoint")
def _(tmp):
    (tmp / "m.pt").write_bytes(b"")
    _build("cnn-variation", f"software_checkpoint={tmp / 'm.pt'}", "networks=[lenet5, resnet]")


@case("cnn-variation: software_checkpoint run folder without a trained model", ConfigError, "software_checkpoint")
def _(tmp):
    (tmp / "points" / "abc").mkdir(parents=True)
    _build("cnn-variation", f"software_checkpoint={tmp}", "networks=[resnet]")


@case("run_experiment: config of another experiment", ConfigError, "config")
def _(tmp):
    from memristive.experiments.runner import run_experiment

    run_experiment("ir-drop", _build("defects"), tmp / "x")


@case("run_experiment: unknown experiment", ConfigError, "experiment")
def _(tmp):
    from memristive.experiments.runner import run_experiment

    run_experiment("nope", None, tmp / "x")


@case("run_experiment: threads=0", ConfigError, "threads")
def _(tmp):
    from memristive.experiments.runner import run_experiment

    run_experiment("defects", _build("defects"), tmp / "x", threads=0)


@case("run_experiment: config built in Python with lr=inf", ConfigError, "lr")
def _(tmp):
    from memristive.experiments.defects import DefectsConfig

    DefectsConfig(lr=math.inf)


@case("run_experiment: config built in Python with n_train=1.5", ConfigError, "n_train")
def _(tmp):
    from memristive.experiments.defects import DefectsConfig

    DefectsConfig(n_train=1.5)


# ----------------------------------------------------------------------------------- config files
@case("config file missing", ConfigError, "config file")
def _(tmp):
    from memristive.config import load_config

    load_config(tmp / "nope.yaml")


@case("config file unparsable YAML", ConfigError, "config file")
def _(tmp):
    from memristive.config import load_config

    (tmp / "c.yaml").write_text("a: [1, 2\n")
    load_config(tmp / "c.yaml")


@case("config file wrong suffix", ConfigError, "config file")
def _(tmp):
    from memristive.config import load_config

    (tmp / "c.txt").write_text("a: 1\n")
    load_config(tmp / "c.txt")


@case("config file holds a list", ConfigError, "config file")
def _(tmp):
    from memristive.config import load_config

    (tmp / "c.yaml").write_text("- 1\n- 2\n")
    load_config(tmp / "c.yaml")


@case("config file for another experiment", ConfigError, "experiment")
def _(tmp):
    from memristive.experiments.registry import build_config, get

    (tmp / "c.yaml").write_text("experiment: ir-drop\n")
    build_config(get("defects"), str(tmp / "c.yaml"))


@case("config file with a sweep section given to run", ConfigError, "sweep")
def _(tmp):
    from memristive.experiments.registry import build_config, get

    (tmp / "c.yaml").write_text("experiment: defects\nsweep: {seeds: 2}\n")
    build_config(get("defects"), str(tmp / "c.yaml"))


@case("config file with .inf (YAML)", ConfigError, "crossbar.r_s")
def _(tmp):
    from memristive.experiments.registry import build_config, get

    (tmp / "c.yaml").write_text("crossbar: {r_s: .inf}\n")
    build_config(get("defects"), str(tmp / "c.yaml"))


@case("override without '='", ConfigError, "override")
def _(tmp):
    _build("defects", "trials")


@case("override into a null section (read_noise: null in a file)", ConfigError, "crossbar.read_noise.sigma")
def _(tmp):
    from memristive.experiments.registry import build_config, get

    (tmp / "c.yaml").write_text("crossbar: {read_noise: null}\n")
    cfg = build_config(get("defects"), str(tmp / "c.yaml"), ["crossbar.read_noise.sigma=-1"])
    assert cfg.crossbar.read_noise.sigma == -1  # not reached when the override works and is validated


# ----------------------------------------------------------------------------------- physics / core API
def _xb(**kw):
    from memristive import Crossbar

    return Crossbar.from_weights(torch.randn(8, 4), **kw)


def _nonideal(name, *a, **kw):
    from memristive import nonideal

    return getattr(nonideal, name)(*a, **kw)


CORE_API = [
    ("Lognormal(sigma=inf)", lambda tmp: _nonideal("Lognormal", sigma=math.inf), "sigma", None),
    ("Lognormal(sigma=-1)", lambda tmp: _nonideal("Lognormal", sigma=-1.0), "sigma", None),
    ("Lognormal(sigma=nan)", lambda tmp: _nonideal("Lognormal", sigma=math.nan), "sigma", None),
    ("ReadNoise(inf)", lambda tmp: _nonideal("ReadNoise", math.inf), "sigma", None),
    ("ReadNoise(-0.1)", lambda tmp: _nonideal("ReadNoise", -0.1), "sigma", None),
    ("Fluctuation(sigma=inf)", lambda tmp: _nonideal("Fluctuation", sigma=math.inf), "sigma", None),
    ("Fluctuation(sigma=-1)", lambda tmp: _nonideal("Fluctuation", sigma=-1.0), "sigma", None),
    ("StuckAt(p_hrs=2)", lambda tmp: _nonideal("StuckAt", p_hrs=2.0), "p_hrs", None),
    ("StuckAt(p_hrs=-0.1)", lambda tmp: _nonideal("StuckAt", p_hrs=-0.1), "p_hrs", None),
    ("StuckAt(p_hrs=0.6, p_lrs=0.6)", lambda tmp: _nonideal("StuckAt", p_hrs=0.6, p_lrs=0.6), "p_hrs+p_lrs", None),
    ("StuckAt(p_hrs=nan)", lambda tmp: _nonideal("StuckAt", p_hrs=math.nan), "p_hrs", None),
    ("DefectPercent(alpha=2)", lambda tmp: _nonideal("DefectPercent", alpha=2.0), "alpha", None),
    ("DefectPercent(alpha=-0.5)", lambda tmp: _nonideal("DefectPercent", alpha=-0.5), "alpha", None),
    ("DefectPercent(beta=2)", lambda tmp: _nonideal("DefectPercent", alpha=0.1, beta=2.0), "beta", None),
    ("DefectPercent(sigma_low=-1)", lambda tmp: _nonideal("DefectPercent", alpha=0.1, sigma_low=-1.0), "sigma_low", None),
    ("DefectPercent(sigma_high<sigma_low)", lambda tmp: _nonideal("DefectPercent", alpha=0.1, sigma_low=1.0, sigma_high=0.5),
     "sigma_high", None),
    ("DefectPercent(sigma_high=inf)", lambda tmp: _nonideal("DefectPercent", alpha=0.1, sigma_high=math.inf), "sigma_high",
     None),
    ("Levels(levels=1)", lambda tmp: _nonideal("Levels", levels=1), "levels", None),
    ("Levels(levels=2.5)", lambda tmp: _nonideal("Levels", levels=2.5), "levels", None),
    ("LinearDevice(r_on=-1)", lambda tmp: __import__("memristive").LinearDevice(r_on=-1.0, r_off=1e4), "r_on", None),
    ("LinearDevice(r_on > r_off)", lambda tmp: __import__("memristive").LinearDevice(r_on=2e4, r_off=1e4), "r_on", None),
    ("LinearDevice(r_off=inf)", lambda tmp: __import__("memristive").LinearDevice(r_on=1e3, r_off=math.inf), "r_off", None),
    ("LinearDevice(r_on=0)", lambda tmp: __import__("memristive").LinearDevice(r_on=0.0, r_off=1e4), "r_on", None),
    ("Converter(bits=0)", lambda tmp: __import__("memristive.crossbar", fromlist=["Converter"]).Converter(bits=0), "bits", None),
    ("Converter(bits=33)", lambda tmp: __import__("memristive.crossbar", fromlist=["Converter"]).Converter(bits=33), "bits", None),
    ("Converter(bits=2.5)", lambda tmp: __import__("memristive.crossbar", fromlist=["Converter"]).Converter(bits=2.5), "bits",
     None),
    ("Converter(range=-1)", lambda tmp: __import__("memristive.crossbar", fromlist=["Converter"]).Converter(bits=8, range=-1.0),
     "range", None),
    ("Tiling(rows=0)", lambda tmp: __import__("memristive.crossbar", fromlist=["Tiling"]).Tiling(0, 8), "rows", None),
    ("Tiling(cols=1)", lambda tmp: __import__("memristive.crossbar", fromlist=["Tiling"]).Tiling(8, 1), "cols", None),
    ("Tiling(rows=2.5)", lambda tmp: __import__("memristive.crossbar", fromlist=["Tiling"]).Tiling(2.5, 8), "rows",
     None),
]
for _id, _fn, _key, _core in CORE_API:
    CASES.append(Case(f"api:{_id}", _fn, (ConfigError, ValueError, TypeError), _key, _core))

XB = [
    ("from_weights(empty)", lambda tmp: __import__("memristive").Crossbar.from_weights(torch.empty(0, 4)), "weights",
     None),
    ("from_weights(complex)", lambda tmp: __import__("memristive").Crossbar.from_weights(torch.randn(4, 4, dtype=torch.cfloat)),
     "weights", None),
    ("from_weights(NaN)", lambda tmp: __import__("memristive").Crossbar.from_weights(torch.full((4, 4), math.nan)), "weights", None),
    ("from_weights(inf)", lambda tmp: __import__("memristive").Crossbar.from_weights(torch.full((4, 4), math.inf)), "weights", None),
    ("from_weights(1-D)", lambda tmp: __import__("memristive").Crossbar.from_weights(torch.randn(4)), "weights", None),
    ("from_weights(numpy)", lambda tmp: __import__("memristive").Crossbar.from_weights(torch.randn(4, 4).numpy()), "weights",
     None),
    ("from_weights(trials=0)", lambda tmp: _xb(trials=0), "trials", None),
    ("from_weights(trials=2.5)", lambda tmp: _xb(trials=2.5), "trials", None),
    ("from_weights(seed=-1)", lambda tmp: _xb(seed=-1), "seed", None),
    ("from_weights(seed=2**70)", lambda tmp: _xb(seed=2**70), "seed", None),
    ("from_weights(seed=1.5)", lambda tmp: _xb(seed=1.5), "seed", None),
    ("from_weights(r_s=-1)", lambda tmp: _xb(r_s=-1.0), "r_s", None),
    ("from_weights(r_s=inf)", lambda tmp: _xb(r_s=math.inf), "r_s", None),
    ("from_weights(mapping='nope')", lambda tmp: _xb(mapping="nope"), "mapping|mapping.scheme", None),
    ("from_weights(bogus=1)", lambda tmp: _xb(bogus=1), "bogus", None),
    ("mvm(NaN)", lambda tmp: _xb().mvm(torch.full((2, 8), math.nan)), "v_in", None),
    ("mvm(inf)", lambda tmp: _xb().mvm(torch.full((2, 8), math.inf)), "v_in", None),
    ("mvm(wrong width)", lambda tmp: _xb().mvm(torch.rand(2, 5)), "v_in", None),
    ("mvm(numpy)", lambda tmp: _xb().mvm(torch.rand(2, 8).numpy()), "v_in", None),
    ("mvm(complex)", lambda tmp: _xb().mvm(torch.rand(2, 8, dtype=torch.cfloat)), "v_in", None),
    ("matmul(NaN)", lambda tmp: _xb().matmul(torch.full((2, 8), math.nan)), "x", None),
    ("matmul(wrong width)", lambda tmp: _xb().matmul(torch.rand(2, 9)), "x", None),
    ("matmul(numpy)", lambda tmp: _xb().matmul(torch.rand(2, 8).numpy()), "x", None),
    ("matmul(trials mismatch)", lambda tmp: _xb(trials=3).matmul(torch.rand(2, 2, 8)), "x", None),
]
for _id, _fn, _key, _core in XB:
    CASES.append(Case(f"api:{_id}", _fn, (ConfigError, ValueError, TypeError), _key, _core))


def _mlp(*a, **kw):
    from memristive.nn import mlp

    return mlp(*a, **kw)


def _convert(*a, **kw):
    from memristive.nn import convert

    return convert(*a, **kw)


NN = [
    ("mlp([784])", lambda tmp: _mlp([784]), "sizes", None),
    ("mlp([784, 0, 10])", lambda tmp: _mlp([784, 0, 10]), "sizes", None),
    ("mlp(activation='gelu')", lambda tmp: _mlp([4, 4, 2], activation="gelu"), "activation", None),
    ("convert(model, {dict})", lambda tmp: _convert(_mlp([4, 4, 2]), {"r_s": 1e3}), "config", None),
    ("convert(trials=0)", lambda tmp: _convert(_mlp([4, 4, 2]), trials=0), "trials", None),
    ("convert(seed=-1)", lambda tmp: _convert(_mlp([4, 4, 2]), seed=-1), "seed", None),
]
for _id, _fn, _key, _core in NN:
    CASES.append(Case(f"api:{_id}", _fn, (ConfigError, ValueError, TypeError), _key, _core))


def _xcfg(data):
    from memristive.config import from_dict
    from memristive.crossbar import CrossbarConfig

    return from_dict(CrossbarConfig, data)


CFG = [
    ("CrossbarConfig adc.bits=0", {"adc": {"bits": 0}}, "adc.bits", None),
    ("CrossbarConfig r_s='abc'", {"r_s": "abc"}, "r_s", None),
    ("CrossbarConfig r_s=nan", {"r_s": math.nan}, "r_s", None),
    ("CrossbarConfig nonidealities kind=nope", {"nonidealities": [{"kind": "nope"}]}, "kind", None),
    ("CrossbarConfig stuck_at p_hrs=2", {"nonidealities": [{"kind": "stuck_at", "p_hrs": 2}]}, "p_hrs", None),
    ("CrossbarConfig tile.rows=0", {"tile": {"rows": 0, "cols": 8}}, "tile.rows", None),
    ("CrossbarConfig unknown key", {"bogus": 1}, "bogus", None),
    ("CrossbarConfig read_noise='x'", {"read_noise": "x"}, "read_noise", None),
]
for _id, _data, _key, _core in CFG:
    CASES.append(Case(f"config:{_id}", (lambda tmp, d=_data: _xcfg(d)), (ConfigError, ValueError, TypeError), _key, _core))


# ----------------------------------------------------------------------------------- sweeps
def _sweep(data: dict, tmp=None, **kw):
    from memristive.sweep import parse_sweep

    return parse_sweep(data, **kw).points()


SWEEPS = [
    ("no experiment", {"sweep": {"seeds": 2}}, "experiment"),
    ("unknown experiment", {"experiment": "nope", "sweep": {"seeds": 2}}, "experiment"),
    ("no sweep section", {"experiment": "defects"}, "sweep"),
    ("unknown sweep key", {"experiment": "defects", "sweep": {"grids": {}}}, "grids"),
    ("grid not a mapping", {"experiment": "defects", "sweep": {"grid": [1, 2]}}, "sweep.grid"),
    ("grid values not a list", {"experiment": "defects", "sweep": {"grid": {"trials": 3}}}, "sweep.grid.trials"),
    ("grid values empty", {"experiment": "defects", "sweep": {"grid": {"trials": []}}}, "sweep.grid.trials"),
    ("seeds=0", {"experiment": "defects", "sweep": {"seeds": 0}}, "sweep.seeds"),
    ("seeds duplicated", {"experiment": "defects", "sweep": {"seeds": [1, 1]}}, "sweep.seeds"),
    ("seeds not integers", {"experiment": "defects", "sweep": {"seeds": [1.5]}}, "sweep.seeds"),
    ("trials=0", {"experiment": "defects", "sweep": {"trials": 0}}, "sweep.trials"),
    ("zip unequal", {"experiment": "defects", "sweep": {"zip": [{"trials": [1, 2], "seed": [1]}]}}, "sweep.zip[0]"),
    ("key on two axes", {"experiment": "defects", "sweep": {"seeds": 2, "grid": {"seed": [1, 2]}}}, "seed"),
    ("report unknown key", {"experiment": "defects", "sweep": {"seeds": 2, "report": {"y": 1}}}, "y"),
    ("imports a missing module", {"experiment": "defects", "sweep": {"seeds": 2, "imports": ["no_such_mod"]}}, "sweep.imports"),
    ("a point with a bad value", {"experiment": "defects", "sweep": {"grid": {"n_train": [100, -1]}}}, "n_train"),
    ("two points with one config", {"experiment": "defects", "sweep": {"grid": {"crossbar.adc.bits": [8, 8.0]}}}, "sweep points"),
    ("base with a bad value", {"experiment": "defects", "lr": -1, "sweep": {"seeds": 2}}, "lr"),
    ("trials on an experiment without trials", {"experiment": "hardware-cost", "sweep": {"trials": 3}}, "sweep.trials"),
]
for _id, _data, _key in SWEEPS:
    CASES.append(Case(f"sweep:{_id}", (lambda tmp, d=_data: _sweep(d)), ConfigError, _key))


@case("sweep: executor 'ray'", ConfigError, "executor")
def _(tmp):
    from memristive.sweep import run_sweep

    run_sweep("configs/sweep-example.yaml", tmp / "s", executor="ray")


@case("sweep: workers=0", ConfigError, "workers")
def _(tmp):
    from memristive.sweep import open_executor

    open_executor("local", workers=0)


@case("sweep: threads=0", ConfigError, "threads")
def _(tmp):
    from memristive.sweep import open_executor

    open_executor("local", workers=1, threads=0)


@case("report on a folder that is not a sweep", ConfigError, "sweep.json")
def _(tmp):
    from memristive.sweep import make_report

    make_report(tmp)


# ----------------------------------------------------------------------------------- files and data
@case("IDX: gzip with garbage", Exception, "IDX file")
def _(tmp):
    from memristive.data import read_idx

    (tmp / "x.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"garbage" * 20)
    read_idx(tmp / "x.gz")


@case("IDX: truncated", Exception, "IDX file")
def _(tmp):
    from memristive.data import read_idx, write_idx

    import numpy as np

    write_idx(tmp / "x", np.zeros((5, 3), np.uint8))
    (tmp / "x").write_bytes((tmp / "x").read_bytes()[:-4])
    read_idx(tmp / "x")


@case("IDX: images file given as labels", Exception, "t10k-labels-idx1-ubyte")
def _(tmp):
    import numpy as np

    from memristive.data import write_idx
    from memristive.data.mnist import _load_idx_dataset

    imgs = np.zeros((4, 28, 28), np.uint8)
    for prefix in ("train", "t10k"):
        write_idx(tmp / f"{prefix}-images-idx3-ubyte", imgs)
        write_idx(tmp / f"{prefix}-labels-idx1-ubyte", np.arange(4, dtype=np.uint8))
    write_idx(tmp / "t10k-labels-idx1-ubyte", imgs)  # images where labels belong
    _load_idx_dataset(tmp, "mnist")


@case("data: unknown dataset", Exception, "cifar")
def _(tmp):
    from memristive.data import load_dataset

    load_dataset("cifar")


@case("data: subset beyond the data", ConfigError, "n_test")
def _(tmp):
    from memristive.data.mnist import Dataset

    z = torch.zeros(3, 4)
    Dataset(z, torch.zeros(3, dtype=torch.long), z, torch.zeros(3, dtype=torch.long), "toy", "mem").subset(2, 5)


@case("data fetch: a truncated MNIST folder is not reported as fetched", Exception, "mnist")
def _(tmp):
    import numpy as np

    from memristive.data import mnist as M
    from memristive.data import write_idx

    d = tmp / "mnist"
    d.mkdir()
    for stem in M.FILES:
        write_idx(d / stem, np.zeros((2, 2), np.uint8))
    saved = (M._fetch_mnist_official, M._fetch_mnist_pypi, M._fetch_mnist_npm)
    M._fetch_mnist_official = M._fetch_mnist_pypi = M._fetch_mnist_npm = lambda dest: False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            M.fetch("mnist", tmp)
    finally:
        M._fetch_mnist_official, M._fetch_mnist_pypi, M._fetch_mnist_npm = saved


@case("out: an existing file", ConfigError, "out")
def _(tmp):
    from memristive.experiments.runner import run_experiment

    (tmp / "f").write_text("x")
    run_experiment("defects", _build("defects"), tmp / "f")


@case("out: under an existing file", ConfigError, "out")
def _(tmp):
    from memristive.experiments.runner import run_experiment

    (tmp / "f").write_text("x")
    run_experiment("defects", _build("defects"), tmp / "f" / "sub")


@case("out: a place that cannot be created", ConfigError, "out")
def _(tmp):
    from memristive.experiments.runner import run_experiment

    run_experiment("defects", _build("defects"), "/proc/memristive-cannot-write-here")


@case("out: a folder holding a run of another config", ConfigError, "out")
def _(tmp):
    from memristive.experiments.folder import claim_folder

    claim_folder(tmp, "defects", {"seed": 0}, 1)
    claim_folder(tmp, "defects", {"seed": 1}, 1)


@case("out: a folder holding a run of another experiment", ConfigError, "out")
def _(tmp):
    from memristive.experiments.folder import claim_folder

    claim_folder(tmp, "defects", {"seed": 0}, 1)
    claim_folder(tmp, "ir-drop", {"seed": 0}, 1)


@case("out: a folder in use by another run", ConfigError, "out")
def _(tmp):
    from memristive.io import FolderLock

    with FolderLock(tmp):
        import subprocess
        import sys

        code = ("import sys; sys.path.insert(0, sys.argv[2]); from memristive.io import FolderLock; "
                "FolderLock(sys.argv[1]).acquire()")
        r = subprocess.run([sys.executable, "-c", code, str(tmp), str(Path(__file__).parents[1] / "src")],
                           capture_output=True, text=True)
        raise ConfigError(r.stderr.strip().splitlines()[-1])  # the other process's one-line error


# ----------------------------------------------------------------------------------- the CLI (in-process)
def _cli(*args):
    from typer.testing import CliRunner

    from memristive.cli import app

    r = CliRunner().invoke(app, list(args))
    out = r.output + (getattr(r, "stderr", "") if not r.output else "")
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception  # a traceback would have reached the user
    if r.exit_code == 0:
        return out  # accepted: silent
    lines = [ln for ln in out.splitlines() if ln.startswith("error:")]
    raise CLIError(lines[-1] if lines else out.strip().splitlines()[-1] if out.strip() else f"exit {r.exit_code}")


class CLIError(Exception):
    """A CLI invocation ended with a non-zero status; the message is its error line."""


CLI = [
    ("run nope", ["run", "nope"], "experiment"),
    ("run --trials 0", ["run", "defects", "--quick", "--trials", "0", "--show-config"], "trials"),
    ("run --trials -3", ["run", "defects", "--quick", "--trials", "-3", "--show-config"], "trials"),
    ("run --seed -1", ["run", "defects", "--quick", "--seed", "-1", "--show-config"], "seed"),
    ("run --threads 0", ["run", "defects", "--quick", "--threads", "0", "--show-config"], "--threads"),
    ("run --set n_train=-5", ["run", "defects", "--set", "n_train=-5", "--show-config"], "n_train"),
    ("run --set n_train=0", ["run", "defects", "--set", "n_train=0", "--show-config"], "n_train"),
    ("run --set lr=-1", ["run", "defects", "--set", "lr=-1", "--show-config"], "lr"),
    ("run --set batch_size=0", ["run", "defects", "--set", "batch_size=0", "--show-config"], "batch_size"),
    ("run --set beta=2", ["run", "defects", "--set", "beta=2", "--show-config"], "beta"),
    ("run --set activation=gelu", ["run", "defects", "--set", "activation=gelu", "--show-config"], "activation"),
    ("run --set sizes=[784,50,7]", ["run", "defects", "--set", "sizes=[784,50,7]", "--show-config"], "sizes"),
    ("run --set defect_percents=[]", ["run", "defects", "--set", "defect_percents=[]", "--show-config"], "defect_percents"),
    ("run --set crossbar.read_noise.sigma=.inf", ["run", "defects", "--set", "crossbar.read_noise.sigma=.inf",
                                                  "--show-config"], "crossbar.read_noise.sigma"),
    ("run --set trails=3", ["run", "defects", "--set", "trails=3", "--show-config"], "trails"),
    ("run --set noequals", ["run", "defects", "--set", "noequals", "--show-config"], "override"),
    ("run --config missing", ["run", "defects", "--config", "/nonexistent.yaml"], "config file"),
    ("run --trials on hardware-cost", ["run", "hardware-cost", "--trials", "3"], "--trials"),
    ("run --out an existing file", ["run", "defects", "--quick", "--out", "/etc/hostname"], "out"),
    ("run --out under /proc", ["run", "defects", "--quick", "--out", "/proc/memristive-x"], "out"),
    ("sweep missing file", ["sweep", "/nonexistent.yaml"], "config file"),
    ("sweep --workers 0", ["sweep", "configs/sweep-example.yaml", "--workers", "0"], "--workers"),
    ("sweep --threads 0", ["sweep", "configs/sweep-example.yaml", "--threads", "0"], "--threads"),
    ("sweep --executor ray", ["sweep", "configs/sweep-example.yaml", "--executor", "ray", "--out", "/tmp/x"], "executor"),
    ("sweep --scheduler without dask", ["sweep", "configs/sweep-example.yaml", "--scheduler", "tcp://h:1", "--out",
                                        "/tmp/x"], "--scheduler"),
    ("sweep a run config", ["sweep", "configs/defects.yaml", "--dry-run"], "sweep"),
    ("sweep --set n_train=-1", ["sweep", "configs/sweep-example.yaml", "--set", "n_train=-1", "--dry-run"], "n_train"),
    ("report a non-sweep folder", ["report", "/tmp"], "sweep.json"),
    ("data fetch cifar", ["data", "fetch", "cifar"], "cifar"),
]
for _id, _args, _key in CLI:
    CASES.append(Case(f"cli:{_id}", (lambda tmp, a=_args: _cli(*a)), CLIError, _key))


@case("cli: run --config for another experiment", CLIError, "experiment")
def _(tmp):
    (tmp / "c.yaml").write_text("experiment: ir-drop\n")
    _cli("run", "defects", "--config", str(tmp / "c.yaml"), "--show-config")


@case("cli: run --config with bad YAML", CLIError, "config file")
def _(tmp):
    (tmp / "c.yaml").write_text("trials: [1\n")
    _cli("run", "defects", "--config", str(tmp / "c.yaml"), "--show-config")


@case("cli: run on a folder of another config", CLIError, "out")
def _(tmp):
    from memristive.experiments.folder import claim_folder

    claim_folder(tmp, "defects", {"seed": 99}, 1)
    _cli("run", "defects", "--quick", "--out", str(tmp))


# ----------------------------------------------------------------------------------- the tests
def _run_case(c: Case, tmp: Path) -> tuple[str, str]:
    """``(verdict, detail)``: clear / traceback / silent."""
    try:
        c.fn(tmp)
    except Exception as exc:  # noqa: BLE001 - classifying
        msg = str(exc)
        if not isinstance(exc, c.exc):
            return "traceback", f"{type(exc).__name__}: {msg[:300]}"
        if "\n" in msg.strip():
            return "traceback", f"several lines: {msg[:300]}"
        if not _names_key(msg, c.key):
            return "traceback", f"message does not name {c.key!r}: {msg[:300]}"
        return "clear", msg
    return "silent", "accepted"


def _params():
    out = []
    for c in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=c.core)] if c.core else []
        out.append(pytest.param(c, id=c.id, marks=marks))
    return out


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])


@pytest.mark.parametrize("c", _params())
def test_bad_input(c: Case, tmp_path):
    verdict, detail = _run_case(c, tmp_path)
    assert verdict == "clear", f"{c.id}: {verdict}: {detail}"


def test_enough_cases():
    assert len(CASES) >= 150
    assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"


def test_names_key():
    assert _names_key("defects.crossbar.adc.bits=0: must be >= 1", "crossbar.adc.bits")
    assert not _names_key("defects.crossbar.adc.converter.bits=0: must be >= 1", "crossbar.adc.bits")
    assert _names_key("defect_percents[2]=101: no", "defect_percents")
    assert _names_key("error: out='/x': is a file", "out")
    assert not _names_key("timeout=3", "out")


def test_no_traceback_from_python_m_memristive(tmp_path):
    """The real entry point (not the in-process runner): one error line, status 2, no traceback."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "memristive", "run", "defects", "--set", "lr=.inf", "--show-config"],
                       capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "lr=inf" in r.stderr


if __name__ == "__main__":  # the tally for the issue: python tests/test_bad_input.py
    import sys
    import tempfile
    from collections import Counter

    counts: Counter = Counter()
    for c in CASES:
        with tempfile.TemporaryDirectory() as d:
            verdict, detail = _run_case(c, Path(d))
        counts[verdict] += 1
        if verdict != "clear" or "-v" in sys.argv:
            print(f"{verdict:9s} {c.id}: {detail}" + (f"   [{c.core}]" if c.core else ""))
    print(f"\n{len(CASES)} cases: {counts['clear']} clear errors, {counts['traceback']} tracebacks or unclear, "
          f"{counts['silent']} silently accepted")
