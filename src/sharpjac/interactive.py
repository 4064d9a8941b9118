"""Interactive figures (Plotly) that work offline in the built book.

Everything is precomputed: a figure is a Plotly JSON description plus plotly.js, which the book's
Sphinx extension (:mod:`sharpjac.book_ext`) copies once into the site's static files and loads only
on pages that contain such a figure; no kernel and no other host is needed. In JupyterLab, where
plotly.js is not bundled, the figure shows a one-line note instead; the chapter's static matplotlib
figure remains the print image (the interactive one is hidden when printing).

A chapter builds a figure with :func:`explorer` (each point a run) or :func:`curves` (quantities
over training), wraps it with :func:`figure` and glues it::

    fig = interactive.explorer(runs, x={"sharpness": "sharpness", "max ‖Jf‖": "jac_spectral_max"},
                               y="gap_loss", color="weight_decay", hover=["lr", "seed"])
    glue("fig_wd_explorer", interactive.figure(fig, alt="Gap against each statistic, one point per run"),
         display=False)

and shows it with ``{glue:figure}`` (numbered, with a caption).
"""

from __future__ import annotations

import hashlib
import html
import json
import numbers
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from . import plotting, tables
from ._util import jsonable

__all__ = ["FIGURE_CLASS", "InteractiveFigure", "curves", "explorer", "figure"]

#: The class of the ``<div>`` around every interactive figure; the book extension looks for it to
#: decide which pages load plotly.js, and the style sheet hides it when printing.
FIGURE_CLASS = "sharpjac-plotly"

