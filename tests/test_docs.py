"""Executed docs: every shell and Python block of README.md and docs/*.md runs, so a documented
command can no longer fail.

Convention (also in README.md, "Documentation"):

* Fenced blocks tagged ``bash``/``sh``/``shell``/``console`` run as one bash script (``set -e``);
  blocks tagged ``python``/``py`` run as a Python script in a fresh process. Untagged blocks, ``yaml``,
  ``text`` etc. are not run.
* A line ``<!-- no-exec: why -->`` right before a block (blank lines allowed between) skips it: for
  commands that set up machines (``make demo``), need a cluster or a service, run for hours, or are
  sketches that need the reader's own data. Say why; the test lists them.
* A line ``<!-- continues -->`` before a Python block runs it after the previous Python block(s) of
  the same file, in the same process (for a walkthrough split by prose).
* All blocks run in order in one scratch folder (shared by all files, so a later block may use a
  file an earlier one wrote, and sweeps/runs resume), with ``configs/`` and ``benchmarks/`` linked in.
* Quick mode: ``memristive run NAME ...`` gets ``--quick`` and the experiment's quick settings as
  ``--set`` overrides appended (so they win over a ``--config`` file), except for keys the command
  sets itself; ``memristive sweep FILE ...`` gets ``--quick`` (the file's own settings still win, so
  a documented sweep file must be small). Nothing else is changed.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"bash", "sh", "shell", "console"}
PYTHON = {"python", "py", "python3"}
NO_EXEC = re.compile(r"^\s*<!--\s*no-exec\b(.*?)-->\s*$")
CONTINUES = re.compile(r"^\s*<!--\s*continues\s*-->\s*$")
FENCE = re.compile(r"^```\s*([A-Za-z0-9_+-]*)\s*$")

# Blocks in files this test's owner does not maintain that fail today; each is an xfail(strict=True),
# so the owner removes the entry when the block runs (or marks it no-exec with a reason).
KNOWN_BROKEN: dict[str, str] = {
    "docs/calibration.md:L21": "docs owner: sketch (`model = ...`, x_train undefined); make it runnable or mark no-exec",
    "docs/circuit.md:L105": "docs owner: continues the block above (uses torch, xb); add `<!-- continues -->` before it",
    "docs/physics.md:L30": "docs owner: sketch (x undefined); make it runnable or mark no-exec",
    "docs/physics.md:L54": "docs owner: continues the block above (g_prog); add `<!-- continues -->` or make it runnable",
    "docs/dtga.md:L238": "docs owner: sketch (w, x_train undefined); make it runnable or mark no-exec",
    "docs/gru.md:L23": "docs owner: sketch (`...train...` is not Python); make it runnable or mark no-exec",
    "docs/gru.md:L114": "docs owner: sketch (x_train undefined); make it runnable or mark no-exec",
    "docs/gru.md:L165": "docs owner: sketch (model undefined); make it runnable or mark no-exec",
    "docs/networks.md:L7": "docs owner: sketch (x_test undefined); make it runnable or mark no-exec",
    "docs/cost.md:L14": "docs owner: my-spec.yaml and model.pt do not exist; create them in the block or mark no-exec",
    "docs/cost.md:L39": "docs owner: sketch (hw_model, x_test, device_array undefined); make it runnable or mark no-exec",
    "docs/analog-training.md:L8": "docs owner: sketch (`batches` undefined); make it runnable or mark no-exec",
}


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    skip: str | None  # the no-exec reason
    continues: bool

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:L{self.line}"


def blocks(path: Path) -> list[Block]:
    out: list[Block] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        lang = m.group(1).lower()
        start = i
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        prev = lines[k] if k >= 0 else ""
        skip = None
        nm = NO_EXEC.match(prev)
        if nm:
            skip = nm.group(1).strip(" :") or "marked no-exec"
        if lang in SHELL or lang in PYTHON:
            out.append(Block(path, start + 1, "python" if lang in PYTHON else "bash", "\n".join(lines[start + 1:j]) + "\n",
                             skip, bool(CONTINUES.match(prev))))
        i = j + 1
    return out


ALL = [b for p in DOCS for b in blocks(p)]

SHIM = r'''#!{python}
"""`memristive` for the executed-docs test: quick settings for `run` and `sweep` (see the module docstring)."""
import json, os, sys
args = sys.argv[1:]
words = [a for a in args if not a.startswith("-")]
if len(words) > 1 and words[0] == "run" and "--help" not in args:
    quick = json.load(open({quick_file!r})).get(words[1], {{}})
    given = {{"trials"}} if "--trials" in args else set()
    given |= {{"seed"}} if "--seed" in args else set()
    given |= {{args[i + 1].split("=")[0].split(".")[0] for i, a in enumerate(args[:-1]) if a in ("--set", "-s")}}
    args += ["--quick"] + [x for k, v in quick.items() if k not in given for x in ("--set", f"{{k}}={{json.dumps(v)}}")]
elif len(words) > 1 and words[0] == "sweep" and "--help" not in args:
    args += ["--quick"]
os.execv({python!r}, [{python!r}, "-m", "memristive", *args])
'''


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    from memristive.experiments import discover

    wd = tmp_path_factory.mktemp("docs")
    for name in ("configs", "benchmarks"):
        (wd / name).symlink_to(ROOT / name)
    bin_dir = wd / ".bin"
    bin_dir.mkdir()
    quick_file = bin_dir / "quick.json"
    quick_file.write_text(json.dumps({n: s.quick for n, s in discover().items()}))
    shim = bin_dir / "memristive"
    shim.write_text(SHIM.format(python=sys.executable, quick_file=str(quick_file)))
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    for name in ("python", "python3"):  # scripts, not symlinks: a venv's python finds its packages from its path
        py = bin_dir / name
        py.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        py.chmod(py.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("MEMRISTIVE_DATA", str(ROOT / "data"))
    env["MPLBACKEND"] = "Agg"
    env.setdefault("OMP_NUM_THREADS", "1")
    return wd, env


def _source(block: Block) -> str:
    if block.lang != "python" or not block.continues:
        return block.code
    same = [b for b in ALL if b.path == block.path and b.lang == "python" and b.line < block.line]
    chain = []
    for b in reversed(same):  # the previous block and, if it continues too, the ones before it
        chain.insert(0, b.code)
        if not b.continues:
            break
    return "".join(chain) + block.code


def _params():
    out = []
    for b in ALL:
        marks = []
        if b.skip:
            marks.append(pytest.mark.skip(reason=f"no-exec: {b.skip}"))
        elif b.id in KNOWN_BROKEN:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_BROKEN[b.id]))
        out.append(pytest.param(b, id=b.id, marks=marks))
    return out


@pytest.mark.parametrize("block", _params())
def test_doc_block_runs(block: Block, workdir):
    wd, env = workdir
    name = f"{block.path.stem}_L{block.line}"
    if block.lang == "python":
        script = wd / f"{name}.py"
        script.write_text(_source(block))
        cmd = [sys.executable, str(script)]
    else:
        script = wd / f"{name}.sh"
        script.write_text("set -euo pipefail\n" + block.code)
        cmd = ["bash", str(script)]
    r = subprocess.run(cmd, cwd=wd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (f"{block.id} ({block.lang}) failed with status {r.returncode}:\n{block.code}\n"
                               f"--- stdout (tail)\n{r.stdout[-3000:]}\n--- stderr (tail)\n{r.stderr[-3000:]}")
    assert "Traceback (most recent call last)" not in r.stderr or block.lang == "python", r.stderr[-3000:]


def test_markers_are_parsed(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("text\n<!-- no-exec: needs a cluster -->\n\n```bash\ndask scheduler\n```\n\n```python\nx = 1\n```\n"
                   "<!-- continues -->\n```python\nprint(x)\n```\n```yaml\na: 1\n```\n```\nplain\n```\n")
    bs = blocks(doc)
    assert [(b.lang, b.skip, b.continues) for b in bs] == [("bash", "needs a cluster", False), ("python", None, False),
                                                           ("python", None, True)]
    assert [b.line for b in bs] == [4, 8, 12]
