"""Interactive figures in a real browser: a tiny book built with the book's configuration, opened in
headless Chromium through Selenium (Debian's ``chromium`` and ``chromium-driver``).

The book has one chapter with one explorer figure (drop-down over the x statistic, slider over the
seed), one folded code cell (tag ``hide-input``), one reader table, one long inline code name and one
wide display equation, and a second chapter with the ansatz chapter's curves explorer (a drop-down of
six statistics above the plot).
The checks: the figure is drawn from the bundled plotly.js; the drop-down changes the plotted x
data; the slider changes which runs are visible; hovering a point shows the run's hyper-parameter;
the folded code unfolds; no request leaves ``file:``; at 400 px nothing is wider than the window.

Without selenium, chromium or chromedriver the browser tests are skipped (they fail under CI).
"""

from __future__ import annotations

import json
import os
import shutil
import time
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

As {numref}`fig-tiny-explorer` shows, the figure is numbered. A long inline name such as
`sharpjac.mediators.smoothed_curvature_at_optimum` must wrap on a phone (unbroken it widened the
ansatz page past 400 px).


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

_CURVES_CHAPTER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# Tiny curves

The ansatz chapter's explorer at its size: six runs, six statistics in the drop-down above the plot.

```{code-cell} ipython3
:tags: [remove-input]
import pandas as pd
from myst_nb import glue

from sharpjac import interactive

runs_names = ["all layers", "first layer only", "last layer only", "linear model",
              "cross-entropy, smoothing 0", "cross-entropy, smoothing 0.1"]
records = pd.DataFrame(
    [
        {"run": r, "step": s, "sharpness": s * (k + 1.0), "jac_spectral_max": 2.0 * s, "jac_spectral_mean": 0.5 * s,
         "jac_frobenius_max": 3.0 * s, "jac_frobenius_mean": 1.5 * s, "train_loss": 1.0 / s}
        for k, r in enumerate(runs_names)
        for s in (1, 2, 5, 10, 20, 50, 100, 200)
    ]
)
curves = interactive.curves(
    records,
    x="step",
    y={
        "sharpness λ_max(H)": "sharpness",
        "max ‖Jf(xᵢ)‖₂": "jac_spectral_max",
        "mean ‖Jf(xᵢ)‖₂": "jac_spectral_mean",
        "max ‖Jf(xᵢ)‖_F": "jac_frobenius_max",
        "mean ‖Jf(xᵢ)‖_F": "jac_frobenius_mean",
        "training loss": "train_loss",
    },
    group="run",
    hover=["run", "step", "sharpness", "train_loss"],
)
curves.update_xaxes(type="log")
glue("fig_tiny_curves", interactive.figure(curves, alt="Curves over steps, y chosen with a drop-down"), display=False)
```

:::{glue:figure} fig_tiny_curves
:name: fig-tiny-curves

