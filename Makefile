# The platform's entry points. STACK is dev or prod (or any Pulumi.<name>.yaml at the root).
STACK ?= dev
PYTHON ?= python3
VENV := venv
PY := $(VENV)/bin/python

.PHONY: up plan preview charts test lint clean bench-controller bench bench-quick envtest

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# Deploy the stack to the current kube context (a local Pulumi backend is used unless you are logged in).
up: $(VENV)/.installed
	@scripts/up.sh $(STACK)

# Offline: render and validate everything `pulumi up` would create, with no cluster and no Pulumi CLI.
plan: $(VENV)/.installed
	$(PY) -m stack.render $(STACK)

# Download every pinned chart into the chart cache (LLM_PLATFORM_CHART_CACHE, default ~/.cache/llm-platform/charts),
# checked against its repository's index; `plan` then expands each Helm release into the objects its chart installs.
charts: $(VENV)/.installed
	$(PY) -m stack.charts

preview: $(VENV)/.installed
	pulumi preview --stack $(STACK) --diff

# checkov pins packaging<24, which pulumi cannot share: it gets a virtualenv of its own.
.venv-checkov/.installed:
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/pip install --quiet checkov==3.3.30
	touch $@

test: $(VENV)/.installed .venv-checkov/.installed
	$(PY) -m pytest -q

# kube-apiserver, etcd and kubectl for tests/envtest: pinned, SHA-512 checked, cached under build/envtest. Prints the
# folder to export: `export KUBEBUILDER_ASSETS=$(make -s envtest)` (standard library only: no venv needed).
envtest:
	@$(PYTHON) -m scripts.envtest

lint: $(VENV)/.installed
	$(PY) -m ruff check . && $(PY) -m ruff format --check . && $(PY) -m mypy

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache

# The autoscaler controller's cost per reconcile pass over 200 models (CPU, queries, memory).
bench-controller: $(VENV)/.installed
	$(PY) -m autoscaler.bench

# Every autoscaling policy on every workload shape (../shared/traces), against the oracle's cost curve: prints the
# numbers, writes build/bench/report.md (two processes).
bench: $(VENV)/.installed
	$(PY) -m autoscaler.sim.bench

# The per-request shapes of an hour or less only: for iterating on the engine.
bench-quick: $(VENV)/.installed
	$(PY) -m autoscaler.sim.bench --quick
