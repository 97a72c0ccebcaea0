# Set-up is part of each target: the first run creates .venv, installs the pinned requirements.txt
# into it, then this project itself in editable mode (its dependencies are declared in pyproject.toml).
VENV := .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
PORT ?= 8501
# More `streamlit run` options for the dashboard (python -m dashboard passes them on), e.g. DASHBOARD_ARGS="--server.allowedHosts dashboard.example.org".
DASHBOARD_ARGS ?=

.PHONY: dashboard test check system-packages benchmark reliability

dashboard: $(INSTALLED)
	$(PYTHON) -m dashboard --server.port $(PORT) $(DASHBOARD_ARGS)

test: $(INSTALLED) system-packages
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m pytest

# The quick loop while working: lint, then the unit tests on generated data (no MNIST, browser, Ray or
# TensorFlow processes of their own), spread over the machine's cores.
check: $(INSTALLED)
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m pytest -m "not integration and not browser and not slow" -q -n auto

benchmark: $(INSTALLED)
	$(PYTHON) -m benchmarks.bench_training
	$(PYTHON) -m benchmarks.bench_images
	$(PYTHON) -m benchmarks.bench_attribution
	$(PYTHON) -m benchmarks.bench_projection
	$(PYTHON) -m benchmarks.bench_dashboard

# The reliability suite (tests marked reliability): hostile files, load, faults, in full mode (about 30
# minutes; --quick, which plain pytest runs, is CI's share).
reliability: $(INSTALLED) system-packages
	$(PYTHON) -m reliability

$(INSTALLED): requirements.txt pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements.txt
	$(PYTHON) -m pip install --quiet --no-deps --editable .
	touch $@

# Debian packages the tests need: Chromium for the browser test, fonts for the generated set of
# realistic digit images.
DEBIAN_PACKAGES := chromium fonts-dejavu fonts-liberation fonts-freefont-ttf fonts-dkg-handwriting \
	fonts-breip fonts-humor-sans fonts-sjfonts fonts-bwht fonts-comic-neue fonts-rufscript fonts-kaushanscript

system-packages:
	@command -v dpkg >/dev/null 2>&1 || { echo "Not Debian: install $(DEBIAN_PACKAGES) yourself"; exit 0; }; \
	missing=$$(for package in $(DEBIAN_PACKAGES); do dpkg -s $$package >/dev/null 2>&1 || echo $$package; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:" $$missing; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
