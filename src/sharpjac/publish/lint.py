"""Ruff on the chapters' code cells (``python -m sharpjac.publish lint``, ``make lint``)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .plan import chapters


def _ruff(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", *args], input=stdin, capture_output=True, text=True, cwd=cwd)


def lint_chapters(root: Path, *, fix: bool = False) -> list[str]:
    """Lint the chapters' code with ruff, under the project's ``[tool.ruff]`` settings.

    ``ruff check`` runs on each chapter's code cells joined into one script (so that names defined in
    one cell and used in a later one are known); ``ruff format`` formats each code cell on its own
    (a cell is a snippet). With ``fix=True`` the formatted cells are written back into the ``.md``
    sources; ``ruff check`` findings are left to fix by hand. Returns the findings, one line each.
    """
    import jupytext

    findings: list[str] = []
    books = {name: jupytext.read(root / "notebooks" / f"{name}.md", fmt="md:myst") for name in chapters(root)}
    with tempfile.TemporaryDirectory() as tmp:
        cells: dict[Path, tuple[str, Any]] = {}
        for name, nb in books.items():
            script = "\n\n".join(c.source for c in nb.cells if c.cell_type == "code") + "\n"
            # checked as notebooks/<name>.py, so that the per-file settings for notebooks apply
            res = _ruff(
                "check",
                "--output-format",
                "concise",
                "--stdin-filename",
                f"notebooks/{name}.py",
                "-",
                stdin=script,
                cwd=root,
            )
            findings += [
                f"notebooks/{name}.md (code cells joined): {line.split(':', 1)[-1].strip()}"
                for line in res.stdout.splitlines()
                if line.startswith("notebooks/")
            ]
            for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
                path = Path(tmp) / f"{name}__{i + 1:03d}.py"
                path.write_text(cell.source.rstrip("\n") + "\n", encoding="utf-8")
                cells[path] = (name, cell)
        res = _ruff("format", "--config", str(root / "pyproject.toml"), "--quiet", tmp, cwd=root)
        if res.returncode != 0:
            findings.append(f"chapters: ruff format failed: {res.stderr.strip()}")
            return findings
        changed: set[str] = set()
        for path, (name, cell) in sorted(cells.items()):
            formatted = path.read_text(encoding="utf-8").rstrip("\n")
            if formatted == cell.source.rstrip("\n"):
                continue
            if fix:
                cell.source = formatted
                changed.add(name)
            else:
                number = int(path.stem.rsplit("__", 1)[1])
                findings.append(f"notebooks/{name}.md: code cell {number} is not ruff-formatted (make format fixes it)")
    for name in sorted(changed):
        jupytext.write(books[name], root / "notebooks" / f"{name}.md", fmt="md:myst")
    return findings
