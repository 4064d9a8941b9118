"""The publishing pipeline end to end: every chapter at the smoke preset, the book built with
``-W -n``, an offline site, and a headless-browser check of the rendered pages.

The chapters are executed in a temporary copy of the book's sources with a temporary run store,
so ``make test`` never touches the executed chapters or the cache of ``make book``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import jupytext
import nbformat
import pytest

from sharpjac import publish, request_log

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = publish.chapters(ROOT)
SMOKE = {"preset": "smoke", "seed": 0}
pytestmark = pytest.mark.book  # the smoke_book fixture is in conftest.py (test_browser reads its site too)


@pytest.mark.parametrize("name", CHAPTERS)
def test_preflight_lists_exactly_the_runs_the_executed_chapter_requested(smoke_book, name, tmp_path):
    """The paper pre-flight (``publish missing``) asks each chapter's experiments for their runs
    (``Experiment.configs_for``); the executed chapter must have requested exactly those (its request
    log), no run more (it would stop a paper build with ``MissingRuns``) and none fewer.

    Issue 18: passes once every chapter runs ``exp.configs_for(preset, seed, ...)``; before that, a
    chapter that builds its configs itself (other seeds, both losses, overrides) fails here."""
    from sharpjac.runs import RunStore

    root, _ = smoke_book
    log = root / "requests" / f"{name}.jsonl"
    assert request_log.read(log), f"chapter {name} requested nothing (is ${request_log.ENV} reaching its kernel?)"
    requested = request_log.requested_keys(log, "run")
    parameters = {**publish.chapter_parameters(root / "notebooks" / f"{name}.md"), **SMOKE}
    listed = publish.missing_runs(root, [name], preset="smoke", store=RunStore(tmp_path), parameters={name: parameters})
    listed_keys = {m.key for m in listed}
    assert listed_keys == requested, (
        f"chapter {name}: {len(requested - listed_keys)} run(s) requested but not listed by the pre-flight, "
        f"{len(listed_keys - requested)} listed but never requested"
    )


def test_scorecard_lists_every_registered_claim_with_a_computed_outcome(smoke_book):
    """Every claim of the registry has a verdict computed by its chapter, and the page is built."""
    from sharpjac import claims, scorecard

    root, _ = smoke_book
    assert scorecard.check(root) == []
    page = (root / "_build" / "html" / "book" / "scorecard.html").read_text()
    for claim in claims.all_claims():
        assert claims.anchor(claim.id) in page, f"{claim.id} has no link on the scorecard"


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_runs_at_smoke_preset(smoke_book, name):
    root, results = smoke_book
    assert results[name].status == "executed"
    nb = nbformat.read(str(root / "notebooks" / "executed" / f"{name}.ipynb"), as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and all("remove-cell" in c.metadata["tags"] for c in injected)
    box = [c for c in nb.cells if "computed-with" in c.metadata.get("tags", [])]
    assert len(box) == 1 and "'smoke'" in box[0].source and "torch" in box[0].source
    assert nb.metadata["sharpjac"]["parameters"] == {"preset": "smoke", "seed": 0}
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert not errors


def _html_pages(root: Path) -> list[Path]:
    return sorted(p for p in (root / "_build" / "html").rglob("*.html") if "_static" not in p.parts)


def test_book_builds_every_chapter(smoke_book):
    root, _ = smoke_book
    html = root / "_build" / "html"
    assert (html / "index.html").is_file()
    for name in CHAPTERS:
        page = html / "notebooks" / "executed" / f"{name}.html"
        assert page.is_file(), f"no page for chapter {name}"
        text = page.read_text()
        assert "This page was computed with" in text
        assert "injected-parameters" not in text  # the injected cell is hidden


class _ResourceCollector(HTMLParser):
    """Collect every URL a page fetches by itself (not the links a reader may follow)."""

    FETCHING = {
        ("script", "src"),
        ("img", "src"),
        ("iframe", "src"),
        ("source", "src"),
        ("video", "src"),
        ("audio", "src"),
        ("embed", "src"),
        ("object", "data"),
        ("input", "src"),
    }

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for t, attr in self.FETCHING:
            if tag == t and attrs.get(attr):
                self.urls.append(attrs[attr])
        if tag == "link" and attrs.get("href"):
            rel = (attrs.get("rel") or "").lower()
            if any(r in rel for r in ("stylesheet", "preload", "icon", "modulepreload", "prefetch", "manifest")):
                self.urls.append(attrs["href"])
        style = attrs.get("style") or ""
        self.urls += re.findall(r"url\(['\"]?([^'\")]+)", style)


def _is_remote(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("http", "https") or url.startswith("//")


def test_site_fetches_nothing_from_another_host(smoke_book):
    root, _ = smoke_book
    offenders = []
    for page in _html_pages(root):
        collector = _ResourceCollector()
        collector.feed(page.read_text())
        offenders += [f"{page.name}: {u}" for u in collector.urls if _is_remote(u)]
    for css in (root / "_build" / "html" / "_static").rglob("*.css"):
        for url in re.findall(r"(?:url\(|@import\s+)['\"]?((?:https?:)?//[^'\")\s]+)", css.read_text(errors="ignore")):
            offenders.append(f"{css.name}: {url}")
    assert not offenders, "remote resources:\n" + "\n".join(offenders[:20])


def test_resource_checker_catches_remote_script():
    collector = _ResourceCollector()
    collector.feed(
        '<script src="https://cdn.example.org/mathjax.js"></script>'
        '<link rel="stylesheet" href="//fonts.example.org/x.css"><a href="https://ok.org">x</a>'
    )
    assert [u for u in collector.urls if _is_remote(u)] == [
        "https://cdn.example.org/mathjax.js",
        "//fonts.example.org/x.css",
    ]


_HARNESS = """<!DOCTYPE html><html><body><pre id="out">pending</pre>
<iframe id="page" src="{src}" width="1280" height="1000"></iframe>
<script>
const frame = document.getElementById('page');
frame.onload = () => setTimeout(() => {{
  const doc = frame.contentDocument;
  const images = [...doc.images];
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);
  const resources = frame.contentWindow.performance.getEntriesByType('resource').map(e => e.name);
  const remote = resources.filter(u => !u.startsWith('file:') && !u.startsWith('data:') && !u.startsWith('blob:'));
  const text = doc.body.innerText;
  document.getElementById('out').textContent = JSON.stringify({{
    mjx: doc.querySelectorAll('mjx-container').length, images: images.length, broken: broken,
    raw_math: /\\\\\\(|\\\\\\[|\\$\\$/.test(text), remote: remote}});
}}, 6000);
</script></body></html>"""


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _render(browser: str, html_dir: Path, page: Path) -> dict:
    harness = html_dir / f"_harness_{page.stem}.html"
    harness.write_text(_HARNESS.format(src=page.relative_to(html_dir).as_posix()))
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--allow-file-access-from-files",
                f"--user-data-dir={profile}",
                "--window-size=1280,1000",
                "--virtual-time-budget=20000",
                "--dump-dom",
                harness.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    harness.unlink()
    match = re.search(r'<pre id="out">(.*?)</pre>', done.stdout, re.S)
    assert match, f"no output from the browser for {page.name}: {done.stderr[-500:]}"
    payload = match.group(1).replace("&quot;", '"').replace("&amp;", "&")
    assert payload != "pending", f"{page.name} did not finish loading in the browser"
    return json.loads(payload)


def test_pages_render_in_a_browser(smoke_book):
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (.ci/run does) for the browser check")
        pytest.skip("no chromium on this machine: install Debian's `chromium` to run the browser check")
    root, _ = smoke_book
    html = root / "_build" / "html"
    pages = [html / "book" / "intro.html", html / "book" / "notation.html"]
    pages += [html / "notebooks" / "executed" / f"{name}.html" for name in CHAPTERS]
    results = {}
    for page in pages:
        result = results[page] = _render(browser, html, page)
        assert not result["remote"], f"{page.name} asked for another host: {result['remote']}"
        assert not result["broken"], f"{page.name}: images that do not load: {result['broken']}"
        assert not result["raw_math"], f"{page.name} shows raw TeX"
        if "math" in page.read_text():
            assert result["mjx"] > 0, f"{page.name} has math that MathJax did not typeset"
    first_chapter = pages[2]
    assert results[first_chapter]["images"] > 0, f"{first_chapter.name} shows no figure"


def _tiny_source(cells: list[str]) -> str:
    """A chapter's MyST Markdown text: a title, the parameters cell, then ``cells``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# Tiny")]
    params = nbformat.v4.new_code_cell('preset = "quick"\nseed = 0')
    params.metadata["tags"] = ["parameters"]
    nb.cells.append(params)
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    return jupytext.writes(nb, fmt="md:myst")


def _tiny_book(root: Path, cells: list[str]) -> Path:
    (root / "notebooks").mkdir(parents=True)
    (root / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: notebooks/executed/tiny\n")
    (root / "notebooks" / "tiny.md").write_text(_tiny_source(cells))
    return root


def test_chapter_source_is_converted_from_myst(tmp_path):
    root = _tiny_book(tmp_path, ["y = seed + 1\nprint(f'y is {y}')"])
    assert "```{code-cell}" in (root / "notebooks" / "tiny.md").read_text()
    assert publish.chapters(root) == ["tiny"]
    result = publish.execute_chapter(root, "tiny", {"preset": "smoke", "seed": 4})
    executed = nbformat.read(str(result.output), as_version=4)
    outputs = [o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert "y is 5\n" in outputs  # the injected seed reached the code cells of the .md
    assert "jupytext" not in executed.metadata
    assert executed.metadata["papermill"]["input_path"] == "notebooks/tiny.md"


def test_plain_markdown_is_not_a_chapter_source(tmp_path):
    source = tmp_path / "plain.md"
    source.write_text("# Not a notebook\n\n```python\nx = 1\n```\n")
    with pytest.raises(ValueError, match="plain.md: format_name=.*accepted: 'myst'"):
        publish.load_chapter(source)


def test_failing_notebook_names_the_notebook_and_the_cell(tmp_path):
    root = _tiny_book(tmp_path, ["x = 1", "raise RuntimeError('boom in cell three')"])
    with pytest.raises(publish.ChapterError) as info:
        publish.execute_chapter(root, "tiny", {"preset": "smoke", "seed": 0})
    message = str(info.value)
    assert "notebooks/tiny.md" in message and "cell" in message
    assert "RuntimeError: boom in cell three" in message and "raise RuntimeError" in message
    assert not (root / "notebooks" / "executed" / "tiny.ipynb").exists()
    assert (root / "notebooks" / "executed" / "tiny.failed.ipynb").exists()


def test_failing_chapter_keeps_the_previous_good_copy(tmp_path):
    root = _tiny_book(tmp_path, ["x = 1"])
    good = publish.execute_chapter(root, "tiny", {"preset": "smoke", "seed": 0}).output
    before = good.read_bytes()
    (root / "notebooks" / "tiny.md").write_text(_tiny_source(["x = 1", "raise ValueError('broken edit')"]))
    with pytest.raises(publish.ChapterError, match="ValueError: broken edit") as info:
        publish.execute_chapter(root, "tiny", {"preset": "smoke", "seed": 0})
    assert "previous executed copy notebooks/executed/tiny.ipynb is kept" in str(info.value)
    assert good.read_bytes() == before
    failed = nbformat.read(str(root / "notebooks" / "executed" / "tiny.failed.ipynb"), as_version=4)
    assert any(o.get("output_type") == "error" for c in failed.cells if c.cell_type == "code" for o in c.outputs)
    # fixing the chapter replaces the good copy and removes the failed one
    (root / "notebooks" / "tiny.md").write_text(_tiny_source(["x = 2"]))
    assert publish.execute_chapter(root, "tiny", {"preset": "smoke", "seed": 0}).status == "executed"
    assert good.read_bytes() != before
    assert not (root / "notebooks" / "executed" / "tiny.failed.ipynb").exists()


def test_dead_kernel_names_the_chapter_and_the_cell(tmp_path):
    kill = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"
    root = _tiny_book(tmp_path, ["x = 1", "\n# the kernel dies here\n" + kill, "y = 2"])
    with pytest.raises(publish.ChapterError) as info:
        publish.execute_chapter(root, "tiny", {"preset": "smoke", "seed": 0})
    message = str(info.value)
    assert "notebooks/tiny.md" in message and "kernel died" in message
    # code cells of the source: 1 parameters, 2 `x = 1`, 3 the killing cell (its first non-blank line)
    assert "code cell 3" in message and "which starts: # the kernel dies here" in message
    assert (root / "notebooks" / "executed" / "tiny.failed.ipynb").exists()
    assert not (root / "notebooks" / "executed" / "tiny.ipynb").exists()


def test_last_started_cell_skips_the_injected_parameters_cell():
    nb = nbformat.v4.new_notebook()
    cells = [
        nbformat.v4.new_markdown_cell("# T"),
        nbformat.v4.new_code_cell("preset = 'quick'"),
        nbformat.v4.new_code_cell("# Parameters\npreset = 'smoke'"),
        nbformat.v4.new_code_cell("a = 1"),
        nbformat.v4.new_code_cell("\nb = 2\nc = 3"),
        nbformat.v4.new_code_cell("d = 4"),
    ]
    cells[2].metadata["tags"] = ["injected-parameters"]
    for index, cell in enumerate(cells):
        cell.metadata["papermill"] = {"start_time": "2026-01-01T00:00:00" if index <= 4 else None}
    nb.cells = cells
    assert publish.last_started_cell(nb) == (4, 3, "b = 2")
    for cell in cells:
        cell.metadata["papermill"]["start_time"] = None
    assert publish.last_started_cell(nb) is None


def test_only_changed_chapters_are_re_executed(tmp_path):
    root = _tiny_book(tmp_path, ["y = seed + 1"])
    params = {"preset": "smoke", "seed": 0}
    assert publish.execute_chapter(root, "tiny", params).status == "executed"
    assert publish.execute_chapter(root, "tiny", params).status == "cached"
    assert publish.execute_chapter(root, "tiny", {"preset": "smoke", "seed": 1}).status == "executed"
    source = root / "notebooks" / "tiny.md"
    source.write_text(source.read_text() + "\n```{code-cell}\nz = 2\n```\n")
    assert publish.execute_chapter(root, "tiny", {"preset": "smoke", "seed": 1}).status == "executed"
    executed = nbformat.read(str(root / "notebooks" / "executed" / "tiny.ipynb"), as_version=4)
    assert executed.metadata["sharpjac"]["parameters"]["seed"] == 1
    assert executed.cells[-1].source == "z = 2"


def test_unknown_chapter_is_rejected(tmp_path):
    root = _tiny_book(tmp_path, [])
    with pytest.raises(ValueError, match="unknown chapter.*nope.*tiny"):
        publish.execute_all(root, {"preset": "smoke", "seed": 0}, only=["nope"])


# ------------------------------------------------------------------------------------------------
# The student edition and the PDF editions, from the smoke book above (no second execution)
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def student_book(smoke_book):
    """The student edition of the smoke book (``_build/student`` inside it) and every solution's phrase."""
    root, _ = smoke_book
    target = publish.build_student(root)
    phrases = {}
    for name in CHAPTERS:
        nb = nbformat.read(str(root / "notebooks" / "executed" / f"{name}.ipynb"), as_version=4)
        phrases[name] = publish.solution_texts(nb)
    return root, target, phrases


def test_student_edition_has_no_solution_anywhere(student_book):
    """Every solution's phrase is in the normal site and in no file of the student edition: pages,
    ``_sources``, search index, downloadable notebooks."""
    root, target, phrases = student_book
    everything = [p for ps in phrases.values() for p in ps]
    computed = [
        n
        for n in CHAPTERS
        if publish.solution_keys(nbformat.read(str(root / "notebooks" / "executed" / f"{n}.ipynb"), 4))
    ]
    assert len(computed) >= 5, f"only {computed} compute a solution: the check below would test little"
    assert all(phrases[n] for n in CHAPTERS), [n for n in CHAPTERS if not phrases[n]]
    normal = publish.leaked_solutions(root / "_build" / "html", everything)
    assert {p for _, p in normal} == set(everything), "a solution phrase is not on the normal site: the scan is blind"
    files = publish.edition_files(target)
    kinds = {p.suffix for p in files}
    assert {".html", ".ipynb", ".js"} <= kinds and any("_sources" in p.parts for p in files)
    assert publish.leaked_solutions(target, everything) == []
    for name in CHAPTERS:
        # the solutions' glued outputs are gone, and so is every cell that computes only solutions;
        # a cell that also computes the chapter's other values stays (the solution text comes from the
        # package) and loses the solution outputs alone
        full = nbformat.read(str(root / "notebooks" / "executed" / f"{name}.ipynb"), as_version=4)
        student = nbformat.read(str(target / "notebooks" / f"{name}.ipynb"), as_version=4)
        hidden = publish.solution_keys(full)
        glued = {
            o.get("metadata", {}).get("scrapbook", {}).get("name")
            for c in student.cells
            if c.cell_type == "code"
            for o in c.get("outputs", [])
        }
        assert not (glued & hidden), (name, sorted(glued & hidden))
        only_solutions = [
            c
            for c in full.cells
            if c.cell_type == "code" and publish.student._glued_names(c) and publish.student._glued_names(c) <= hidden
        ]
        assert len(full.cells) - len(student.cells) == len(only_solutions), name


def test_pdf_editions(student_book):
    """``make pdf`` and ``make student-pdf``: one PDF each, a bookmark per page of the table of
    contents, A4 pages; the full edition prints the solutions (unfolded), the student one none; no
    code toggle, no caption of an interactive figure, and tables scaled to the column."""
    from sharpjac import pdf

    missing = pdf.missing_tools()
    if missing:
        message = "the PDF editions need " + ", ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must install them)")
        pytest.skip(message)
    from pypdf import PdfReader

    root, target, phrases = student_book
    files = pdf.toc_files(root)
    full = pdf.build_pdf(root, log=lambda *_: None)
    student = pdf.build_pdf(root, student=True, log=lambda *_: None)
    assert full["path"] == root / "_build" / "pdf" / "sharpjac.pdf"
    assert student["path"] == target / "sharpjac-student.pdf"
    for edition in (full, student):
        reader = PdfReader(str(edition["path"]))
        assert len(reader.outline) == len(files) == len(edition["documents"])
        assert len(reader.pages) == edition["pages"] >= len(files)
        width, height = (float(v) / 72 for v in reader.pages[0].mediabox.upper_right)
        assert abs(width - pdf.PAPER_IN[0]) < 0.02 and abs(height - pdf.PAPER_IN[1]) < 0.02
        zooms = [z for *_, scaled in edition["documents"] for z in scaled]
        assert all(z >= 0.45 for z in zooms), f"a table is scaled to {min(zooms):.2f} of its width: unreadable"
    assert student["pages"] < full["pages"]
    full_text = publish.student._letters(publish.edition_text(full["path"]))
    student_text = publish.student._letters(publish.edition_text(student["path"]))
    # the solutions: in the full PDF (unfolded), nowhere in the student one
    written = [p for n in CHAPTERS for p in phrases[n]]
    printed = [p for p in written if publish.student._letters(p) in full_text]
    assert printed == written, f"solutions missing from the full PDF: {sorted(set(written) - set(printed))}"
    assert [p for p in written if publish.student._letters(p) in student_text] == []
    for text in (full_text, student_text):
        assert publish.student._letters("Show code cell source") not in text
        assert publish.student._letters("This page was computed with") in text  # the chapters printed
    # an interactive figure's caption does not print, a static figure's does
    page = (root / "_build" / "html" / "notebooks" / "executed" / "weight_decay.html").read_text()
    captions = re.findall(r"<figure[^>]*>(.*?)</figure>", page, re.S)
    interactive = [c for c in captions if "sharpjac-plotly" in c]
    static = [c for c in captions if "sharpjac-plotly" not in c and "<img" in c]
    assert interactive and static

    def caption(figure: str) -> str:
        body = re.search(r'<span class="caption-text">(.*?)</span>\s*</p>', figure, re.S) or re.search(
            r"<figcaption>(.*?)</figcaption>", figure, re.S
        )
        return publish.student._letters(re.sub(r"<[^>]+>", " ", body.group(1)))[:80]

    assert all(caption(c) not in full_text for c in interactive)
    assert all(caption(c) in full_text for c in static)
