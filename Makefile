# hpcwidgets: the two commands are `make lab` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# the venv is rebuilt when the dependency list changes
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: venv lab test test-fast check bench cluster cluster-down handouts slides clean help

help:
	@echo "make lab      set up .venv and start JupyterLab on the lessons (prints the URL; in a Slurm job, LOGIN_HOST=HOST adds the tunnel)"
	@echo "make test     every test (unit, property, notebooks, real Slurm/Charliecloud/browser when present)"
	@echo "make bench    benchmarks, printed as tables"
	@echo "make cluster  start the practice Slurm cluster on this machine (root, Debian/Ubuntu)"

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[lab,ml,dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ipykernel)" > /dev/null
	@rm -f $(VENV)/.installed-*
	@touch $@

# LOGIN_HOST reaches the recipe through its environment (make exports a variable set on its command line), so the
# shell takes the value as it is, whatever quotes it holds, and lab.py checks it
lab: venv
	$(BIN)/python -m hpcwidgets.run.lab --notebook-dir notebooks $${LOGIN_HOST:+--login-host "$$LOGIN_HOST"}

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: venv
	$(BIN)/python -m pytest -m "not slow and not real and not browser" $(PYTEST_ARGS)

# the workshop notebooks: exercises/ up to date with solutions/, then every solution, exercise and lesson executed
check: venv
	$(BIN)/hpcwidgets workshop build --check
	$(BIN)/hpcwidgets workshop check

# peers (submitit, simple_slurm) live in their own environment, never in .venv
BENCH_VENV := .venv-bench
$(BENCH_VENV)/.ok: pyproject.toml
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q -e . submitit simple_slurm
	@touch $@

bench: venv $(BENCH_VENV)/.ok
	@echo "== benchmarks/bench_core.py"; $(BENCH_VENV)/bin/python benchmarks/bench_core.py
	@for b in benchmarks/bench_*.py; do [ "$$b" = benchmarks/bench_core.py ] && continue; \
	  echo "== $$b"; $(BIN)/python $$b || exit 1; done

cluster: venv
	$(BIN)/python -m hpcwidgets.run.practice_cluster up

cluster-down: venv
	$(BIN)/python -m hpcwidgets.run.practice_cluster down

clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis test-artifacts

# the instructor's deck: diagrams, generated blocks, lint of every shell block, then Marp CLI (from npm,
# installed into slides/.marp) → slides/build/workshop.html (self-contained) and workshop.pdf with Chromium
slides: venv
	$(BIN)/python -m hpcwidgets.slides build $(if $(PROFILE),--profile $(PROFILE))

# offline HTML handouts of the executed lessons (npm installs require.js + the widget manager into handouts/vendor)
handouts: venv
	$(BIN)/python -m hpcwidgets.handouts --notebooks notebooks --out handouts
