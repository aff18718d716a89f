# safeshift: build, test, lint. `make test` is what CI runs (.ci/run), on a fresh machine.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all build test lint fmt clippy unit demo

all: test

build:
	$(CARGO) build --workspace

## The whole check suite: formatting, lints, then every test.
test: lint unit

unit:
	$(CARGO) test --workspace --locked

lint: fmt clippy

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
