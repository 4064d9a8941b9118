"""The book's Sphinx extension without Sphinx: table numbering and the MathJax pruning."""

from __future__ import annotations

import pandas as pd

from sharpjac import book_ext, tables


def test_reader_tables_are_numbered_per_chapter_with_or_without_caption():
    with_caption = tables.show(pd.DataFrame({"lr": [0.1]}), caption="Final values.")._repr_html_()
    without = tables.show(pd.DataFrame({"lr": [0.1]}))._repr_html_()
    out = book_ext.number_tables(["<p>no table</p>", with_caption, without + without], "7")
    assert out[0] == "<p>no table</p>"
    assert '<caption><span class="caption-number">Table 7.1 </span>Final values.</caption>' in out[1]
    assert out[2].count("<caption>") == 2
    assert "Table 7.2 " in out[2] and "Table 7.3 " in out[2]
    assert "Table 1 " in book_ext.number_tables([without], None)[0]


def test_prune_mathjax_keeps_what_tex_chtml_loads(tmp_path):
    keep = ["tex-chtml.js", "input/tex/extensions/ams.js", "output/chtml/fonts/woff-v2/MathJax_Main.woff"]
    drop = ["tex-svg-full.js", "input/mml.js", "output/svg/fonts/tex.js", "sre/mathmaps/de.json"]
    for rel in keep + drop:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x" * 10)
    assert book_ext.prune_mathjax(tmp_path) == 40
    assert all((tmp_path / rel).is_file() for rel in keep)
    assert not any((tmp_path / rel).exists() for rel in drop)
    assert not (tmp_path / "output" / "svg").exists()
    other = tmp_path / "other"
    (other / "x.js").parent.mkdir()
    (other / "x.js").write_text("x")
    assert book_ext.prune_mathjax(other) == 0 and (other / "x.js").is_file()
