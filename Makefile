# spanstream developer commands. `make help` lists them.
PY := .venv/bin/python
PYTEST := .venv/bin/pytest
SRC := pipeline tests conftest.py
FAULTS_TRACES ?= 5000

.PHONY: help bootstrap demo test test-unit test-integration faults lint typecheck check bench evaluate lock clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

bootstrap: ## install everything (apt, venv, Kafka jars, Collector build); idempotent
	bash infra/bootstrap.sh

demo: bootstrap ## the main job on the embedded store: Kafka, worker, generator with an anomaly, alerts
	bash infra/demo.sh

test: bootstrap ## install everything, lint, typecheck, every tier, then the fault suite at CI volume
	$(MAKE) check
	$(PYTEST) -q
	$(MAKE) faults FAULTS_TRACES=2000

test-unit: ## unit + agent tiers only (no broker)
	$(PYTEST) -q -m "not integration and not e2e and not faults"

test-integration: ## real Kafka / ClickHouse / Collector tiers (integration, e2e)
	$(PYTEST) -q -m "integration or e2e"

faults: ## fault-injection suite (FAULTS_TRACES=5000 traces, ~100k spans per stream), then its table
	mkdir -p data; rm -f data/faults.jsonl; \
	SPANSTREAM_FAULTS_TRACES=$(FAULTS_TRACES) SPANSTREAM_FAULTS_RESULTS=data/faults.jsonl \
	$(PYTEST) -q -m faults tests/faults; \
	status=$$?; $(PY) -m tests.harness.accounting summarize data/faults.jsonl; exit $$status

lint: ## ruff lint + format check
	.venv/bin/ruff check $(SRC)
	.venv/bin/ruff format --check $(SRC)

typecheck: ## mypy (disallow_untyped_defs) on the package and the test harness
	.venv/bin/mypy pipeline tests/harness

check: lint typecheck ## lint + typecheck

bench: ## throughput benchmark: full pipeline vs a bare aiokafka consumer, side by side
	.venv/bin/spanstream bench

evaluate: ## detector quality table on labelled scenarios
	.venv/bin/spanstream evaluate --markdown

lock: ## regenerate constraints.txt: newest versions pyproject.toml allows, from a fresh venv
	bash infra/lock.sh

clean: ## remove caches and local data (not the venv)
	rm -rf data .pytest_cache .mypy_cache .ruff_cache
