# The two commands a new user needs: `make demo` and `make test`.
# Both create .venv when it is missing and reuse it when present; the install is redone only
# when pyproject.toml changes (the stamp file records the last install).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_DIR ?= work/demo
PYTEST_ARGS ?=

.PHONY: demo test test-fast bench clean help lint linktree lint-ruff lint-format mypy lint-imports

help:
	@echo "make demo   generate data and run the main job on it"
	@echo "make test   run the test suite"
	@echo "make lint   ruff, ruff format --check, mypy and the import contracts (every check runs; fails if any fails)"
	@echo "make bench  every bench at a small size (minutes), then one summary table (results in $(BENCH_DIR)/results)"

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,spark]"
	@touch $(STAMP)

DEMO_AS_OF ?= 2025-10-02
DEMO_CUSTOMERS ?= 4000
DEMO_MLFLOW := sqlite:///$(DEMO_DIR)/mlruns/mlflow.db
CLI := $(VENV)/bin/churnclv

demo: $(STAMP)
	@echo "== 1/5 generate a synthetic shop ($(DEMO_CUSTOMERS) customers, with engagement events)"
	$(CLI) generate --customers $(DEMO_CUSTOMERS) --seed 7 --out $(DEMO_DIR)/data
	@echo "== 2/5 validate it (clean tables + rejects)"
	$(CLI) validate --data $(DEMO_DIR)/data --out $(DEMO_DIR)/validated
	@echo "== 3/5 backtest, select, train and register a model as of $(DEMO_AS_OF)"
	$(CLI) train --data $(DEMO_DIR)/validated/clean --trusted --as-of $(DEMO_AS_OF) --tracking-uri $(DEMO_MLFLOW)
	$(CLI) models list --tracking-uri $(DEMO_MLFLOW)
	@echo "== 4/5 score the whole base as of $(DEMO_AS_OF) with the champion"
	$(CLI) score-batch --data $(DEMO_DIR)/validated/clean --trusted --as-of $(DEMO_AS_OF) \
		--out $(DEMO_DIR)/scores --tracking-uri $(DEMO_MLFLOW)
	@echo "== 5/5 the HTTP service for the CRM:"
	@echo "   CHURNCLV_API_KEY=demo-key-change-me-0123 $(CLI) serve --tracking-uri $(DEMO_MLFLOW) --snapshot $(DEMO_DIR)/scores"
	@echo "   then: curl -X POST -H 'X-API-Key: demo-key-change-me-0123' http://127.0.0.1:3000/model_info"
	@echo "   MLflow UI: $(VENV)/bin/mlflow ui --backend-store-uri $(DEMO_MLFLOW)"

# Two pytest runs, each failing on pytest's exit 5 (no tests collected): the Spark tests run
# alone, because Spark's Java gateway, forked from a process in which the in-process BentoML service
# has run, segfaults (tests/conftest.py skips them in a session that selects other tests too).
# The rest runs on TEST_WORKERS processes (pytest-xdist), one test file at a time per process: a
# file's module fixtures (trained models, stores, servers) are built once, and every store, port and
# BENTOML_HOME is a temporary one per test or fixture. TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -m "not spark" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)
	$(PY) -m pytest -m spark $(PYTEST_ARGS)

# The unit tests on two processes (pytest-xdist, tests dealt out one by one: balances better than
# per file), with at most 5 examples per property test (the "fast" profile of tests/conftest.py) and
# without the plugins only the integration tests use (nbmake, schemathesis, anyio: ~1 s per worker).
test-fast: $(STAMP)
	$(PY) -m pytest -n 2 --dist load -p no:nbmake -p no:schemathesis -p no:anyio --hypothesis-profile=fast -m "not slow and not integration" $(PYTEST_ARGS)

# Every bench at a small size (bench/suite.py holds each one's small options), then one table of
# their JSON results; worlds and models stay cached in $(BENCH_DIR)/cache for the next run.
BENCH_DIR ?= work/bench-small

bench: $(STAMP)
	$(PY) bench/suite.py --out $(BENCH_DIR)
	$(PY) bench/summary.py $(BENCH_DIR)/results

clean:
	rm -rf work build dist .pytest_cache .hypothesis

# Quality gates, run by .ci/run before the tests: `make lint` must pass on the whole tree.
LINT_PATHS := src training serving tests bench
LINKTREE := build/linktree/churnclv

# The editable install is an import hook (MAPPING to src/, training/, serving/) that grimp and mypy
# cannot follow, so they read the package from a tree of symlinks. Rebuilt every time: new modules
# appear in it at once; idempotent (no removal of the tree), so two checks can run at once.
linktree:
	@mkdir -p $(LINKTREE)
	@for entry in src/*; do \
		name=$${entry##*/}; \
		[ "$$name" = __pycache__ ] || ln -sfn "$(CURDIR)/$$entry" "$(LINKTREE)/$$name"; \
	done
	@ln -sfn "$(CURDIR)/training" "$(LINKTREE)/training"
	@ln -sfn "$(CURDIR)/serving" "$(LINKTREE)/serving"
	@find $(LINKTREE) -maxdepth 1 -xtype l -delete  # modules that were removed or renamed

lint-ruff:
	$(VENV)/bin/ruff check $(LINT_PATHS)

lint-format:
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

mypy: linktree
	$(VENV)/bin/mypy

lint-imports: linktree
	PYTHONPATH=build/linktree $(VENV)/bin/lint-imports

# Runs every check, so one run reports every finding; fails when any check fails.
lint: $(STAMP) linktree
	@failed=""; \
	for check in lint-ruff lint-format mypy lint-imports; do \
		$(MAKE) --no-print-directory $$check || failed="$$failed $$check"; \
	done; \
	if [ -n "$$failed" ]; then echo "make lint: failed:$$failed"; exit 1; fi
