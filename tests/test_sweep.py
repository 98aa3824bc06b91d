"""Sweeps: declaration, atomic store, SIGKILL + resume of a real sweep process, Dask LocalCluster,
report, CLI."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from memristive.config import ConfigError
from memristive.sweep import (SweepLocked, SweepStore, flatten_metrics, load_sweep, make_report, parse_sweep,
                              run_sweep)

PLUGIN = "memristive_sweep_test_plugin"
PLUGIN_SRC = '''
import time
from dataclasses import dataclass, field
from memristive.config import check
from memristive.experiments import experiment


@dataclass
class ToyConfig:
    a: float = 1.0
    b: int = 0
    seed: int = 0
    trials: int = 1
    delay: float = 0.0
    fail_on: float | None = None
    tags: list[int] = field(default_factory=list)

    def __post_init__(self):
        check(self.a >= 0, "a", self.a, "must be >= 0")


@experiment("sweep-test-toy", "test: y = 10 a + b + seed/10 after a delay", ToyConfig, quick=dict(delay=0.0, b=100))
def run_toy(cfg, run):
    time.sleep(cfg.delay)
    if cfg.fail_on is not None and cfg.a == cfg.fail_on:
        raise RuntimeError(f"boom at a={cfg.a}")
    return {"y": cfg.a * 10 + cfg.b + 0.1 * cfg.seed, "nested": {"z": cfg.b * 2},
            "curve": [{"x": i, "mean": cfg.a * i, "std": 0.0} for i in range(3)]}
'''


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    d = tmp_path_factory.mktemp("plugin")
    (d / f"{PLUGIN}.py").write_text(PLUGIN_SRC)
    sys.path.insert(0, str(d))
    yield d
    sys.path.remove(str(d))
    # leave the global registry as we found it (other tests list every experiment)
    from memristive.experiments import REGISTRY

    REGISTRY.pop("sweep-test-toy", None)
    sys.modules.pop(PLUGIN, None)


def toy(grid=None, **sweep):
    return parse_sweep({"experiment": "sweep-test-toy", "sweep": {"imports": [PLUGIN], "grid": grid or {}, **sweep}})


# ---------------------------------------------------------------------------------------------- spec
def test_grid_expansion_order_zip_and_seeds(plugin):
    spec = toy({"a": [1, 2], "b": [0, 5]}, seeds=[3, 4], zip=[{"delay": [0.0, 0.01], "tags": [[1], [2, 3]]}])
    pts = spec.points()
    assert len(pts) == 2 * 2 * 2 * 2
    assert spec.axis_keys() == ["delay", "tags", "a", "b", "seed"]
    assert pts[0].values == {"delay": 0.0, "tags": [1], "a": 1, "b": 0, "seed": 3}
    assert pts[1].values["seed"] == 4 and pts[2].values["b"] == 5 and pts[8].values["tags"] == [2, 3]
    assert pts[8].config.delay == 0.01 and pts[8].config.tags == [2, 3]
    assert len({p.key for p in pts}) == len(pts)


def test_point_keys_depend_on_the_resolved_config_only(plugin):
    k1 = [p.key for p in toy({"a": [1, 2]}).points()]
    k2 = [p.key for p in toy({"a": [2, 1, 3]}).points()]
    assert k2[0] == k1[1] and k2[1] == k1[0]  # same configs, same keys, whatever the grid order
    base = parse_sweep({"experiment": "sweep-test-toy", "b": 7, "sweep": {"imports": [PLUGIN], "grid": {"a": [1, 2]}}})
    assert not set(p.key for p in base.points()) & set(k1)  # a changed base config means new points
    quick = parse_sweep({"experiment": "sweep-test-toy", "sweep": {"imports": [PLUGIN], "quick": True,
                                                                  "grid": {"a": [1]}}}).points()[0]
    assert quick.config.b == 100  # quick settings are the base of every point
    assert toy({"a": [1]}, trials=7).points()[0].config.trials == 7


def test_nested_keys_of_a_real_experiment():
    spec = parse_sweep({"experiment": "defects", "n_test": 100, "sweep": {
        "grid": {"crossbar.read_noise.sigma": [0.0, 0.05], "crossbar.adc.bits": [None, 6]}, "seeds": 2}})
    pts = spec.points()
    assert len(pts) == 8 and spec.seeds == [0, 1]
    assert pts[2].config.crossbar.read_noise.sigma == 0.0 and pts[2].config.crossbar.adc.bits == 6
    assert pts[7].config.crossbar.read_noise.sigma == 0.05 and pts[7].config.seed == 1 and pts[7].config.n_test == 100


@pytest.mark.parametrize("sweep,match", [
    ({"grid": {"nope": [1]}}, r"unknown key\(s\) \['nope'\]"),
    ({"grid": {"a": [-1]}}, r"sweep point 0 \(a=-1\): .*a=-1"),
    ({"grid": {"a": []}}, r"sweep.grid.a"),
    ({"grid": {"a": 3}}, r"sweep.grid.a"),
    ({"zip": [{"a": [1, 2], "b": [1]}]}, r"equal lengths"),
    ({"grid": {"seed": [1]}, "seeds": [2]}, r"more than one axis"),
    ({"grid": {"a": [1, 1]}}, r"resolve to the same config"),
    ({"seeds": [1, 1]}, r"distinct"),
    ({"trials": 0}, r"sweep.trials"),
    ({"colour": "red"}, r"unknown key\(s\) \['colour'\] in sweep"),
    ({"imports": ["no_such_module_xyz"]}, r"cannot import"),
])
def test_bad_declarations_name_the_problem(plugin, sweep, match):
    with pytest.raises(ConfigError, match=match):
        parse_sweep({"experiment": "sweep-test-toy", "sweep": {"imports": [PLUGIN], **sweep}}).points()


def test_missing_sections():
    with pytest.raises(ConfigError, match="experiment"):
        parse_sweep({"sweep": {}})
    with pytest.raises(ConfigError, match="sweep:"):
        parse_sweep({"experiment": "defects"})
    with pytest.raises(ConfigError, match="unknown"):
        parse_sweep({"experiment": "no-such-experiment", "sweep": {}}).points()


# ---------------------------------------------------------------------------------------------- store
def test_store_records_lock_and_temp_files(tmp_path):
    s = SweepStore(tmp_path / "sw")
    s.lock()
    with pytest.raises(SweepLocked, match=f"pid {os.getpid()}"):
        SweepStore(tmp_path / "sw").lock()
    s.write_done({"key": "k1", "metrics": {"y": 1}})
    assert s.record("k1")["metrics"] == {"y": 1} and s.is_done("k1") and not s.is_done("k2")
    s.write_failed({"key": "k2", "error": "x"})
    assert not s.is_done("k2") and s.failure("k2")["error"] == "x"
    s.write_done({"key": "k2", "metrics": {}})
    assert s.failure("k2") is None  # success clears the failure
    (s.points_dir / "k3.json").write_text('{"key": "k3", "sta')  # a torn file (atomic writes never leave one)
    assert s.record("k3") is None and (s.points_dir / "k3.json.corrupt").exists()
    (s.points_dir / ".k4.json.abc.tmp").write_text("half")
    assert [p.name for p in s.clean_tmp()] == [".k4.json.abc.tmp"]
    s.unlock()
    SweepStore(tmp_path / "sw").lock()  # free again


# ---------------------------------------------------------------------------------------------- report
def test_flatten_metrics():
    scal, tabs = flatten_metrics({"acc": 0.5, "info": {"n": 3, "src": "x"}, "pts": [{"p": 0, "mean": 1.0},
                                                                                    {"p": 10, "mean": 0.5}],
                                  "sizes": [784, 10]})
    assert scal == {"acc": 0.5, "info.n": 3, "info.src": "x", "pts[p=0].mean": 1.0, "pts[p=10].mean": 0.5,
                    "sizes": "[784, 10]"}
    assert tabs == {"pts": [{"p": 0, "mean": 1.0}, {"p": 10, "mean": 0.5}]}


def test_report_aggregates_over_seeds(tmp_path):
    s = SweepStore(tmp_path)
    pts = []
    for i, (a, seed, y) in enumerate([(1, 0, 10.0), (1, 1, 14.0), (2, 0, 20.0), (2, 1, 21.0)]):
        key = f"p{i}"
        pts.append({"index": i, "key": key, "values": {"a": a, "seed": seed}, "label": ""})
        if i != 3:
            s.write_done({"key": key, "metrics": {"y": y, "curve": [{"x": 0, "mean": y}, {"x": 1, "mean": 2 * y}]}})
    s.write_failed({"key": "p3", "error": "RuntimeError: boom"})
    s.write_declaration({"experiment": "toy", "axes": ["a", "seed"], "points": pts, "spec": {}})
    rep = make_report(tmp_path)
    assert (rep["done"], rep["failed"], rep["pending"]) == (3, 1, 0)
    rows = list(csv.DictReader((tmp_path / "report" / "aggregate.csv").open()))
    assert rows[0]["a"] == "1" and float(rows[0]["y mean"]) == 12.0
    assert float(rows[0]["y std"]) == pytest.approx(2 ** 0.5 * 2)  # sample std of 10, 14
    assert rows[1]["seeds"] == "1" and float(rows[1]["y mean"]) == 20.0
    summary = list(csv.DictReader((tmp_path / "report" / "summary.csv").open()))
    assert [r["status"] for r in summary] == ["done", "done", "done", "failed"]
    assert "boom" in summary[3]["error"]
    curve = list(csv.DictReader((tmp_path / "report" / "curve.csv").open()))
    assert len(curve) == 6 and curve[1]["mean"] == "20.0"
    for png in ("y.png", "curve.png"):
        assert (tmp_path / "report" / png).stat().st_size > 1000
    assert "failed" in rep["text"]
    with pytest.raises(ConfigError, match="not a sweep axis"):
        make_report(tmp_path, x="b")


# ---------------------------------------------------------------------------------------------- running
def _alive(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    out = []
    for st in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = st.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in "ZX":
            out.append(int(st.parent.name))
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and process groups")
def test_sigkill_mid_sweep_then_resume(plugin, tmp_path):
    n = 8
    cfg = tmp_path / "toy.yaml"
    cfg.write_text(yaml.safe_dump({"experiment": "sweep-test-toy", "delay": 0.25,
                                   "sweep": {"imports": [PLUGIN], "grid": {"a": list(range(n))}}}))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "memristive.cli", "sweep", str(cfg), "--out", str(out), "--workers", "1",
           "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin), os.environ.get("PYTHONPATH", "")])}
    log = (tmp_path / "log1").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 120
        while len(list((out / "points").glob("*.json"))) < 2:
            assert proc.poll() is None, (tmp_path / "log1").read_text()
            assert time.time() < deadline, "sweep made no progress"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        for _ in range(100):  # the pool's worker dies with its parent (PR_SET_PDEATHSIG)
            if not _alive(proc.pid):
                break
            time.sleep(0.05)
        assert not _alive(proc.pid), "worker processes outlived the killed sweep"
    finally:
        if _alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    assert proc.returncode == -signal.SIGKILL
    done = {p.stem: json.loads(p.read_text()) for p in (out / "points").glob("*.json")}  # every file parses
    assert 2 <= len(done) < n
    for rec in done.values():
        assert rec["status"] == "done" and rec["metrics"]["y"] == rec["values"]["a"] * 10

    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)  # the same command again
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"{n} point(s): {len(done)} already finished, {n - len(done)} run now, 0 failed" in res.stdout
    recs = [json.loads(p.read_text()) for p in (out / "points").glob("*.json")]
    assert sorted(r["values"]["a"] for r in recs) == list(range(n))
    assert all(r["metrics"]["y"] == r["values"]["a"] * 10 for r in recs)
    for key, rec in done.items():  # finished points were not rerun or rewritten
        assert json.loads((out / "points" / f"{key}.json").read_text()) == rec
    assert not list(out.rglob("*.tmp"))
    assert (out / "report" / "summary.csv").exists()
    assert all((out / "points" / r["key"] / "log.txt").exists() for r in recs)  # worker output went to logs


def test_dask_localcluster_sweep_of_a_real_experiment(tmp_path):
    """A small `defects` sweep over a nested config key on a loopback LocalCluster: each point equals a
    direct run of the same config, and a re-run skips everything."""
    pytest.importorskip("distributed")
    from memristive.experiments.runner import run_experiment

    spec = parse_sweep({"experiment": "defects", "n_train": 300, "n_test": 100, "epochs": 1, "seed": 1,
                        "defect_percents": [0, 20], "sweep": {"trials": 2,
                                                              "grid": {"crossbar.read_noise.sigma": [0.0, 0.05]}}})
    out = tmp_path / "dask"
    res = run_sweep(spec, out, executor="dask", workers=1, threads=1, dask_processes=False, progress=False)
    assert (res.total, res.skipped, res.finished, res.failed) == (2, 0, 2, [])
    pts = spec.points()
    rec = SweepStore(out).record(pts[1].key)
    assert rec["values"] == {"crossbar.read_noise.sigma": 0.05}
    direct, _ = run_experiment("defects", pts[1].config, tmp_path / "direct")
    assert rec["metrics"] == json.loads(json.dumps(direct["metrics"]))
    assert res.report["done"] == 2 and (out / "report" / "points.png").exists()
    assert len(list(csv.DictReader((out / "report" / "points.csv").open()))) == 4
    again = run_sweep(spec, out, executor="dask", workers=1, dask_processes=False, progress=False, report=False)
    assert (again.skipped, again.finished) == (2, 0)


def test_failed_points_are_recorded_and_retried(plugin, tmp_path):
    pytest.importorskip("distributed")
    spec = toy({"a": [1, 2, 3]}, seeds=[0])
    spec.base = {"fail_on": 2}
    res = run_sweep(spec, tmp_path, executor="dask", workers=1, dask_processes=False, progress=False)
    assert res.finished == 2 and len(res.failed) == 1 and "boom at a=2" in res.failed[0]["error"]
    assert res.report["failed"] == 1 and "Traceback" in SweepStore(tmp_path).failure(res.failed[0]["key"])["traceback"]
    spec.base = {"fail_on": 7}  # fixed config: new keys for every point (their configs changed)
    res = run_sweep(spec, tmp_path, executor="dask", workers=1, dask_processes=False, progress=False)
    assert res.ok and res.finished == 3


def test_cli_dry_run_and_report(plugin, tmp_path):
    from typer.testing import CliRunner

    from memristive.cli import app

    cfg = tmp_path / "toy.yaml"
    cfg.write_text(yaml.safe_dump({"experiment": "sweep-test-toy",
                                   "sweep": {"imports": [PLUGIN], "grid": {"a": [1, 2]}, "seeds": [0, 1]}}))
    r = CliRunner().invoke(app, ["sweep", str(cfg), "--out", str(tmp_path / "o"), "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "4 point(s), 0 finished" in r.output and "a=2, seed=1" in r.output
    run_sweep(load_sweep(cfg), tmp_path / "o", executor="dask", workers=1, dask_processes=False, progress=False)
    r = CliRunner().invoke(app, ["report", str(tmp_path / "o"), "--metric", "y"])
    assert r.exit_code == 0, r.output
    assert "4 point(s): 4 done, 0 failed, 0 pending" in r.output and "20.1" in r.output
    r = CliRunner().invoke(app, ["sweep", str(cfg), "--executor", "spark", "--out", str(tmp_path / "o2")])
    assert r.exit_code == 2 and "executor='spark'" in r.output and not (tmp_path / "o2").exists()
    r = CliRunner().invoke(app, ["report", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "not a sweep folder" in r.output
