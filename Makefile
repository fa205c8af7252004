# Wayline. `make run` serves the embedded default; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
CHAOS_ARGS ?=
PROFILE_ARGS ?=

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

# Streaming-ingestion benchmark (bench/README.md): SQLite, plus PostgreSQL when WAYLINE_BENCH_POSTGRES_URL
# (or WAYLINE_TEST_POSTGRES_URL) is set. The JSON lands in bench/results/ingest.json only if the run passed.
# Then the event backbone, the profile store, and segmentation (1M generated profiles) (1M profiles on SQLite: several minutes; PROFILE_ARGS
# adds options, e.g. PROFILE_ARGS='--profiles 200000').
bench: venv
	@mkdir -p bench/results
	$(BIN)/wayline bench ingest --json > bench/results/ingest.json.tmp
	@mv bench/results/ingest.json.tmp bench/results/ingest.json
	@cat bench/results/ingest.json
	$(BIN)/wayline bench backbone --json > bench/results/backbone.json.tmp
	@mv bench/results/backbone.json.tmp bench/results/backbone.json
	@cat bench/results/backbone.json
	$(BIN)/wayline bench profile --json $(PROFILE_ARGS) > bench/results/profile.json.tmp
	@mv bench/results/profile.json.tmp bench/results/profile.json
	@cat bench/results/profile.json
	$(BIN)/wayline bench segments --json > bench/results/segments.json.tmp
	@mv bench/results/segments.json.tmp bench/results/segments.json
	@cat bench/results/segments.json

# The API fuzzed from its OpenAPI document (tests/test_api_fuzz.py), full size: 200 examples per operation,
# on SQLite and PostgreSQL (WAYLINE_TEST_POSTGRES_URL, else a local server; skipped without one). FUZZ_ARGS
# adds pytest options.
FUZZ_ARGS ?=
fuzz: venv
	WAYLINE_FUZZ_EXAMPLES=$${WAYLINE_FUZZ_EXAMPLES:-200} WAYLINE_FUZZ_DATABASES=sqlite,postgres \
		$(BIN)/python -m pytest -q tests/test_api_fuzz.py $(FUZZ_ARGS)

# The crash harness, full size (docs/backbone.md): 25 rounds of SIGKILL on SQLite, and on PostgreSQL +
# NATS when a server answers (WAYLINE_TEST_POSTGRES_URL, else 127.0.0.1:5432). One JSON object on stdout.
chaos: venv
	$(BIN)/python -m tests.chaos --rounds 25 $(CHAOS_ARGS)

lint: venv
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) var .pytest_cache
