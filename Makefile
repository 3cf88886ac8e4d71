# `make run` and `make test` work on a fresh machine: they create .venv and install the project first.
# `make run` installs the service and its runtime dependencies only; `make test` adds the
# development tools (the `dev` extra).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CREATED := $(VENV)/.created
STAMP := $(VENV)/.installed
BYTECODE := $(VENV)/.bytecode
DEV_STAMP := $(VENV)/.installed-dev
# The match index modules compiled in place by setup.py (mypyc), rebuilt when a source changes:
# an extension module older than its source would silently run the old code.
NATIVE := $(VENV)/.native
# What setup.py needs to compile them (pyproject's [build-system] requires, mypy among them),
# kept outside .venv: the service never imports them.
TOOLS := build/tools

.PHONY: run test check lint types demo poll bench-match native installs clean

PIP := $(BIN)/pip --disable-pip-version-check

$(CREATED):
	$(PYTHON) -m venv $(VENV)
	# The pip that venv brings can be years old, and slower: a fresh `make run` took 54 s to
	# a healthy service with this machine's pip 23.2, 45 s with the current one (one run each).
	$(PIP) install --quiet --upgrade pip
	touch $(CREATED)

$(STAMP): pyproject.toml $(CREATED)
	# Installed as Python here: $(NATIVE) compiles the match index next, with the venv's types.
	# Without bytecode: pip writes it one file after another (10 of its 23 s); $(BYTECODE)
	# writes it while the match index compiles.
	AGGREGATOR_PURE_PYTHON=1 $(PIP) install --quiet --no-compile -e .
	touch $(STAMP)

# Bytecode of every installed module, so that no start of the service parses them again (a
# service whose install folder it cannot write to would, at every start). -qq: a dependency's
# file that does not compile (a test written for another Python) is pip's business, as when
# pip compiles.
$(BYTECODE): $(STAMP)
	$(BIN)/python -m compileall -qq $$($(BIN)/python -c \
		"import sysconfig; print(sysconfig.get_paths()['purelib'])") || true
	touch $(BYTECODE)

$(DEV_STAMP): $(STAMP)
	AGGREGATOR_PURE_PYTHON=1 $(PIP) install --quiet -e '.[dev]'
	touch $(DEV_STAMP)

$(TOOLS)/.installed: pyproject.toml $(CREATED)
	$(PIP) install --quiet --upgrade --target $(TOOLS) $$($(BIN)/python -c \
		"import tomllib; print(' '.join(tomllib.load(open('pyproject.toml', 'rb'))['build-system']['requires']))")
	touch $@

# On two cores at once: the service's install beside the compile tools' install, then the
# match index compile beside the bytecode (`make run` on a fresh clone: 45-55 s before, one
# step after another).
installs:
	@$(MAKE) --no-print-directory --jobs=2 --output-sync=target $(NATIVE) $(BYTECODE)

$(NATIVE): $(STAMP) $(TOOLS)/.installed setup.py $(wildcard aggregator/match/*.py)
	PYTHONPATH=$(TOOLS) $(BIN)/python setup.py --quiet build_ext --inplace --parallel 2
	# A rebuild whose C text did not change copies the earlier build with its old times.
	find aggregator/match -name '*.so' -exec touch {} +
	# Stamped only when compiled: a compile that fell back to pure Python is tried again by
	# the next make, rather than leaving the sources interpreted until one of them changes.
	if ls aggregator/match/*.so >/dev/null 2>&1; then touch $(NATIVE); fi

native: $(NATIVE)

run: installs $(NATIVE)
	$(BIN)/aggregator run

poll: $(NATIVE)
	$(BIN)/aggregator poll

demo: $(NATIVE)
	$(BIN)/aggregator demo

test: installs $(NATIVE) $(DEV_STAMP) lint types
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
