# The two commands a new user needs: `make demo` and `make test`.
# Both create .venv when it is missing and reuse it when present; the install is redone only
# when pyproject.toml changes (the stamp file records the last install).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_DIR ?= work/demo
PYTEST_ARGS ?=

.PHONY: demo test test-fast bench clean help

help:
	@echo "make demo   generate data and run the main job on it"
	@echo "make test   run the test suite"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/churnclv generate --customers 5000 --seed 7 --out $(DEMO_DIR)/data
	$(VENV)/bin/churnclv validate --data $(DEMO_DIR)/data --out $(DEMO_DIR)/validated

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow and not integration" $(PYTEST_ARGS)

clean:
	rm -rf work build dist .pytest_cache .hypothesis
