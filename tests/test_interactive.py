"""Interactive figures (sharpjac.interactive) and the palette (sharpjac.plotting.COLORS / sweep_colors)."""

from __future__ import annotations

import json

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from sharpjac import interactive, plotting, tables


def _runs():
    rng = np.random.default_rng(0)
    wd = [0.0, 1e-4, 1e-3]
    rows = [
        dict(weight_decay=w, seed=s, lr=0.1, sharpness=10 + i + 3 * s, jac_spectral_max=1 + i + s, gap_loss=0.1 * i)
        for i, w in enumerate(wd)
        for s in (0, 1)
    ]
    df = pd.DataFrame(rows)
    df["gap_loss"] += rng.uniform(0, 0.01, len(df))
    return df


def test_colors_cover_the_concepts_and_are_distinct_hex():
    expected = {
        "sharpness",
        "jacobian",
        "gap",
        "train_loss",
        "test_loss",
        "curvature",
        "first_layer",
        "bound",
        "baseline",
        "gn",
        "edge",
    }
    assert set(plotting.COLORS) == expected
    assert len(set(plotting.COLORS.values())) == len(plotting.COLORS)
    for c in plotting.COLORS.values():
        assert mcolors.is_color_like(c) and c.startswith("#") and len(c) == 7


def test_sweep_colors_are_ordered_dark_with_value_and_never_concept_colours():
    values = [0.2, 0.05, 0.1, 0.05, 1.0]
    colors = plotting.sweep_colors(values)
    assert list(colors) == [0.05, 0.1, 0.2, 1.0]
    # relative luminance (sRGB weights) strictly decreases along the ramp: the order of the values is visible
    lum = [float(np.dot(mcolors.to_rgb(c), [0.2126, 0.7152, 0.0722])) for c in colors.values()]
    assert all(a > b for a, b in zip(lum, lum[1:]))
    concept = [np.array(mcolors.to_rgb(c)) for c in plotting.COLORS.values()]
    for c in plotting.sweep_colors(range(12)).values():
        # 0.1 in RGB distance (out of sqrt 3) is a clearly visible difference, not just "not equal"
        assert min(np.linalg.norm(np.array(mcolors.to_rgb(c)) - k) for k in concept) > 0.1, c


def test_sweep_colors_keeps_first_seen_order_for_labels():
    assert list(plotting.sweep_colors(["none", "sam", "none", "augment"])) == ["none", "sam", "augment"]


def test_explorer_dropdown_switches_x_to_the_named_columns():
    df = _runs()
    fig = interactive.explorer(
        df,
        x={"sharpness": "sharpness", "max Jf": "jac_spectral_max"},
        y="gap_loss",
        color="weight_decay",
        hover=["lr", "seed"],
    )
    # one trace per weight decay, points in df order within each
    assert len(fig.data) == 3
    for trace, w in zip(fig.data, [0.0, 1e-4, 1e-3]):
        part = df[df.weight_decay == w]
        assert list(trace.x) == part.sharpness.tolist()
        assert list(trace.y) == part.gap_loss.tolist()
    (menu,) = fig.layout.updatemenus
    labels = [b.label for b in menu.buttons]
    assert labels == ["sharpness", "max Jf"]
    jac = menu.buttons[1].args
    assert jac[0]["x"] == [df[df.weight_decay == w].jac_spectral_max.tolist() for w in [0.0, 1e-4, 1e-3]]
    assert len(jac) == 1  # restyle only: the drop-down itself is the axis title
    assert menu.y < 0  # under the x axis
    assert [t.name for t in fig.data] == ["0", "0.0001", "0.001"]
    assert fig.layout.legend.title.text == tables.LABELS["weight_decay"] + ":"
    assert fig.layout.xaxis.type == "log"


def test_explorer_hover_lists_reader_labels_and_run_values():
    fig = interactive.explorer(df := _runs(), x={"s": "sharpness"}, y="gap_loss", color="weight_decay", hover=["lr"])
    t = fig.data[1]
    assert tables.LABELS["weight_decay"] in t.hovertemplate and tables.LABELS["lr"] in t.hovertemplate
    assert [list(r) for r in t.customdata] == [["0.0001", "0.1"]] * int((df.weight_decay == 1e-4).sum())
    assert fig.layout.updatemenus == ()  # a single statistic needs no drop-down


