"""Adding a chapter as it really is: ``python -m sharpjac new NAME`` in a temporary copy of the
repository writes the five files, and the new chapter executes at smoke and builds into a book."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from sharpjac import scaffold

ROOT = Path(__file__).resolve().parents[1]
NAME = "scaffolded_demo"


def _copy_repository(target: Path) -> Path:
    for name in ("_config.yml", "_toc.yml", "pyproject.toml"):
        shutil.copy(ROOT / name, target / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "executed", "_build")
    shutil.copytree(ROOT / "book", target / "book", ignore=ignore)
    shutil.copytree(ROOT / "src", target / "src", ignore=ignore)
    (target / "notebooks").mkdir()
    for source in (ROOT / "notebooks").glob("*.md"):
        shutil.copy(source, target / "notebooks" / source.name)
    return target


def _python(root: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "SHARPJAC_CACHE": str(root / ".runs")}
    return subprocess.run(
        [sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_toc_and_the_claim_chapters_get_the_new_chapter():
    toc = (ROOT / "_toc.yml").read_text()
    new = scaffold._add_to_toc(toc, "a_new")  # noqa: SLF001 - the helper under test
    assert new.count("notebooks/executed/a_new") == 1
    assert new.index("notebooks/executed/a_new") < new.index("caption: Back matter")
    again = scaffold._add_to_toc(new, "b_new")  # noqa: SLF001 - a second one joins the same part
    assert again.count("caption: New chapters") == 1
    assert again.index("notebooks/executed/a_new") < again.index("notebooks/executed/b_new")
    registry = (ROOT / "src/sharpjac/claims/registry.py").read_text()
    assert '    "a_new",\n)' in scaffold._add_to_chapters(registry, "a_new")  # noqa: SLF001


@pytest.mark.book
def test_a_scaffolded_chapter_executes_at_smoke_and_builds(tmp_path):
    root = _copy_repository(tmp_path)
    done = _python(root, "-m", "sharpjac", "new", NAME)
    assert done.returncode == 0, done.stderr
    written = [line.strip() for line in done.stdout.splitlines()[1:6]]
    assert written == [f.format(name=NAME) for f in scaffold.FILES]
    assert len(scaffold.FILES) == 5
    again = _python(root, "-m", "sharpjac", "new", NAME)
    assert again.returncode == 2 and "is taken" in again.stderr and again.stderr.count("\n") == 1
    new_code = [f.format(name=NAME) for f in scaffold.FILES[:2]]
    lint = _python(root, "-m", "ruff", "check", *new_code)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = _python(root, "-m", "ruff", "format", "--check", *new_code)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    # the repository's own checks see a consistent chapter: toc order = claims order, one parameters cell
    check = textwrap.dedent(f"""
        from pathlib import Path
        from sharpjac import claims, experiments, publish
        root = Path.cwd()
        assert publish.chapters(root)[-1] == "{NAME}", publish.chapters(root)
        assert list(claims.CHAPTERS) == publish.chapters(root)
        assert publish.chapter_experiments(root, "{NAME}") == ["{NAME}"]
        assert publish.lint_chapters(root) == [], publish.lint_chapters(root)
        defaults = {{"preset": "quick", "seed": 0, "n_seeds": 1}}
        assert publish.chapter_parameters(root / "notebooks" / "{NAME}.md") == defaults
        result = publish.execute_chapter(root, "{NAME}", {{"preset": "smoke", "seed": 0}})
        assert result.status == "executed"
        # a book of the landing page, the scorecard and the new chapter (the other sources set aside)
        for other in (root / "notebooks").glob("*.md"):
            if other.stem != "{NAME}":
                other.unlink()
        # (stub landing page and guide: the real ones link to every chapter)
        (root / "book" / "intro.md").write_text("# A book of one chapter\\n")
        (root / "book" / "guide.md").write_text("# Guide\\n")
        (root / "_toc.yml").write_text(
            "format: jb-book\\nroot: book/intro\\nchapters:\\n"
            "- file: book/guide\\n- file: notebooks/executed/{NAME}\\n"
        )
        publish.build_book(root)
        print("built")
    """)
    done = _python(root, "-c", check)
    assert done.returncode == 0 and "built" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    page = (root / "_build" / "html" / "notebooks" / "executed" / f"{NAME}.html").read_text()
    assert "loss_decreases" in page or "claim-" in page
    assert yaml.safe_load((root / "_toc.yml").read_text())


def test_a_bad_name_is_refused_in_one_line(tmp_path):
    with pytest.raises(ValueError, match=r"name='Bad-Name' is invalid; accepted: a lower-case identifier"):
        scaffold.new_chapter(tmp_path, "Bad-Name")


def _steps(text: str) -> str:
    start = text.index("A chapter is five files")
    return text[start : text.index("every other random draw use `seed`.", start)]


def test_readme_and_guide_describe_the_same_steps():
    readme = _steps((ROOT / "README.md").read_text())
    guide = _steps((ROOT / "book" / "guide.md").read_text())
    assert readme == guide
    for f in scaffold.FILES:
        assert f"`{f.format(name='my_chapter')}`" in readme
