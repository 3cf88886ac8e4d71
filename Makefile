# `make run` and `make test` work on a fresh machine: they create .venv and install the project first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check lint types demo poll bench-match clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/aggregator run

poll: $(STAMP)
	$(BIN)/aggregator poll

demo: $(STAMP)
	$(BIN)/aggregator demo

test: $(STAMP) lint types
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check aggregator tests benchmarks
	$(BIN)/ruff format --check aggregator tests benchmarks

types: $(STAMP)
	$(BIN)/mypy --strict aggregator

bench-match: $(STAMP)
	$(BIN)/python -m benchmarks.match

clean:
	rm -rf $(VENV) build *.egg-info
