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

# `make venv` checks the venv's Python every time (a few milliseconds) and makes the venv again, with --clear, when
# it has no pip (a `python3 -m venv` that stopped half-way: Debian and Ubuntu ship ensurepip in python3-venv), when
# its Python is gone or older than pyproject.toml's requires-python, or when PYTHON is given (on make's command line
# or in the environment) and the venv is of another version. --clear also removes the install stamp, so the install
# below runs again. Where PYTHON cannot make a venv with pip, make stops with the fix.
VENV_PY_MIN := $(or $(shell sed -n 's/^requires-python *= *">= *\([0-9][0-9.]*\)".*/\1/p' pyproject.toml),3)
# Python code: exit status 0 when the Python that runs it is VENV_PY_MIN or newer, has pip when given `pip`, and is
# version X.Y when given X.Y
VENV_PY_OK = import sys, importlib.util as u; want = sys.argv[1:]; \
  sys.exit(sys.version_info < tuple(map(int, "$(VENV_PY_MIN)".split("."))) \
           or ("pip" in want and u.find_spec("pip") is None) \
           or any(w not in ("pip", "%d.%d" % sys.version_info[:2]) for w in want))
comma := ,
PY_VERSION = import sys; print("%d.%d" % sys.version_info[:2])
VENV_WANT = $(if $(filter command line environment,$(origin PYTHON)),"$$($(PYTHON) -c '$(PY_VERSION)' 2> /dev/null || echo none)")

venv: venv-python
	@$(MAKE) --no-print-directory -q $(STAMP) || $(MAKE) --no-print-directory $(STAMP)

venv-python:
	@if $(BIN)/python -c '$(VENV_PY_OK)' pip $(VENV_WANT) 2> /dev/null; then exit 0; fi; \
	if ! command -v $(PYTHON) > /dev/null; then \
	  echo "error: there is no $(PYTHON) here; hpcwidgets needs Python >= $(VENV_PY_MIN): install it, or name another:" \
	       "make lab PYTHON=python3.11" >&2; exit 1; fi; \
	have=$$($(PYTHON) -c '$(PY_VERSION)'); \
	if ! $(PYTHON) -c '$(VENV_PY_OK)' 2> /dev/null; then \
	  echo "error: $(PYTHON) is Python $$have; hpcwidgets needs Python >= $(VENV_PY_MIN): name a newer one," \
	       "e.g. make lab PYTHON=python3.11" >&2; exit 1; fi; \
	if [ -e $(VENV) ]; then echo "$(VENV) is not usable (no pip, or a Python that is gone or older than $(VENV_PY_MIN)$(if \
	       $(VENV_WANT),$(comma) or not $(PYTHON)'s version)): making it again with $(PYTHON) (Python $$have)"; \
	else echo "making $(VENV) with $(PYTHON) (Python $$have)"; fi; \
	if ! { $(PYTHON) -m venv --clear $(VENV) && $(BIN)/python -c '$(VENV_PY_OK)' pip; }; then \
	  echo "error: $(PYTHON) (Python $$have) cannot make a venv with pip: its ensurepip is missing. On Debian or" \
	       "Ubuntu: sudo apt install python3-venv (python$$have-venv for a python$$have that is not the default" \
	       "python3), then run make again; or name another Python: make lab PYTHON=python3.11" >&2; exit 1; fi

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

# the instructor's deck: diagrams, generated blocks, lint of every shell block, then Marp CLI (from npm,
# installed into slides/.marp) → slides/build/workshop.html (self-contained) and workshop.pdf with Chromium
slides: venv
	$(BIN)/python -m hpcwidgets.slides build $(if $(PROFILE),--profile $(PROFILE))

# offline HTML handouts of the executed lessons (npm installs require.js + the widget manager into handouts/vendor)
handouts: venv
	$(BIN)/python -m hpcwidgets.handouts --notebooks notebooks --out handouts
