# Kairos: `make run` (the main job, on the dev stage) and `make test` (every check). Both set
# themselves up: a virtualenv in .venv/ and the pinned npm packages (CDK CLI, dynalite).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAGE ?= dev
CDK := npx --no-install cdk
CDK_OUT := cdk.out

export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20,22
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 20,22
export PYTHONDONTWRITEBYTECODE := 1

PY_SOURCES := app.py kairos kairos_build kairos_stack lambdas/python/kairos_runtime $(wildcard bench)
TYPED_SOURCES := app.py kairos kairos_build kairos_stack lambdas/python/kairos_runtime

.PHONY: help setup run synth validate lint typecheck test test-python test-node cfn-lint lock schema contract clean bench deploy-smoke

help:
	@echo "make run    - set up, validate, synthesize every stage, run the $(STAGE) stage's enabled tasks locally"
	@echo "make test   - set up, then ruff, mypy, pytest, node tests and cfn-lint"

$(BIN)/.installed: requirements.txt requirements-dev.txt lambdas/python/requirements.txt lambdas/python/requirements-crawler.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(BIN)/.installed node_modules/.installed

validate: setup
	$(BIN)/kairos validate

# One cloud assembly per stage: cdk.out/<stage>/kairos-<stage>.template.json
synth: setup
	for stage in $$($(BIN)/kairos stages); do \
	  echo "synth: stage $$stage"; \
	  $(CDK) synth --quiet -c stage=$$stage -o $(CDK_OUT)/$$stage; \
	done

run: validate synth
	$(BIN)/kairos run-stage --stage $(STAGE) --template $(CDK_OUT)/$(STAGE)/kairos-$(STAGE).template.json

lint: setup
	$(BIN)/ruff check $(PY_SOURCES) tests
	$(BIN)/ruff format --check $(PY_SOURCES) tests
	# The Node runtime's JSDoc types, checked (jsconfig.json), not decoration.
	npx --no-install tsc -p jsconfig.json

typecheck: setup
	$(BIN)/mypy $(TYPED_SOURCES)

# tests/deploy runs in its own target below (deploy-smoke), once.
test-python: setup
	$(BIN)/pytest --ignore=tests/deploy

# The real CDK CLI bootstraps, deploys, diffs and updates the dev stage on a moto server on
# localhost; the assets are bundled from .bundle-cache/ (built on first use: pip reaches PyPI).
deploy-smoke: setup
	$(BIN)/pytest tests/deploy

test-node: setup
	node --test lambdas/node/test/

# W3005 (redundant DependsOn on the function's role) is emitted by CDK by design.
cfn-lint: synth
	$(BIN)/cfn-lint --ignore-checks W3005 -- $(CDK_OUT)/*/kairos-*.template.json

test: lint typecheck test-python deploy-smoke test-node cfn-lint

# Sizes and cold-import times of the Lambda function groups; writes bench/RESULTS.md.
bench: setup
	$(BIN)/python bench/packaging_bench.py --write bench/RESULTS.md

# The Python versions are the Lambda runtimes kairos/config.py accepts (one fact, read from there).
LAMBDA_PYTHONS = from kairos.config import PYTHON_RUNTIMES; print(*("--python " + r.removeprefix("python") for r in PYTHON_RUNTIMES))

lock: setup
	$(BIN)/python -m kairos_build --root . $$($(BIN)/python -c '$(LAMBDA_PYTHONS)')

schema: setup
	$(BIN)/kairos schema

# The constants the Node runtime reads (lambdas/node/contract.json), from kairos_runtime's own.
contract: setup
	$(BIN)/python -m kairos_runtime.contract

clean:
	rm -rf $(CDK_OUT) .kairos .pytest_cache .mypy_cache .ruff_cache
