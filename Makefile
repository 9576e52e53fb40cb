# Two entry points for a fresh machine: `make demo` and `make test`.
# Both bootstrap .venv and the Debian packages they need; re-running is cheap.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_STAMP := $(VENV)/.apt-installed
APT_PACKAGES := prometheus prometheus-alertmanager chromium fonts-wqy-microhei postgresql poppler-utils etcd-server openssl
E2E_TOOLS := bash tools/e2e-tools.sh
export DEBIAN_FRONTEND := noninteractive

.PHONY: demo test e2e e2e-run e2e-tools lint bench venv system-deps node-deps clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

# Debian packages: prometheus (prometheus, promtool) for the chargeback tests and the demo; prometheus-alertmanager
# (prometheus-alertmanager, amtool) for the alert routing and delivery tests; chromium and a
# CJK font for PDF invoices and the browser test of the reports (unit names such as 数据洞察事业部);
# postgresql for the ledger tests, which start their own server in a temporary directory; poppler-utils
# (pdftotext) for the test that reads where words landed on a printed invoice; etcd and openssl for the
# e2e tier's local control plane.
system-deps: $(APT_STAMP)

$(APT_STAMP): Makefile | $(STAMP)
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

# The OpenID Connect provider the portal's sign-in tests start (npm's oidc-provider, run by Node): Node from
# Debian when it is missing, the pinned packages from tests/support/oidc_provider/package-lock.json.
OIDC_DIR := tests/support/oidc_provider
OIDC_STAMP := $(OIDC_DIR)/node_modules/.installed

node-deps: $(OIDC_STAMP)

$(OIDC_STAMP): $(OIDC_DIR)/package-lock.json | $(APT_STAMP)
	@command -v npm >/dev/null || { SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends nodejs npm; }
	npm ci --prefix $(OIDC_DIR) --no-audit --no-fund --silent
	@touch $@

demo: venv system-deps
	$(BIN)/python -m pool_demo

# The e2e tier's binaries (tools/versions.env): found on PATH or in ~/.cache/resource-pool/tools, else built
# from the Go module proxy (a cold build prints its time per tool; a warm run builds nothing).
e2e-tools: venv system-deps
	$(E2E_TOOLS)

# The e2e tier (real pulumi + kube-apiserver, Prometheus 3, Thanos) and the Prometheus-3 pass of the tests whose
# subject is the server's answers. E2E=auto (default): it runs when its tools are already built (a cold build
# takes hours on two cores, see README, "Real tools and the e2e tier"), else make test says it did not run and
# how to build them; E2E=1: build what is missing, then run it; E2E=0: leave it out.
# RESOURCE_POOL_E2E=required: inside the tier, a missing tool fails instead of skipping.
E2E ?= auto
PROMETHEUS3_TESTS := tests/chargeback/collect tests/chargeback/rate/test_north_star.py tests/pool_demo/test_demo_calls.py

test: venv system-deps node-deps $(if $(filter 1,$(E2E)),e2e-tools)
	$(BIN)/ruff check .
	$(BIN)/pool check
	$(BIN)/python -m pytest -q -m "not e2e"
	@if [ "$(E2E)" = 0 ]; then \
	  echo "make test: e2e tier left out (E2E=0)"; \
	elif [ "$(E2E)" = 1 ] || $(E2E_TOOLS) --locate >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory e2e-run; \
	else \
	  echo "make test: e2e tier NOT run: its tools are not built ($$($(E2E_TOOLS) --locate 2>&1 >/dev/null | head -1))."; \
	  echo "  build them once with 'make e2e-tools' (cached in ~/.cache/resource-pool/tools), or run 'make test E2E=1'"; \
	fi

# Only the e2e tier; builds its tools first if they are missing.
e2e: venv system-deps e2e-tools e2e-run

e2e-run:
	RESOURCE_POOL_E2E=required $(BIN)/python -m pytest -q -m e2e
	RESOURCE_POOL_PROMETHEUS="$$($(E2E_TOOLS) --locate prometheus | sed -n 's/^PROMETHEUS3=//p')" \
	  $(BIN)/python -m pytest -q -m prometheus $(PROMETHEUS3_TESTS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: venv system-deps
	$(BIN)/python bench/infra_scale.py
	$(BIN)/python bench/rating_scale.py
	$(BIN)/python bench/chargeback_scale.py

clean:
	rm -rf $(VENV) out .pytest_cache
