# Two commands, each doing its own set-up from a fresh clone:
#   make demo       - the main job
#   make test       - the whole test suite (unit, doctests, integration on the real model): what CI runs
# and, while you work:
#   make test-fast  - unit tests and doctests only (no subprocess, no real model, no full flow)
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
export GLOG_v := 3

.PHONY: demo test test-fast install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e ".[dev,onnx]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/lrp-prune demo

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow and not integration"

clean:
	rm -rf $(VENV) build src/*.egg-info