_NOTE = (
    "Interactive figure: it is drawn in the built book, which bundles plotly.js "
    "(a notebook shows it when plotly.js is loaded)."
)
_FONT = dict(family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", size=13)


class InteractiveFigure:
    """An offline Plotly figure for a notebook output: ``_repr_html_`` is a ``<div>`` without plotly.js.

    Attributes:
        fig: the ``plotly.graph_objects.Figure``.
        alt: the alternative text (``aria-label`` of the figure, for screen readers).
    """

    def __init__(self, fig: go.Figure, alt: str):
        self.fig = fig
        self.alt = alt

    def _repr_html_(self) -> str:
        # a deterministic id (from the figure itself) keeps re-executed notebooks diff-stable
        div_id = "sjp-" + hashlib.sha1(self.fig.to_json().encode()).hexdigest()[:12]
        spec = self.fig.to_plotly_json()
        data = pio.json.to_json_plotly(spec["data"])
        layout = pio.json.to_json_plotly(spec.get("layout", {}))
        config = json.dumps({"responsive": True, "displaylogo": False})
        height = int(self.fig.layout.height or 480)
        # The book loads plotly.js with `defer` (it does not block the first paint): deferred scripts
        # run before DOMContentLoaded, so the figure is drawn then. Without plotly.js (a notebook in
        # JupyterLab) nothing runs and the note above the figure says where it is drawn.
        script = (
            "(function () {"
            f'var id = "{div_id}";'
            "var draw = function () { if (window.Plotly && document.getElementById(id)) {"
            f"Plotly.newPlot(id, {data}, {layout}, {config}); }} }};"
            'if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); }'
            " else { draw(); }"
            "})();"
        ).replace("</", "<\\/")
        alt = html.escape(self.alt, quote=True)
        return (
            f'<div class="{FIGURE_CLASS}" role="figure" aria-label="{alt}">'
            f'<p class="{FIGURE_CLASS}-note">{html.escape(_NOTE)}</p>'
            f'<div id="{div_id}" class="plotly-graph-div" style="height:{height}px; width:100%;"></div>'
            f'<script type="text/javascript">{script}</script></div>'
        )

    def __repr__(self) -> str:
        return f"InteractiveFigure(alt={self.alt!r})"


def figure(fig: go.Figure, *, alt: str) -> InteractiveFigure:
    """Wrap a Plotly figure for the book: offline HTML (plotly.js comes from the site) with alt text.

    Glue the result and show it with ``{glue:figure}`` for a numbered caption.
    """
    if not isinstance(fig, go.Figure):
        raise ValueError(f"fig={type(fig).__name__} is not accepted; expected a plotly.graph_objects.Figure")
    if not isinstance(alt, str) or not alt.strip():
        raise ValueError(f"alt={alt!r} is not accepted; expected a non-empty description of the figure")
    return InteractiveFigure(fig, alt.strip())


# --------------------------------------------------------------------------------------------------
# helpers


def _require_columns(df: pd.DataFrame, parameter: str, names: Sequence[str]) -> None:
    missing = [c for c in names if c not in df.columns]
    if missing:
        raise ValueError(f"{parameter}={missing!r} is not accepted; expected columns of df: {list(df.columns)!r}")


def _plain(values) -> list:
    """A column as JSON-friendly Python values (NaN -> None so that Plotly leaves a gap)."""
    return [jsonable(v, nonfinite="null") for v in values]


def _value_text(v) -> str:
    """Hover/legend text of one value (0.05 and 1e-4 as written, measured numbers to 3 digits)."""
    return tables.format_value(v) if isinstance(v, (numbers.Number, np.bool_)) else str(v)


def _ordered_values(series: pd.Series) -> list:
    """Distinct values, sorted numerically when numeric, else in order of appearance."""
    distinct = list(dict.fromkeys(series.tolist()))
    try:
        return sorted(distinct, key=float)
    except (TypeError, ValueError):
        return distinct


#: Reader labels of columns that only hover boxes and legends show (chapters' own column names);
#: any other name without a :data:`sharpjac.tables.LABELS` entry is shown with spaces for underscores.
_HOVER_LABELS = {"name": "run", "total": "bound", "total_t1": "bound with T1's δ", "config": "configuration"}


def _reader_label(column: str) -> str:
    """The label a reader sees for ``column``: :func:`sharpjac.tables.label`, never a raw internal name."""
    text = tables.label(column)
    if text == column:
        text = _HOVER_LABELS.get(column, column.replace("_", " "))
    return tables.html_label(text)


def _hover_columns(first: str, hover: Sequence[str], shown: Sequence[str]) -> list[str]:
    """``first`` then the ``hover`` columns, each once, without the plotted ones (``shown``)."""
    out = [first]
    for c in hover:
        if c not in out and c not in shown:
            out.append(c)
    return out


def _hover_template(hover: Sequence[str], x_label: str, y_label: str, *, offset: int = 0) -> str:
    lines = [f"{_reader_label(c)}: %{{customdata[{offset + i}]}}" for i, c in enumerate(hover)]
    lines += [f"{x_label}: %{{x:.3g}}", f"{y_label}: %{{y:.3g}}"]
    return "<br>".join(lines) + "<extra></extra>"


def _layout(
    fig: go.Figure,
    *,
    title: str | None,
    x_title: str | None,
    y_title: str | None,
    log_x: bool,
    log_y: bool,
    legend_on_top: bool,
    legend_title: str,
) -> None:
    """The book's layout. Growing parts (a legend that wraps on a phone) sit at an outer edge, where
    Plotly's automatic margins give them room, so that they never cover the plot or a control."""
    legend = (
        dict(orientation="h", x=0.0, xanchor="left", y=1.02, yanchor="bottom")
        if legend_on_top
        else dict(orientation="h", x=0.0, xanchor="left", y=-0.22, yanchor="top")
    )
    # the swept parameter's name once, as the legend's title; the entries are its values
    legend["title"] = dict(text=f"{legend_title}:", side="top left")
    fig.update_layout(
        title=dict(text=title, x=0.0, xanchor="left", yref="container", y=1.0, yanchor="top", automargin=True)
        if title
        else None,
        template="simple_white",
        font=_FONT,
        autosize=True,
        height=480,
        margin=dict(l=60, r=20, t=40, b=60),
        hovermode="closest",
        legend=legend,
    )
    # On a log axis plotly labels the 2s and 5s of each decade with their leading digit only ("2", "5"
    # in every decade); "~g" writes every tick as its number (0.02, 0.05, 0.1, 200).
    fig.update_xaxes(title_text=x_title, showgrid=True, gridcolor="#e5e5e5", **_axis_type(log_x))
    fig.update_yaxes(title_text=y_title, showgrid=True, gridcolor="#e5e5e5", **_axis_type(log_y))


def _axis_type(log: bool) -> dict:
    return dict(type="log", tickformat="~g") if log else dict(type="linear")


def _dropdown(buttons: list[dict], *, where: str) -> dict:
    """A drop-down that stands in for an axis title: under the x axis (``where="x"``) or above the plot.

    Plotly draws the open menu inside the figure's SVG, so a menu that opened away from the plot
    would be cut at the figure's edge (only its first options reachable by mouse or finger): the
    one under the x axis opens upwards and the one above the plot downwards, both over the plot
    area, which is taller than a menu of up to ~12 options (about 24 px each).
    """
    position = (
        dict(x=0.5, xanchor="center", y=-0.09, yanchor="top", direction="up")
        if where == "x"
        else dict(x=0.0, xanchor="left", y=1.02, yanchor="bottom", direction="down")
    )
    return dict(
        type="dropdown",
        buttons=buttons,
        showactive=True,
        active=0,
        pad=dict(r=2, t=2, b=2, l=2),
        bgcolor="#f5f5f5",
        **position,
    )


# --------------------------------------------------------------------------------------------------
# explorer: each point a run


def explorer(
    df: pd.DataFrame,
    *,
    x: Mapping[str, str],
    y: str,
    color: str,
    hover: Sequence[str],
    slider: str | None = None,
    log_x: bool = True,
    title: str | None = None,
) -> go.Figure:
    """Scatter of runs: ``y`` against one of several ``x`` statistics, chosen with a drop-down.

    Each row of ``df`` is a run (one point). Points are coloured by the swept column ``color``
    (:func:`sharpjac.plotting.sweep_colors`; one legend entry per value, a click toggles it). The
    drop-down switches the x statistic among ``x`` (``{reader label: column}``, the first is
    shown first; the drop-down sits under the x axis as its title) and updates the hover text.
    With ``slider`` (a column) a slider under it shows only the runs with one value of that
    column, or "all"; the legend sits above the plot. Hovering a point shows the
    ``hover`` columns (reader labels from :data:`sharpjac.tables.LABELS`), the colour value and
    both coordinates.

    Traces: one per colour value (in sorted order), so the legend has one entry per colour value
    whatever the slider shows, and a reader's legend toggles survive the slider (which only
    blanks the y of the runs outside its value). Numeric colour values get an ordered ramp,
    categories a colour-blind-safe qualitative palette (:func:`sharpjac.plotting.sweep_colors`).
    Hover boxes list each value once (a plotted column is not repeated) under reader labels.

    Returns:
        the ``plotly.graph_objects.Figure`` (wrap it with :func:`figure` to show it in the book).
    """
    if not isinstance(df, pd.DataFrame) or df.empty:
        raise ValueError("df is not accepted; expected a non-empty pandas DataFrame (one row per run)")
    if not isinstance(x, Mapping) or not x:
        raise ValueError(f"x={x!r} is not accepted; expected a non-empty dict {{reader label: column}}")
    _require_columns(df, "x", list(x.values()))
    _require_columns(df, "y", [y])
    _require_columns(df, "color", [color])
    _require_columns(df, "hover", list(hover))
    if slider is not None:
        _require_columns(df, "slider", [slider])

    x_items = [(tables.html_label(lab), col) for lab, col in x.items()]
    y_label = _reader_label(y)
    color_values = _ordered_values(df[color])
    colors = plotting.sweep_colors(color_values)
    symbols = _symbols(color_values)
    slider_values = _ordered_values(df[slider]) if slider is not None else [None]
    hover_cols = _hover_columns(color, hover, [y, *x.values()])

    # One trace per colour value (its legend entry) holding every run of that value. The slider
    # never touches `visible` (a reader's legend toggles stay) nor the legend: it blanks the y of
    # the runs outside the chosen slider value (a missing y draws no point and no hover box).
    fig = go.Figure()
    parts: list[pd.DataFrame] = []
    for cv in color_values:
        part = df[df[color] == cv]
        if slider is not None:
            order = {v: i for i, v in enumerate(slider_values)}
            part = part.iloc[np.argsort([order[v] for v in part[slider]], kind="stable")]
        parts.append(part)
        customdata = np.array([[_value_text(v) for v in part[c]] for c in hover_cols], dtype=object).T
        fig.add_trace(
            go.Scatter(
                x=_plain(part[x_items[0][1]]),
                y=_plain(part[y]),
                mode="markers",
                marker=dict(color=colors[cv], symbol=symbols[cv], size=9, line=dict(width=0.5, color="white")),
                name=_value_text(cv),
                legendgroup=str(cv),
                customdata=customdata,
                hovertemplate=_hover_template(hover_cols, x_items[0][0], y_label),
                meta=dict(
                    color_value=_value_text(cv),
                    slider_values=None if slider is None else [_value_text(v) for v in part[slider]],
                ),
            )
        )

    buttons = [
        dict(
            label=lab,
            method="restyle",
            args=[
                {
                    "x": [_plain(part[col]) for part in parts],
                    "hovertemplate": [_hover_template(hover_cols, lab, y_label) for _ in parts],
                }
            ],
        )
        for lab, col in x_items
    ]
    several = len(x_items) > 1
    # with several statistics the drop-down under the x axis is the axis title
    _layout(
        fig,
        title=title,
        x_title=None if several else x_items[0][0],
        y_title=y_label,
        log_x=log_x,
        log_y=False,
        legend_on_top=True,
        legend_title=_reader_label(color),
    )
    fig.update_layout(updatemenus=[_dropdown(buttons, where="x")] if several else [])

    if slider is not None:
        steps = [dict(label="all", method="restyle", args=[{"y": [_plain(part[y]) for part in parts]}])]
        for sv in slider_values:
            ys = [[v if s == sv else None for v, s in zip(_plain(part[y]), part[slider])] for part in parts]
            steps.append(dict(label=_value_text(sv), method="restyle", args=[{"y": ys}]))
        fig.update_layout(
            sliders=[
                dict(
                    active=0,
                    steps=steps,
                    x=0.0,
                    len=1.0,
                    y=-0.22,
                    yanchor="top",
                    pad=dict(t=10, b=0),
                    currentvalue=dict(prefix=f"{_reader_label(slider)}: ", visible=True),
                )
            ],
            height=560,
            margin=dict(b=150),
        )
    return fig


def _symbols(values: Sequence) -> dict:
    """Marker symbols: circles, then (past the qualitative palette's length) other shapes, so that
    categories whose colour repeats stay distinguishable."""
    if plotting.numeric_values(list(values)) is not None:
        return {v: "circle" for v in values}
    shapes = ("circle", "square", "diamond", "triangle-up", "x")
    n = len(plotting.QUALITATIVE)
    return {v: shapes[(i // n) % len(shapes)] for i, v in enumerate(values)}


# --------------------------------------------------------------------------------------------------
# curves: quantities over training


def curves(
    df: pd.DataFrame,
    *,
    x: str,
    y: Mapping[str, str],
    group: str,
    hover: Sequence[str],
    log_y: bool = True,
    color: str | None = None,
) -> go.Figure:
    """Curves over training, one per value of ``group`` (a run or a swept value), y chosen by a drop-down.

    ``df`` is long format (one row per (group, x) point, e.g. a run's records with ``step``).
    ``y`` is ``{reader label: column}``; the drop-down, above the plot where it names the y axis,
    switches the plotted column. Curves are coloured by :func:`sharpjac.plotting.sweep_colors` of
    the group values, one legend entry each, below the plot (a click toggles it); hovering shows
    the ``hover`` columns and the values.

    With ``color`` (a column constant within each group, e.g. the setting of a run), curves are
    grouped: each group (a run, a seed) is a thin line coloured by its ``color`` value, and the
    legend has one entry per ``color`` value (a click toggles all its runs), so many seeds never
    crowd the legend.

    Returns:
        the ``plotly.graph_objects.Figure`` (wrap it with :func:`figure` to show it in the book).
    """
    if not isinstance(df, pd.DataFrame) or df.empty:
        raise ValueError("df is not accepted; expected a non-empty pandas DataFrame (long format)")
    if not isinstance(y, Mapping) or not y:
        raise ValueError(f"y={y!r} is not accepted; expected a non-empty dict {{reader label: column}}")
    _require_columns(df, "x", [x])
    _require_columns(df, "y", list(y.values()))
    _require_columns(df, "group", [group])
    _require_columns(df, "hover", list(hover))

    if color is not None:
        _require_columns(df, "color", [color])
        if (df.groupby(group, sort=False)[color].nunique() > 1).any():
            raise ValueError(f"color={color!r} is not accepted; expected a column constant within each {group!r}")

    y_items = [(tables.html_label(lab), col) for lab, col in y.items()]
    x_label = _reader_label(x)
    values = _ordered_values(df[group])
    key = color if color is not None else group
    key_values = _ordered_values(df[key])
    colors = plotting.sweep_colors(key_values)
    hover_cols = _hover_columns(group, [*([color] if color is not None else []), *hover], [x, *y.values()])

    fig = go.Figure()
    parts = []
    seen: set = set()
    # grouped curves: in the order of the colour values, so legend entries follow that order
    if color is not None:
        first = {gv: df.loc[df[group] == gv, color].iloc[0] for gv in values}
        rank = {v: i for i, v in enumerate(key_values)}
        values = sorted(values, key=lambda gv: rank[first[gv]])
    for gv in values:
        part = df[df[group] == gv].sort_values(x)
        parts.append(part)
        kv = part[key].iloc[0]
        customdata = np.array([[_value_text(v) for v in part[c]] for c in hover_cols], dtype=object).T
        fig.add_trace(
            go.Scatter(
                x=_plain(part[x]),
                y=_plain(part[y_items[0][1]]),
                mode="lines",
                line=dict(color=colors[kv], width=2 if color is None else 1.2),
                opacity=1.0 if color is None else 0.75,
                name=_value_text(kv),
                legendgroup=str(kv),
                showlegend=kv not in seen,
                customdata=customdata,
                hovertemplate=_hover_template(hover_cols, x_label, y_items[0][0]),
            )
        )
        seen.add(kv)
    buttons = [
        dict(
            label=lab,
            method="restyle",
            args=[
                {
                    "y": [_plain(part[col]) for part in parts],
                    "hovertemplate": [_hover_template(hover_cols, x_label, lab) for _ in parts],
                }
            ],
        )
        for lab, col in y_items
    ]
    several = len(y_items) > 1
    # with several statistics the drop-down above the plot names the y axis
    _layout(
        fig,
        title=None,
        x_title=x_label,
        y_title=None if several else y_items[0][0],
        log_x=False,
        log_y=log_y,
        legend_on_top=False,
        legend_title=_reader_label(key),
    )
    fig.update_layout(updatemenus=[_dropdown(buttons, where="top")] if several else [])
    return fig
