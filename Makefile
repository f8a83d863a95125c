# planctl — developer and demo entry points. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=
# Parallel test workers (pytest-xdist): four, twice the cores of the 2-core machine the suite
# is sized for, because much of a test's time is spent waiting on a child process, a server
# or PostgreSQL (bench/RESULTS.md, "Test suite"). Each file runs on one worker, so a module's
# servers and sample databases are built once. Files go out in the order tests/conftest.py
# gives them (files with `slow` tests first), not xdist's most-tests-first.
TEST_WORKERS ?= 4

.PHONY: help install demo test lint bench clean

help:
	@echo "make install  create $(VENV) and install planctl with its test/dev extras"
	@echo "make demo     install, migrate, seed demo data and show db-info (SQLite default)"
	@echo "make test     run the test suite on SQLite and PostgreSQL"
	@echo "make lint     ruff and mypy"
	@echo "make bench    run the benchmarks under bench/ (writes bench/RESULTS.md)"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: install
	$(BIN)/planctl db-upgrade
	$(BIN)/planctl db-seed --if-empty
	$(BIN)/planctl db-info

test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests bench migrations/env.py
	$(BIN)/mypy

bench: install
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/run.py
	$(BIN)/python bench/export.py
	$(BIN)/python bench/backup.py
	$(BIN)/python bench/incremental.py
	$(BIN)/python bench/sync.py
	$(BIN)/python bench/offsite.py

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache
