# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv on first
# use and reinstall the package whenever setup.py changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXTRAS ?= cpu,glove,plots,test,cloud
DEMO_DIR ?= demo

.PHONY: demo test clean

$(BIN)/.installed: setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/python -m trainer.demo --demo_dir=$(DEMO_DIR)

# Test processes: one more than the cores (many tests wait on a subprocess or a
# server), at most 4 (each holds TensorFlow, ~1.5 GiB); worksteal keeps every process
# busy to the end. The tests that time things hold under that load.
TEST_PROCESSES ?= $(shell $(PYTHON) -c 'import os; cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(); print(min(cores + 1, 4))')

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n $(TEST_PROCESSES) --dist worksteal --durations=15 tests

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
