# memristive: two commands.  `make demo` sets everything up and runs the main job; `make test` sets up and tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export MEMRISTIVE_DATA ?= $(CURDIR)/data
export PYBAMM_DISABLE_TELEMETRY := true

.PHONY: demo test test-slow setup data system-deps bench clean help

help:
	@echo "make demo   - set up (.venv, CPU torch, data) and run 'memristive run defects'"
	@echo "make test   - set up and run the test suite"
	@echo "make bench  - run the benchmark scripts"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch==2.13.0 first (CPU build from this machine's disk) so nothing pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,audio,sweep,battery]'
	touch $@

setup: $(VENV)/.installed

# Debian packages used offline: Fashion-MNIST, ngspice (circuit checks), espeak-ng/sox and OpenSFX (audio).
system-deps:
	@missing=""; \
	for p in dataset-fashion-mnist ngspice espeak-ng sox openttd-opensfx; do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  ($$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing >/dev/null) || \
	    echo "warning: could not install$$missing (tests that need them will say so)"; \
	fi

$(MEMRISTIVE_DATA)/.fetched: | $(VENV)/.installed
	mkdir -p $(MEMRISTIVE_DATA)
	$(BIN)/memristive data fetch mnist fashion-mnist
	touch $@

data: system-deps $(MEMRISTIVE_DATA)/.fetched

demo: setup data
	$(BIN)/memristive run defects

test: setup data
	$(BIN)/python -m pytest -q

test-slow: setup data
	$(BIN)/python -m pytest -q -m slow

bench: setup data
	$(BIN)/python benchmarks/bench_inference.py --threads 1
	$(BIN)/python benchmarks/bench_dtga.py
	$(BIN)/python benchmarks/bench_gru.py
	$(BIN)/python benchmarks/bench_calibration.py

clean:
	rm -rf $(VENV) runs .pytest_cache

# Optional anchor simulators (aihwkit 1.2.0 source build + CrossSim 3.2) in .venv-anchors; never needed by test/CI.
.PHONY: anchors
anchors:
	PYTHON=$(PYTHON) bash benchmarks/anchors/build_env.sh
	@echo "then: .venv-anchors/bin/python benchmarks/anchors/compare.py"
