# Two entry points for a fresh machine: `make demo` and `make test`.
# Both bootstrap .venv and the Debian packages they need; re-running is cheap.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_STAMP := $(VENV)/.apt-installed
APT_PACKAGES := prometheus prometheus-alertmanager chromium fonts-wqy-microhei postgresql poppler-utils
export DEBIAN_FRONTEND := noninteractive

.PHONY: demo test lint bench venv system-deps clean

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
# (pdftotext) for the test that reads where words landed on a printed invoice.
system-deps: $(APT_STAMP)

$(APT_STAMP): Makefile | $(STAMP)
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

demo: venv system-deps
	$(BIN)/python -m chargeback.demo

test: venv system-deps
	$(BIN)/ruff check .
	$(BIN)/pool check
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: venv system-deps
	$(BIN)/python bench/infra_scale.py
	$(BIN)/python bench/rating_scale.py
	$(BIN)/python bench/chargeback_scale.py

clean:
	rm -rf $(VENV) out .pytest_cache
