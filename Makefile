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

# One test process per core (at most 4: each holds TensorFlow, ~1.5 GiB); the tests
# that time things hold under that load.
test: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n auto --maxprocesses=4 tests

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
