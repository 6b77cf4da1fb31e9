# Set-up and entry points. Everything runs inside .venv in this repository.
# A GPU user can pick another torch build:  make TORCH_SPEC="torch==2.5.1 torchvision==0.20.1" test
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel setuptools
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e '.[dev]' $(TORCH_SPEC)
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m splat4d.demo --out renders/demo.png

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/raster_cpu.py
