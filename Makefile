# safeshift: build, test, lint, deploy. `make test` is what CI runs (.ci/run), on a fresh machine: every tool it
# needs is installed here, pinned, into the repo's ignored folders (.venv for the local AWS, .tools for the rest).
SHELL := /bin/bash
CARGO ?= cargo

# Pinned tool versions.
# moto's pin lives in local/moto-requirements.txt, shared with `safeshift local`.
MOTO_VERSION := $(shell sed 's/.*==//' local/moto-requirements.txt)
CARGO_LAMBDA_VERSION := 1.9.2
SAM_CLI_VERSION := 1.170.0
CFN_LINT_VERSION := 1.58.0
ASL_VALIDATOR_VERSION := 4.0.0

VENV := .venv
TOOLS := .tools
TOOLS_BIN := $(CURDIR)/$(TOOLS)/venv/bin
MOTO_STAMP := $(VENV)/.moto-$(MOTO_VERSION)
LAMBDA_STAMP := $(TOOLS)/.cargo-lambda-$(CARGO_LAMBDA_VERSION)
LINT_STAMP := $(TOOLS)/.lint-$(SAM_CLI_VERSION)-$(CFN_LINT_VERSION)-$(ASL_VALIDATOR_VERSION)
FUNCTIONS := shift-weight check-alarms run-hook rollback watch-gates cloudformation
# The Lambda functions' target. Installed once, before the builds: `sam build` runs them in parallel, and each
# cargo-lambda build installing it at the same moment fails ("can't find crate for `core`").
LAMBDA_TARGET := aarch64-unknown-linux-gnu
# sam validate and the template check need a region, never credentials or a network.
export AWS_DEFAULT_REGION ?= us-east-1
# No telemetry from the SAM CLI: CI has no network beyond the package registries anyway.
export SAM_CLI_TELEMETRY := 0

.PHONY: all test unit lint fmt clippy template-lint moto build deploy lambda-zips demo

all: test

## Three live rollouts on the local stack (moto + the real functions and state machine): one promoted, one rolled
## back by its alarm, one rolled back by its own metrics. About a minute.
demo: moto
	$(CARGO) run --quiet -p safeshift -- local demo

## The whole check suite: formatting, lints, template and state machine checks, then every test.
test: lint unit

# The macro's tests run SAM templates through the SAM translator and cfn-lint, from .tools.
unit: moto $(LINT_STAMP)
	$(CARGO) test --workspace --locked

lint: fmt clippy template-lint

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## The SAM template and the ASL: cfn-lint, asl-validator, sam validate --lint, and tests/template_check.py.
template-lint: $(LINT_STAMP)
	$(TOOLS_BIN)/cfn-lint template.yaml
	$(TOOLS)/node/node_modules/.bin/asl-validator --json-path statemachine/*.asl.json
	$(TOOLS_BIN)/sam validate --lint --template template.yaml
	$(TOOLS_BIN)/python tests/template_check.py

## Local AWS for the integration tests: moto, in .venv (created if missing).
moto: $(MOTO_STAMP)

$(MOTO_STAMP):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r local/moto-requirements.txt
	touch $@

$(TOOLS)/venv/bin/pip:
	python3 -m venv $(TOOLS)/venv

$(LINT_STAMP): $(TOOLS)/venv/bin/pip
	$(TOOLS_BIN)/pip install --quiet --disable-pip-version-check \
		'aws-sam-cli==$(SAM_CLI_VERSION)' 'cfn-lint==$(CFN_LINT_VERSION)'
	npm install --silent --no-audit --no-fund --prefix $(TOOLS)/node 'asl-validator@$(ASL_VALIDATOR_VERSION)'
	touch $@

$(LAMBDA_STAMP): $(TOOLS)/venv/bin/pip
	$(TOOLS_BIN)/pip install --quiet --disable-pip-version-check 'cargo-lambda==$(CARGO_LAMBDA_VERSION)'
	touch $@

.PHONY: lambda-tools lambda-target bench-profile
lambda-tools: $(LAMBDA_STAMP) lambda-target

## The arm64 standard library, once (rustup is how cargo-lambda would fetch it too).
lambda-target:
	@if command -v rustup >/dev/null; then \
		rustup target list --installed | grep -qx '$(LAMBDA_TARGET)' || rustup target add $(LAMBDA_TARGET); \
	fi

## What each release-profile setting buys (zip size, build time) for one shipping function: a table.
bench-profile: lambda-tools
	bench/profile.sh

## make bench: cold starts, warm latency, sizes, transitions and rollback latency, side by side with a Python
## handler; prints the tables and writes BENCHMARKS.md. Not part of `make test`: about 25 min on 2 cores.
.PHONY: bench
bench: $(MOTO_STAMP) lambda-zips
	$(CARGO) build --release --locked $(addprefix -p ,$(FUNCTIONS)) -p safeshift-bench
	target/release/safeshift-bench --bins target/release --zips target/lambda-arm64 --venv $(VENV) --out BENCHMARKS.md

## Release arm64 zips of every function, in target/lambda-arm64/<name>/bootstrap.zip.
lambda-zips: lambda-tools
	PATH="$(TOOLS_BIN):$$PATH" $(CARGO) lambda build --release --arm64 --output-format zip \
		--lambda-dir target/lambda-arm64 $(addprefix --bin ,$(FUNCTIONS))

## sam build: cross-compiles each function for arm64 with cargo-lambda (BuildMethod rust-cargolambda).
build: lambda-tools $(LINT_STAMP)
	PATH="$(TOOLS_BIN):$$PATH" $(TOOLS_BIN)/sam build

## sam deploy: needs AWS credentials. The first time, run `$(TOOLS_BIN)/sam deploy --guided`.
deploy: build
	PATH="$(TOOLS_BIN):$$PATH" $(TOOLS_BIN)/sam deploy