Curves over training (the ansatz chapter's explorer: six statistics in the drop-down above the plot).
:::
"""

# the explorer's traces are the weight decays in sorted order (seeds in slider order within each);
# these are the first trace's points
_FIRST_TRACE_SHARPNESS = [10.0, 12.0]
_FIRST_TRACE_JACOBIAN = [3.0, 3.5]


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
        "format: jb-book\nroot: intro\nchapters:\n  - file: notebooks/executed/tiny\n"
        "  - file: notebooks/executed/tiny_curves\n  - file: book/guide\n"
    )
    (root / "notebooks").mkdir()
    (root / "notebooks" / "tiny.md").write_text(_CHAPTER)
    (root / "notebooks" / "tiny_curves.md").write_text(_CURVES_CHAPTER)
    old = os.environ.get("SHARPJAC_CACHE")
    os.environ["SHARPJAC_CACHE"] = str(tmp_path_factory.mktemp("runs"))
    try:
        for name in ("tiny", "tiny_curves"):
            assert publish.execute_chapter(root, name, {"preset": "smoke", "seed": 0}).status == "executed"
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
    yield from _driver()


def _driver():
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
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
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


def test_slider_shows_the_runs_of_one_value_and_keeps_the_legend(tiny_site, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _open(browser, _chapter(tiny_site))
    y_js = "return document.querySelector('.js-plotly-plot').data.map(t => Array.from(t.y));"
    before = browser.execute_script(y_js)
    assert all(v is not None for ys in before for v in ys)
    seeds = browser.execute_script(
        "return document.querySelector('.js-plotly-plot').data.map(t => t.meta.slider_values);"
    )
    rail = browser.find_element(By.CSS_SELECTOR, ".slider-rail-touch-rect")
    # steps "all", "0", "1" are spread along the rail; a click near its right end selects the last step, seed 1
    ActionChains(browser).move_to_element_with_offset(rail, rail.size["width"] // 2 - 3, 0).click().perform()
    WebDriverWait(browser, 10).until(lambda d: d.execute_script(y_js) != before)
    after = browser.execute_script(y_js)
    assert [[y is None for y in ys] for ys in after] == [[s != "1" for s in ss] for ss in seeds]
    assert _visible(browser) == [True] * 3  # the legend and the reader's toggles are left alone
    assert len(browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .legend .traces")) == 3


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
    # the runs of weight decay 0 are hidden (kept in the legend), the others stay
    assert _visible(browser) == ["legendonly" if g == groups[0] else True for g in groups]


# --------------------------------------------------------------------------------------------------
# The book in a reader's hands: every page of a built site at 1400, 800 and 400 px, light and dark,
# driven with real mouse events and touch taps. ``reader_problems(driver, site)`` returns what a
# reader would meet, by kind (squeezed images, unframed wide tables, a page wider than the window,
# captions, console errors, menus, sliders, hover); the tests below assert there is nothing. Run it on any built site
# (prints the report):  python tests/test_browser.py _build/html

WIDTHS = (1400, 800, 400)

# Each shown image's aspect ratio against its file's (2 % tolerance: sub-pixel layout rounding of a
# 400 px wide image moves its ratio by < 0.5 %, a squeezed figure by 16 % or more).
_IMAGES_JS = """
const out = [];
for (const img of document.querySelectorAll('main img')) {
  const r = img.getBoundingClientRect();
  if (!img.naturalWidth || r.width < 2 || r.height < 2) continue;
  const want = img.naturalWidth / img.naturalHeight, got = r.width / r.height;
  const name = decodeURIComponent(img.getAttribute('src') || '').split('/').pop().slice(0, 40);
  if (Math.abs(got / want - 1) > 0.02)
    out.push(name + ': shown ' + Math.round(r.width) + 'x' + Math.round(r.height) + ' px (ratio '
             + got.toFixed(2) + '), file ratio ' + want.toFixed(2));
  // a figure wider than a phone scrolls inside its own frame (figure or output box), which must fit
  const frame = img.closest('figure, div.output');
  const scrolls = frame && ['auto', 'scroll'].includes(getComputedStyle(frame).overflowX)
    && frame.getBoundingClientRect().right <= document.documentElement.clientWidth + 1;
  if (r.right > document.documentElement.clientWidth + 1 && !scrolls)
    out.push(name + ': reaches ' + Math.round(r.right) + ' px, past the window');
  // legible on a phone: a figure drawn wider than 36em is shown at least 36em wide (5 % slack)
  if (document.documentElement.clientWidth <= 600) {
    const drawn = parseFloat(img.style.width) || img.naturalWidth;
    const want = Math.min(drawn, 36 * parseFloat(getComputedStyle(img).fontSize));
    if (r.width < 0.95 * want)
      out.push(name + ': shown ' + Math.round(r.width) + ' px wide on a phone (drawn ' + Math.round(drawn)
               + ' px): its text is too small to read');
  }
}
return out;
"""

_LOAD_IMAGES_JS = """
const done = arguments[arguments.length - 1];
const imgs = Array.from(document.querySelectorAll('main img'));
imgs.forEach(i => { i.loading = 'eager'; });
Promise.all(imgs.map(i => i.decode().catch(() => null))).then(() => done(imgs.length));
"""

# A table fits the text column, or scrolls inside a frame that itself fits; reader tables are numbered.
_TABLES_JS = """
const out = [];
const column = (document.querySelector('.bd-article') || document.querySelector('main')).getBoundingClientRect();
const right = Math.min(column.right, document.documentElement.clientWidth);
let k = 0;
for (const t of document.querySelectorAll('main table')) {
  k += 1;
  const cap = t.querySelector('caption');
  const name = 'table ' + k + (cap ? ' "' + cap.textContent.trim().slice(0, 40) + '"' : '');
  let frame = null;
  for (let a = t; a && a !== document.body; a = a.parentElement) {
    const s = getComputedStyle(a).overflowX;
    if (s === 'auto' || s === 'scroll') { frame = a; break; }
  }
  const r = t.getBoundingClientRect();
  if (r.width === 0) continue;
  const wide = t.scrollWidth > r.width + 1 || r.right > right + 1;
  if (!wide) continue;
  if (!frame) {
    out.push(name + ': ' + Math.round(t.scrollWidth) + ' px wide, past the column, no scrolling frame');
    continue;
  }
  const f = frame.getBoundingClientRect();
  if (f.right > document.documentElement.clientWidth + 1)
    out.push(name + ': its scrolling frame reaches ' + Math.round(f.right) + ' px, past the window');
}
return out;
"""

_CAPTIONS_JS = """
return Array.from(document.querySelectorAll('div.sharpjac-table table')).map((t, i) => {
  const c = t.querySelector('caption');
  const numbered = c && /^Table [0-9.]+/.test(c.textContent.trim());
  return numbered ? null : 'reader table ' + (i + 1) + ' has no numbered caption';
}).filter(Boolean);
"""

# Hover boxes: reader labels only (no internal column name with "_"), each label once.
_HOVER_JS = """
const out = [];
document.querySelectorAll('.sharpjac-plotly .js-plotly-plot').forEach((gd, f) => {
  const seen = new Set();
  for (const t of gd.data) {
    const tmpl = (t.hovertemplate || '').replace('<extra></extra>', '');
    if (seen.has(tmpl)) continue;
    seen.add(tmpl);
    const labels = tmpl.split('<br>').map(l => l.split(':')[0].trim());
    const bare = tmpl.replace(/%\\{[^}]*\\}/g, '');
    if (bare.includes('_')) out.push('figure ' + (f + 1) + ': raw name in hover box: ' + bare.slice(0, 80));
    const dup = labels.filter((l, i) => labels.indexOf(l) !== i);
    if (dup.length) out.push('figure ' + (f + 1) + ': repeated hover line(s) ' + dup.join(', '));
  }
});
return out;
"""

_FIGURES_JS = "return document.querySelectorAll('.sharpjac-plotly .js-plotly-plot').length;"

# the legend's entries and the figure's legend groups (a trace without a group is its own)
_LEGEND_JS = """
const gd = document.querySelectorAll('.sharpjac-plotly .js-plotly-plot')[arguments[0]];
const groups = new Set(gd.data.map((t, i) => t.legendgroup || ('trace ' + i)));
const shown = new Set(Array.from(gd.querySelectorAll('.legend .traces .legendtext')).map(e => e.textContent));
return [groups.size, shown.size];
"""


def _viewport(driver, width: int, *, dark: bool = False, touch: bool = False) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 500},
    )
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "dark" if dark else "light"}]},
    )
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": touch, "maxTouchPoints": 1})


def _tap_or_click(driver, x: float, y: float, *, touch: bool) -> None:
    """A real input event at viewport point (x, y): a finger's tap, or a mouse move and click.

    (x, y) are layout-viewport coordinates (``getBoundingClientRect``); input events are in the
    visual viewport, which a phone shifts or zooms when the page is wider than the screen: the
    point is mapped, so the event lands where the reader sees the element.
    """
    ox, oy, scale = driver.execute_script(
        "const v = window.visualViewport; return v ? [v.offsetLeft, v.offsetTop, v.scale] : [0, 0, 1];"
    )
    x, y = (x - ox) * scale, (y - oy) * scale
    if touch:
        # a touch start and end at one point: the browser sends touch events, then (as for a finger on a
        # phone) the compatibility mouse events and the click
        driver.execute_cdp_cmd("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
        driver.execute_cdp_cmd("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        return
    for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
        event = {"type": kind, "x": x, "y": y, "button": "left" if kind != "mouseMoved" else "none"}
        if kind != "mouseMoved":
            event["clickCount"] = 1
        driver.execute_cdp_cmd("Input.dispatchMouseEvent", event)


def _centre_if_reachable(driver, selector_js: str):
    """The viewport centre of the element that ``selector_js`` returns, if a click there reaches it."""
    return driver.execute_script(
        "const el = (function () {" + selector_js + "})();"
        "if (!el) return null;"
        # a menu entry's own box (its group's bounding box can include invisible parts)
        "const r = (el.querySelector && el.querySelector('.updatemenu-item-rect') || el).getBoundingClientRect();"
        "const x = r.left + r.width / 2, y = r.top + r.height / 2;"
        "const hit = document.elementFromPoint(x, y);"
        "return hit && (hit === el || el.contains(hit)) ? [x, y] : null;"
    )


def _wait(driver, js: str, *args, timeout: float = 5.0):
    end = time.monotonic() + timeout
    while True:
        value = driver.execute_script(js, *args)
        if value or time.monotonic() > end:
            return value
        time.sleep(0.05)


def _drive_menus(driver, f: int, *, touch: bool) -> list[str]:  # noqa: C901 - one reader's walk
    """Open every drop-down of figure ``f`` and reach every option with real input events.

    With the mouse every option is clicked and must become the chosen one. With a finger the menu
    is opened by a tap and every option must lie where a finger can reach it (inside the figure,
    not covered); a tap on an option is not used to choose it, because headless Chromium's touch
    emulation sends no click for a tap on a plotly menu option (touch events only; seen on main
    and on this branch alike), which would fail every figure whatever its layout.
    """
    out = []
    gd = f"document.querySelectorAll('.sharpjac-plotly .js-plotly-plot')[{f}]"
    menus = driver.execute_script(f"return ({gd})._fullLayout.updatemenus.map(m => m.buttons.length);")
    buttons = f"({gd}).querySelectorAll('.updatemenu-dropdown-button')"
    for m, n in enumerate(menus):
        for i in range(n):
            driver.execute_script(f"({gd}).scrollIntoView({{block: 'center', behavior: 'instant'}});")
            header = _centre_if_reachable(driver, f"return ({gd}).querySelectorAll('.updatemenu-header')[{m}];")
            if header is None:
                out.append(f"figure {f + 1}, menu {m + 1}: its header cannot be reached")
                break
            # a second try, as a reader would, when the figure was still redrawing after the last choice
            for _ in range(2):
                if driver.execute_script(f"return {buttons}.length >= {n};"):
                    break
                _tap_or_click(driver, *header, touch=touch)
                if _wait(driver, f"return {buttons}.length >= {n};", timeout=2.0):
                    break
            if not driver.execute_script(f"return {buttons}.length >= {n};"):
                out.append(f"figure {f + 1}, menu {m + 1}: does not open")
                break
            where = _centre_if_reachable(driver, f"return {buttons}[{i}];")
            label = driver.execute_script(f"return ({gd})._fullLayout.updatemenus[{m}].buttons[{i}].label;")
            if where is None:
                out.append(f"figure {f + 1}, menu {m + 1}: option {i + 1} of {n} ({label!r}) cannot be reached")
                continue
            if touch:
                continue
            _tap_or_click(driver, *where, touch=False)
            if not _wait(driver, f"return ({gd})._fullLayout.updatemenus[{m}].active === {i};"):
                out.append(f"figure {f + 1}, menu {m + 1}: option {i + 1} ({label!r}) clicked but not chosen")
            # the choice closes the menu and redraws the figure; let both finish
            _wait(driver, f"return {buttons}.length === 0;", timeout=2.0)
            time.sleep(0.2)
        # close the menu if it is still open
        header = _centre_if_reachable(driver, f"return ({gd}).querySelectorAll('.updatemenu-header')[{m}];")
        if header is not None and driver.execute_script(f"return {buttons}.length > 0;"):
            _tap_or_click(driver, *header, touch=touch)
            _wait(driver, f"return {buttons}.length === 0;")
    return out


def _drive_sliders(driver, f: int, *, touch: bool) -> list[str]:
    """Toggle the first legend entry off, move every slider to every step: the legend must stay
    complete and the toggle must survive."""
    out = []
    gd = f"document.querySelectorAll('.sharpjac-plotly .js-plotly-plot')[{f}]"
    sliders = driver.execute_script(f"return ({gd})._fullLayout.sliders.map(s => s.steps.length);")
    if not sliders:
        return out
    driver.execute_script(f"({gd}).scrollIntoView({{block: 'center', behavior: 'instant'}});")
    toggle = _centre_if_reachable(driver, f"return ({gd}).querySelector('.legend .traces .legendtoggle');")
    group = None
    if toggle is not None:
        group = driver.execute_script(f"const t = ({gd}).data[0]; return t.legendgroup || null;")
        _tap_or_click(driver, *toggle, touch=touch)
        _wait(driver, f"return ({gd}).data[0].visible === 'legendonly';")
    for s, n in enumerate(sliders):
        for i in range(n):
            driver.execute_script(f"({gd}).scrollIntoView({{block: 'center', behavior: 'instant'}});")
            x, y = driver.execute_script(
                f"const c = ({gd}).querySelectorAll('.slider-container')[{s}];"
                f"const tick = c.querySelectorAll('.slider-tick-rect')[{i}].getBoundingClientRect();"
                "const rail = c.querySelector('.slider-rail-touch-rect').getBoundingClientRect();"
                "return [tick.left + tick.width / 2, rail.top + rail.height / 2];"
            )
            _tap_or_click(driver, x, y, touch=touch)
            if not _wait(driver, f"return ({gd})._fullLayout.sliders[{s}].active === {i};"):
                out.append(f"figure {f + 1}, slider {s + 1}: step {i + 1} of {n} cannot be reached")
                continue
            label = driver.execute_script(f"return ({gd})._fullLayout.sliders[{s}].steps[{i}].label;")
            groups, shown = driver.execute_script(_LEGEND_JS, f)
            if shown < groups:
                out.append(f"figure {f + 1}, slider at {label!r}: the legend shows {shown} of {groups} entries")
            if toggle is not None:
                drawn = driver.execute_script(
                    f"return ({gd}).data.filter((t, k) => (t.legendgroup || null) === {json.dumps(group)}"
                    " && (k === 0 || t.legendgroup)).some(t => t.visible === true || t.visible === undefined);"
                )
                if drawn:
                    out.append(f"figure {f + 1}, slider at {label!r}: the reader's legend toggle was undone")
    return out


# A page wider than the window: a phone zooms it out or scrolls it sideways, and shows it shifted.
# The widest element of the text (not inside a scrolling frame) is named.
_PAGE_WIDTH_JS = """
const W = document.documentElement.clientWidth, S = document.scrollingElement.scrollWidth;
if (S <= W + 1) return [];
let worst = null, right = 0;
const text = document.querySelector('.bd-article') || document.querySelector('main') || document.body;
for (const el of text.querySelectorAll('*')) {
  const r = el.getBoundingClientRect();
  let framed = false;
  for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
    if (getComputedStyle(p).overflowX !== 'visible') { framed = true; break; }
  }
  if (!framed && r.right > right) { right = r.right; worst = el; }
}
const name = worst ? worst.tagName.toLowerCase() + (worst.className ? '.' + String(worst.className).split(' ')[0] : '')
  + ' "' + (worst.textContent || '').trim().slice(0, 40) + '"' : 'unknown';
