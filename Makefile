# safeshift: build, test, lint. `make test` is what CI runs (.ci/run), on a fresh machine.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all build test lint fmt clippy unit demo

all: test

build:
	$(CARGO) build --workspace

## The whole check suite: formatting, lints, then every test.
test: lint unit

unit: moto
	$(CARGO) test --workspace --locked

lint: fmt clippy

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## Local AWS for the integration tests: moto, pinned, in the repo's ignored .venv (created if missing).
MOTO_VERSION := 5.2.5
VENV := .venv
MOTO_STAMP := $(VENV)/.moto-$(MOTO_VERSION)

.PHONY: moto
moto: $(MOTO_STAMP)

$(MOTO_STAMP):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'moto[server]==$(MOTO_VERSION)'
	touch $@

## Lambda packaging tools, pinned, in the same venv: cargo-lambda (with zig for arm64 cross-builds).
CARGO_LAMBDA_VERSION := 1.9.2
CARGO_LAMBDA_STAMP := $(VENV)/.cargo-lambda-$(CARGO_LAMBDA_VERSION)
FUNCTIONS := shift-weight check-alarms run-hook rollback

$(CARGO_LAMBDA_STAMP):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'cargo-lambda==$(CARGO_LAMBDA_VERSION)'
	touch $@

.PHONY: lambda-zips
## Release arm64 zips of every function in target/lambda-arm64/<name>/bootstrap.zip.
lambda-zips: $(CARGO_LAMBDA_STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release --arm64 --output-format zip \
		--lambda-dir target/lambda-arm64 $(addprefix --bin ,$(FUNCTIONS))
