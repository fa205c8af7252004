# Wayline. `make run` serves the embedded default; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv run test bench fuzz chaos lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

run: venv
	$(BIN)/wayline run

test: venv
	$(BIN)/python -m pytest -n 2 -q $(PYTEST_ARGS)

bench: venv
	@mkdir -p bench/results
	$(BIN)/wayline bench ingest --json | tee bench/results/ingest.json

lint: venv
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) var .pytest_cache
