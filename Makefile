# Set-up is part of each target: the first run creates .venv and installs requirements.txt into it.
VENV := .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
PORT ?= 8501

.PHONY: dashboard test lint browser benchmark reliability

dashboard: $(INSTALLED)
	$(PYTHON) -m streamlit run dashboard/app.py --server.port $(PORT)

test: $(INSTALLED) browser
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m pytest

benchmark: $(INSTALLED)
	$(PYTHON) -m benchmarks.bench_training
	$(PYTHON) -m benchmarks.bench_images

$(INSTALLED): requirements.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements.txt
	touch $@

# The browser test drives Debian's Chromium through Playwright.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "Installing Debian's chromium for the browser test"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }
