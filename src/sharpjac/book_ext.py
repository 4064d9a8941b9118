"""Sphinx extension of the book: plotly.js bundled once into the site, loaded only where needed.

Enable it in ``_config.yml`` (``sphinx: extra_extensions: [sharpjac.book_ext]``). It

* copies ``plotly.min.js`` from the installed ``plotly`` package into the site's ``_static/``
  once per build (no CDN: the site makes no request to another host);
* adds ``<script src="_static/plotly.min.js">`` to the ``<head>`` of exactly the pages whose body
  contains an interactive figure (the ``<div class="sharpjac-plotly">`` that
  :func:`sharpjac.interactive.figure` writes), so pages without one do not download 4.8 MB.

The script is loaded blocking, in the head: each figure's inline script calls ``Plotly.newPlot``
while the page is parsed, so plotly.js must be defined before the body; ``defer`` would break that.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .interactive import FIGURE_CLASS

__all__ = ["PLOTLY_JS", "plotly_js_source", "setup"]

#: The file name of plotly.js inside the site's ``_static/`` folder.
PLOTLY_JS = "plotly.min.js"


def plotly_js_source() -> Path:
    """The ``plotly.min.js`` that ships with the installed ``plotly`` Python package."""
    import plotly

    path = Path(plotly.__file__).resolve().parent / "package_data" / PLOTLY_JS
    if not path.is_file():
        raise FileNotFoundError(f"plotly.min.js not found at {path}; reinstall the plotly package")
    return path


def _page_has_figure(context: dict) -> bool:
    return f'class="{FIGURE_CLASS}"' in (context.get("body") or "")


def _html_page_context(app, pagename, templatename, context, doctree) -> None:
    # Sphinx (>= 3.5) adds a file registered from this event to the current page only.
    if _page_has_figure(context):
        app.add_js_file(PLOTLY_JS, priority=200)


def _copy_plotly(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / PLOTLY_JS
    source = plotly_js_source()
    if not target.is_file() or target.stat().st_size != source.stat().st_size:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def setup(app) -> dict:
    """Register the hooks (called by Sphinx)."""
    app.connect("html-page-context", _html_page_context)
    app.connect("build-finished", _copy_plotly)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
