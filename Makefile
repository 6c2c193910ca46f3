# snn-egru: the two commands a new user runs are `make demo` and `make test`.
# Both create the project-local .venv (Python 3.10, needed by lava-nc 0.10) on first use.

PYTHON310 := $(shell scripts/find_python310.sh)
VENV      := .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed

.PHONY: help setup demo test lint bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	@test -n "$(PYTHON310)" || { echo "Python 3.10 not found (see scripts/find_python310.sh)"; exit 1; }
	test -x $(PY) || $(PYTHON310) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
# NeuroBench 2.3.0 (test dependency) without its declared dependencies: they include
# torchaudio, which PyPI has only for older torch than this project's 2.14. The parts the
# tests use (benchmarks, models, metrics) import only torch, snntorch, numpy and tqdm,
# all installed above; pip cannot say --no-deps for one package of an extra.
	$(PY) -m pip install -q --no-deps 'neurobench==2.3.0'
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install the project with its test extras

demo: $(STAMP)  ## the main job: train, prune, export, map to a simulated SpiNNaker2, run, report
	$(VENV)/bin/snn-egru demo $(ARGS)

lint: $(STAMP)  ## ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Two workers (pytest-xdist), one test file per worker at a time (--dist loadfile: a file's
# module fixtures, e.g. the trained models of the CLI tests, are built once).
test: lint  ## lint, then the whole test suite (2 workers)
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile

bench: $(STAMP)  ## the benchmarks (not part of the tests)
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:  ## remove caches (keeps .venv)
	rm -rf .pytest_cache .ruff_cache .hypothesis
