# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-faults lint bench bench-quick profile clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[server,dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/audit serve

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

# The fault suite (tests/faults, README "Fault suite"): kill -9, disk full, locks, a
# PostgreSQL restart, slow clients, hostile input. Needs root for tmpfs and a private
# PostgreSQL cluster (those cases skip, saying why, without it); prints a table.
test-faults: $(STAMP)
	AUDIT_FAULT_SUITE=1 $(BIN)/python -m pytest tests/faults -rsx $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy --strict src

# Benchmarks against baselines measured in the same run; results also in bench-results/.
# bench: the full run (~10 min per backend); bench-quick: < 2 min for CI, judges no speed
# but fails on any non-2xx answer or lost acknowledged event. BENCH_ARGS: see bench/README.md.
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)
	$(BIN)/python -m bench.tree
	$(BIN)/python -m bench.inprocess

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick $(BENCH_ARGS)
	$(BIN)/python -m bench.tree --quick
	$(BIN)/python -m bench.inprocess --rounds 3

# py-spy profiles of the server under load, by function and by layer (bench/README.md).
# py-spy is no dependency: pip install py-spy. PROFILE_ARGS: a scenario and options.
PROFILE_ARGS ?= single
profile: $(STAMP)
	$(BIN)/python -m bench.profile $(PROFILE_ARGS)

clean:
	rm -rf $(VENV) build src/*.egg-info