def test_explorer_slider_keeps_the_legend_and_blanks_the_other_runs():
    df = _runs()
    fig = interactive.explorer(
        df, x={"s": "sharpness"}, y="gap_loss", color="weight_decay", hover=["lr"], slider="seed"
    )
    # one trace (one legend entry) per weight decay, whatever the slider shows
    assert len(fig.data) == 3 and all(t.showlegend is not False for t in fig.data)
    (slider,) = fig.layout.sliders
    assert [s.label for s in slider.steps] == ["all", "0", "1"]
    for step in slider.steps:
        # the slider never touches visibility (the reader's legend toggles stay)
        assert set(step.args[0]) == {"y"}
    assert slider.steps[0].args[0]["y"] == [list(t.y) for t in fig.data]
    for trace, ys in zip(fig.data, slider.steps[2].args[0]["y"]):
        seeds = trace.meta["slider_values"]
        assert [y is None for y in ys] == [s != "1" for s in seeds]
        assert [y for y, s in zip(ys, seeds) if s == "1"] == [y for y, s in zip(trace.y, seeds) if s == "1"]


def test_explorer_menu_opens_over_the_plot_and_hover_shows_each_value_once():
    df = _runs().assign(label_noise=0.1)
    fig = interactive.explorer(
        df,
        x={"s": "sharpness", "j": "jac_spectral_max"},
        y="gap_loss",
        color="weight_decay",
        hover=["weight_decay", "gap_loss", "sharpness", "label_noise", "seed"],
    )
    (menu,) = fig.layout.updatemenus
    assert menu.y < 0 and menu.direction == "up"  # under the x axis, opening over the plot
    template = fig.data[0].hovertemplate
    lines = template.replace("<extra></extra>", "").split("<br>")
    assert lines[0].startswith(tables.LABELS["weight_decay"] + ":")
    # y and the x statistics are shown by the coordinates, not again as hover columns
    assert sum(tables.LABELS["gap_loss"] in line for line in lines) == 1
    assert "label noise:" in template and "label_noise" not in template
    assert fig.layout.xaxis.tickformat == "~g"  # log ticks written as numbers, not "2 5 2 5"


def test_category_colours_are_qualitative_and_numbers_ordered():
    names = ["none", "SAM", "augmentation", "larger rate", "smaller batch"]
    colors = plotting.sweep_colors(names)
    assert list(colors.values()) == list(plotting.QUALITATIVE[:5])
    assert set(plotting.QUALITATIVE).isdisjoint({c.lower() for c in plotting.COLORS.values()})
    # neighbours differ clearly (RGB distance > 0.25 of sqrt 3), unlike two steps of an ordered ramp
    rgb = [np.array(mcolors.to_rgb(c)) for c in colors.values()]
    assert min(np.linalg.norm(a - b) for i, a in enumerate(rgb) for b in rgb[i + 1 :]) > 0.25
    fig = interactive.explorer(
        pd.DataFrame({"r": names, "s": [1.0, 2, 3, 4, 5], "g": [0.1] * 5}), x={"s": "s"}, y="g", color="r", hover=[]
    )
    assert [t.marker.color for t in fig.data] == list(plotting.QUALITATIVE[:5])


def test_curves_one_trace_per_group_and_y_dropdown():
    df = pd.DataFrame(
        {"step": [2, 0, 1] * 2, "lr": [0.1] * 3 + [0.2] * 3, "sharpness": [3.0, 1, 2, 6, 4, 5], "train_loss": 1.0}
    )
    fig = interactive.curves(df, x="step", y={"λ": "sharpness", "loss": "train_loss"}, group="lr", hover=["lr"])
    assert [list(t.x) for t in fig.data] == [[0, 1, 2], [0, 1, 2]]
    assert [list(t.y) for t in fig.data] == [[1, 2, 3], [4, 5, 6]]
    (menu,) = fig.layout.updatemenus
    assert menu.buttons[1].args[0]["y"] == [[1.0, 1.0, 1.0]] * 2
    assert fig.layout.yaxis.type == "log"


