import json
import subprocess
import sys

import pytest

from memristive.experiments import discover


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "memristive", *args], capture_output=True, text=True, **kw)


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
    assert "torch" in res["versions"] and res["torch_threads"] >= 1
    assert res["hardware_cost"]["energy_per_inference_j"] > 0 and res["config"]["cost"]["tech"] == "neurosim-22nm"
    assert "hardware cost (neurosim-22nm): " in r.stdout and " per inference, latency " in r.stdout
    assert "software_accuracy" in r.stdout and f"table:   {out / 'results.csv'}" in r.stdout  # the summary
    assert ((out / "results.json").stat().st_mode & 0o777) == 0o644
    # re-running the same command resumes from the stored points and gives identical numbers
    r2 = _cli("run", "defects", "--quick", "--out", str(out), "--trials", "3", timeout=300)
    assert r2.returncode == 0
    res2 = json.loads((out / "results.json").read_text())
    assert set(res2["resumed_points"]) >= {"software_model", "defect_0", "defect_10", "defect_20"}
    assert res2["metrics"]["points"] == pts
    assert "4 of 4 checkpointed step(s) resumed" in r2.stdout
    # another config on the same folder is refused before any work; --overwrite takes it
    r3 = _cli("run", "defects", "--quick", "--out", str(out), "--trials", "2", timeout=300)
    assert r3.returncode == 2 and "trials: 3 -> 2" in r3.stderr and "--overwrite" in r3.stderr


