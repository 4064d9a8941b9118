"""Execute the book's chapters with papermill and build the static site.

Data flow: ``notebooks/<chapter>.md`` (a MyST Markdown notebook in jupytext's ``myst`` format,
no outputs, one ``{code-cell}`` tagged ``parameters``) -> jupytext converts it to a notebook node
in memory -> papermill with the chosen preset and seed -> ``notebooks/executed/<chapter>.ipynb``
-> ``jupyter-book build`` with ``execute_notebooks: "off"`` -> ``_build/html``. The executed
``.ipynb`` are build products; the ``.md`` files are the only sources.

A chapter is re-executed only when its inputs changed: the executed copy stores, in its
metadata, a hash of the chapter's ``.md`` text, of every file under ``src/sharpjac`` and of the
parameters; when the hash matches, the chapter is skipped.

Parameters persist (:func:`plan_chapters`): a chapter is executed with the parameters its executed
copy was last computed with, updated by those given on the command line (``--preset``, ``--seed``,
``--params "n_seeds=5 fraction=0.8"``), until its ``.md`` source changes; a new chapter, a chapter
whose source changed, or any chapter with ``--reset`` starts again from :data:`DEFAULT_PARAMETERS`.
So ``make chapter NB=x SEED=1 && make book`` keeps seed 1, and ``make notebooks SEED=3 && make book``
keeps seed 3. Whenever a chapter is re-executed with parameters other than its stored ones, the
chapter and the changed parameters are printed first. Every parameter name is checked against the
names the chapter's ``parameters`` cell assigns before any chapter runs.

A chapter that fails never costs the book its page: the executed copy is replaced only after a
successful run (atomically), so the previous good copy stays; the failed run is kept as
``notebooks/executed/<chapter>.failed.ipynb`` for inspection. The error names the chapter and the
cell: the cell that raised, or, when the kernel died (out of memory, a crash in native code), the
last cell that had started.

Before execution, a cell that installs the package where it is missing (Colab, Binder) is put
after the chapter's title, hidden from the website (:func:`add_install_cell`). After a successful
execution the injected-parameters cell is tagged ``remove-cell`` (so it
does not show in the site) and a short "this page was computed with" box is inserted under
the chapter's title, carrying the parameters, the date, the software versions and the wall
time.

While a chapter executes, a sampling profiler in its kernel (:mod:`sharpjac.costs`) charges its
wall time to kernel start, training, measurements, statistics, figures, other code and papermill;
the record is written beside the executed copy (``<chapter>.costs.json``, :func:`costs_path`), and
``notebooks`` ends with the cost table of the chapters it executed (:func:`cost_report`, also
written to ``notebooks/executed/costs.md``).

The paper preset reads a store filled elsewhere: before executing anything,
``notebooks --preset paper`` (or any run that would execute a chapter at the paper preset) lists,
per chapter, the runs its experiments need (the paper preset's
grid, or a study's :meth:`~sharpjac.experiments.StudyConfig.trains`) that the run store
(``$SHARPJAC_CACHE``) does not hold, with the command that produces them and their cost (CPU hours
measured, GPU hours estimated, see :mod:`sharpjac.costs`), and stops (exit code 1) when any is
missing. With every run stored, the chapters are executed with ``SHARPJAC_TRAINING=never``, so a
chapter that asks for a run the list did not foresee fails naming it instead of training it.

Command line (the Makefile calls these)::

    python -m sharpjac.publish notebooks [--preset quick] [--seed 0] [--params "n_seeds=5"] [--reset]
                                         [--only data] [-p key value]
    python -m sharpjac.publish missing [--preset paper] [--only data]
    python -m sharpjac.publish build               # _build/html, with the buttons of derived_config
    python -m sharpjac.publish student             # _build/student: the site and notebooks without solutions
    python -m sharpjac.publish publish-notebooks   # executed chapters -> the launch buttons' branch
    python -m sharpjac.publish instructors         # the time table of the instructors' page
    python -m sharpjac.publish costs [--only data] # the cost table: where each chapter's time went

The package, one job a module (each imports only those above it):

- :mod:`~sharpjac.publish.plan`: the chapters (table-of-contents order), their parameters and input
  hashes, and the plan of which to execute with which parameters;
- :mod:`~sharpjac.publish.lint`: ruff on the chapters' code cells;
- :mod:`~sharpjac.publish.preflight`: the runs the chapters need that the run store lacks, with costs;
- :mod:`~sharpjac.publish.launch`: the repository URL, the derived site configuration, the install
  cell and the launch buttons' branch (``publish-notebooks``);
- :mod:`~sharpjac.publish.execute`: papermill execution of one chapter, and of many at once;
- :mod:`~sharpjac.publish.build`: ``jupyter-book build`` of the site;
- :mod:`~sharpjac.publish.instructors`: the time table of the instructors' page;
- :mod:`~sharpjac.publish.student`: the student edition (no solutions) and its leak check;
- :mod:`~sharpjac.publish.commands`: the command line (``python -m sharpjac.publish``).
"""

from __future__ import annotations

from .build import build_book, refresh_downloads
from .commands import main
from .execute import (
    ChapterError,
    ChapterResult,
    computed_with_box,
    cost_report,
    costs_path,
    default_jobs,
    environment_summary,
    execute_all,
    execute_chapter,
    execute_plans,
    last_started_cell,
)
from .instructors import measured_seconds, paper_cost, times_table
from .launch import (
    INSTALL_TAG,
    LAUNCH_BRANCH,
    add_install_cell,
    derived_config,
    https_url,
    install_cell_source,
    launch_branch,
    publish_notebooks,
    refresh_install_cell,
    repository_url,
)
from .lint import lint_chapters
from .plan import (
    DEFAULT_PARAMETERS,
    EXECUTED_DIR,
    PRESETS,
    ChapterPlan,
    chapter_parameters,
    chapters,
    check_parameter_names,
    describe_plan,
    input_hash,
    load_chapter,
    parse_params,
    plan_chapters,
    repository_root,
    source_hash,
    validate_parameters,
)
from .preflight import MissingRun, chapter_experiments, missing_report, missing_runs
from .student import (
    build_student,
    edition_files,
    edition_text,
    glue_keys,
    leaked_solutions,
    solution_keys,
    solution_texts,
    strip_solutions,
    student_notebook,
)

__all__ = [
    "PRESETS",
    "DEFAULT_PARAMETERS",
    "EXECUTED_DIR",
    "ChapterError",
    "ChapterResult",
    "repository_root",
    "chapters",
    "input_hash",
    "source_hash",
    "chapter_parameters",
    "check_parameter_names",
    "parse_params",
    "ChapterPlan",
    "plan_chapters",
    "describe_plan",
    "environment_summary",
    "computed_with_box",
    "load_chapter",
    "lint_chapters",
    "last_started_cell",
    "validate_parameters",
    "execute_chapter",
    "execute_all",
    "costs_path",
    "cost_report",
    "default_jobs",
    "execute_plans",
    "chapter_experiments",
    "MissingRun",
    "missing_runs",
    "missing_report",
    "INSTALL_TAG",
    "LAUNCH_BRANCH",
    "https_url",
    "repository_url",
    "launch_branch",
    "derived_config",
    "install_cell_source",
    "add_install_cell",
    "refresh_install_cell",
    "publish_notebooks",
    "build_book",
    "refresh_downloads",
    "measured_seconds",
    "paper_cost",
    "times_table",
    "strip_solutions",
    "glue_keys",
    "solution_keys",
    "student_notebook",
    "solution_texts",
    "edition_text",
    "edition_files",
    "leaked_solutions",
    "build_student",
    "main",
]
