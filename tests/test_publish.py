"""Publishing for readers and teachers: parameters that persist, launch buttons that lead somewhere,
the executed notebooks on their branch, the student edition and the instructors' time table.

Most tests fake an executed chapter (a notebook with the ``sharpjac`` metadata papermill's run would
leave) so that the planning logic is tested without a kernel; one test executes a tiny chapter end to
end, and the student-edition test builds a tiny book twice.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from test_book import _tiny_book

from sharpjac import publish

ROOT = Path(__file__).resolve().parents[1]
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _fake_executed(root: Path, name: str, parameters: dict, *, cells: list | None = None) -> Path:
    """Write notebooks/executed/<name>.ipynb as execute_chapter would have, for ``parameters``."""
    source = root / "notebooks" / f"{name}.md"
    nb = nbformat.v4.new_notebook()
    nb.cells = cells or [nbformat.v4.new_markdown_cell("# Tiny")]
    nb.metadata["sharpjac"] = {
        "input_hash": publish.input_hash(source, parameters),
        "source_hash": publish.source_hash(source),
        "parameters": dict(parameters),
        "seconds": 12.5,
    }
    out = root / "notebooks" / "executed" / f"{name}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(out))
    return out


def _params_book(root: Path) -> Path:
    """A tiny book whose parameters cell also has n_seeds and fraction."""
    _tiny_book(root, [])
    source = root / "notebooks" / "tiny.md"
    source.write_text(source.read_text().replace("seed = 0", "seed = 0\nn_seeds = 2\nfraction = 0.9"))
    return root


# ------------------------------------------------------------------------------------------------
# Parameters persist
# ------------------------------------------------------------------------------------------------


def test_chapter_parameters_are_read_from_the_parameters_cell(tmp_path):
    root = _params_book(tmp_path)
    assert publish.chapter_parameters(root / "notebooks" / "tiny.md") == {
        "preset": "quick",
        "seed": 0,
        "n_seeds": 2,
        "fraction": 0.9,
    }


def test_params_string_is_parsed_like_the_command_line():
    assert publish.parse_params("n_seeds=5 fraction=0.8 method=kendall label='a b'") == {
        "n_seeds": 5,
        "fraction": 0.8,
        "method": "kendall",
        "label": "a b",
    }
    assert publish.parse_params("") == {}
    with pytest.raises(ValueError, match="'n_seeds' is not NAME=VALUE"):
        publish.parse_params("n_seeds")


def test_unknown_parameter_is_one_line_naming_the_accepted_ones_before_any_work(tmp_path):
    root = _params_book(tmp_path)
    with pytest.raises(ValueError) as info:
        publish.execute_all(root, {"n_seed": 5})
    message = str(info.value)
    assert "\n" not in message
    assert "n_seed=5" in message and "tiny" in message and "preset, seed, n_seeds, fraction" in message
    assert not (root / "notebooks" / "executed").exists()  # nothing ran


def test_stored_parameters_persist_until_given_or_the_source_changes(tmp_path):
    root = _params_book(tmp_path)
    _fake_executed(root, "tiny", {"preset": "smoke", "seed": 1, "n_seeds": 5})
    # nothing given: the stored parameters, nothing to execute
    [plan] = publish.plan_chapters(root, ["tiny"])
    assert plan.parameters == {"preset": "smoke", "seed": 1, "n_seeds": 5}
    assert not plan.execute and plan.reason == "up to date"
    assert publish.describe_plan(plan) is None
    # one given: it changes, the others persist, and the change is announced
    [plan] = publish.plan_chapters(root, ["tiny"], {"seed": 3})
    assert plan.parameters == {"preset": "smoke", "seed": 3, "n_seeds": 5}
    assert plan.execute and plan.reason == "parameters changed"
    assert publish.describe_plan(plan) == "chapter tiny: re-executed with other parameters (as given): seed 1 -> 3"
    # --reset: the defaults
    [plan] = publish.plan_chapters(root, ["tiny"], reset=True)
    assert plan.parameters == publish.DEFAULT_PARAMETERS and plan.reason == "reset"
    assert "n_seeds 5 -> (default)" in publish.describe_plan(plan)
    # the source changes: defaults (plus what is given), announced with the reason
    source = root / "notebooks" / "tiny.md"
    source.write_text(source.read_text() + "\n```{code-cell}\nz = 2\n```\n")
    [plan] = publish.plan_chapters(root, ["tiny"], {"preset": "smoke"})
    assert plan.parameters == {"preset": "smoke", "seed": 0}
    assert plan.execute and plan.reason == "source changed"
    notice = publish.describe_plan(plan)
    assert "its source changed" in notice and "seed 1 -> 0" in notice and "n_seeds 5 -> (default)" in notice


def test_a_new_chapter_starts_from_the_defaults(tmp_path):
    root = _params_book(tmp_path)
    [plan] = publish.plan_chapters(root, ["tiny"], {"n_seeds": 4})
    assert plan.parameters == {"preset": "quick", "seed": 0, "n_seeds": 4}
    assert plan.execute and plan.reason == "new" and plan.stored is None
    assert publish.describe_plan(plan) is None  # nothing stored, so nothing changes silently


def test_stored_parameter_the_chapter_no_longer_accepts_is_dropped(tmp_path):
    # an executed copy from before source hashes were stored: its source counts as unchanged
    root = _params_book(tmp_path)
    out = _fake_executed(root, "tiny", {"preset": "smoke", "seed": 2, "retired": 1})
    nb = nbformat.read(str(out), as_version=4)
    del nb.metadata["sharpjac"]["source_hash"]
    nbformat.write(nb, str(out))
    [plan] = publish.plan_chapters(root, ["tiny"])
    assert plan.parameters == {"preset": "smoke", "seed": 2}


@pytest.mark.book
def test_seed_given_once_survives_the_next_plain_run(tmp_path):
    """`make chapter NB=x SEED=1 && make book`: the second, plain, run keeps seed 1 (end to end)."""
    root = _tiny_book(tmp_path, ["print(f'seed is {seed}')"])
    [first] = publish.execute_all(root, {"preset": "smoke", "seed": 1}, log=lambda *_: None)
    assert first.status == "executed"
    lines: list[str] = []
    [second] = publish.execute_all(root, log=lines.append)
    assert second.status == "cached"
    nb = nbformat.read(str(second.output), as_version=4)
    assert nb.metadata["sharpjac"]["parameters"] == {"preset": "smoke", "seed": 1}
    assert "seed is 1\n" in [o.get("text") for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    # the install cell comes first among the code cells and is hidden from the site
    install = [c for c in nb.cells if publish.INSTALL_TAG in c.metadata.get("tags", [])]
    assert len(install) == 1 and "remove-cell" in install[0].metadata["tags"]
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert first_code is install[0]


def _make_n(tmp: Path, *args: str) -> str:
    """The commands ``make -n`` would run, touching nothing: ``make`` remakes out-of-date targets
    that makefiles depend on even under ``-n``, so the install stamp is a fresh file newer than
    pyproject.toml and the virtual environment and interpreter point into ``tmp``."""
    stamp = tmp / "installed-stamp"
    stamp.touch()
    done = subprocess.run(
        ["make", "-n", "-C", str(ROOT), *args, "PY=python", f"STAMP={stamp}", f"VENV={tmp / 'venv'}", "PYTHON=false"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    return done.stdout


def _make_args(tmp: Path, *args: str) -> str:
    """The ``sharpjac.publish`` command ``make`` would run: the make variables reach
    ``_make_args.py`` as data, and ``SHARPJAC_MAKE_PRINT=1`` makes it print the argument list."""
    stamp = tmp / "installed-stamp"
    stamp.touch()
    done = subprocess.run(
        ["make", "-s", "-C", str(ROOT), *args, f"PY={sys.executable}", f"STAMP={stamp}", f"VENV={tmp / 'venv'}"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "SHARPJAC_MAKE_PRINT": "1"},
    )
    return done.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_makefile_passes_only_what_the_user_set(tmp_path):
    plain = _make_args(tmp_path, "notebooks")
    assert "sharpjac.publish notebooks" in plain and "--preset" not in plain and "--seed" not in plain
    one = _make_args(tmp_path, "chapter", "NB=data", "SEED=1")
    assert "--seed 1" in one and "--preset" not in one and "--only data" in one
    params = _make_args(tmp_path, "chapter", "NB=weight_decay", "PARAMS=n_seeds=5 fraction=0.8")
    assert "--params 'n_seeds=5 fraction=0.8'" in params
    paper = _make_n(tmp_path, "book", "PRESET=paper")
    assert "_make_args.py notebooks" in paper and "sharpjac.publish build" in paper
    assert "notebooks --preset paper" in _make_args(tmp_path, "notebooks", "PRESET=paper")
    assert "--reset" in _make_args(tmp_path, "notebooks", "RESET=1")


# ------------------------------------------------------------------------------------------------
# Launch buttons
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("remote", "url"),
    [
        ("git@github.com:someone/book.git", "https://github.com/someone/book"),
        ("ssh://git@github.com/someone/book.git", "https://github.com/someone/book"),
        ("https://user:secret@github.com/someone/book.git", "https://github.com/someone/book"),
        ("https://gitlab.example.org/group/book/", "https://gitlab.example.org/group/book"),
        ("/srv/git/book.git", None),
        ("file:///srv/git/book.git", None),
    ],
)
def test_remote_becomes_an_https_url_without_credentials(remote, url):
    assert publish.https_url(remote) == url


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def _git_book(root: Path, *, remote: str | None) -> Path:
    _tiny_book(root, [])
    (root / "_config.yml").write_text(
        "title: Tiny\nrepository:\n  url: ''\n  branch: main\nlaunch_buttons:\n"
        "  binderhub_url: https://mybinder.org\n  colab_url: https://colab.research.google.com\n"
        "html:\n  use_repository_button: true\n"
    )
    _git(root, "init", "-q", "-b", "main")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@example.org", "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "tiny")
    if remote:
        _git(root, "remote", "add", "origin", remote)
    return root


@needs_git
def test_no_url_hides_every_button(tmp_path):
    root = _git_book(tmp_path, remote=None)
    assert publish.repository_url(root) is None
    config = publish.derived_config(root)
    assert config["html"]["use_repository_button"] is False
    assert config["launch_buttons"]["binderhub_url"] == "" and config["launch_buttons"]["colab_url"] == ""
    assert config["repository"]["url"] == ""
    assert "url: ''" in (root / "_config.yml").read_text()  # the user's file is never edited


@needs_git
def test_url_from_git_remote_and_launch_only_once_the_branch_exists(tmp_path):
    root = _git_book(tmp_path, remote="git@github.com:someone/book.git")
    assert publish.repository_url(root) == "https://github.com/someone/book"
    config = publish.derived_config(root)
    assert config["repository"]["url"] == "https://github.com/someone/book"
    assert config["html"]["use_repository_button"] is True
    assert config["launch_buttons"]["colab_url"] == ""  # no book-notebooks branch yet: nothing to open
    _fake_executed(root, "tiny", {"preset": "smoke", "seed": 0})
    publish.publish_notebooks(root)
    config = publish.derived_config(root)
    assert config["repository"]["branch"] == publish.LAUNCH_BRANCH
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert "launch_branch" not in config["repository"]


@needs_git
def test_url_setting_wins_over_the_remote(tmp_path):
    root = _git_book(tmp_path, remote="git@github.com:someone/book.git")
    text = (root / "_config.yml").read_text().replace("url: ''", "url: https://example.org/fork/")
    (root / "_config.yml").write_text(text)
    assert publish.repository_url(root) == "https://example.org/fork"


@needs_git
def test_a_directory_inside_another_repository_has_no_url(tmp_path):
    # a copied tree (the student edition's) must never borrow the remote of a repository around it
    _git_book(tmp_path, remote="git@github.com:someone/book.git")
    root = _tiny_book(tmp_path / "copy", [])
    assert publish.repository_url(tmp_path) == "https://github.com/someone/book"
    assert publish.repository_url(root) is None


def test_install_cell_installs_from_the_url_or_says_how():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# T"), nbformat.v4.new_code_cell("import sharpjac")]
    publish.add_install_cell(nb, "https://github.com/someone/book")
    cell = nb.cells[1]
    assert cell.metadata["tags"] == ["remove-cell", publish.INSTALL_TAG]
    assert '%pip install -q "sharpjac @ git+https://github.com/someone/book"' in cell.source
    assert cell.source.index("import sharpjac") < cell.source.index("%pip")
    local = publish.install_cell_source(None)
    assert "pip install -e ." in local and "%pip" not in local
    compile(local, "install", "exec")  # plain Python without a URL


def test_published_copy_installs_from_the_current_url():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# T"), nbformat.v4.new_code_cell("a = 1")]
    publish.add_install_cell(nb, "https://github.com/old/place")
    text = publish.refresh_install_cell(nbformat.writes(nb), "https://github.com/new/place")
    [cell] = [c for c in nbformat.reads(text, as_version=4).cells if publish.INSTALL_TAG in c.metadata.get("tags", [])]
    assert "git+https://github.com/new/place" in cell.source and "old/place" not in cell.source
    plain = nbformat.writes(nbformat.v4.new_notebook())
    assert publish.refresh_install_cell(plain, "https://github.com/new/place") == plain


def test_last_started_cell_does_not_count_the_install_cell():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# T"), nbformat.v4.new_code_cell("a = 1")]
    publish.add_install_cell(nb, None)
    for cell in nb.cells:
        cell.metadata["papermill"] = {"start_time": "2026-01-01T00:00:00"}
    assert publish.last_started_cell(nb) == (2, 1, "a = 1")


@needs_git
def test_publish_notebooks_commits_to_its_branch_and_leaves_the_work_tree(tmp_path):
    root = _git_book(tmp_path, remote=None)
    executed = _fake_executed(root, "tiny", {"preset": "smoke", "seed": 0})
    (root / ".gitignore").write_text("notebooks/executed/\n")
    head, status = _git(root, "rev-parse", "HEAD"), _git(root, "status", "--porcelain")
    first = publish.publish_notebooks(root, branch="nb")
    assert _git(root, "rev-parse", "HEAD") == head and _git(root, "status", "--porcelain") == status
    assert _git(root, "rev-parse", "nb") == first
    files = _git(root, "ls-tree", "-r", "--name-only", "nb").splitlines()
    assert "notebooks/executed/tiny.ipynb" in files and "notebooks/tiny.md" in files
    assert json.loads(_git(root, "show", "nb:notebooks/executed/tiny.ipynb")) == json.loads(executed.read_text())
    second = publish.publish_notebooks(root, branch="nb")
    assert _git(root, "rev-parse", "nb^") == first and second != first  # history of publications


# ------------------------------------------------------------------------------------------------
# Student edition
# ------------------------------------------------------------------------------------------------

_SOLVED = """Try it.

