# The README's two commands. Each sets itself up on a fresh machine: it creates .venv when
# missing and (re)installs cmseg with its dev extra only when pyproject.toml changed.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.cmseg-installed

.PHONY: demo test lint clean-venv

# Synthetic RGB-D data -> XMSNet-tiny and two baselines trained on the CPU -> predictions on
# clean and corrupted depth -> one table (runs/demo/table.md). About 8 minutes on 2 cores.
demo: $(STAMP)
	$(VENV)/bin/cmseg demo sod --out runs/demo

test: $(STAMP)
	$(PY) -m pytest -n 2 -q

# What CI checks besides the tests: lint rules and the formatting of the whole code base.
lint: $(STAMP)
	$(PY) -m ruff check cmseg tests benchmarks
	$(PY) -m ruff format --check cmseg tests benchmarks

# The stamp records that the environment matches pyproject.toml and constraints.txt (the versions
# the README tables were measured with); a second `make test` skips
# the install entirely.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

clean-venv:
	rm -rf $(VENV)
