# Two commands for a newcomer: `make sweep` (the main job) and `make test`.
# Every target builds .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA_DIR ?= ../shared/data
# The lock: exact versions with hashes for Linux x86-64 (requirements/py3.11.txt, py3.12.txt; `make lock`
# refreshes them). `uv` installs it when on PATH, else pip (--require-hashes either way).
PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
LOCK ?= requirements/py$(PYVER).txt
# uv when on PATH; else one bootstrapped from PyPI into ~/.cache/aesweep (about 10 s, once per machine),
# since pip takes about 6 times as long over the lock (BENCHMARKS.md); pip if that fails too.
UV_VERSION := 0.13.9
UV_HOME := $(HOME)/.cache/aesweep/uv-$(UV_VERSION)
ifndef UV
UV := $(or $(shell command -v uv 2>/dev/null),$(shell test -x $(UV_HOME)/bin/uv && echo $(UV_HOME)/bin/uv),$(shell \
	$(PYTHON) -m venv $(UV_HOME) >/dev/null 2>&1 && $(UV_HOME)/bin/pip install -q uv==$(UV_VERSION) >/dev/null 2>&1 \
	&& echo $(UV_HOME)/bin/uv))
endif
LOCK_PYTHONS := 3.11 3.12
LOCK_FLAGS = --python-platform x86_64-manylinux_2_28 --generate-hashes --quiet --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)

export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlflow.db

.PHONY: venv lock test test-slow sweep ui train train-frey train-mnist-test cluster-up cluster-down clean

venv: $(VENV)/.installed

# From the lock when there is one for this Python; otherwise (another Python) the ranges in pyproject.toml.
# Bytecode is compiled at install (pip does; uv only when asked): without it, and with PYTHONDONTWRITEBYTECODE set
# as in many containers, every process compiles TensorFlow, MLflow and Ray again: a trial's imports took 14 s, not 6.
$(VENV)/.installed: pyproject.toml $(wildcard $(LOCK))
ifneq ($(wildcard $(LOCK)),)
ifneq ($(UV),)
	$(UV) venv -q --seed --allow-existing --python $(PYTHON) $(VENV)
	$(UV) pip sync -q --python $(PY) --compile-bytecode --require-hashes $(LOCK)
	$(UV) pip install -q --python $(PY) --no-deps -e .
else
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip install -q --no-deps -e .
endif
else
	@echo "note: no lock for Python $(PYVER) ($(LOCK)): installing the ranges in pyproject.toml" >&2
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,server]'
endif
	touch $@

# Re-resolve the lock from pyproject.toml (needs uv: `pip install uv`; pins kept unless `make lock UPGRADE=1`),
# for every supported Python, and the GPU image's lock (deploy/Dockerfile.gpu).
lock:
	@test -n "$(UV)" || { echo "error: make lock needs uv on PATH (pip install uv)" >&2; exit 2; }
	for v in $(LOCK_PYTHONS); do \
		$(UV) pip compile pyproject.toml --extra dev --extra server --python-version $$v $(LOCK_FLAGS) \
			-o requirements/py$$v.txt || exit 1; done
	$(UV) pip compile pyproject.toml requirements/gpu.in --extra gpu --extra server --python-version 3.12 \
		$(LOCK_FLAGS) -o requirements/gpu-py3.12.txt

# The suite, but for the slowest tests (`make test-slow`, run by CI too; `pytest -m slow` lists them): the
# two-node Ray cluster (tests/test_cluster.py), the showcase sweep (tests/test_showcase.py), the killed-driver
# resume, the warm-start, PBT, repeats, two-workers-per-trial, retried-trial and all-trials-fail sweeps, the
# report's ASHA sweep, the benchmarks' --quick runs and the deploy tests that start servers. make test took
# 18 min on a fresh clone of the 2-core machine before the last five of these moved here (2026-11-28).
test: venv
	$(PY) -m pytest -q -m "not cluster and not slow"

test-slow: venv
	$(PY) -m pytest -q -m "cluster or slow"

# The main job: the MLproject's `main` entry point (a Ray Tune sweep of the VAE on digits).
sweep: venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/mlflow run . --env-manager local \
		--experiment-name aesweep-vae-digits $(if $(P),$(foreach p,$(P),-P $(p)))

ui: venv
	$(PY) -m tracking ui

train: venv
	$(PY) -m training --model vae --dataset digits --epochs 20 --out runs/vae-digits

train-frey: venv
	$(PY) -m training --model vae --dataset frey --data-dir $(DATA_DIR) --out runs/vae-frey

train-mnist-test: venv
	$(PY) -m training --model sae --dataset mnist-test --data-dir $(DATA_DIR) --out runs/sae-mnist-test

# A local cluster: a Ray head on 127.0.0.1 with token authentication and a tracking server beside it
# (tuning/cluster.py); it prints the RAY_ADDRESS and --tracking-uri to use. `make cluster-down` stops both.
cluster-up: venv
	$(PY) -m tuning.cluster up

cluster-down: venv
	$(PY) -m tuning.cluster down

clean:
	rm -rf runs .pytest_cache ray_results