````{solution} ex-tiny
:class: dropdown
The SECRET answer.

```python
x = 1
```
````

:::{solution} ex-colon
Another HIDDEN answer.
:::

Text after."""


def test_strip_solutions_removes_both_fence_styles_and_keeps_the_rest():
    stripped = publish.strip_solutions(_SOLVED)
    assert "SECRET" not in stripped and "HIDDEN" not in stripped and "x = 1" not in stripped
    assert stripped.startswith("Try it.") and stripped.rstrip().endswith("Text after.")
    gated = "A\n\n```{solution-start} ex\n```\nGATED text\n```{solution-end}\n```\n\nB\n"
    assert publish.strip_solutions(gated) == "A\n\nB\n"
    assert publish.strip_solutions("no solution here\n") == "no solution here\n"


def _glue_output(name: str, text: str) -> dict:
    """The output ``glue(name, Markdown(text), display=False)`` leaves in an executed notebook."""
    return nbformat.v4.new_output(
        "display_data",
        data={"application/papermill.record/text/markdown": text},
        metadata={"scrapbook": {"name": name, "mime_prefix": "application/papermill.record/"}},
    )


def _code(source: str, *outputs: dict) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.outputs = list(outputs)
    return cell


def test_student_notebook_drops_the_cells_that_compute_a_solution_and_their_outputs():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        _code("x = 2", _glue_output("shown", "x is 2")),
        # glues a key the chapter shows and one only a solution shows: the cell stays, that output goes
        _code(
            'y = x + 1\nglue("both", 1)\nglue("ans_a", "y is 3")',
            _glue_output("both", "1"),
            _glue_output("ans_a", "SECRET-A"),
        ),
        nbformat.v4.new_markdown_cell("Text {glue:text}`shown` and {glue:text}`both:.1f`."),
        # glues only solution keys: the whole cell goes (its code states the solution)
        _code('z = "SECRET-CODE"\nglue("ans_b", z)', _glue_output("ans_b", "SECRET-B")),
        nbformat.v4.new_markdown_cell(
            "```{exercise}\n:label: ex-1\nWhat is y?\n```\n\n"
            "```{solution} ex-1\n:class: dropdown\n{glue:md}`ans_a:myst` and {glue:md}`ans_b:myst`\n```\n"
        ),
        _code("print(x)"),
    ]
    assert publish.solution_keys(nb) == {"ans_a", "ans_b"}
    student = publish.student_notebook(nb, name="tiny")
    text = json.dumps(student)
    assert "SECRET" not in text and "{solution}" not in text and "What is y?" in text
    assert [c.source.splitlines()[0] for c in student.cells if c.cell_type == "code"] == [
        "x = 2",
        "y = x + 1",
        "print(x)",
    ]
    assert [o.metadata["scrapbook"]["name"] for o in student.cells[1].outputs] == ["both"]
    assert "SECRET-B" in json.dumps(nb)  # the executed chapter itself is untouched


def test_student_notebook_refuses_to_drop_a_cell_a_later_cell_needs():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        _code('z = 3\nglue("ans", z)', _glue_output("ans", "3")),
        nbformat.v4.new_markdown_cell("```{solution} ex-1\n{glue:text}`ans`\n```\n"),
        _code("print(z + 1)"),
    ]
    with pytest.raises(ValueError, match=r"^tiny: cell 2 reads z, bound only by solution cell 0"):
        publish.student_notebook(nb, name="tiny")
    nb.cells.insert(2, _code("z = 4"))  # bound again outside the solution: fine
    assert len(publish.student_notebook(nb, name="tiny").cells) == 3


@pytest.mark.book
def test_student_edition_has_no_solutions_and_the_normal_build_does(tmp_path):
    root = _tiny_book(tmp_path, [])
    (root / "intro.md").write_text("# Intro\n")
    (root / "_config.yml").write_text(
        "title: Tiny\nexecute:\n  execute_notebooks: 'off'\nonly_build_toc_files: true\n"
        "exclude_patterns: ['notebooks/*.md', '_build']\n"
        "sphinx:\n  extra_extensions: [sphinx_exercise]\n"
    )
    exercises = "".join(f"```{{exercise}}\n:label: {label}\nWhat is x?\n```\n\n" for label in ("ex-tiny", "ex-colon"))
    exercise = nbformat.v4.new_markdown_cell(exercises + _SOLVED)
    _fake_executed(
        root, "tiny", {"preset": "smoke", "seed": 0}, cells=[nbformat.v4.new_markdown_cell("# Tiny"), exercise]
    )
    publish.build_book(root)
    normal = (root / "_build" / "html" / "notebooks" / "executed" / "tiny.html").read_text()
    assert "SECRET" in normal and "What is x?" in normal
    target = publish.build_student(root)
    student = (target / "html" / "notebooks" / "executed" / "tiny.html").read_text()
    assert "What is x?" in student and "Text after." in student
    assert "SECRET" not in student and "HIDDEN" not in student
    downloaded = (target / "notebooks" / "tiny.ipynb").read_text()
    assert "What is x?" in downloaded and "SECRET" not in downloaded
    # the normal site and executed copy are untouched
    assert "SECRET" in (root / "_build" / "html" / "notebooks" / "executed" / "tiny.html").read_text()
    assert "SECRET" in (root / "notebooks" / "executed" / "tiny.ipynb").read_text()


# ------------------------------------------------------------------------------------------------
# Instructors' times
# ------------------------------------------------------------------------------------------------


def test_times_table_reads_measured_seconds_by_preset(tmp_path):
    root = _tiny_book(tmp_path, [])
    quick = tmp_path / "quick"
    quick.mkdir()
    _fake_executed(root, "tiny", {"preset": "quick", "seed": 0})
    shutil.move(root / "notebooks" / "executed" / "tiny.ipynb", quick / "tiny.ipynb")
    table = publish.times_table(root, smoke_dir=quick, quick_dir=quick)
    row = table.splitlines()[-1]
    # quick copy: 12.5 s in the quick column, nothing in the smoke column (its preset is not smoke)
    assert row == "| {doc}`/notebooks/executed/tiny` | – | 12.5 s | no training runs |"


# ------------------------------------------------------------------------------------------------
# The book's files for teachers and its workflow
# ------------------------------------------------------------------------------------------------


def test_pages_workflow_builds_and_deploys():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert "push" in on and "workflow_dispatch" in on
    assert workflow["permissions"]["pages"] == "write" and workflow["permissions"]["id-token"] == "write"
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    uses = [s.get("uses", "") for s in steps]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert any(u.startswith("actions/checkout@") for u in uses)
    assert any(u.startswith("actions/setup-python@") for u in uses)
    assert any(s.get("with", {}).get("python-version") == "3.11" for s in steps)
    assert re.search(r"pip install -e \"?\.", runs) and "make book" in runs
    assert any(u.startswith("actions/upload-pages-artifact@") for u in uses)
    assert any(u.startswith("actions/deploy-pages@") for u in uses)
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "_build/html"


def _two_chapter_book(root: Path, second: str) -> Path:
    from test_book import _tiny_source

    root = _tiny_book(root, ["print(f'one {seed}')"])
    (root / "notebooks" / "two.md").write_text(_tiny_source([second]))
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n  - file: notebooks/executed/tiny\n  - file: notebooks/executed/two\n"
    )
    return root


def _printed(result) -> list[str]:
    nb = nbformat.read(str(result.output), as_version=4)
    return [o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def test_chapters_in_parallel_give_what_one_at_a_time_gives(tmp_path):
    """jobs=2 runs the chapters in worker processes; outputs and their order equal jobs=1's."""
    outputs = {}
    for jobs in (1, 2):
        root = _two_chapter_book(tmp_path / f"jobs{jobs}", "print(f'two {seed * 10}')")
        plans = publish.plan_chapters(root, ["tiny", "two"], {"preset": "smoke", "seed": 3})
        results = publish.execute_plans(root, plans, log=lambda *_: None, jobs=jobs)
        assert [r.name for r in results] == ["tiny", "two"]
        assert all(r.status == "executed" for r in results)
        outputs[jobs] = [_printed(r) for r in results]
    assert outputs[1] == outputs[2]
    assert "one 3\n" in outputs[2][0] and "two 30\n" in outputs[2][1]


