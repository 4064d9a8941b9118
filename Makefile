# The two commands a newcomer needs:  make book  and  make test.
# Both create the virtual environment .venv themselves when it is missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# PRESET, SEED and PARAMS have no defaults here: what you do not set keeps each chapter's stored
# parameters (those it was last executed with), or quick/0 for a chapter that is new or whose source
# changed; RESET=1 forgets the stored ones. See "Re-running" in README.md.
#   make chapter NB=data SEED=1   then   make book      keeps seed 1 for data
#   make chapter NB=weight_decay PARAMS="n_seeds=5 method=kendall"
NB     ?=
STAMP  := $(VENV)/.installed-stamp
# set (on the command line or in the environment) -> passed on; unset -> stored parameters are kept.
# No value is ever pasted into a shell command: each travels as an environment variable holding its
# raw text ($(value ...): make expands nothing in it either), and src/sharpjac/_make_args.py checks
# it and runs python -m sharpjac.publish with an argument list (a refusal is one line, exit 2).
given   = $(filter-out undefined default,$(origin $(1)))
export SHARPJAC_MAKE_GIVEN  = $(foreach v,PRESET SEED PARAMS JOBS,$(if $(call given,$(v)),$(v)))
export SHARPJAC_MAKE_NB     = $(value NB)
export SHARPJAC_MAKE_PRESET = $(value PRESET)
export SHARPJAC_MAKE_SEED   = $(value SEED)
export SHARPJAC_MAKE_PARAMS = $(value PARAMS)
export SHARPJAC_MAKE_JOBS   = $(value JOBS)
export SHARPJAC_MAKE_RESET  = $(value RESET)
export SHARPJAC_MAKE_NAME   = $(value NAME)
MAKEARGS = $(PY) src/sharpjac/_make_args.py

.PHONY: help install test lint format notebooks book chapter student pdf student-pdf publish-notebooks lab bench clean distclean rehearse new

help:
	@echo "make book       build the website into _build/html (quick preset, or each chapter's stored parameters)"
	@echo "make test       lint, then the test suite (unit tests, notebooks at smoke, book build, browser)"
	@echo "make lint       ruff check + ruff format --check on src, tests, benchmarks and the chapters"
	@echo "make format     apply ruff's fixes and formatting (chapters' code cells included)"
	@echo "make notebooks  execute the chapters [PRESET=smoke|quick|paper] [SEED=n] [PARAMS=\"name=value ...\"] [RESET=1] [JOBS=2]"
	@echo "                (what you leave out keeps each chapter's stored parameters)"
	@echo "make chapter NB=<name> [PRESET=...] [SEED=...] [PARAMS=...]   re-run one chapter"
	@echo "make rehearse   every chapter on the paper preset's path at toy size (toy CIFAR-10, two steps), in a temporary folder"
	@echo "make new NAME=<name>   scaffold a new chapter: experiment module, chapter, table of contents, claim"
	@echo "make student    build the student edition (no solutions) into _build/student"
	@echo "make pdf        print the site into one PDF, solutions included: _build/pdf/sharpjac.pdf"
	@echo "make student-pdf   the student edition as one PDF: _build/student/sharpjac-student.pdf"
	@echo "make publish-notebooks   commit the executed chapters to the branch the launch buttons open"
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

# PRESET=paper first checks that the run store holds every run (python -m sharpjac.publish missing)
notebooks: $(STAMP)
	$(MAKEARGS) notebooks

chapter: $(STAMP)
	$(MAKEARGS) chapter

book: notebooks
	$(PY) -m sharpjac.publish build

# the paper rehearsal: the chapters with preset=paper at toy size (sharpjac.rehearsal), nothing kept
rehearse: $(STAMP)
	$(PY) -m sharpjac.rehearsal $(if $(call given,NB),--only "$$SHARPJAC_MAKE_NB")

# a new chapter: python -m sharpjac new NAME (see "Adding a chapter" in README.md)
new: $(STAMP)
	@$(PY) -m sharpjac new "$$SHARPJAC_MAKE_NAME"

# the site and the downloadable notebooks without solutions, in _build/student (the normal build is untouched)
student: notebooks
	$(PY) -m sharpjac.publish student

# the built pages in table-of-contents order, printed by headless Chromium (Debian's chromium and
# chromium-driver) with book/_static/print.css and merged into one PDF (sharpjac.pdf)
pdf: book
	$(PY) -m sharpjac.pdf

student-pdf: student
	$(PY) -m sharpjac.pdf --student

# commits notebooks/executed/*.ipynb with the sources of HEAD to the branch book-notebooks
# (or repository.launch_branch of _config.yml) without touching the working tree; then: git push origin book-notebooks
publish-notebooks: notebooks
	$(PY) -m sharpjac.publish publish-notebooks

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