return ['the page is ' + S + ' px wide in a ' + W + ' px window (widest: ' + name + ')'];
"""


def reader_problems(driver, base_url: str, pages: list[str], *, explorers: bool = True) -> dict[str, list[str]]:
    """Everything a reader would meet on ``pages`` (paths under ``base_url``), by kind."""
    problems: dict[str, list[str]] = {
        k: [] for k in ("images", "tables", "width", "captions", "console", "menus", "sliders", "hover")
    }
    for page in pages:
        url = f"{base_url}/{page}"
        _viewport(driver, 1400)
        driver.get_log("browser")
        driver.get(url)
        _wait(driver, "return document.readyState === 'complete';", timeout=30)
        n_fig = driver.execute_script(_FIGURES_JS)
        if n_fig:
            _wait(
                driver, f"return document.querySelectorAll('.sharpjac-plotly .main-svg').length >= {n_fig};", timeout=30
            )
        driver.execute_async_script(_LOAD_IMAGES_JS)
        for width in WIDTHS:
            for dark in (False, True):
                _viewport(driver, width, dark=dark)
                mode = "dark" if dark else "light"
                problems["images"] += [f"{page} {width} px {mode}: {p}" for p in driver.execute_script(_IMAGES_JS)]
            problems["tables"] += [f"{page} {width} px: {p}" for p in driver.execute_script(_TABLES_JS)]
            problems["width"] += [f"{page} {width} px: {p}" for p in driver.execute_script(_PAGE_WIDTH_JS)]
        problems["captions"] += [f"{page}: {p}" for p in driver.execute_script(_CAPTIONS_JS)]
        problems["hover"] += [f"{page}: {p}" for p in driver.execute_script(_HOVER_JS)]
        if explorers and n_fig:
            for width, touch in ((1400, False), (400, False), (400, True)):
                _viewport(driver, width, touch=touch)
                driver.get(url)
                _wait(
                    driver,
                    f"return document.querySelectorAll('.sharpjac-plotly .main-svg').length >= {n_fig};",
                    timeout=30,
                )
                how = "finger" if touch else "mouse"
                for f in range(n_fig):
                    problems["menus"] += [f"{page} {width} px {how}: {p}" for p in _drive_menus(driver, f, touch=touch)]
                    problems["sliders"] += [
                        f"{page} {width} px {how}: {p}" for p in _drive_sliders(driver, f, touch=touch)
                    ]
        problems["console"] += [
            f"{page}: {e['message'][:160]}" for e in driver.get_log("browser") if e["level"] == "SEVERE"
        ]
    _viewport(driver, 1400)
    return problems


def site_pages(site: Path) -> list[str]:
    """The book's pages (not the search and index pages Sphinx adds)."""
    skip = {"search.html", "genindex.html", "py-modindex.html"}
    return sorted(
        p.relative_to(site).as_posix()
        for p in site.rglob("*.html")
        if p.name not in skip and not p.relative_to(site).parts[0].startswith("_")
    )


