# Two commands: `make run` (set up and start the service on its embedded default)
# and `make test` (set up and run the whole test suite). Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test bench clean

run: $(VENV)/.deps-run
	$(BIN)/python -m overdrive.app

test: $(VENV)/.deps-dev
	$(BIN)/python -m pytest

bench: $(VENV)/.deps-dev
	$(BIN)/python -m benchmarks.bench_foundation

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The typed client (client/, its own package) is installed editable next to the service: the
# service's HTTP tools (ingest, replay, load benchmarks) use it; its dependencies are in requirements.txt.
$(VENV)/.deps-run: requirements.txt pyproject.toml client/pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e ./client
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.deps-dev: requirements.txt requirements-dev.txt pyproject.toml client/pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e ./client
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $@ $(VENV)/.deps-run

clean:
	rm -rf $(VENV) overdrive-data