def test_a_failing_chapter_in_parallel_names_itself(tmp_path):
    root = _two_chapter_book(tmp_path, "raise RuntimeError('boom in two')")
    plans = publish.plan_chapters(root, ["tiny", "two"], {"preset": "smoke", "seed": 0})
    with pytest.raises(publish.ChapterError, match=r"notebooks/two\.md.*boom in two"):
        publish.execute_plans(root, plans, log=lambda *_: None, jobs=2)
    assert not (root / "notebooks" / "executed" / "two.ipynb").exists()


@pytest.mark.parametrize("jobs", [0, -1, 1.5, True])
def test_jobs_must_be_a_positive_integer(tmp_path, jobs):
    with pytest.raises(ValueError, match=r"jobs=.*accepted: a positive integer"):
        publish.execute_plans(tmp_path, [], jobs=jobs)


def test_jobs_default_from_the_environment(monkeypatch):
    monkeypatch.setenv("SHARPJAC_JOBS", "3")
    assert publish.default_jobs() == 3
    monkeypatch.setenv("SHARPJAC_JOBS", "two")
    with pytest.raises(ValueError, match=r"SHARPJAC_JOBS='two'; accepted: a positive integer"):
        publish.default_jobs()
    monkeypatch.delenv("SHARPJAC_JOBS")
    assert 1 <= publish.default_jobs() <= 2


def test_root_redirect_names_the_icon_and_keeps_its_target(tmp_path):
    from sharpjac.publish.build import write_root_redirect

    (tmp_path / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=book/intro.html" />\n')
    page = write_root_redirect(tmp_path).read_text()
    assert 'content="0; url=book/intro.html"' in page and '<a href="book/intro.html">' in page
    assert 'rel="icon" href="_static/favicon.svg"' in page
    assert write_root_redirect(tmp_path) is None  # already replaced: left alone
    assert write_root_redirect(tmp_path / "nowhere") is None
