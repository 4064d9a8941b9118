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
# set (on the command line or in the environment) -> passed on; unset -> stored parameters are kept
given   = $(filter-out undefined default,$(origin $(1)))
RUNARGS = $(if $(call given,PRESET),--preset $(PRESET)) $(if $(call given,SEED),--seed $(SEED)) \
          $(if $(call given,PARAMS),--params '$(PARAMS)') $(if $(RESET),--reset) \
          $(if $(call given,JOBS),--jobs $(JOBS))

.PHONY: help install test lint format notebooks book chapter student publish-notebooks lab bench clean distclean rehearse new

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
	$(PY) -m sharpjac.publish notebooks $(strip $(RUNARGS))

chapter: $(STAMP)
	@test -n "$(NB)" || (echo "usage: make chapter NB=<name> [PRESET=quick] [SEED=0] [PARAMS=\"n_seeds=5\"]; chapters:"; $(PY) -m sharpjac.publish list; exit 2)
	$(PY) -m sharpjac.publish notebooks $(strip $(RUNARGS)) --only $(NB)

book: notebooks
	$(PY) -m sharpjac.publish build

# the paper rehearsal: the chapters with preset=paper at toy size (sharpjac.rehearsal), nothing kept
rehearse: $(STAMP)
	$(PY) -m sharpjac.rehearsal $(if $(NB),--only $(NB))

# a new chapter: python -m sharpjac new NAME (see "Adding a chapter" in README.md)
new: $(STAMP)
	@test -n "$(NAME)" || (echo "usage: make new NAME=<chapter name, lower_case>"; exit 2)
	$(PY) -m sharpjac new $(NAME)

# the site and the downloadable notebooks without solutions, in _build/student (the normal build is untouched)
student: notebooks
	$(PY) -m sharpjac.publish student

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
