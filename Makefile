# The two commands a newcomer needs:  make book  and  make test.
# Both create the virtual environment .venv themselves when it is missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PRESET ?= quick
SEED   ?= 0
# make chapter NB=data PRESET=smoke  re-runs one chapter (notebooks/data.md)
NB     ?=
STAMP  := $(VENV)/.installed-stamp

.PHONY: help install test lint format notebooks book chapter lab bench clean distclean

help:
	@echo "make book       build the website (quick preset) into _build/html"
	@echo "make test       lint, then the test suite (unit tests, notebooks at smoke, book build, browser)"
	@echo "make lint       ruff check + ruff format --check on src, tests, benchmarks and the chapters"
	@echo "make format     apply ruff's fixes and formatting (chapters' code cells included)"
	@echo "make notebooks  execute the chapters: PRESET=smoke|quick|paper SEED=0"
	@echo "make chapter NB=<name> PRESET=... SEED=...   re-run one chapter"
	@echo "make lab        open the chapters (notebooks/*.md) as notebooks in JupyterLab"
	@echo "make bench      run the benchmarks (prints ratios)"
	@echo "make clean      remove executed notebooks and the built site"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP) lint
	$(PY) -m pytest

# ruff on the package, tests, benchmarks and the chapters' code (settings in pyproject.toml)
lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks
	$(PY) -m sharpjac.publish lint

format: $(STAMP)
	$(PY) -m ruff check --fix src tests benchmarks
	$(PY) -m ruff format src tests benchmarks
	$(PY) -m sharpjac.publish lint --fix

notebooks: $(STAMP)
	$(PY) -m sharpjac.publish notebooks --preset $(PRESET) --seed $(SEED)

chapter: $(STAMP)
	@test -n "$(NB)" || (echo "usage: make chapter NB=<name> [PRESET=quick] [SEED=0]; chapters:"; $(PY) -m sharpjac.publish list; exit 2)
	$(PY) -m sharpjac.publish notebooks --preset $(PRESET) --seed $(SEED) --only $(NB)

book: notebooks
	$(PY) -m sharpjac.publish build

# .jupyter/labconfig/default_setting_overrides.json makes jupytext's "Jupytext Notebook" the
# default viewer of .md files, for this command only (your own JupyterLab settings still win).
lab: $(STAMP)
	JUPYTER_CONFIG_PATH="$(CURDIR)/.jupyter$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" \
		$(VENV)/bin/jupyter lab notebooks/

bench: $(STAMP)
	@for script in benchmarks/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf _build notebooks/executed

distclean: clean
	rm -rf $(VENV)
