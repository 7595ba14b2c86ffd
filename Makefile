# fedlang — `make run` sets up .venv from the pinned lock and runs the quickstart;
# `make test` runs the whole test suite (front end first, then the TFF tests).
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup run test test-fast test-tff bench clean

setup: $(STAMP)

# TFF 0.87.0 pins jaxlib==0.4.14, which the package index does not serve; the lock pins a
# complete working set (jaxlib 0.4.13) and is installed without resolving dependencies.
$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-deps -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/fedlang check examples/quickstart.fed
	$(VENV)/bin/fedlang run examples/quickstart.fed

test: $(STAMP)
	$(PY) -m pytest tests/frontend -q
	$(PY) -m pytest tests/tff -q

test-fast: $(STAMP)
	$(PY) -m pytest tests/frontend -q

test-tff: $(STAMP)
	$(PY) -m pytest tests/tff -q

bench: $(STAMP)
	$(PY) bench/frontend_latency.py

clean:
	rm -rf $(VENV) runs .pytest_cache
