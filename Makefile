# The verbs a user types. Each target creates the virtualenv and installs the pinned
# requirements on first use, so every one of them works on its own from a fresh clone.

PYTHON ?= python3
VENV := venv
PY := $(VENV)/bin/python

.PHONY: test unit lint

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

## test: the whole test suite (what CI runs)
test: $(VENV)/.installed
	$(PY) -m pytest

## unit: the fast tier only (mocks, no server)
unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
