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
TYPED_SOURCES := app.py kairos kairos_build kairos_stack lambdas/python/kairos_runtime tests

.PHONY: help setup run synth validate lint typecheck test test-python test-node cfn-lint lock schema contract clean bench deploy-smoke

# `make help` reads this file: every target is a line `name: [prerequisites] ## what it does`, so a
# new target is listed as soon as it exists (tests/unit/test_makefile.py holds each to a description).
help: ## list every target and what it does
	@awk 'match($$0, /^[a-z][a-z0-9-]*:([^=]|$$)/) { \
	  name = $$0; sub(/:.*/, "", name); at = index($$0, "## "); \
	  text = at ? substr($$0, at + 3) : "(no description: end its line with ## and one)"; \
	  printf "make %-13s %s\n", name, text }' $(firstword $(MAKEFILE_LIST))

$(BIN)/.installed: requirements.txt requirements-dev.txt lambdas/python/requirements.txt lambdas/python/requirements-crawler.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(BIN)/.installed node_modules/.installed ## create .venv and node_modules (pinned versions)

validate: setup ## check tasks.yaml: every problem at its line, with a way out
	$(BIN)/kairos validate

# One cloud assembly per stage: cdk.out/<stage>/kairos-<stage>.template.json
synth: setup ## synthesize every stage into cdk.out/<stage>/
	for stage in $$($(BIN)/kairos stages); do \
	  echo "synth: stage $$stage"; \
	  $(CDK) synth --quiet -c stage=$$stage -o $(CDK_OUT)/$$stage; \
	done

run: validate synth ## validate, synth, run STAGE=dev's enabled tasks once, locally
	$(BIN)/kairos run-stage --stage $(STAGE) --template $(CDK_OUT)/$(STAGE)/kairos-$(STAGE).template.json

lint: setup ## ruff (check and format), tsc on the Node runtime's JSDoc
	$(BIN)/ruff check $(PY_SOURCES) tests
	$(BIN)/ruff format --check $(PY_SOURCES) tests
	# The Node runtime's JSDoc types, checked (jsconfig.json), not decoration.
	npx --no-install tsc -p jsconfig.json

typecheck: setup ## mypy strict on the app, stack, build and runtime
	$(BIN)/mypy $(TYPED_SOURCES)

# tests/deploy runs in its own target below (deploy-smoke), once.
test-python: setup ## pytest, without the deploy smoke
	$(BIN)/pytest --ignore=tests/deploy

# The real CDK CLI bootstraps, deploys, diffs and updates the dev stage on a moto server on
# localhost; the assets are bundled from .bundle-cache/ (built on first use: pip reaches PyPI).
deploy-smoke: setup ## deploy the dev stage to a local moto server (real CDK CLI)
	$(BIN)/pytest tests/deploy

test-node: setup ## the Node runtime's tests (node --test)
	node --test lambdas/node/test/

# W3005 (redundant DependsOn on the function's role) is emitted by CDK by design.
cfn-lint: synth ## cfn-lint on every synthesized template
	$(BIN)/cfn-lint --ignore-checks W3005 -- $(CDK_OUT)/*/kairos-*.template.json

test: lint typecheck test-python deploy-smoke test-node cfn-lint ## every check: lint, typecheck, pytest, smoke, node, cfn-lint

# Sizes and cold-import times of the Lambda function groups; writes bench/RESULTS.md.
bench: setup ## sizes and cold-import times of the function groups
	$(BIN)/python bench/packaging_bench.py --write bench/RESULTS.md

# The Python versions are the Lambda runtimes kairos/config.py accepts (one fact, read from there).
LAMBDA_PYTHONS = from kairos.config import PYTHON_RUNTIMES; print(*("--python " + r.removeprefix("python") for r in PYTHON_RUNTIMES))

lock: setup ## re-lock the Lambda dependency groups for every runtime
	$(BIN)/python -m kairos_build --root . $$($(BIN)/python -c '$(LAMBDA_PYTHONS)')

schema: setup ## regenerate schemas/tasks.schema.json from the models
	$(BIN)/kairos schema

# The constants the Node runtime reads (lambdas/node/contract.json), from kairos_runtime's own.
contract: setup ## regenerate lambdas/node/contract.json from kairos_runtime
	$(BIN)/python -m kairos_runtime.contract

clean: ## remove cdk.out, .kairos and the tool caches
	rm -rf $(CDK_OUT) .kairos .pytest_cache .mypy_cache .ruff_cache
