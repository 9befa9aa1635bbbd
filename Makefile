# bounceguard: `make help` lists the targets. Ports for `make up`: Kafka 9092, Redis 6379,
# worker web 6066. Tests start their own servers on other ports (see tests/integration/conftest.py).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export KAFKA_PORT ?= 9092
export REDIS_PORT ?= 6379
export BOUNCEGUARD_WEB_PORT ?= 6066

.PHONY: help setup up down run up-cluster down-cluster run-cluster test unit integration lint fmt typecheck bench mutants dashboards prometheus

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/bounceguard: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

setup: $(BIN)/bounceguard var/cache/compose-spec.json  ## create .venv (bounceguard editable + dev tools); fetch Kafka jars
	@deploy/kafka.sh fetch

# The Compose specification's JSON Schema, as shipped inside the docker-compose 1.29.2 wheel on
# PyPI; tests/unit/test_deploy.py validates docker-compose.yml against it.
var/cache/compose-spec.json: | $(BIN)/bounceguard
	@mkdir -p var/cache/dl
	$(BIN)/pip download -q --no-deps docker-compose==1.29.2 -d var/cache/dl
	$(BIN)/python -c "import glob, zipfile; z = zipfile.ZipFile(glob.glob('var/cache/dl/docker_compose-1.29.2-*.whl')[0]); open('$@', 'wb').write(z.read('compose/config/compose_spec.json'))"

up: setup  ## start Kafka, Redis and the worker in the background on 127.0.0.1
	@deploy/redis.sh start
	@deploy/kafka.sh start
	@deploy/worker.sh start

down:  ## stop the worker, Kafka and Redis
	@deploy/worker.sh stop
	@deploy/kafka.sh stop
	@deploy/redis.sh stop

run: up  ## the main job: stack up, feed the sample attempts, print the suppressions
	@deploy/demo.sh

up-cluster: setup  ## start Redis Cluster (7101..7106), 3 Kafka brokers (9201, 9203, 9205) and two workers (web 6067, 6068)
	@deploy/stack-cluster.sh start

down-cluster:  ## stop the two workers and both clusters of up-cluster
	@deploy/stack-cluster.sh stop

run-cluster: up-cluster  ## `make run` on both clusters with two workers: feed the sample data, print the suppressions
	@deploy/stack-cluster.sh demo

test: setup  ## every test, unit and integration (the integration tests start their own servers)
	$(BIN)/pytest tests

unit: setup  ## unit tests only (no servers)
	$(BIN)/pytest tests/unit

integration: setup  ## integration tests only
	$(BIN)/pytest tests/integration

lint: setup  ## ruff, mypy --strict, import-linter layer contracts
	$(BIN)/ruff check pipeline tests bench scripts
	$(BIN)/ruff format --check pipeline tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: setup  ## format and auto-fix
	$(BIN)/ruff format pipeline tests bench scripts
	$(BIN)/ruff check --fix pipeline tests bench scripts

typecheck: setup  ## mypy --strict only
	$(BIN)/mypy

bench: setup  ## benchmarks: print figures (never part of `make test`)
	$(BIN)/python -m bench

# MUTANTS='pipeline.core.ids.*' limits a run to some mutants (mutmut's key globs); mutants/ is
# mutmut's working copy, kept between runs (delete it for a fresh start). docs/mutants.md.
MUTANTS ?=
mutants: setup  ## mutation testing (mutmut) of the core modules against the unit tests; not in `make test`
	$(BIN)/mutmut run --max-children $$(nproc) $(MUTANTS)
	$(BIN)/python scripts/mutants_report.py

dashboards: setup  ## regenerate grafana/dashboards/*.json from grafana/build.py (commit the result)
	$(BIN)/python grafana/build.py

prometheus:  ## start Prometheus on 127.0.0.1:9090 scraping the `make up` worker (deploy/prometheus.yml)
	@deploy/prometheus.sh start
