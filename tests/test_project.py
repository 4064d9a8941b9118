"""The project's layout promises: one dependency list, clean parameterised MyST chapters, a complete toc."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import jupytext
import pytest
import tomllib
import yaml
from jupytext.formats import guess_format

from sharpjac import publish

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.md"))


def test_top_level_layout():
    for name in [
        "README.md",
        "book",
        "notebooks",
        "src/sharpjac",
        "tests",
        "environment.yml",
        "_config.yml",
        "_toc.yml",
        "pyproject.toml",
        "Makefile",
        ".ci/run",
        "benchmarks",
    ]:
        assert (ROOT / name).exists(), f"missing {name}"


def test_environment_yml_points_at_pyproject_only():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    pip_lists = [d["pip"] for d in deps if isinstance(d, dict)]
    assert pip_lists == [["-e .[dev]"]], "environment.yml must install the project, not list packages"
    conda_packages = [d for d in deps if isinstance(d, str)]
    assert sorted(conda_packages) == ["pip", "python=3.11"], conda_packages


def test_pyproject_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"]
    assert "torch==2.13.0" in deps
    assert any(d.startswith("jupyter-book") and "<2" in d for d in deps)
    for needed in [
        "papermill",
        "jupytext",
        "jupyterlab",
        "matplotlib",
        "seaborn",
        "sphinx-proof",
        "sphinx-mathjax-offline",
        "sphinxcontrib-bibtex",
        "tqdm",
    ]:
        assert any(d.startswith(needed) for d in deps), needed
    assert not any(d.startswith("torchvision") for d in deps)


def test_there_are_chapters():
    assert len(NOTEBOOKS) >= 10, f"expected the book's chapters as notebooks/*.md, found {len(NOTEBOOKS)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_chapter_is_a_myst_notebook(path):
    text = path.read_text()
    header = yaml.safe_load(text.split("---\n")[1]) if text.startswith("---\n") else None
    assert header, f"{path.name} has no jupytext YAML header"
    assert header["jupytext"]["text_representation"]["format_name"] == "myst", path.name
    assert header["kernelspec"]["name"] == "python3", path.name
    assert guess_format(text, ".md")[0] == "myst", path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_clean_and_parameterised(path):
    nb = jupytext.reads(path.read_text(), fmt="md:myst")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cells: is every code cell a ```{{code-cell}} block?"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: exactly one cell must be tagged 'parameters'"
    for name in ("preset", "seed"):
        assert re.search(rf"^{name}\s*=", tagged[0].source, re.MULTILINE), f"{path.name}: parameters need {name}"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), (
        f"{path.name}: the first cell must be the chapter's title"
    )
    # TeX in a text notebook has single backslashes; `\\lambda` would be an escaped JSON string pasted in
    # (`\\` followed by a space or a newline, TeX's line break, is allowed)
    doubled = [
        line
        for c in nb.cells
        if c.cell_type == "markdown"
        for line in c.source.splitlines()
        if re.search(r"\\\\[A-Za-z]", line)
    ]
    assert not doubled, f"{path.name}: double-escaped TeX: {doubled[:3]}"


def test_no_notebook_json_is_tracked():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing is tracked")
    tracked = subprocess.run(
        ["git", "ls-files", "--", "*.ipynb"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked == [], f"notebooks are sources as notebooks/*.md; tracked .ipynb: {tracked}"


def test_book_excludes_the_chapter_sources():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert "notebooks/*.md" in config["exclude_patterns"]
    assert not any("executed" in pattern for pattern in config["exclude_patterns"])


def test_lab_settings_open_markdown_as_notebooks():
    overrides = json.loads((ROOT / ".jupyter" / "labconfig" / "default_setting_overrides.json").read_text())
    viewers = overrides["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers["markdown"] == "Jupytext Notebook"
    assert ".jupyter" in (ROOT / "Makefile").read_text().split("\nlab:")[1].split("\n\n")[0]
    config = tomllib.loads((ROOT / "notebooks" / "jupytext.toml").read_text())
    assert "formats" not in config, "chapters must not be paired with .ipynb files"


def test_every_notebook_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    for path in NOTEBOOKS:
        assert f"notebooks/executed/{path.stem}" in toc, f"{path.name} is not in _toc.yml"
    assert sorted(publish.chapters(ROOT)) == sorted(p.stem for p in NOTEBOOKS)


def test_bad_preset_and_seed_are_rejected_before_work():
    with pytest.raises(ValueError, match="preset='fast'.*smoke, quick, paper"):
        publish.validate_parameters({"preset": "fast", "seed": 0})
    with pytest.raises(ValueError, match="seed=-1"):
        publish.validate_parameters({"preset": "quick", "seed": -1})


def test_licence_states_code_and_text():
    text = (ROOT / "LICENSE").read_text()
    assert "MIT License" in text and "Permission is hereby granted" in text
    assert "CC BY 4.0" in text and "creativecommons.org/licenses/by/4.0" in text
    readme = (ROOT / "README.md").read_text()
    assert "MIT" in readme and "CC BY 4.0" in readme


def test_citation_file_is_cff_1_2_0_and_cites_the_paper():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    for key in ("cff-version", "message", "title", "authors", "version", "date-released", "license", "references"):
        assert cff.get(key), f"CITATION.cff lacks {key}"
    assert cff["cff-version"] == "1.2.0"
    assert cff["authors"] == [{"name": "The sharpjac contributors"}]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert str(cff["version"]) == version
    assert set(cff["license"]) == {"MIT", "CC-BY-4.0"}
    [paper] = cff["references"]
    assert [a["family-names"] for a in paper["authors"]] == ["MacDonald", "Valmadre", "Lucey"]
    assert any(i["value"] == "arXiv:2305.14683" for i in paper["identifiers"])
    # every author of the software and of the reference has a name (CFF requires one of the two forms)
    assert all("name" in a or "family-names" in a for a in cff["authors"] + paper["authors"])
