"""Interactive figures in a real browser: a tiny book built with the book's configuration, opened in
headless Chromium through Selenium (Debian's ``chromium`` and ``chromium-driver``).

The book has one chapter with one explorer figure (drop-down over the x statistic, slider over the
seed), one folded code cell (tag ``hide-input``), one reader table and one wide display equation.
The checks: the figure is drawn from the bundled plotly.js; the drop-down changes the plotted x
data; the slider changes which runs are visible; hovering a point shows the run's hyper-parameter;
the folded code unfolds; no request leaves ``file:``; at 400 px nothing is wider than the window.

Without selenium, chromium or chromedriver the browser tests are skipped (they fail under CI).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from sharpjac import book_ext, interactive, publish

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.book

_CHAPTER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# Tiny

```{code-cell} ipython3
:tags: [parameters]
preset = "quick"
seed = 0
```

```{code-cell} ipython3
:tags: [hide-input]
import pandas as pd
from myst_nb import glue

from sharpjac import interactive, tables

FOLDED_MARKER = "folded-code-marker"
runs = pd.DataFrame(
    {
        "weight_decay": [0.0, 0.0, 1e-4, 1e-4, 1e-3, 1e-3],
        "seed": [0, 1, 0, 1, 0, 1],
        "lr": [0.05, 0.05, 0.05, 0.05, 0.05, 0.05],
        "sharpness": [10.0, 12.0, 8.0, 9.0, 5.0, 6.0],
        "jac_spectral_max": [3.0, 3.5, 2.0, 2.2, 1.0, 1.1],
        "gap_loss": [0.30, 0.32, 0.20, 0.22, 0.10, 0.12],
    }
)
```

```{code-cell} ipython3
:tags: [remove-input]
fig = interactive.explorer(
    runs,
    x={"sharpness": "sharpness", "max Jacobian": "jac_spectral_max"},
    y="gap_loss",
    color="weight_decay",
    hover=["lr", "seed"],
    slider="seed",
)
glue("fig_tiny_explorer", interactive.figure(fig, alt="Gap against a statistic, one point per run"), display=False)
```

:::{glue:figure} fig_tiny_explorer
:name: fig-tiny-explorer

The gap against the statistic chosen with the drop-down; each point is a run.
:::

As {numref}`fig-tiny-explorer` shows, the figure is numbered.

```{code-cell} ipython3
:tags: [remove-input]
tables.show(runs, caption="The runs.")
```

:::{prf:proposition} A wide display
:label: prop-wide

$$
\\left(\\sum_{i=1}^{n} \\lVert J_f(x_i) \\rVert_2^2 + \\lambda_{\\max}(H) + \\lambda_{\\max}(G) + \\operatorname{tr}(H)
+ \\operatorname{tr}(G) + \\lVert W_1 \\rVert_2 \\lVert W_2 \\rVert_2 \\lVert W_3 \\rVert_2 \\right)
\\le \\frac{2}{\\eta} + \\frac{2}{\\eta} + \\frac{2}{\\eta} + \\frac{2}{\\eta} + \\frac{2}{\\eta}
$$
:::
"""

# the explorer's traces are (weight decay, seed) pairs in sorted order; these are the first trace's points
_FIRST_TRACE_SHARPNESS = [10.0]
_FIRST_TRACE_JACOBIAN = [3.0]


@pytest.fixture(scope="module")
def tiny_site(tmp_path_factory) -> Path:
    """Build the tiny book with the repository's _config.yml and style sheet; return _build/html."""
    root = tmp_path_factory.mktemp("browser-book")
    shutil.copy(ROOT / "_config.yml", root / "_config.yml")
    (root / "book").mkdir()
    shutil.copytree(ROOT / "book" / "_static", root / "book" / "_static")
    shutil.copy(ROOT / "book" / "references.bib", root / "book" / "references.bib")
    # the "computed with" box links to the guide page; a one-line stand-in keeps the tiny book small
    (root / "book" / "guide.md").write_text("# Guide\n\nStand-in.\n")
    (root / "intro.md").write_text("# Intro\n\nA page without an interactive figure.\n")
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n  - file: notebooks/executed/tiny\n  - file: book/guide\n"
    )
    (root / "notebooks").mkdir()
    (root / "notebooks" / "tiny.md").write_text(_CHAPTER)
    old = os.environ.get("SHARPJAC_CACHE")
    os.environ["SHARPJAC_CACHE"] = str(tmp_path_factory.mktemp("runs"))
    try:
        assert publish.execute_chapter(root, "tiny", {"preset": "smoke", "seed": 0}).status == "executed"
    finally:
        if old is None:
            os.environ.pop("SHARPJAC_CACHE", None)
        else:
            os.environ["SHARPJAC_CACHE"] = old
    publish.build_book(root)
    return root / "_build" / "html"