def test_curves_grouped_by_setting_have_one_legend_entry_per_setting():
    rows = [
        dict(run=f"{p}-{seed}", penalty=p, seed=seed, step=t, sharpness=1.0 + t + seed)
        for p in (0.0, 0.01)
        for seed in range(5)
        for t in range(3)
    ]
    fig = interactive.curves(
        pd.DataFrame(rows), x="step", y={"λ": "sharpness"}, group="run", hover=["seed"], color="penalty"
    )
    assert len(fig.data) == 10  # one thin line per run
    assert [t.name for t in fig.data if t.showlegend] == ["0", "0.01"]
    assert [t.legendgroup for t in fig.data] == ["0.0"] * 5 + ["0.01"] * 5
    assert all(t.line.width < 2 for t in fig.data)
    with pytest.raises(ValueError, match="color="):
        interactive.curves(pd.DataFrame(rows), x="step", y={"λ": "sharpness"}, group="penalty", hover=[], color="seed")


def test_figure_html_is_offline_deterministic_and_labelled():
    fig = interactive.explorer(_runs(), x={"s": "sharpness"}, y="gap_loss", color="weight_decay", hover=[])
    obj = interactive.figure(fig, alt='Gap "against" sharpness')
    html = obj._repr_html_()
    assert html.startswith(f'<div class="{interactive.FIGURE_CLASS}"')
    assert 'aria-label="Gap &quot;against&quot; sharpness"' in html
    assert "<script src" not in html and "cdn" not in html.lower()
    assert html == interactive.figure(fig, alt='Gap "against" sharpness')._repr_html_()
    # without plotly.js (JupyterLab) the figure's script is skipped instead of raising; with the
    # book's deferred plotly.js it draws once the document is parsed
    assert "if (window.Plotly && document.getElementById(id))" in html
    assert 'addEventListener("DOMContentLoaded", draw)' in html
    assert html.count("Plotly.newPlot") == 1
    # the embedded JSON is the figure's own data
    assert json.dumps(list(fig.data[0].x))[1:-1].split(",")[0].strip() in html


def test_validation_messages_name_the_parameter():
    df = _runs()
    with pytest.raises(ValueError, match="alt="):
        interactive.figure(go.Figure(), alt=" ")
    with pytest.raises(ValueError, match="fig="):
        interactive.figure("x", alt="a")
    with pytest.raises(ValueError, match=r"x=\['nope'\]"):
        interactive.explorer(df, x={"a": "nope"}, y="gap_loss", color="weight_decay", hover=[])
    with pytest.raises(ValueError, match="slider="):
        interactive.explorer(df, x={"a": "sharpness"}, y="gap_loss", color="weight_decay", hover=[], slider="q")
    with pytest.raises(ValueError, match="y="):
        interactive.curves(df, x="seed", y={}, group="lr", hover=[])


def test_book_style_makes_notebook_figures_retina_pngs():
    # in a fresh process: an IPython shell is a process-wide singleton
    import subprocess
    import sys

    code = """
import base64, struct
from IPython.core.interactiveshell import InteractiveShell
import matplotlib
matplotlib.use("agg")
import matplotlib.pyplot as plt
from sharpjac import plotting
shell = InteractiveShell.instance()
plotting.use_book_style()
fig, ax = plt.subplots(figsize=(4.0, 2.0))
ax.plot([0, 1], [0, 1])
data, meta = shell.display_formatter.format(fig)
png = base64.b64decode(data["image/png"]) if isinstance(data["image/png"], str) else data["image/png"]
width, height = struct.unpack(">II", png[16:24])  # the PNG header's IHDR width and height
print(width, height, meta["image/png"]["width"], meta["image/png"]["height"])
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    width, height, shown_width, shown_height = map(int, done.stdout.split())
    # a retina PNG has twice the pixels of its displayed size (integer division of odd sizes: +-1 px)
    assert abs(width - 2 * shown_width) <= 1 and abs(height - 2 * shown_height) <= 1
    assert shown_width > 100


def test_guide_documents_every_concept_colour():
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[1] / "book" / "guide.md").read_text()
    section = guide.split("## Colours and figures")[1]
    for key, hex_colour in plotting.COLORS.items():
        row = next((line for line in section.splitlines() if f"| `{key}` |" in line), None)
        assert row is not None, f"the guide's palette table has no row for {key}"
        assert row.count(hex_colour) == 2, f"the guide's row for {key} does not show {hex_colour}"
