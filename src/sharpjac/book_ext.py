"""Sphinx extension of the book: plotly.js bundled once into the site, loaded only where needed.

Enable it in ``_config.yml`` (``sphinx: extra_extensions: [sharpjac.book_ext]``). It

* copies ``plotly.min.js`` from the installed ``plotly`` package into the site's ``_static/``
  once per build (no CDN: the site makes no request to another host);
* adds ``<script defer src="_static/plotly.min.js">`` to the ``<head>`` of exactly the pages whose
  body contains an interactive figure (the ``<div class="sharpjac-plotly">`` that
  :func:`sharpjac.interactive.figure` writes), so pages without one do not download 4.8 MB. The
  script is deferred: it does not block the first paint (the text shows while it loads), and each
  figure's inline script draws the figure at ``DOMContentLoaded``, after deferred scripts ran;
* sets the theme's ``default_mode`` (``html_context``) to ``"auto"`` when none is set (else the theme logs an error);
* removes duplicate ``<script>`` entries from every page (sphinx-thebe's inline configuration,
  ``const THEBE_JS_URL = ...``, is registered twice under Jupyter Book, which logs "Identifier
  'THEBE_JS_URL' has already been declared" on every page);
* numbers the reader tables (:func:`sharpjac.tables.show`, ``<div class="sharpjac-table">``) of each
  chapter, "Table 7.2" in the caption as Sphinx numbers figures (a table without a caption gets its
  number alone), so the text can refer to it;
* prunes the bundled MathJax (sphinx-mathjax-offline copies the whole 24 MB distribution) to what
  the pages load: ``tex-chtml.js``, the TeX extensions it autoloads, the CommonHTML fonts and the
  accessibility menu's modules (:data:`MATHJAX_KEEP`).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from docutils import nodes

from .interactive import FIGURE_CLASS

__all__ = ["MATHJAX_KEEP", "PLOTLY_JS", "number_tables", "plotly_js_source", "prune_mathjax", "setup"]

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


def _script_key(script) -> tuple:
    # an inline script is registered with filename None by one extension and "" by another
    attributes = getattr(script, "attributes", {}) or {}
    filename = getattr(script, "filename", str(script)) or ""
    return (str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items())))


def _dedupe_scripts(context: dict) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set = set()
    unique = []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def _html_page_context(app, pagename, templatename, context, doctree) -> None:
    # Sphinx (>= 3.5) adds a file registered from this event to the current page only.
    if _page_has_figure(context):
        app.add_js_file(PLOTLY_JS, priority=200, defer="defer")
    _dedupe_scripts(context)


_TABLE_DIV = re.compile(r'<div class="sharpjac-table">')
_TABLE_OPEN = re.compile(r"(<table\b[^>]*>)")
_CAPTION_OPEN = re.compile(r"<caption>")


def number_tables(html_parts: list[str], chapter: str | None) -> list[str]:
    """Number the reader tables in ``html_parts`` (raw HTML outputs, in page order).

    Each ``<div class="sharpjac-table">`` gets "Table {chapter}.{k}" (or "Table {k}" without a
    chapter number) at the start of its ``<caption>``, which is created when missing; ``k`` counts
    the page's tables from 1. Returns the new texts (a part without a table is returned as it is).
    """
    k = 0
    out = []
    for text in html_parts:
        pieces = _TABLE_DIV.split(text)
        if len(pieces) == 1:
            out.append(text)
            continue
        rebuilt = pieces[0]
        for piece in pieces[1:]:
            k += 1
            number = f"Table {chapter}.{k}" if chapter else f"Table {k}"
            label = f'<span class="caption-number">{number} </span>'
            table = _TABLE_OPEN.search(piece)
            caption = _CAPTION_OPEN.search(piece)
            if caption is not None and (table is None or caption.start() > table.end()):
                piece = piece[: caption.end()] + label + piece[caption.end() :]
            elif table is not None:
                piece = piece[: table.end()] + f"<caption>{label}</caption>" + piece[table.end() :]
            rebuilt += '<div class="sharpjac-table">' + piece
        out.append(rebuilt)
    return out


def _chapter_number(app, docname: str) -> str | None:
    numbers = getattr(app.env, "toc_secnumbers", {}).get(docname, {})
    number = numbers.get("") or next(iter(numbers.values()), None)
    return ".".join(str(n) for n in number[:1]) if number else None


def _number_tables(app, doctree, docname) -> None:
    raws = [n for n in doctree.findall(nodes.raw) if "html" in n.get("format", "").split()]
    texts = [n.astext() for n in raws]
    if not any('<div class="sharpjac-table">' in t for t in texts):
        return
    for node, old, new in zip(raws, texts, number_tables(texts, _chapter_number(app, docname))):
        if new != old:
            node.replace(node.children[0], nodes.Text(new))


def _copy_plotly(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / PLOTLY_JS
    source = plotly_js_source()
    if not target.is_file() or target.stat().st_size != source.stat().st_size:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


#: What the pages use of the bundled MathJax (paths under ``_static/mathjax``; a folder keeps all
#: below it): the combined TeX-to-CommonHTML component, the TeX extensions its autoloader fetches,
#: the CommonHTML fonts, and the accessibility menu's lazy modules with English speech rules.
MATHJAX_KEEP = (
    "tex-chtml.js",
    "input/tex/extensions",
    "output/chtml/fonts",
    "ui",
    "a11y",
    "sre/speech-worker.js",
    "sre/mathmaps/base.json",
    "sre/mathmaps/en.json",
    "sre/mathmaps/nemeth.json",
)


def prune_mathjax(folder: Path) -> int:
    """Delete every file of the MathJax copy in ``folder`` that :data:`MATHJAX_KEEP` does not keep.

    Returns the bytes removed. A folder without ``tex-chtml.js`` is left alone (another MathJax).
    """
    folder = Path(folder)
    if not (folder / "tex-chtml.js").is_file():
        return 0
    removed = 0
    for path in sorted(folder.rglob("*"), reverse=True):
        rel = path.relative_to(folder).as_posix()
        if path.is_file():
            if not any(rel == k or rel.startswith(k + "/") for k in MATHJAX_KEEP):
                removed += path.stat().st_size
                path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return removed


def _prune_mathjax(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    prune_mathjax(Path(app.outdir) / "_static" / "mathjax")


def _theme_defaults(app, config) -> None:
    # pydata-sphinx-theme logs "Got invalid theme mode: ." on every page when no default mode is set
    # (Jupyter Book sets none; the theme reads it from html_context): follow the reader's system
    # setting, light or dark.
    context = config.html_context
    if isinstance(context, dict) and not context.get("default_mode"):
        context["default_mode"] = "auto"


def setup(app) -> dict:
    """Register the hooks (called by Sphinx)."""
    app.connect("config-inited", _theme_defaults)
    # late, after the extensions that register scripts for the page
    app.connect("html-page-context", _html_page_context, priority=900)
    app.connect("doctree-resolved", _number_tables)
    app.connect("build-finished", _copy_plotly)
    # after sphinx-mathjax-offline's copy (priority 500)
    app.connect("build-finished", _prune_mathjax, priority=900)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