# --------------------------------------------------------------------------------------------------
# static checks of the built site (no browser needed)


def test_plotly_is_bundled_once_and_loaded_only_where_a_figure_is(tiny_site):
    bundled = tiny_site / "_static" / book_ext.PLOTLY_JS
    assert bundled.read_bytes() == book_ext.plotly_js_source().read_bytes()
    chapter = (tiny_site / "notebooks" / "executed" / "tiny.html").read_text()
    intro = (tiny_site / "intro.html").read_text()
    assert chapter.count(f'src="../../_static/{book_ext.PLOTLY_JS}"') == 1
    assert book_ext.PLOTLY_JS not in intro
    assert f'class="{interactive.FIGURE_CLASS}"' in chapter
    head = chapter.split("</head>")[0]
    assert book_ext.PLOTLY_JS in head  # before the figures' inline scripts, which call Plotly.newPlot
    assert "sharpjac.css" in head and "sharpjac.css" in intro


def test_glued_interactive_figure_is_numbered_with_its_caption(tiny_site):
    chapter = (tiny_site / "notebooks" / "executed" / "tiny.html").read_text()
    figure = chapter.split('<figure class="align-default" id="fig-tiny-explorer">')[1].split("</figure>")[0]
    assert f'class="{interactive.FIGURE_CLASS}"' in figure
    assert "Fig. 1" in figure and "The gap against the statistic chosen" in figure
    assert "Fig. 1" in chapter.split("As ")[-1][:400]  # the {numref} in the prose


def test_page_context_hook_detects_the_figure_div():
    assert book_ext._page_has_figure({"body": f'<div class="{interactive.FIGURE_CLASS}" role="figure">'})
    assert not book_ext._page_has_figure({"body": "<p>no figure, although sharpjac-plotly is named</p>"})
    assert not book_ext._page_has_figure({})


# --------------------------------------------------------------------------------------------------
# the browser


def _driver_paths() -> tuple[str | None, str | None]:
    browser = next(
        (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
    )
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").is_file() else None
    )
    return browser, driver


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        selenium_missing = True
    else:
        selenium_missing = False
    chromium, chromedriver = _driver_paths()
    missing = [
        name
        for name, absent in (
            ("the selenium package (pip install -e '.[dev]')", selenium_missing),
            ("Debian's chromium", chromium is None),
            ("Debian's chromium-driver (chromedriver)", chromedriver is None),
        )
        if absent
    ]
    if missing:
        message = "browser tests need " + ", ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must install them: .ci/run does)")
        pytest.skip(message)
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
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _open(driver, page: Path):
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("performance")  # drop what earlier pages logged
    driver.get(page.as_uri())
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script(
            "const g = document.querySelector('.sharpjac-plotly .js-plotly-plot');"
            "return !!(g && g.data && g._fullLayout && document.querySelector('.sharpjac-plotly .updatemenu-header'));"
        )
    )
    return driver


def _x_data(driver) -> list:
    return driver.execute_script("return Array.from(document.querySelector('.js-plotly-plot').data[0].x);")


def _visible(driver) -> list:
    return driver.execute_script(
        "return document.querySelector('.js-plotly-plot').data.map(t => t.visible === undefined ? true : t.visible);"
    )


def _requested_urls(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    urls += driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name);")
    return urls


def _chapter(site: Path) -> Path:
    return site / "notebooks" / "executed" / "tiny.html"


def test_figure_is_drawn_and_makes_no_request_to_another_host(tiny_site, browser):
    from selenium.webdriver.common.by import By

    _open(browser, _chapter(tiny_site))
    figures = browser.find_elements(By.CSS_SELECTOR, f"div.{interactive.FIGURE_CLASS} .js-plotly-plot")
    assert len(figures) == 1
    assert browser.execute_script("return typeof window.Plotly") == "object"
    assert browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .scatterlayer .points path")
    urls = _requested_urls(browser)
    assert any(u.endswith("/_static/plotly.min.js") for u in urls)
    remote = [u for u in urls if not u.startswith(("file:", "data:", "blob:", "about:"))]
    assert not remote, f"requests to other hosts: {remote}"


