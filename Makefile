.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt
CORE := $(VENV)/.installed-core
DEV := $(VENV)/.installed-dev
SPARK := $(VENV)/.installed-spark
POSTGRES_EXTRA := $(VENV)/.installed-postgres
DEMO := data/demo
OUT ?= out/demo
PYTEST := $(BIN)/python -m pytest -q
CHROMIUM := $(shell command -v chromium || command -v chromium-browser)
PG_INITDB := $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb))

.PHONY: help install install-dev install-spark install-postgres browser postgres run test \
	test-all test-spark test-browser test-postgres lint format bench serve demo clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-16s %s\n", $$1, $$2}'

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip

$(CORE): pyproject.toml constraints.txt | $(VENV)/bin/python
	@echo "installing the core into $(VENV) (pinned by constraints.txt) ..."
	@$(PIP) -e .
	@touch $@

$(DEV): $(CORE)
	@echo "installing the test and lint tools (pytest, ruff) ..."
	@$(PIP) -e '.[dev]'
	@touch $@

$(SPARK): $(CORE)
	@echo "installing PySpark (about 470 MB; Spark also needs Java 17) ..."
	@$(PIP) -e '.[spark]'
	@touch $@

$(POSTGRES_EXTRA): $(CORE)
	@echo "installing the PostgreSQL driver (ibis-framework[postgres], psycopg) ..."
	@$(PIP) -e '.[postgres]'
	@touch $@

install: $(CORE) ## Create .venv inside the repository and install the core (pinned versions)

install-dev: $(DEV) ## The core plus the test and lint tools

install-spark: $(SPARK) ## Add PySpark (engine: spark); its tests skip without it

install-postgres: $(POSTGRES_EXTRA) ## Add the PostgreSQL driver (data.url: postgres://...)

postgres: ## Install Debian's PostgreSQL server for the data.url test (Debian, as root)
	@if [ -n "$(PG_INITDB)" ]; then echo "postgresql: $(dir $(PG_INITDB))"; \
	elif [ "$$(id -u)" = 0 ]; then echo "installing postgresql (the data.url test) ..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else echo "postgresql is missing: the data.url test will skip (sudo apt-get install postgresql)"; fi

browser: ## Install headless Chromium for the report's browser test (Debian, as root)
	@if [ -n "$(CHROMIUM)" ]; then echo "chromium: $(CHROMIUM)"; \
	elif [ "$$(id -u)" = 0 ]; then echo "installing chromium (the report's browser test) ..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium is missing: the browser test will skip (sudo apt-get install chromium)"; fi

$(DEMO)/events.parquet: | $(CORE)
	$(BIN)/milestones demo --out $(DEMO)

demo: $(DEMO)/events.parquet ## Generate the demo data into data/demo (once)

run: install demo ## Run the whole pipeline on the demo data (configs/demo.yaml)
	$(BIN)/milestones run --config configs/demo.yaml --out $(OUT)

serve: install demo ## Serve the retrain (monthly) and score (daily) schedules of configs/demo.yaml
	$(BIN)/milestones serve --config configs/demo.yaml --out $(OUT)

test: install-dev ## Run the fast tier of tests (a few minutes)
	$(PYTEST)

test-all: install-dev install-spark install-postgres browser postgres ## Run every test: the fast tier, then the slow one (Spark, servers, whole runs)
	$(PYTEST)
	$(PYTEST) -m slow

test-spark: install-dev install-spark ## Run only the Spark tests
	$(PYTEST) -m spark

test-browser: install-dev browser ## Run only the report's browser test
	$(PYTEST) -m browser

test-postgres: install-dev install-postgres postgres ## Run only the PostgreSQL (data.url) test
	$(PYTEST) -m postgres

lint: install-dev ## ruff: lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev ## ruff: fix what can be fixed and format the code
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install ## Run the benchmarks in bench/ (feature tables against SQL and pandas baselines)
	$(BIN)/python bench/run.py

clean: ## Remove generated data, outputs, the MLflow store and Prefect's home (keeps .venv)
	rm -rf data out mlruns .prefect .pytest_cache
