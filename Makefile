# `make run` and `make test` work on a fresh machine: they create .venv and install the project first.
# `make run` installs the service and its runtime dependencies only; `make test` adds the
# development tools (the `dev` extra).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
# The match index modules compiled in place by setup.py (mypyc), rebuilt when a source changes:
# an extension module older than its source would silently run the old code.
NATIVE := $(VENV)/.native
# What setup.py needs to compile them (pyproject's [build-system] requires, mypy among them),
# kept outside .venv: the service never imports them.
TOOLS := build/tools

.PHONY: run test check lint types demo poll bench-match native clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# Installed as Python here: $(NATIVE) compiles the match index next, with the venv's types.
	AGGREGATOR_PURE_PYTHON=1 $(BIN)/pip install --quiet -e .
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	AGGREGATOR_PURE_PYTHON=1 $(BIN)/pip install --quiet -e '.[dev]'
	touch $(DEV_STAMP)

$(TOOLS)/.installed: pyproject.toml
	$(BIN)/pip install --quiet --upgrade --target $(TOOLS) $$($(BIN)/python -c \
		"import tomllib; print(' '.join(tomllib.load(open('pyproject.toml', 'rb'))['build-system']['requires']))")
	touch $@

$(NATIVE): $(STAMP) $(TOOLS)/.installed setup.py $(wildcard aggregator/match/*.py)
	PYTHONPATH=$(TOOLS) $(BIN)/python setup.py --quiet build_ext --inplace
	# A rebuild whose C text did not change copies the earlier build with its old times.
	find aggregator/match -name '*.so' -exec touch {} +
	touch $(NATIVE)

native: $(NATIVE)

run: $(NATIVE)
	$(BIN)/aggregator run

poll: $(NATIVE)
	$(BIN)/aggregator poll

demo: $(NATIVE)
	$(BIN)/aggregator demo

test: $(NATIVE) $(DEV_STAMP) lint types
	$(BIN)/pytest -q

lint: $(DEV_STAMP)
	$(BIN)/ruff check aggregator tests benchmarks scripts
	$(BIN)/ruff format --check aggregator tests benchmarks scripts

types: $(DEV_STAMP)
	$(BIN)/mypy --strict aggregator

bench-match: $(NATIVE)
	$(BIN)/python -m benchmarks.match

clean:
	rm -rf $(VENV) build *.egg-info aggregator/match/*.so