def test_dropdown_changes_the_plotted_x_data(tiny_site, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _open(browser, _chapter(tiny_site))
    assert _x_data(browser) == _FIRST_TRACE_SHARPNESS
    browser.find_element(By.CSS_SELECTOR, ".updatemenu-header").click()
    items = WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".updatemenu-dropdown-button"))
    labels = [i.text for i in items]
    assert labels == ["sharpness", "max Jacobian"], labels
    items[1].click()
    WebDriverWait(browser, 10).until(lambda d: _x_data(d) == _FIRST_TRACE_JACOBIAN)
    header = browser.find_element(By.CSS_SELECTOR, ".updatemenu-header").text
    assert header.startswith("max Jacobian"), header  # the drop-down, the axis title, names the statistic


def test_slider_changes_the_visible_runs(tiny_site, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _open(browser, _chapter(tiny_site))
    before = _visible(browser)
    assert all(v is True for v in before)
    seeds = browser.execute_script(
        "return document.querySelector('.js-plotly-plot').data.map(t => t.meta.slider_value);"
    )
    rail = browser.find_element(By.CSS_SELECTOR, ".slider-rail-touch-rect")
    # steps "all", "0", "1" are spread along the rail; a click near its right end selects the last step, seed 1
    ActionChains(browser).move_to_element_with_offset(rail, rail.size["width"] // 2 - 3, 0).click().perform()
    WebDriverWait(browser, 10).until(lambda d: _visible(d) != before)
    assert _visible(browser) == [s == "1" for s in seeds]


def test_hovering_a_point_shows_the_runs_hyper_parameters(tiny_site, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _open(browser, _chapter(tiny_site))
    point = browser.find_element(By.CSS_SELECTOR, ".js-plotly-plot .scatterlayer .trace .points path")
    ActionChains(browser).move_to_element(point).perform()
    text = WebDriverWait(browser, 10).until(
        lambda d: d.execute_script(
            "const h = document.querySelector('.js-plotly-plot .hoverlayer .hovertext');"
            "return h ? h.textContent : null;"
        )
    )
    # the first trace is weight decay 0, seed 0, step size 0.05 (reader labels from sharpjac.tables.LABELS)
    assert "weight decay: 0" in text and "step size η: 0.05" in text and "seed: 0" in text, text


def test_folded_code_unfolds(tiny_site, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(_chapter(tiny_site).as_uri())
    folded = [
        d
        for d in browser.find_elements(By.CSS_SELECTOR, "details.hide.above-input")
        if "folded-code-marker" in d.get_attribute("innerHTML")
    ]
    assert len(folded) == 1
    code = folded[0].find_element(By.CSS_SELECTOR, "div.cell_input, div.highlight")
    assert not code.is_displayed()
    folded[0].find_element(By.TAG_NAME, "summary").click()
    WebDriverWait(browser, 10).until(lambda d: code.is_displayed())
    assert "folded-code-marker" in code.text


# Elements cut by their own box, or reaching past the window's edge, ignoring those inside a container
# that scrolls horizontally (a wide table or equation may scroll; it must not be cut off) or inside
# a box that cuts them (that box is reported).
_CLIPPED_JS = """
const out = [];
const contained = (el) => {
  for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
    const s = getComputedStyle(a).overflowX;
    if (s !== 'visible') return true;
  }
  return false;
};
for (const el of (document.querySelector('main') || document.body).querySelectorAll('*')) {
  // plotly sizes its svg to its container; MathJax's assistive MathML is deliberately invisible
  if (el.closest('.js-plotly-plot') || el.closest('mjx-assistive-mml')) continue;
  const st = getComputedStyle(el);
  if (st.display === 'none' || st.visibility === 'hidden') continue;
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) continue;
  const cls = typeof el.className === 'string' ? el.className.trim().split(/\\s+/).join('.') : '';
  const name = el.tagName.toLowerCase() + (cls ? '.' + cls : '');
  if ((st.overflowX === 'hidden' || st.overflowX === 'clip') && el.scrollWidth > el.clientWidth + 1)
    out.push('cut: ' + name + ' ' + el.scrollWidth + ' > ' + el.clientWidth + ' px');
  else if (r.right > document.documentElement.clientWidth + 1 && !contained(el))
    out.push('beyond the window: ' + name + ' right edge ' + Math.round(r.right) + ' px');
}
return out.slice(0, 20);
"""


_DISPLAY_MATH_JS = "return !!document.querySelector('mjx-container[display=\"true\"]');"


@pytest.mark.parametrize("page", ["tiny", "intro"])
def test_nothing_is_clipped_at_phone_width(tiny_site, browser, page):
    from selenium.webdriver.support.ui import WebDriverWait

    path = _chapter(tiny_site) if page == "tiny" else tiny_site / "intro.html"
    # desktop Chrome will not make a window narrower than 500 px; device emulation gives a 400 px phone
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 400, "height": 900, "deviceScaleFactor": 2, "mobile": True}
    )
    try:
        if page == "tiny":
            _open(browser, path)
            # MathJax typesets after the page loads; wait for the wide display equation
            WebDriverWait(browser, 30).until(lambda d: d.execute_script(_DISPLAY_MATH_JS))
        else:
            browser.get(path.as_uri())
        width, inner = browser.execute_script(
            "return [document.scrollingElement.scrollWidth, document.documentElement.clientWidth];"
        )
        assert inner == 400
        assert width <= inner + 1, f"{page}: the page is {width} px wide in a {inner} px window"
        clipped = browser.execute_script(_CLIPPED_JS)
        assert not clipped, f"{page} at 400 px: " + "; ".join(clipped)
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_clipping_check_finds_cut_and_overflowing_content(tmp_path, browser):
    # the check above must be able to fail: a page with one cut box, one box past the window edge
    # and one wide box inside a scrolling container (allowed)
    page = tmp_path / "clip.html"
    page.write_text(
        "<!DOCTYPE html><html><head><meta name='viewport' content='width=device-width'></head><body><main>"
        "<div id='cut' style='width:200px;overflow:hidden'><div style='width:600px;height:10px'></div></div>"
        "<div id='wide' style='width:700px;height:10px'></div>"
        "<div style='width:200px;overflow-x:auto'><div id='ok' style='width:900px;height:10px'></div></div>"
        "</main></body></html>"
    )
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 400, "height": 900, "deviceScaleFactor": 2, "mobile": True}
    )
    try:
        browser.get(page.as_uri())
        found = browser.execute_script(_CLIPPED_JS)
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert [f.split(":")[0] for f in found] == ["cut", "beyond the window"], found
    assert "600 > 200" in found[0] and "right edge" in found[1]


