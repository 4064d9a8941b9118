"""The print style and the PDF printer on a tiny page (seconds): what prints, what does not, and a
wide table scaled to the column. The whole book's PDF editions are tested on the smoke book in
test_book.py (test_pdf_editions)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sharpjac import pdf, publish

ROOT = Path(__file__).resolve().parents[1]

_PAGE = """<!DOCTYPE html><html><head><title>Tiny page \u2014 Tiny book</title>
<link rel="stylesheet" href="print.css"></head><body>
<header class="bd-header">NAVIGATION-BAR</header>
<article class="bd-article"><h1>Tiny page</h1><p>Body text of the tiny page.</p>
<div class="cell tag_hide-input"><details class="hide above-input"><summary>Show code cell source</summary>
<div class="cell_input"><pre>FOLDED_CODE = 1</pre></div></details>
<div class="cell_output"><pre>printed output of the cell</pre></div></div>
<figure id="fig-static"><img src="dot.svg" style="width:900px;height:300px" alt="a dot">
<figcaption><p><span class="caption-number">Fig. 1 </span>
<span class="caption-text">Static figure caption.</span></p></figcaption></figure>
<figure id="fig-explorer"><div class="cell_output"><div class="sharpjac-plotly">EXPLORER-BODY</div></div>
<figcaption><p><span class="caption-number">Fig. 2 </span>
<span class="caption-text">Explorer caption words.</span></p></figcaption></figure>
<div class="solution dropdown admonition toggle toggle-hidden"><p class="admonition-title">Solution to Exercise 1</p>
<section><p>The solution body words.</p></section></div>
<div class="sharpjac-table"><table><tr>{cells}</tr></table></div>
</article></body></html>"""


@pytest.fixture
def tiny_site(tmp_path):
    missing = pdf.missing_tools()
    if missing:
        message = "printing needs " + ", ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must install them)")
        pytest.skip(message)
    shutil.copy(ROOT / "book" / "_static" / "print.css", tmp_path / "print.css")
    (tmp_path / "dot.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="300" height="300"><circle cx="150" cy="150" r="100"/></svg>'
    )
    cells = "".join(f"<td>column{i:02d}</td>" for i in range(40))  # ~3000 px: wider than any page
    (tmp_path / "page.html").write_text(_PAGE.format(cells=cells))
    return tmp_path


def _printed(site: Path, *, solutions: bool) -> tuple[dict, str]:
    out = site / f"out-{solutions}.pdf"
    report = pdf.print_site(site, ["page", "page"], out, solutions=solutions, log=lambda *_: None)
    return report, publish.student._letters(publish.edition_text(out))


def test_print_style_leaves_out_the_chrome_folded_code_and_interactive_figures(tiny_site):
    report, text = _printed(tiny_site, solutions=False)
    for shown in ("Body text of the tiny page", "printed output of the cell", "Static figure caption"):
        assert publish.student._letters(shown) in text, shown
    for hidden in ("NAVIGATION-BAR", "Show code cell source", "FOLDED_CODE", "EXPLORER-BODY", "Explorer caption"):
        assert publish.student._letters(hidden) not in text, hidden
    assert publish.student._letters("The solution body words") not in text  # folded on the site: not printed
    assert report["pages"] == 2 and [d[1] for d in report["documents"]] == ["Tiny page", "Tiny page"]
    (zoom,) = report["documents"][0][3]  # the one wide table, scaled to the A4 column
    assert 0.1 < zoom < 0.5


def test_full_edition_unfolds_the_solutions(tiny_site):
    _, text = _printed(tiny_site, solutions=True)
    assert publish.student._letters("The solution body words") in text


def test_toc_files_are_every_page_in_reading_order():
    files = pdf.toc_files(ROOT)
    assert files[0] == "book/intro" and files[-1] == "book/references"
    chapters = [f.rsplit("/", 1)[1] for f in files if f.startswith("notebooks/executed/")]
    assert chapters == publish.chapters(ROOT)


def test_missing_site_is_a_one_line_error(tmp_path):
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    with pytest.raises(FileNotFoundError, match="build the site first"):
        pdf.build_pdf(tmp_path)
    with pytest.raises(FileNotFoundError, match="build the student edition first"):
        pdf.build_pdf(tmp_path, student=True)
