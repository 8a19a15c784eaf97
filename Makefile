# stepwatch: the two commands of the quick start, plus lint and bench.
# Every target creates (or reuses) .venv with python3 -m venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
CLI_STAMP := $(VENV)/.installed-cli
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck pytest bench fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(CLI_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[cli]'
	touch $(CLI_STAMP)

demo: $(CLI_STAMP)
	$(BIN)/stepwatch demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

fuzz: $(STAMP)
	$(BIN)/python -m pytest tests/test_fuzz.py --hypothesis-profile=fuzz --hypothesis-show-statistics -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_overhead.py
	$(BIN)/python benchmarks/bench_health.py
	$(BIN)/python benchmarks/bench_sse.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
