"""The static site: ``jupyter-book build`` of the executed chapters, with the derived configuration
of :mod:`sharpjac.publish.launch`."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

from .launch import refresh_install_cell, repository_url, write_derived_config
from .plan import EXECUTED_DIR, chapters


def build_book(root: Path, *, builder: str = "html") -> None:
    """Run ``jupyter-book build`` with ``-W -n --keep-going`` and the configuration of
    :func:`derived_config`; raise when it fails."""
    exe = Path(sys.executable).with_name("jupyter-book")
    command = [str(exe), "build", str(root), "--builder", builder, "-W", "-n", "--keep-going"]
    missing = [n for n in chapters(root) if not (root / EXECUTED_DIR / f"{n}.ipynb").is_file()]
    if missing:
        raise FileNotFoundError(f"chapters not executed yet: {', '.join(missing)}; run `make notebooks` first")
    from sharpjac import scorecard  # the scorecard page and the landing page's counts, from the records
    from sharpjac.claims import calibration  # the rules page: each rule's false-agree rate and power

    scorecard.write(root)
    calibration.write(root)
    command += ["--config", str(write_derived_config(root))]  # repository URL and buttons (derived_config)
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-60:])
        raise RuntimeError(f"jupyter-book build failed (exit {done.returncode}):\n{tail}")
    refresh_downloads(root / "_build" / builder, repository_url(root))
    if builder == "html":
        write_root_redirect(root / "_build" / builder)


_REDIRECT = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Refresh" content="0; url={target}">
<link rel="icon" href="_static/favicon.svg" type="image/svg+xml">
<title>Redirecting to the book</title></head>
<body><p><a href="{target}">Open the book</a></p></body></html>
"""


def write_root_redirect(site: Path) -> Path | None:
    """Replace Jupyter Book's bare root ``index.html`` (one ``Refresh`` meta line, so a browser asks
    for ``/favicon.ico`` and logs a 404) by a small page that redirects to the same target, names
    the site's icon and links the book for a reader whose browser does not follow the redirect.
    Returns the page, or None when the site has no bare redirect to replace."""
    index = site / "index.html"
    if not index.is_file():
        return None
    match = re.fullmatch(r'\s*<meta http-equiv="Refresh" content="0; url=([^"]+)"\s*/>\s*', index.read_text())
    if match is None:
        return None
    index.write_text(_REDIRECT.format(target=html.escape(match.group(1), quote=True)), encoding="utf-8")
    return index


def refresh_downloads(site: Path, url: str | None) -> list[Path]:
    """Rewrite the install cell (:func:`refresh_install_cell`) of every downloadable notebook of the
    built ``site`` (``_sources/**/*.ipynb``) for ``url``, the repository URL in force now, so a
    download installs from it even when the chapter was executed before the URL was set; return the
    files changed."""
    changed = []
    for path in sorted(site.glob("_sources/**/*.ipynb")):
        text = path.read_text(encoding="utf-8")
        new = refresh_install_cell(text, url)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed
