# Two commands for a newcomer: `make sweep` (the main job) and `make test`.
# Every target builds .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA_DIR ?= ../shared/data

export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlflow.db

.PHONY: venv test test-slow sweep ui train train-frey train-mnist-test clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# The suite, but for the slowest tests (`make test-slow`, run by CI too): the two-node Ray cluster
# (tests/test_cluster.py), the showcase sweep (tests/test_showcase.py) and the killed-driver resume.
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

clean:
	rm -rf runs .pytest_cache ray_results
