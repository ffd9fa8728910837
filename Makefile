.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := data/demo
OUT ?= out/demo

.PHONY: help install run test test-all bench serve demo clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-10s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv inside the repository and install the project (pinned versions)
	@command -v chromium >/dev/null || { if [ "$$(id -u)" = 0 ]; then \
		echo "installing chromium (the report's browser test) ..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else echo "note: chromium is missing, so the report's browser test is skipped (apt-get install chromium)"; fi; }

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing into $(VENV) (pinned by constraints.txt) ..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[spark]'
	@touch $(STAMP)

$(DEMO)/events.parquet: | $(STAMP)
	$(BIN)/milestones demo --out $(DEMO)

demo: $(DEMO)/events.parquet ## Generate the demo data into data/demo (once)

run: install demo ## Run the whole pipeline on the demo data (configs/demo.yaml)
	$(BIN)/milestones run --config configs/demo.yaml --out $(OUT)

serve: install demo ## Serve the retrain (monthly) and score (daily) schedules of configs/demo.yaml
	$(BIN)/milestones serve --config configs/demo.yaml --out $(OUT)

test: install ## Run the tests (the default, fast tier)
	$(BIN)/python -m pytest -q

test-all: install ## Run every test, slow ones included
	$(BIN)/python -m pytest -q -m ""

bench: install ## Run the benchmarks in bench/ (feature tables against SQL and pandas baselines)
	$(BIN)/python bench/run.py

clean: ## Remove generated data, outputs, the MLflow store and Prefect's home (keeps .venv)
	rm -rf data out mlruns .prefect .pytest_cache
