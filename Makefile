# Two entry points for a fresh machine (only Python >= 3.11 and make needed):
#   make demo   sets everything up and runs the main job
#   make test   sets everything up and runs every check and test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CODE := ticketing commands projections replay

.PHONY: demo test check lint types pytest bench bench-smoke clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,postgres]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ticketing demo

test: check

check: lint types pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

types: $(STAMP)
	$(BIN)/mypy $(CODE)

pytest: $(STAMP)
	$(BIN)/pytest

BENCHES := command_path pipeline projector_catch_up queue_latency kpi_latency replay_audit import sla cli

bench: $(STAMP)
	for b in $(BENCHES); do $(BIN)/python scripts/bench/$$b.py || exit 1; done

bench-smoke: $(STAMP)
	for b in $(BENCHES); do $(BIN)/python scripts/bench/$$b.py --smoke > /dev/null || exit 1; done

clean:
	rm -rf $(VENV) .ticketing .pytest_cache .mypy_cache .ruff_cache
