"""The PDF editions of the book: the built HTML pages printed by headless Chromium, merged into one file.

``make pdf`` prints ``_build/html`` into ``_build/pdf/sharpjac.pdf`` (solutions included, unfolded);
``make student-pdf`` prints the student site ``_build/student/html`` into
``_build/student/sharpjac-student.pdf`` (its pages have no solutions to print).

Each page of the table of contents is opened in one headless Chromium session (Selenium and
Debian's ``chromedriver``), in print media at the printable width of an A4 page; the page's print
style sheet (``book/_static/print.css``) hides the navigation, the folded code, the interactive
figures (the static figure beside each is the print image) with their captions, and the toggle
buttons. Before printing, this module waits for MathJax and every image, marks the document
``sharpjac-pdf`` (and ``sharpjac-pdf-solutions`` for the full edition, which unfolds the
solutions), and scales any table still wider than the text column down to fit (``zoom``). The pages'
PDFs (Chrome DevTools ``Page.printToPDF``) are merged with ``pypdf``, one bookmark per page.
"""

from __future__ import annotations

import argparse
import base64
import io
import shutil
import sys
import time
from pathlib import Path
from typing import Any

# A4 with 15 mm margins: the text column is 180 mm = 680 CSS px wide (96 px per inch)
PAPER_IN = (8.27, 11.69)
MARGIN_IN = 0.59
COLUMN_PX = round((PAPER_IN[0] - 2 * MARGIN_IN) * 96)
FULL_NAME = "sharpjac.pdf"
STUDENT_NAME = "sharpjac-student.pdf"

# Run inside the page before printing (async: the last argument is Selenium's callback).
_PREPARE = r"""
const done = arguments[arguments.length - 1];
const solutions = arguments[0];
const root = document.documentElement;
root.classList.add("sharpjac-pdf");
root.dataset.theme = "light";  // a reader's dark-mode choice does not reach the paper
root.dataset.mode = "light";
if (solutions) root.classList.add("sharpjac-pdf-solutions");
document.querySelectorAll("img").forEach((img) => { img.loading = "eager"; });
const images = Array.from(document.images).map((img) =>
  img.complete ? Promise.resolve() : new Promise((ok) => { img.onload = ok; img.onerror = ok; }));
const math = (window.MathJax && MathJax.startup && MathJax.startup.promise) || Promise.resolve();
Promise.all([math, document.fonts.ready, ...images]).then(() => {
  // Tables still wider than their column once print.css has narrowed them are scaled down to fit.
  const scaled = [];
  document.querySelectorAll("table").forEach((table) => {
    const column = table.closest("article, main, .bd-article") || document.body;
    const width = table.scrollWidth, room = column.clientWidth;
    if (width > room + 1) {
      const zoom = room / width;
      table.style.zoom = zoom.toFixed(3);
      scaled.push(zoom);
    }
  });
  done({scaled: scaled, mathjax: !!window.MathJax, title: document.title});
}, (err) => done({error: String(err)}));
"""


def toc_files(root: Path) -> list[str]:
    """Every page of ``_toc.yml`` in reading order (``root`` first), as paths without suffix."""
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    files.append(node[key])
            for key, value in node.items():
                if key not in ("root", "file"):
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(toc)
    return list(dict.fromkeys(files))


def browser_paths() -> tuple[str | None, str | None]:
    """``(chromium, chromedriver)`` found on this machine, ``None`` for what is missing."""
    chromium = next(
        (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
    )
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").is_file() else None
    )
    return chromium, driver


def missing_tools() -> list[str]:
    """What printing needs and this machine lacks, each named as a reader would install it."""
    missing = []
    for module, hint in (("selenium", "the selenium package"), ("pypdf", "the pypdf package")):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"{hint} (pip install -e '.[dev]')")
    chromium, driver = browser_paths()
    if chromium is None:
        missing.append("Debian's chromium (apt-get install chromium)")
    if driver is None:
        missing.append("Debian's chromium-driver (apt-get install chromium-driver)")
    return missing


