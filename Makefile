# hpcwidgets: the two commands are `make lab` and `make test` (see README.md).
SHELL := /bin/bash
# the Python that makes the venv: `make lab PYTHON=python3.11` where python3 is older than requires-python allows
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# the venv is rebuilt when the dependency list changes
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: venv venv-python lab test test-fast check bench cluster cluster-down handouts slides clean help

help:
	@echo "make lab      set up .venv and start JupyterLab on the lessons (prints the URL; in a Slurm job, LOGIN_HOST=HOST adds the tunnel)"
	@echo "make venv     only set up .venv (PYTHON=python3.11 names the Python that makes it; any target takes PYTHON=)"
	@echo "make test     every test (unit, property, notebooks, real Slurm/Charliecloud/browser when present)"
	@echo "make bench    benchmarks, printed as tables"
	@echo "make cluster  start the practice Slurm cluster on this machine (root, Debian/Ubuntu)"

# `make venv` checks the venv every time and makes it again, with --clear, when it cannot serve: no pip (a
# `python3 -m venv` that stopped half-way: Debian and Ubuntu ship ensurepip in python3-venv), a Python that is gone or
# older than pyproject.toml's requires-python, or, when PYTHON is given (on make's command line or in the
# environment), a venv of another version. --clear also removes the install stamp, so the install below runs again.
# Where PYTHON cannot make a venv with pip, make stops with the fix. tools/venv_check.py does it: first the venv's own
# Python runs its quick check (a few milliseconds, silent); when that fails, python3 (PYTHON on a machine without
# one) runs the full check, which makes the venv.
VENV_PY_MIN := $(or $(shell sed -n 's/^requires-python *= *">= *\([0-9][0-9.]*\)".*/\1/p' pyproject.toml),3)
VENV_CHECK = tools/venv_check.py --venv '$(VENV)' --min '$(VENV_PY_MIN)' --python '$(PYTHON)' \
  $(if $(filter command line environment,$(origin PYTHON)),--named)

venv: venv-python
	@$(MAKE) --no-print-directory -q $(STAMP) || $(MAKE) --no-print-directory $(STAMP)

venv-python:
	@$(BIN)/python $(VENV_CHECK) --check-only 2> /dev/null || \
	if command -v python3 > /dev/null; then python3 $(VENV_CHECK); \
	elif command -v $(PYTHON) > /dev/null; then $(PYTHON) $(VENV_CHECK); \
	else echo "error: there is no $(PYTHON) here; hpcwidgets needs Python >= $(VENV_PY_MIN): install it, or name" \
	          "another: make lab PYTHON=python3.11" >&2; exit 1; fi

$(STAMP): pyproject.toml
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
	@$(MAKE) --no-print-directory venv-python VENV=$(BENCH_VENV)
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

# the instructor's deck of this checkout (--slides-dir: never the slides/ of the checkout the venv imports the package
# from): diagrams, generated blocks, lint of every shell block, then Marp CLI (from npm,
# installed into slides/.marp) → slides/build/workshop.html (self-contained) and workshop.pdf with Chromium
slides: venv
	$(BIN)/python -m hpcwidgets.slides build --slides-dir slides $(if $(PROFILE),--profile $(PROFILE))

# offline HTML handouts of the executed lessons (npm installs require.js + the widget manager into handouts/vendor)
handouts: venv
	$(BIN)/python -m hpcwidgets.handouts --notebooks notebooks --out handouts