def test_python_m_memristive_and_version():
    from memristive import __version__

    r = subprocess.run([sys.executable, "-m", "memristive", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith(f"memristive {__version__}")


def test_unexpected_error_is_one_line_and_debug_shows_traceback(monkeypatch):
    from typer.testing import CliRunner

    from memristive import cli

    def boom(*a, **k):
        raise RuntimeError("kaput\nsecond line")

    monkeypatch.setattr("memristive.experiments.discover", boom)
    monkeypatch.setitem(cli._STATE, "debug", False)
    r = CliRunner().invoke(cli.app, ["list"])
    assert r.exit_code == 1 and "error: RuntimeError: kaput (unexpected; run 'memristive --debug" in r.output
    assert "Traceback" not in r.output and "second line" not in r.output
    r = CliRunner().invoke(cli.app, ["--debug", "list"])
    assert isinstance(r.exception, RuntimeError)  # --debug lets the traceback through
    cli._STATE["debug"] = False


def test_quick_flag_pair_and_show_config():
    from typer.testing import CliRunner

    from memristive.cli import app

    r = CliRunner().invoke(app, ["run", "defects", "--quick", "--no-quick", "--show-config"])
    assert r.exit_code == 0 and json.loads(r.output)["n_train"] is None  # the last flag wins
    r = CliRunner().invoke(app, ["run", "defects", "--quick", "--show-config"])
    assert json.loads(r.output)["n_train"] == 5000


def test_data_help_lists_datasets():
    from typer.testing import CliRunner

    from memristive.cli import app

    r = CliRunner().invoke(app, ["data", "--help"])
    assert r.exit_code == 0 and "mnist" in r.output and "fashion-mnist" in r.output and "list" in r.output


def test_atomic_writes_are_0644_whatever_the_umask(tmp_path):
    import os

    from memristive.io import atomic_write_csv, atomic_write_json, atomic_write_text

    old = os.umask(0o077)
    try:
        for p in (atomic_write_text(tmp_path / "a.txt", "x"), atomic_write_json(tmp_path / "b.json", {"a": 1}),
                  atomic_write_csv(tmp_path / "c.csv", [{"a": 1}, {"b": 2}])):
            assert (p.stat().st_mode & 0o777) == 0o644
    finally:
        os.umask(old)
    assert (tmp_path / "c.csv").read_text().splitlines() == ["a,b", "1,", ",2"]
    assert list(tmp_path.glob(".*.tmp")) == []


def test_json_encoding_of_tensors_numpy_paths(tmp_path):
    import numpy as np
    import torch

    from memristive.io import dumps

    data = {"t": torch.tensor([1.5, 2.0]), "n": np.float32(0.5), "a": np.arange(3), "p": tmp_path, "s": {2, 1}}
    assert json.loads(dumps(data)) == {"t": [1.5, 2.0], "n": 0.5, "a": [0, 1, 2], "p": str(tmp_path), "s": [1, 2]}


def test_no_module_imports_upward():
    """io is below everything (it imports only memristive.config); circuit does not import experiments;
    sweep does not read runner internals."""
    import ast
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src" / "memristive"

    def internal_imports(path):  # memristive modules imported by path, as dotted names relative to the package
        tree = ast.parse(path.read_text())
        pkg = path.parent.relative_to(src.parent).parts
        out = set()
        for n in ast.walk(tree):
            if isinstance(n, ast.ImportFrom) and n.level:
                base = pkg[: len(pkg) - (n.level - 1)]
                out.add(".".join([*base, *(n.module.split(".") if n.module else [])]))
            elif isinstance(n, ast.ImportFrom) and (n.module or "").startswith("memristive"):
                out.add(n.module)
        return out

    assert internal_imports(src / "io.py") == {"memristive.config"}
    for p in (src / "circuit").glob("*.py"):
        assert not any(m.startswith("memristive.experiments") for m in internal_imports(p)), p
    for p in (src / "sweep").glob("*.py"):
        assert "_json_default" not in p.read_text(), p
    assert not any(m.startswith("memristive.experiments.runner") for m in internal_imports(src / "experiments" / "folder.py"))


def _tiny_run(tmp_path):
    from memristive.experiments.folder import RunFolder

    return RunFolder(tmp_path, "toy", {"a": 1})


def test_checkpoint_discards_damaged_records_and_recomputes(tmp_path):
    import warnings

    import torch

    from memristive.experiments.folder import CheckpointWarning

    run = _tiny_run(tmp_path)
    assert run.checkpoint("p", lambda: {"mean": 1.0}) == {"mean": 1.0}
    for bad in ("", "{}", "{\"format\": 1, \"key\": \"other\", \"value\": 3}", "{\"mean\": 1.0", "[1, 2]"):
        (run.points / "p.json").write_text(bad)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            assert run.checkpoint("p", lambda: {"mean": 2.0}) == {"mean": 2.0}
        assert any(issubclass(x.category, CheckpointWarning) and "p.json" in str(x.message) for x in w), bad
    # a validator rejects a value of the wrong shape
    (run.points / "q.json").write_text(json.dumps({"format": 1, "key": "q", "value": {}}))
    with pytest.warns(CheckpointWarning, match="unusable value"):
        assert run.checkpoint("q", lambda: {"mean": 3.0}, validate=lambda v: v["mean"]) == {"mean": 3.0}
    assert run.checkpoint("q", lambda: {"mean": 4.0}) == {"mean": 3.0} and "q" in run.resumed
    # torch checkpoints: truncated file, then a state dict that does not fit
    state = {"w": torch.ones(2, 2)}
    run.checkpoint_torch("m", lambda: state)
    data = (run.points / "m.pt").read_bytes()
    (run.points / "m.pt").write_bytes(data[: len(data) // 2])
    with pytest.warns(CheckpointWarning, match="m.pt"):
        out = run.checkpoint_torch("m", lambda: {"w": torch.zeros(2, 2)})
    assert torch.equal(out["w"], torch.zeros(2, 2))

    def fits(v):
        torch.nn.Linear(2, 3, bias=False).load_state_dict({"weight": v["w"]})

    with pytest.warns(CheckpointWarning, match="size mismatch"):
        out = run.checkpoint_torch("m", lambda: {"w": torch.zeros(3, 2)}, validate=fits)
    assert out["w"].shape == (3, 2)


def test_run_folder_lock_and_owner(tmp_path):
    from memristive.config import ConfigError
    from memristive.experiments.folder import claim_folder
    from memristive.io import FolderLock, FolderLocked

    with FolderLock(tmp_path):
        with pytest.raises(FolderLocked, match="in use by another run"):
            FolderLock(tmp_path).acquire()
    FolderLock(tmp_path).acquire().release()  # released
    claim_folder(tmp_path, "defects", {"seed": 0, "n": [1, 2]}, threads=1)
    claim_folder(tmp_path, "defects", {"n": [1, 2], "seed": 0}, threads=2)  # same config, other threads: fine
    with pytest.raises(ConfigError, match=r"another config \(seed: 0 -> 1\).*--overwrite"):
        claim_folder(tmp_path, "defects", {"seed": 1, "n": [1, 2]}, threads=1)
    with pytest.raises(ConfigError, match="experiment 'defects'"):
        claim_folder(tmp_path, "ir-drop", {"seed": 0, "n": [1, 2]}, threads=1)
    claim_folder(tmp_path, "defects", {"seed": 1, "n": [1, 2]}, threads=1, overwrite=True)
    assert json.loads((tmp_path / "run.json").read_text())["config"]["seed"] == 1


def test_thread_count_is_part_of_the_checkpoint_hash(tmp_path):
    from memristive.experiments.folder import RunFolder, config_hash

    assert config_hash({"a": 1}, 1) != config_hash({"a": 1}, 2)
    assert RunFolder(tmp_path, "toy", {"a": 1}, threads=1).points != RunFolder(tmp_path, "toy", {"a": 1}, threads=2).points


def test_ctrl_c_says_how_to_resume(tmp_path):
    import os
    import signal
    import time

    out = tmp_path / "run"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # the child starts with SIGINT at its default: a disposition of "ignore" is inherited across exec
    # (something earlier in a full pytest session may leave it so), and Python then installs no
    # KeyboardInterrupt handler at all
    p = subprocess.Popen([sys.executable, "-m", "memristive", "run", "defects", "--quick", "--set", "epochs=400",
                          "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    inherited = signal.getsignal(signal.SIGINT)
    deadline = time.time() + 240
    while time.time() < deadline and not (out / "run.json").exists():
        time.sleep(0.5)
    time.sleep(2)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 130, f"pytest's own SIGINT handler: {inherited!r}\n" + stderr[-2000:]
    assert "Re-run the same command to resume" in stderr and "memristive run defects --quick" in stderr
    assert str(out) in stderr and "Traceback" not in stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(discover()))
def test_every_experiment_quick_end_to_end(name, tmp_path):
    """`make test-slow`: each experiment's --quick run writes results.json, its tables and plots, and
    the end-of-run summary; a second run resumes every checkpoint."""
    out = tmp_path / "run"
    r = _cli("run", name, "--quick", "--out", str(out), timeout=1800)
    if r.returncode == 2 and "error:" in r.stderr and ("not available" in r.stderr or "DataError" in r.stderr):
        pytest.skip(f"data for {name} not available here: {r.stderr.strip()[-300:]}")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert res["experiment"] == name and res["torch_threads"] >= 1 and res["metrics"]
    hc = res["hardware_cost"]  # every experiment costs its configuration (experiments.common.record_cost)
    assert "unavailable" not in hc and hc["energy_per_inference_j"] > 0 and hc["area_mm2"] > 0, hc
    assert f"{name}: finished in" in r.stdout and "results:" in r.stdout
    r2 = _cli("run", name, "--quick", "--out", str(out), timeout=1800)
    assert r2.returncode == 0, r2.stderr[-3000:]
    res2 = json.loads((out / "results.json").read_text())
    # the second run computes no checkpoint again (timings list only the checkpoints a run computed);
    # a checkpoint needed only to compute another one (e.g. soc's QAT models behind its bit-width
    # points) is not even loaded when that other one is resumed
    assert res2["discarded_checkpoints"] == [] and set(res2["timings"]) == {"total_s"}, res2["timings"]
    assert set(res2["resumed_points"]) <= set(res["timings"])
    assert res2["resumed_points"] or set(res["timings"]) == {"total_s"}  # resumed, unless it checkpoints nothing
