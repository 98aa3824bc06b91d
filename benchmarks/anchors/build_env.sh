#!/usr/bin/env bash
# Build the optional anchor environment (.venv-anchors): memristive + IBM aihwkit 1.2.0 + Sandia CrossSim 3.2
# in one venv, so benchmarks/anchors/compare.py can time all three in one process.  `make anchors` runs this.
#
# Where the sources come from (only PyPI and Debian are reachable from a fresh machine):
#   torch 2.13.0 (CPU)  PyPI / this machine's local index, pinned by a constraints file so nothing pulls CUDA.
#   aihwkit 1.2.0       PyPI sdist (1.2.0 has no cp311 wheel; the cp311 1.1.0 wheel is ABI-broken against
#                       torch 2.13), built here: needs libopenblas-dev (apt) and cmake, scikit-build,
#                       pybind11, mypy (its stub step calls `stubgen`) with the venv's bin/ on PATH and
#                       --no-build-isolation so it compiles against the pinned torch.  ~6-20 min on 2 cores.
#   CrossSim 3.2.0      not on PyPI: benchmarks/anchors/vendor/crosssim-3.2.0.tar.gz, a `git archive` of
#                       the v3.2.0 tag of github.com/sandialabs/cross-sim (commit 5fb61d9), limited to
#                       simulator/ + pyproject.toml + LICENSE.md + readme.md (BSD-3-Clause; 184 kB).
#
# Environment: PYTHON (default python3, must be 3.10-3.12), ANCHORS_VENV (default .venv-anchors),
# ANCHORS_JOBS (compile jobs, default 1: the machine is shared), ANCHORS_NICE (default 19).
set -euo pipefail

cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
VENV=${ANCHORS_VENV:-.venv-anchors}
JOBS=${ANCHORS_JOBS:-1}
NICE=${ANCHORS_NICE:-19}
TORCH_VERSION=2.13.0
AIHWKIT_VERSION=1.2.0
CROSSSIM_TARBALL=benchmarks/anchors/vendor/crosssim-3.2.0.tar.gz
CROSSSIM_SHA256=2a56b1ae4c91e9353af39ef6a13a3b0574fdddce0a0a2c5c208f2870e432ccca

say() { echo "[anchors] $*"; }
die() { echo "[anchors] error: $*" >&2; exit 1; }

# --- system library: OpenBLAS headers + library (aihwkit's CMake needs them) --------------------------------
have_openblas() { [ -e /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h ] || [ -e /usr/include/openblas/cblas.h ] \
                  || dpkg -s libopenblas-dev >/dev/null 2>&1; }
if ! have_openblas; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing libopenblas-dev (apt)"
        apt-get update -qq && apt-get install -y -qq libopenblas-dev >/dev/null
    else
        die "aihwkit needs OpenBLAS: run 'sudo apt-get install libopenblas-dev' (Debian/Ubuntu) and re-run make anchors"
    fi
fi
command -v c++ >/dev/null || command -v g++ >/dev/null || die "aihwkit needs a C++ compiler: apt-get install g++"

# --- sources ----------------------------------------------------------------------------------------------
[ -f "$CROSSSIM_TARBALL" ] || die "missing $CROSSSIM_TARBALL: put a git archive of the v3.2.0 tag of github.com/sandialabs/cross-sim there (git archive v3.2.0 --format=tar.gz --prefix=crosssim-3.2.0/ simulator pyproject.toml LICENSE.md readme.md)"
echo "$CROSSSIM_SHA256  $CROSSSIM_TARBALL" | sha256sum -c --quiet - || die "$CROSSSIM_TARBALL: checksum differs from the vendored v3.2.0 archive"

# --- venv with pinned torch -------------------------------------------------------------------------------
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
CONSTRAINTS="$VENV/constraints.txt"
echo "torch==$TORCH_VERSION" > "$CONSTRAINTS"
say "torch $TORCH_VERSION (CPU) + build tools"
$PIP install -q -c "$CONSTRAINTS" "torch==$TORCH_VERSION"
$PIP install -q -c "$CONSTRAINTS" numpy scipy setuptools wheel "cmake>=3.18" scikit-build pybind11 mypy ninja
say "memristive (editable)"
$PIP install -q -c "$CONSTRAINTS" -e .

# --- CrossSim (pure Python) -------------------------------------------------------------------------------
if ! "$VENV/bin/python" -c "import simulator, importlib.metadata as m; assert m.version('CrossSim') == '3.2.0'" 2>/dev/null; then
    say "CrossSim 3.2.0 from $CROSSSIM_TARBALL"
    $PIP install -q --no-build-isolation -c "$CONSTRAINTS" "$CROSSSIM_TARBALL"
fi

# --- aihwkit (C++ build against the pinned torch) ----------------------------------------------------------
if ! "$VENV/bin/python" -c "import importlib.metadata as m; assert m.version('aihwkit') == '$AIHWKIT_VERSION'; from aihwkit.simulator import rpu_base" 2>/dev/null; then
    say "aihwkit $AIHWKIT_VERSION from the PyPI sdist: compiling with $JOBS job(s) at nice $NICE (slow: 6-20 min)"
    log="$VENV/aihwkit-build.log"
    if ! PATH="$PWD/$VENV/bin:$PATH" MAX_JOBS=$JOBS CMAKE_BUILD_PARALLEL_LEVEL=$JOBS \
         nice -n "$NICE" $PIP install -v --no-build-isolation -c "$CONSTRAINTS" --no-binary aihwkit \
         "aihwkit==$AIHWKIT_VERSION" > "$log" 2>&1; then
        tail -30 "$log" >&2
        die "aihwkit build failed (full log: $log)"
    fi
fi

say "checking the three imports"
"$VENV/bin/python" - <<'EOF'
import importlib.metadata as m
import torch, memristive, simulator
from aihwkit.simulator import rpu_base  # the compiled extension
print(f"[anchors] ok: torch {torch.__version__}, aihwkit {m.version('aihwkit')}, CrossSim {m.version('CrossSim')}, "
      f"memristive {m.version('memristive')}")
EOF
say "run: $VENV/bin/python benchmarks/anchors/compare.py"
