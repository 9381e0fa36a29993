# The README's commands. Each installs what it needs on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test fuzz bench lint docs system-deps nautobot-env clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel setuptools
	$(BIN)/pip install -q -e '.[postgres,distributed,lab,dev,docs,sot]'
	# fake-switches pins Twisted<17 (does not build on 3.11); its deps come from the 'lab' extra.
	$(BIN)/pip install -q --no-deps 'fake-switches==1.5.0'
	touch $(STAMP)

system-deps:
	./scripts/system-deps.sh

demo: $(STAMP) system-deps
	$(BIN)/python scripts/demo.py

# The real Nautobot server of tests/inventory/test_sync_nautobot.py lives in its own venv
# (.venv-nautobot: Nautobot pins its own Django stack). Built here, before pytest, not
# from inside a test worker; a no-op once it exists.
nautobot-env:
	./scripts/nautobot-env.sh .venv-nautobot

test: $(STAMP) system-deps nautobot-env
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

# The property-based suite with many more examples (tests/fuzz; `make test` runs a bounded,
# derandomized share of it). Failures found are replayed first from .hypothesis/.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests/fuzz -n 2 --dist loadgroup $(PYTEST_ARGS)

bench: $(STAMP) system-deps
	$(BIN)/python bench/run_all.py

# The site in site/; --strict: a broken link or anchor, or a docstring mkdocstrings cannot
# read, fails the build. `make test` builds it too (tests/test_docs_build.py).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

clean:
	rm -rf $(VENV) .opskit demo-workspace site .hypothesis
