"""The project's layout promises: one dependency list, clean parameterised notebooks, a complete toc."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import yaml

from sharpjac import publish

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_top_level_layout():
    for name in ["README.md", "book", "notebooks", "src/sharpjac", "tests", "environment.yml",
                 "_config.yml", "_toc.yml", "pyproject.toml", "Makefile", ".ci/run", "benchmarks"]:
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
    for needed in ["papermill", "jupyterlab", "matplotlib", "seaborn", "sphinx-proof",
                   "sphinx-mathjax-offline", "sphinxcontrib-bibtex", "tqdm"]:
        assert any(d.startswith(needed) for d in deps), needed
    assert not any(d.startswith("torchvision") for d in deps)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_clean_and_parameterised(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), \
        f"{path.name} is committed with outputs"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: exactly one cell must be tagged 'parameters'"
    source = "".join(tagged[0]["source"])
    assert "preset" in source and "seed" in source, f"{path.name}: parameters need preset and seed"
    assert nb["cells"][0]["cell_type"] == "markdown" and "".join(nb["cells"][0]["source"]).startswith("# "), \
        f"{path.name}: the first cell must be the chapter's title"


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
