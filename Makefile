# The workbench's two set-up commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# Python keeps the compiled project modules in __pycache__ (git-ignored): with the
# PYTHONDONTWRITEBYTECODE some machines set, every process compiled them again (0.5 s of the app's
# first page loads, more in the tests' subprocesses and workers).
unexport PYTHONDONTWRITEBYTECODE
# Some machines' pip configuration names a local package index with folders missing, and pip
# warns once per package (about 130 lines): drop those lines, keep every other message.
PIP_NOISE := is ignored: it is neither a file nor a directory
PIP = $(PY) -m pip install --quiet $(1) 2>&1 | { grep -v "$(PIP_NOISE)" || true; }; exit $${PIPESTATUS[0]}

.PHONY: run test serve system-deps init bench-ingest clean

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(call PIP,--upgrade pip)
	$(call PIP,-r requirements.txt)
	touch $(STAMP)

init: $(STAMP)
	$(PY) -m recsys init

# The app (:8501), the REST service (:8000) and a job worker, together (Procfile; one Ctrl-C stops all).
run: init
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" WORKBENCH_JOB_WORKERS=external $(PY) -m honcho start -f Procfile

serve: init
	$(PY) -m recsys serve --host 127.0.0.1 --port 8000

system-deps:
	bash scripts/system-deps.sh

test: $(STAMP) system-deps
	$(PY) -m pytest

bench-ingest: $(STAMP)
	$(PY) bench/ingest.py

clean:
	rm -rf var .pytest_cache
