"""The generic drawing helpers of :mod:`sharpjac.plotting` that draw a long frame by group.

Each test draws a small frame and reads back what matplotlib holds (line data, bar geometry,
colours, labels), against values written out by hand.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from sharpjac import plotting  # noqa: E402

FRAME = pd.DataFrame({"run": ["b", "b", "a", "a", "a"], "x": [1, 2, 1, 2, 3], "y": [10.0, 20.0, 1.0, 2.0, 3.0]})


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def test_plot_by_one_line_per_group_in_first_seen_order(ax):
    plotting.plot_by(ax, FRAME, "x", "y", by="run", colors={"a": "#000000", "b": "#ff0000"}, label="run {}")
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["run b", "run a"]
    assert list(lines[0].get_ydata()) == [10.0, 20.0] and list(lines[1].get_xdata()) == [1, 2, 3]
    assert to_hex(lines[0].get_color()) == "#ff0000"


def test_plot_by_axes_mapping_skips_groups_without_axes_and_marks_ends():
    fig, (a0, a1) = plt.subplots(1, 2)
    plotting.plot_by({"a": a0}, FRAME, "x", "y", by="run", colors="sharpness", end_marker="*")
    assert len(a1.get_lines()) == 0  # "b" has no Axes
    line, end = a0.get_lines()
    assert list(end.get_xdata()) == [3] and list(end.get_ydata()) == [3.0] and end.get_marker() == "*"
    assert to_hex(line.get_color()) == to_hex(plotting.COLORS["sharpness"])
    plt.close(fig)


def test_plot_by_keeps_a_label_with_braces_without_groups(ax):
    plotting.plot_by(ax, FRAME, "x", "y", label="$\\lambda_{\\max}$")
    assert ax.get_lines()[0].get_label() == "$\\lambda_{\\max}$"


def test_plot_by_names_a_missing_column(ax):
    with pytest.raises(ValueError, match="by='seed'"):
        plotting.plot_by(ax, FRAME, "x", "y", by="seed")


def test_plot_columns_draws_each_spec(ax):
    frame = pd.DataFrame({"x": [1, 2], "u": [3.0, 4.0], "v": [5.0, 6.0]})
    plotting.plot_columns(ax, frame, "x", [("u", "o-", "gn", "U"), ("v", "s--", "#123456", "V")])
    u, v = ax.get_lines()
    assert (u.get_label(), list(u.get_ydata()), to_hex(u.get_color())) == (
        "U",
        [3.0, 4.0],
        to_hex(plotting.COLORS["gn"]),
    )
    assert (v.get_label(), v.get_linestyle(), to_hex(v.get_color())) == ("V", "--", "#123456")


def test_vlines_by_labels_the_first_line_of_each_axes():
    fig, (a0, a1) = plt.subplots(1, 2)
    plotting.vlines_by({"p": a0, "q": a1}, {"p": [1.0, 2.0], "q": 3.5, "r": 9.0}, label="L")
    assert [line.get_xdata()[0] for line in a0.get_lines()] == [1.0, 2.0]
    assert [line.get_label() for line in a0.get_lines()] == ["L", "_child1"]
    assert [line.get_xdata()[0] for line in a1.get_lines()] == [3.5]
    plt.close(fig)


def test_bars_by_side_by_side_and_stacked(ax):
    frame = pd.DataFrame(
        {"x": [0, 1, 0, 1], "g": ["p", "p", "q", "q"], "h": [1.0, 2.0, 3.0, 4.0], "b": [0, 0, 1.0, 2.0]}
    )
    plotting.bars_by(ax, frame, "x", "h", by="g", width=0.8)
    rects = ax.patches
    # two groups: width 0.4 each, centred at x -/+ 0.2
    assert [round(r.get_x() + r.get_width() / 2, 9) for r in rects] == [-0.2, 0.8, 0.2, 1.2]
    assert [r.get_width() for r in rects] == pytest.approx([0.4] * 4)
    fig2, ax2 = plt.subplots()
    plotting.bars_by(ax2, frame, "x", "h", by="g", bottom="b", width=0.8)
    assert [r.get_y() for r in ax2.patches] == [0, 0, 1.0, 2.0]
    assert [r.get_width() for r in ax2.patches] == pytest.approx([0.8] * 4)
    plt.close(fig2)


def test_scatter_by_one_collection_per_group(ax):
    plotting.scatter_by(ax, FRAME, ["x", "y"], by="run", label="class {}")
    cols = ax.collections
    assert [c.get_label() for c in cols] == ["class b", "class a"]
    assert np.array_equal(cols[1].get_offsets(), [[1, 1.0], [2, 2.0], [3, 3.0]])


def test_image_grid_shapes_titles_and_errors():
    images = np.arange(2 * 3 * 4 * 4, dtype=float).reshape(2, 3, 4, 4)
    fig, axes = plotting.image_grid(images, titles=["a", "b", "c"])
    assert axes.shape == (2, 3) and [ax.get_title() for ax in axes[0]] == ["a", "b", "c"]
    assert np.array_equal(axes[1, 2].get_images()[0].get_array(), images[1, 2])
    assert list(axes[0, 0].get_xticks()) == []
    plt.close(fig)
    with pytest.raises(ValueError, match="images has shape"):
        plotting.image_grid(np.zeros((4, 4)))


def test_label_panels_puts_y_on_the_first_only():
    fig, (a0, a1) = plt.subplots(1, 2)
    plotting.label_panels({"i": a0, "e": a1}, "X", "Y", {"i": "init", "e": "end"})
    assert (a0.get_ylabel(), a1.get_ylabel(), a0.get_xlabel(), a1.get_title()) == ("Y", "", "X", "end")
    plt.close(fig)


def test_glue_figure_glues_and_closes(monkeypatch):
    import myst_nb

    from sharpjac import display

    calls = []
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: calls.append((name, value, display)))
    fig, ax = plt.subplots()
    display.glue_figure("fig_test", fig)
    assert calls == [("fig_test", fig, False)]  # glued under its name, not displayed
    assert not plt.fignum_exists(fig.number)  # closed: the cell shows nothing else


def test_ansatz_growth_frame_by_hand():
    from sharpjac.experiments import ansatz as an

    blind = {
        "a": pd.DataFrame(
            {"step": [0, 5], "train_loss": [1.0, 0.5], "jac_spectral_max": [2.0, 6.0], "sharpness": [4.0, 2.0]}
        ),
        "b": pd.DataFrame(
            {"step": [0, 5], "train_loss": [1.0, 0.2], "jac_spectral_max": [1.0, 1.0], "sharpness": [1.0, 2.0]}
        ),
    }
    g = an.growth_frame(blind)
    assert list(g["run"]) == ["a", "a", "b", "b"]
    assert list(g["jac_growth"]) == [1.0, 3.0, 1.0, 1.0] and list(g["sharpness_growth"]) == [1.0, 0.5, 1.0, 2.0]
    assert list(g["jac_per_sharpness"]) == [0.5, 3.0, 1.0, 0.5]
