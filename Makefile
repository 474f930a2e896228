# Developer commands. `make run` and `make test` work on a fresh machine: they create the virtualenv,
# install the pinned dependencies and start the local Kafka broker (dev/kafka) as needed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BOOTSTRAP ?= 127.0.0.1:9092
LINT_PATHS := emitter tests examples $(wildcard bench) $(wildcard reliability)

.PHONY: help venv kafka kafka-stop jaeger registry s3 avro-java redis-server socks deploy-checks image-smoke kube-check deploy-live bench reliability run lint test test-unit test-integration clean

help:
	@echo "make run    - start the local Kafka and run the emitter on the demo source, printing records"
	@echo "make test   - install, start Kafka, lint, type-check and run every test"
	@echo "make lint   - ruff and mypy --strict"
	@echo "make reliability - fault scenarios (kills, broker restarts, Telegram faults): one table"
	@echo "make deploy-live - the image built and run with podman, the chart installed on a local control plane"
	@echo "make bench  - benchmarks against their ceilings; writes bench/RESULTS.md"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

venv: $(STAMP)

kafka:
	dev/kafka start

kafka-stop:
	dev/kafka stop

jaeger:
	dev/jaeger start

registry:
	dev/registry start

# SeaweedFS, the S3-compatible store of the media tests (built once from the Go module proxy, cached).
s3:
	dev/s3 start

avro-java:
	@dev/avro-java build >/dev/null

deploy-checks: venv
	dev/deploy-checks

# The deployment run for real (not part of `make test`; .ci/run calls it): the image built with podman and
# run read-only against the local broker, then the chart installed on a local Kubernetes control plane.
image-smoke: venv kafka
	dev/image smoke

kube-check:
	dev/kube check

deploy-live: image-smoke kube-check

redis-server:
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server; }

# The SOCKS5 proxy the proxy tests start and stop themselves (tests/socks_proxy.py).
socks:
	@command -v microsocks >/dev/null || { apt-get update -qq && apt-get install -y -qq microsocks; }

run: venv kafka
	dev/run-demo $(BOOTSTRAP)

lint: venv
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy --strict emitter examples

test-unit: venv
	$(BIN)/pytest tests/unit

test-integration: venv kafka jaeger registry s3 avro-java redis-server socks
	$(BIN)/pytest tests/integration

test: venv kafka jaeger registry s3 avro-java redis-server socks lint deploy-checks
	$(BIN)/pytest tests --ignore=tests/deploy --ignore=tests/integration/test_reliability_smoke.py

reliability: venv
	$(BIN)/python -m reliability

bench: venv kafka
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) data .mypy_cache .ruff_cache .pytest_cache