def test_figure_without_plotly_shows_its_note_and_raises_nothing(tmp_path, browser):
    # a notebook in JupyterLab has no plotly.js: the output must show the note, not a script error
    import pandas as pd

    runs = pd.DataFrame({"weight_decay": [0.0, 1e-4], "sharpness": [1.0, 2.0], "gap_loss": [0.1, 0.2]})
    fig = interactive.explorer(runs, x={"s": "sharpness"}, y="gap_loss", color="weight_decay", hover=[])
    page = tmp_path / "lab.html"
    page.write_text(f"<!DOCTYPE html><html><body>{interactive.figure(fig, alt='a figure')._repr_html_()}</body></html>")
    browser.get_log("browser")  # drop earlier messages
    browser.get(page.as_uri())
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    note = browser.execute_script(f"return document.querySelector('.{interactive.FIGURE_CLASS}-note').innerText;")
    assert "Interactive figure" in note


def test_legend_entry_toggles_its_runs(tiny_site, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _open(browser, _chapter(tiny_site))
    entries = browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .legend .traces")
    assert [e.text for e in entries] == ["0", "0.0001", "0.001"]  # one entry per weight decay
    groups = browser.execute_script("return document.querySelector('.js-plotly-plot').data.map(t => t.legendgroup);")
    entries[0].find_element(By.CSS_SELECTOR, ".legendtoggle").click()
    WebDriverWait(browser, 10).until(lambda d: _visible(d) != [True] * len(groups))
    # both seeds' traces of weight decay 0 are hidden (kept in the legend), the others stay
    assert _visible(browser) == ["legendonly" if g == groups[0] else True for g in groups]