def _driver(chromium: str, chromedriver: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--allow-file-access-from-files",
        f"--window-size={COLUMN_PX},1000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.set_page_load_timeout(120)
    driver.set_script_timeout(120)
    return driver


def _title(text: str) -> str:
    """A page's ``<title>`` without the book's title (Sphinx writes ``page — book``)."""
    return text.strip().rsplit(" \u2014 ", 1)[0] or "page"


def print_site(html: Path, files: list[str], out: Path, *, solutions: bool, log=print) -> dict[str, Any]:
    """Print the pages ``html/<file>.html`` (``files`` in order) into one PDF at ``out``.

    Returns ``{"pages": n, "documents": [(file, title, pages, [table zooms])]}``. Raises
    ``FileNotFoundError`` for a page that was not built and ``RuntimeError`` when printing needs a tool
    this machine lacks.
    """
    missing = missing_tools()
    if missing:
        raise RuntimeError("printing the book needs " + ", ".join(missing))
    from pypdf import PdfReader, PdfWriter

    pages = [html.resolve() / f"{f}.html" for f in files]
    absent = [str(p) for p in pages if not p.is_file()]
    if absent:
        raise FileNotFoundError(f"pages not built: {', '.join(absent)}; build the site first (make book)")
    driver = _driver(*browser_paths())
    writer = PdfWriter()
    documents = []
    try:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
        # the interactive figures do not print: plotly.js (4.8 MB) is not even loaded
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*plotly*.js"]})
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": COLUMN_PX, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
        )
        for file, page in zip(files, pages, strict=True):
            start = time.perf_counter()
            driver.get(page.as_uri())
            state = driver.execute_async_script(_PREPARE, solutions)
            if "error" in state:
                raise RuntimeError(f"{page}: the page did not finish loading ({state['error']})")
            printed = driver.execute_cdp_cmd(
                "Page.printToPDF",
                {
                    "paperWidth": PAPER_IN[0],
                    "paperHeight": PAPER_IN[1],
                    **{f"margin{side}": MARGIN_IN for side in ("Top", "Bottom", "Left", "Right")},
                    "printBackground": True,
                    "preferCSSPageSize": False,
                },
            )
            reader = PdfReader(io.BytesIO(base64.b64decode(printed["data"])))
            first = len(writer.pages)
            for p in reader.pages:
                writer.add_page(p)
            title = _title(state.get("title", file))
            writer.add_outline_item(title=title, page_number=first)
            documents.append((file, title, len(reader.pages), state.get("scaled", [])))
            log(f"  {file:<45} {len(reader.pages):>3} pages  {time.perf_counter() - start:5.1f} s")
    finally:
        driver.quit()
    writer.add_metadata({"/Title": _title(documents[0][1]) if documents else "book"})
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as handle:
        writer.write(handle)
    return {"pages": len(writer.pages), "documents": documents}


def build_pdf(root: Path, *, student: bool = False, log=print) -> dict[str, Any]:
    """Print the built site (``_build/html``, or the student edition's ``_build/student/html``) into
    ``_build/pdf/sharpjac.pdf`` (solutions unfolded) or ``_build/student/sharpjac-student.pdf``.

    Returns :func:`print_site`'s report with ``"path"``, the PDF written, and ``"seconds"``."""
    if student:
        html, out = root / "_build" / "student" / "html", root / "_build" / "student" / STUDENT_NAME
        if not html.is_dir():
            raise FileNotFoundError(f"{html} does not exist; build the student edition first (make student)")
    else:
        html, out = root / "_build" / "html", root / "_build" / "pdf" / FULL_NAME
        if not html.is_dir():
            raise FileNotFoundError(f"{html} does not exist; build the site first (make book)")
    start = time.perf_counter()
    report = print_site(html, toc_files(root), out, solutions=not student, log=log)
    return {**report, "path": out, "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> int:
    from sharpjac.publish import repository_root

    parser = argparse.ArgumentParser(prog="python -m sharpjac.pdf", description="Print the built book into one PDF.")
    parser.add_argument(
        "--student", action="store_true", help="print the student edition (_build/student/html), without solutions"
    )
    args = parser.parse_args(argv)
    try:
        report = build_pdf(repository_root(), student=args.student)
    except (FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    scaled = sum(len(d[3]) for d in report["documents"])
    print(
        f"{report['pages']} pages ({len(report['documents'])} documents, {scaled} tables scaled to the column) "
        f"in {report['seconds']:.0f} s: {report['path']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