class _Server:
    """The site served on 127.0.0.1 (a thread), as a reader's browser would fetch it."""

    def __init__(self, site: Path):
        import functools
        import http.server
        import threading

        handler = functools.partial(_QuietHandler, directory=str(site))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


try:
    import http.server as _http_server

    class _QuietHandler(_http_server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # no line per request in the test output
            pass
except ImportError:  # pragma: no cover
    pass


def first_paint(driver, url: str, *, mbit: float | None = None) -> float:
    """Milliseconds to the first contentful paint of ``url`` (cache off; ``mbit``: throttled link)."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    throughput = -1 if mbit is None else mbit * 1e6 / 8
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0 if mbit is None else 20,
            "downloadThroughput": throughput,
            "uploadThroughput": throughput,
        },
    )
    try:
        driver.get("about:blank")
        driver.get(url)
        return _wait(
            driver,
            "const p = performance.getEntriesByName('first-contentful-paint')[0]; return p ? p.startTime : null;",
            timeout=60,
        )
    finally:
        driver.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )
        driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": False})


@pytest.fixture(scope="module")
def tiny_server(tiny_site):
    server = _Server(tiny_site)
    yield server
    server.close()


_KINDS = ["images", "tables", "width", "captions", "console", "menus", "sliders", "hover"]
_REPORTS: dict[str, dict[str, list[str]]] = {}  # one browser pass per site, shared by the tests of each kind


@pytest.mark.parametrize("kind", _KINDS)
def test_reader_meets_nothing_wrong_on_the_tiny_book(tiny_site, tiny_server, browser, kind):
    if "tiny" not in _REPORTS:
        _REPORTS["tiny"] = reader_problems(browser, tiny_server.url, site_pages(tiny_site))
    assert not _REPORTS["tiny"][kind], "\n".join(_REPORTS["tiny"][kind])


@pytest.fixture(scope="session")
def built_site(request) -> Path:
    """The site of a whole book: ``$SHARPJAC_SITE`` when set (e.g. ``_build/html`` after ``make book``),
    else the smoke book that ``make test`` executes and builds once (conftest's ``smoke_book``)."""
    given = os.environ.get("SHARPJAC_SITE")
    if given:
        site = Path(given)
        if not (site / "notebooks" / "executed").is_dir():
            pytest.fail(f"SHARPJAC_SITE={given!r} is not a built book (no notebooks/executed pages)")
        return site
    root, _ = request.getfixturevalue("smoke_book")
    return root / "_build" / "html"


@pytest.mark.book
@pytest.mark.parametrize("kind", _KINDS)
def test_reader_meets_nothing_wrong_in_the_built_book(built_site, browser, kind):
    if "book" not in _REPORTS:
        server = _Server(built_site)
        try:
            _REPORTS["book"] = reader_problems(browser, server.url, site_pages(built_site))
        finally:
            server.close()
    assert not _REPORTS["book"][kind], "\n".join(_REPORTS["book"][kind][:40])


@pytest.mark.parametrize("touch", [False, True], ids=["mouse", "finger"])
def test_curves_menu_opens_and_every_option_is_chosen_at_phone_width(tiny_site, tiny_server, browser, touch):
    # the ansatz chapter's explorer (six statistics in the drop-down above the plot) on a 400 px phone:
    # the menu opens with a real click or tap, and every option is clicked and chosen (mouse) or
    # reachable (finger); the page is no wider than the phone
    _viewport(browser, 400, touch=touch)
    try:
        browser.get(f"{tiny_server.url}/notebooks/executed/tiny_curves.html")
        assert _wait(browser, "return document.querySelectorAll('.sharpjac-plotly .main-svg').length >= 1;", timeout=30)
        assert browser.execute_script("return document.documentElement.clientWidth;") == 400
        assert (
            browser.execute_script(
                "return document.querySelector('.js-plotly-plot')._fullLayout.updatemenus[0].buttons.length;"
            )
            == 6
        )
        assert _drive_menus(browser, 0, touch=touch) == []
        assert browser.execute_script(_PAGE_WIDTH_JS) == []
    finally:
        _viewport(browser, 1400)


def test_reader_checks_catch_a_squeezed_image_a_wide_page_a_cut_menu_and_a_console_error(tmp_path, browser):
    # the checks must be able to fail: an image with an inline height that max-width cannot keep,
    # a drop-down that opens down past the figure's bottom edge, a wide table with no frame, a script error
    import base64

    import plotly.graph_objects as go

    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAIAAAABCAYAAAD0In+KAAAAEUlEQVR4nGNgYGD4z8DAwMAAAAMAAQBn4W2NAAAAAElFTkSuQmCC"
    )
    (tmp_path / "wide.png").write_bytes(png)  # 2 x 1 px
    fig = go.Figure(go.Scatter(x=[1, 2], y=[1, 2]))
    fig.update_layout(
        height=300,
        margin=dict(b=40),
        updatemenus=[
            dict(
                type="dropdown",
                direction="down",
                y=-0.1,
                yanchor="top",
                buttons=[dict(label=f"option {i}", method="restyle", args=[{"x": [[1, i]]}]) for i in range(8)],
            )
        ],
    )
    body = interactive.figure(fig, alt="a figure")._repr_html_()
    (tmp_path / "page.html").write_text(
        "<!DOCTYPE html><html><head><script src='plotly.min.js'></script></head><body><main>"
        "<img src='wide.png' style='width:800px;height:400px;max-width:100%'>"
        "<div><table><tr>" + "<td>wide-cell-content</td>" * 60 + "</tr></table></div>"
        "<p><span style='white-space:nowrap'>" + "unbreakable-" * 60 + "</span></p>"
        f"{body}<script>undefinedFunction();</script></main></body></html>"
    )
    shutil.copy(book_ext.plotly_js_source(), tmp_path / "plotly.min.js")
    server = _Server(tmp_path)
    try:
        found = reader_problems(browser, server.url, ["page.html"])
    finally:
        server.close()
    assert any("wide.png" in p and "400 px" in p for p in found["images"]), found["images"]
    assert any("no scrolling frame" in p for p in found["tables"]), found["tables"]
    assert any("400 px" in p and "px wide" in p for p in found["width"]), found["width"]
    assert any("cannot be reached" in p for p in found["menus"]), found["menus"]
    assert any("undefinedFunction" in p for p in found["console"]), found["console"]


if __name__ == "__main__":  # python tests/test_browser.py SITE [--paint PAGE]
    import sys

    site = Path(sys.argv[1]).resolve()
    driver_gen = _driver()
    driver = next(driver_gen)
    server = _Server(site)
    try:
        if "--paint" in sys.argv:
            page = sys.argv[sys.argv.index("--paint") + 1]
            for mbit in (None, 10.0):
                times = [first_paint(driver, f"{server.url}/{page}", mbit=mbit) for _ in range(3)]
                print(
                    f"first contentful paint of {page} ({'localhost' if mbit is None else f'{mbit} Mbit/s'}):",
                    ", ".join(f"{t:.0f} ms" for t in times),
                )
        else:
            pages = site_pages(site) if len(sys.argv) < 3 else sys.argv[2:]
            report = reader_problems(driver, server.url, pages)
            for kind, items in report.items():
                print(f"## {kind}: {len(items)}")
                for item in items:
                    print("  ", item)
    finally:
        server.close()
        driver_gen.close()
