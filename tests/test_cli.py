import json
import subprocess
import sys

import pytest

from memristive.experiments import discover


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "memristive.cli", *args], capture_output=True, text=True, **kw)


def test_list_names_every_experiment():
    r = _cli("list")
    assert r.returncode == 0
    for name in discover():
        assert name in r.stdout


def test_unknown_experiment_and_bad_override():
    r = _cli("run", "nope")
    assert r.returncode == 2 and "unknown experiment" in r.stderr
    r = _cli("run", "defects", "--quick", "--set", "trails=3")
    assert r.returncode == 2 and "trails" in r.stderr
    r = _cli("run", "defects", "--quick", "--set", "crossbar.memristor.g_min=1", "--set", "crossbar.memristor.g_max=0.5")
    assert r.returncode == 2 and "g_min" in r.stderr


def test_config_file_unknown_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("experiment: defects\ntrials: 3\nbogus: 1\n")
    r = _cli("run", "defects", "--config", str(p), "--show-config")
    assert r.returncode == 2 and "bogus" in r.stderr


def test_defects_quick_run_and_resume(tmp_path):
    out = tmp_path / "run"
    r = _cli("run", "defects", "--quick", "--out", str(out), "--trials", "3", timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    assert res["experiment"] == "defects" and res["config"]["trials"] == 3
    pts = res["metrics"]["points"]
    assert [p["defect_percent"] for p in pts] == [0, 10, 20]
    assert all(p["trials"] == 3 for p in pts)
    assert pts[0]["mean"] > pts[-1]["mean"]  # defects hurt
    assert (out / "results.csv").is_file() and (out / "accuracy_vs_defects.png").stat().st_size > 1000
    assert "torch" in res["versions"]
    # re-running the same command resumes from the stored points and gives identical numbers
    r2 = _cli("run", "defects", "--quick", "--out", str(out), "--trials", "3", timeout=300)
    assert r2.returncode == 0
    res2 = json.loads((out / "results.json").read_text())
    assert set(res2["resumed_points"]) >= {"software_model", "defect_0", "defect_10", "defect_20"}
    assert res2["metrics"]["points"] == pts
