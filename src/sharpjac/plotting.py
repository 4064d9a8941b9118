"""One figure style for the whole book.

Every chapter calls :func:`use_book_style` once; figures then share fonts, sizes, the palette and
the grid. Helpers here only style and annotate axes; computations live elsewhere.

Example:
    >>> from sharpjac import plotting
    >>> plotting.use_book_style()
    >>> fig, ax = plotting.subplots()
    >>> plotting.edge_of_stability(ax, lr=0.1)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

#: The book's palette (colour-blind safe), used in this order for categories.
PALETTE = sns.color_palette("colorblind")

#: One colour per concept, the same on every page and in every figure (static or interactive).
#: Mostly the colour-blind-safe palette above; the guide page ("Colours and figures") lists them.
#: A swept hyper-parameter (step size, weight decay, ...) never uses these: see :func:`sweep_colors`.
COLORS: dict[str, str] = {
    "sharpness": "#0173b2",  # blue: lambda_max of the loss Hessian
    "gn": "#56b4e9",  # sky blue: the Gauss-Newton part of the sharpness (a lighter sharpness)
    "jacobian": "#de8f05",  # orange: the input-output Jacobian statistics
    "first_layer": "#ca9161",  # tan: the first-layer weight norm (a factor of the Jacobian bound)
    "curvature": "#cc78bc",  # pink: the output-curvature term
    "gap": "#029e73",  # green: the generalisation gap
    "train_loss": "#d55e00",  # vermillion
    "test_loss": "#882255",  # wine
    "bound": "#949494",  # grey: theoretical bounds
    "edge": "#222222",  # near black: the stability threshold 2/eta
    "baseline": "#999933",  # olive: baseline predictors (train loss, norms, margin)
}

#: Fixed colours for the two quantities the book is about, on every page (aliases of :data:`COLORS`).
SHARPNESS_COLOR = COLORS["sharpness"]
JACOBIAN_COLOR = COLORS["jacobian"]
BOUND_COLOR = COLORS["bound"]

#: The qualitative palette of categories (regulariser names, runs, losses): Paul Tol's "bright"
#: scheme, designed to stay distinct for colour-blind readers (deuteranopia, protanopia,
#: tritanopia) and on grey print; none of its colours is a concept colour of :data:`COLORS`.
#: Categories beyond seven cycle through it again (interactive figures then change the marker).
QUALITATIVE: tuple[str, ...] = ("#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb")

#: The sequential colour map of swept hyper-parameters; a purple ramp, a hue no concept uses.
SWEEP_CMAP = "Purples"
_SWEEP_RANGE = (0.4, 1.0)  # the light end of "Purples" is too pale to read on white


def use_book_style() -> None:
    """Apply the book's seaborn theme and matplotlib settings (idempotent).

    In a notebook it also switches the inline backend to "retina" PNGs: each figure is rendered
    at twice ``figure.dpi`` and shown at its normal size (the output carries its display width
    and height), so text and lines stay sharp on high-density screens and phones. Retina PNG was
    chosen over SVG after measuring: for a figure of 3 panels x 6 runs x 2000 steps the 2x PNG is
    about 290 KiB against 400 KiB for SVG (which also makes the browser draw every point), and
    for a scatter of 600 points 130 KiB against 80 KiB. Every figure the notebook shows or glues
    then passes through :func:`readable_figure` (TeX-style subscripts of its texts made readable).
    """
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE, font_scale=0.95)
    matplotlib.rcParams.update(
        {
            "figure.figsize": (7.0, 4.0),
            "figure.dpi": 110,
            "savefig.dpi": 110,
            "savefig.bbox": "tight",
            "axes.titlesize": "medium",
            "axes.titleweight": "bold",
            "legend.frameon": False,
            "legend.fontsize": "small",
            "figure.constrained_layout.use": True,
        }
    )
    _retina_inline_figures()


def _retina_inline_figures() -> None:
    """Ask IPython's inline backend for 2x PNGs (no-op outside IPython)."""
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:  # plain Python: nothing is displayed inline
        return
    ip = get_ipython()
    if ip is not None:
        set_matplotlib_formats("retina")
        _readable_inline_figures(ip)


_READABLE_PRINTERS: set = set()  # the formatters' printers that are already ours


def _readable_inline_figures(ip) -> None:
    """Make IPython's figure formatters pass every figure through :func:`readable_figure` first, so
    that no static figure of the book shows a raw ``λ_max`` or ``‖Jf‖_F`` (idempotent)."""
    from matplotlib.figure import Figure

    for mime in ("image/png", "image/svg+xml", "application/pdf", "image/jpeg"):
        formatter = ip.display_formatter.formatters.get(mime)
        if formatter is None:
            continue
        try:
            printer = formatter.lookup_by_type(Figure)
        except KeyError:
            continue
        if printer in _READABLE_PRINTERS:
            continue

        def readable_printer(fig, _printer=printer):
            return _printer(readable_figure(fig))

        _READABLE_PRINTERS.add(readable_printer)
        formatter.for_type(Figure, readable_printer)


# Unicode subscript forms (there are none for most capitals: those subscripts use mathtext)
_UNICODE_SUB = dict(zip("0123456789aehijklmnoprstuvx+-=()", "₀₁₂₃₄₅₆₇₈₉ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓ₊₋₌₍₎"))
_SUBSCRIPT = re.compile(r"(?<=[^\s_$])_(?:\{([^{}$]+)\}|([A-Za-z0-9]+))")
_IDENTIFIER = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")


def figure_label(text: str) -> str:
    r"""A label for a matplotlib figure without raw underscores.

    Outside ``$...$`` (mathtext, left alone) a TeX-style subscript is written with Unicode
    subscript characters when each of its characters has one (``λ_max(H)`` -> ``λₘₐₓ(H)``,
    ``W_{12}`` -> ``W₁₂``), else as a mathtext subscript (``‖Jf‖_F`` -> ``‖Jf‖$_{\mathrm{F}}$``;
    Unicode has no capital subscripts). An internal column name (``label_smoothing``) has its
    underscores written as spaces. Text with an odd number of ``$`` is returned unchanged.

    Example:
        >>> figure_label("λ_max(G)"), figure_label("max ‖Jf‖_F"), figure_label("label_smoothing")
        ('λₘₐₓ(G)', 'max ‖Jf‖$_{\\mathrm{F}}$', 'label smoothing')
    """
    text = str(text)
    if "_" not in text or text.count("$") % 2:
        return text
    if _IDENTIFIER.fullmatch(text):
        return text.replace("_", " ")

    def sub(m: re.Match) -> str:
        body = m.group(1) or m.group(2)
        if all(c in _UNICODE_SUB for c in body):
            return "".join(_UNICODE_SUB[c] for c in body)
        return "$_{\\mathrm{" + body + "}}$"

    parts = text.split("$")
    for i in range(0, len(parts), 2):  # outside $...$
        parts[i] = _SUBSCRIPT.sub(sub, parts[i])
    return "$".join(parts)


def readable_figure(fig):
    """Rewrite every text of ``fig`` (titles, axis labels, legends, ticks) with :func:`figure_label`; returns ``fig``.

    Called by the book's inline figure formatters (see :func:`use_book_style`), so chapters pass
    raw reader labels such as :data:`sharpjac.tables.LABELS` entries and still show subscripts.
    """
    from matplotlib.text import Text

    for artist in fig.findobj(Text):
        old = artist.get_text()
        new = figure_label(old)
        if new != old:
            artist.set_text(new)
    return fig


def subplots(nrows: int = 1, ncols: int = 1, *, width: float | None = None, height: float | None = None, **kwargs):
    """``plt.subplots`` with the book's default panel size (3.4 x 3.0 inches per panel)."""
    w = width if width is not None else min(3.6 * ncols, 11.0)
    h = height if height is not None else 3.0 * nrows
    return plt.subplots(nrows, ncols, figsize=(w, h), **kwargs)


def edge_of_stability(ax, lr: float, *, color=None, label: bool = True) -> None:
    """Draw the stability threshold $2/\\eta$ of full-batch gradient descent as a dashed line."""
    ax.axhline(
        2.0 / lr, ls="--", lw=1.0, color=color or COLORS["edge"], label=f"$2/\\eta$ = {2.0 / lr:.3g}" if label else None
    )


def label_axes(ax, x: str, y: str, *, title: str | None = None) -> None:
    """Label both axes (with units) and optionally set a title."""
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if title:
        ax.set_title(title)


def legend_outside(ax, *, title: str | None = None) -> None:
    """Put the legend to the right of the axes so that it never hides data."""
    ax.legend(title=title, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def category_colors(labels: Sequence) -> dict:
    """Map each distinct label, in first-seen order, to a colour of :data:`QUALITATIVE` (``"#rrggbb"``).

    For categories without an order (regularisers, losses, named runs): neighbouring labels get
    unrelated hues, so no order is suggested; the 8th label reuses the 1st colour.
    """
    distinct = list(dict.fromkeys(labels))
    return {label: QUALITATIVE[i % len(QUALITATIVE)] for i, label in enumerate(distinct)}


def numeric_values(values: Sequence) -> list[float] | None:
    """``values`` as floats when every one is a number (an ordered sweep), else None (categories)."""
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        return None


def sweep_colors(values) -> dict:
    """Colours for the values of a setting: an ordered ramp for numbers, a qualitative palette otherwise.

    Numeric ``values`` (step sizes, weight decays, dimensions) are sorted and mapped to evenly
    spaced points of :data:`SWEEP_CMAP`, light for the smallest and dark for the largest, so that
    the order of the colours is the order of the values. Values that are not all numbers are
    categories (regulariser names, losses, runs): an ordered ramp would suggest an order they do
    not have and makes neighbours look alike, so they get :func:`category_colors` (first-seen order).
    None of the colours is a concept colour of :data:`COLORS`. Returns ``{value: "#rrggbb"}``.

    Example:
        >>> sweep_colors([0.2, 0.05, 0.1, 0.05])  # doctest: +ELLIPSIS
        {0.05: '#...', 0.1: '#...', 0.2: '#...'}
    """
    distinct = list(dict.fromkeys(values))
    numeric = numeric_values(distinct)
    if numeric is None:
        return category_colors(distinct)
    distinct = [v for _, v in sorted(zip(numeric, distinct), key=lambda t: t[0])]
    cmap = matplotlib.colormaps[SWEEP_CMAP]
    lo, hi = _SWEEP_RANGE
    n = len(distinct)
    return {
        v: matplotlib.colors.to_hex(cmap(lo + (hi - lo) * (i / (n - 1) if n > 1 else 1.0)))
        for i, v in enumerate(distinct)
    }


def log_ticks(axis) -> None:
    """Plain-number ticks at $\\{1, 2, 5\\} \\times 10^k$ on a logarithmic axis, no minor labels.

    Matplotlib labels a log axis with powers of ten ($10^{-1}$, $10^0$, ...) and, when the axis
    spans less than a decade, with crowded minor labels. The book's experiment chapters plot step
    sizes, batch sizes and losses on log axes that span one or two decades, where the values
    $0.05, 0.1, 0.2, 0.5, 1, 2, 5$ read better. ``axis`` is a matplotlib ``Axis`` (``ax.xaxis`` or
    ``ax.yaxis``) whose scale is already ``"log"``; major ticks are placed at $m \\cdot 10^k$ for
    $m \\in \\{1, 2, 5\\}$ and labelled with ``format(v, "g")``; minor tick labels are removed.

    Example:
        >>> import matplotlib.pyplot as plt
        >>> fig, ax = plt.subplots()
        >>> ax.set_yscale("log")
        >>> _ = ax.set_ylim(0.1, 10.0)
        >>> log_ticks(ax.yaxis)
        >>> # the locator also returns ticks just outside the view; 1% slack absorbs the rounding of m * 10**k
        >>> ticks = [v for v in ax.yaxis.get_majorticklocs() if 0.099 <= v <= 10.1]
        >>> [ax.yaxis.get_major_formatter()(v, i) for i, v in enumerate(ticks)]
        ['0.1', '0.2', '0.5', '1', '2', '5', '10']
        >>> plt.close(fig)
    """
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


# ------------------------------------------------------------------------------------------------
# one line, marker series or interval series per group of a long table: chapters need no loop over runs
# ------------------------------------------------------------------------------------------------


def _groups(frame, by) -> list:
    """``[(key tuple, rows)]`` per group of ``frame`` by the column(s) ``by``, in first-appearance order."""
    cols = [by] if isinstance(by, str) else list(by)
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"by={by!r} is not accepted; expected columns of the frame: {list(frame.columns)!r}")
    return [(k if isinstance(k, tuple) else (k,), g) for k, g in frame.groupby(cols, sort=False)]


def _style(key: tuple, rows, colors, label) -> dict:
    """The colour (``colors[key[0]]``, or one colour for all) and the legend label (``label``
    formatted with the group's first row) of one group."""
    out = {}
    if isinstance(colors, Mapping):
        out["color"] = colors[key[0]]
    elif colors is not None:
        out["color"] = colors
    if label is not None:
        out["label"] = label.format(**rows.iloc[0].to_dict())
    return out


def lines_by(ax, frame, x: str, y: str, by, *, colors=None, label: str | None = None, **style) -> None:
    """One line per group of ``frame`` (rows with equal ``by`` values), its points in ``x`` order.

    Args:
        ax: the axes.
        frame: a long table, one row per point (e.g. a run's measurements).
        x, y: its columns to plot.
        by: a column or a list of columns; each distinct value (tuple) is one line, drawn in the
            order the groups first appear in ``frame``.
        colors: one colour for every line, or ``{value of the first by column: colour}``.
        label: None (no legend entry) or a format string filled with the group's first row
            (``"$\\eta$ = {lr:g}"``).
        style: passed to ``ax.plot`` (``lw``, ``alpha``; ``ls=""`` with ``marker="o"`` for points).

    Example:
        >>> import matplotlib.pyplot as plt, pandas as pd
        >>> fig, ax = plt.subplots()
        >>> runs = pd.DataFrame({"lr": [0.1, 0.1, 0.2, 0.2], "t": [1, 0, 0, 1], "s": [3, 2, 1, 0]})
        >>> lines_by(ax, runs, "t", "s", "lr", colors={0.1: "red", 0.2: "blue"}, label="{lr:g}")
        >>> [(l.get_label(), l.get_ydata().tolist()) for l in ax.get_lines()]
        [('0.1', [2, 3]), ('0.2', [1, 0])]
        >>> plt.close(fig)
    """
    for key, rows in _groups(frame, by):
        rows = rows.sort_values(x, kind="stable")
        ax.plot(rows[x].to_numpy(), rows[y].to_numpy(), **_style(key, rows, colors, label), **style)


def hlines_by(ax, frame, y: str, by, *, colors=None, label: str | None = None, **style) -> None:
    """One horizontal line per group of ``frame`` at the group's first value of ``y`` (e.g. the
    stability limit ``two_over_lr`` per step size); ``by``, ``colors``, ``label`` as in
    :func:`lines_by`, ``style`` passed to ``ax.axhline``."""
    for key, rows in _groups(frame, by):
        ax.axhline(float(rows[y].iloc[0]), **_style(key, rows, colors, label), **style)


def interval_dots(
    ax,
    table,
    *,
    rows: str,
    order: Sequence,
    by,
    colors: Mapping,
    markers: Mapping | None = None,
    hollow: Sequence = (),
    step: float = 0.12,
    label: str | None = None,
    points=None,
    value: str = "rho",
) -> None:
    """A dot plot of intervals: one row of the y axis per value of ``rows`` (listed in ``order``,
    the first at y = 0), one marked series per group of ``by`` (groups in first-appearance order,
    offset by ``step`` and centred on the row), error bars from ``low`` to ``high`` around ``mean``.

    Args:
        table: columns ``rows``, the ``by`` columns, ``mean``, ``low``, ``high``.
        colors: ``{value of the first by column: colour}``.
        markers: ``{value of the last by column: marker}`` (default ``"o"``); groups whose last by
            value is in ``hollow`` get a white face.
        label: legend text, a format string filled with the group's first row.
        points: optional long table with the ``rows`` and ``by`` columns and a column ``value``
            (e.g. one row per run), drawn as ticks ``|`` on its group's row.
    """
    groups = _groups(table, by)
    points_of = dict(_groups(points, by)) if points is not None else {}
    base = {r: i for i, r in enumerate(order)}
    for k, (key, g) in enumerate(groups):
        offset = (k - (len(groups) - 1) / 2) * step
        g = g.set_index(rows).loc[list(order)].reset_index()
        ax.errorbar(
            g["mean"],
            [base[r] + offset for r in g[rows]],
            xerr=[g["mean"] - g["low"], g["high"] - g["mean"]],
            fmt=(markers or {}).get(key[-1], "o"),
            color=colors[key[0]],
            mfc="white" if key[-1] in hollow else None,
            capsize=3,
            label=None if label is None else label.format(**g.iloc[0].to_dict()),
        )
        p = points_of.get(key)
        if p is not None:
            p = p[p[rows].isin(list(base))]
            ax.scatter(p[value], [base[r] + offset for r in p[rows]], s=9, color=colors[key[0]], alpha=0.4, marker="|")


def plot_series(ax, series) -> None:
    """Draw a list of ready-made line specifications on ``ax``, one ``ax.plot`` call each.

    A chapter gets the list from its experiment's summary (the module builds the series, the
    chapter only draws them), so that no chapter cell loops over runs. Each entry is a mapping with
    ``x`` and ``y`` (array-likes of the same length), optional ``fmt`` (a matplotlib format string,
    default ``"-"``), optional ``concept`` (a key of :data:`COLORS`, giving the colour), and any
    other :meth:`matplotlib.axes.Axes.plot` keyword (``label``, ``marker``, ``ms``, ...).

    Example:
        >>> import matplotlib.pyplot as plt
        >>> fig, ax = plt.subplots()
        >>> plot_series(ax, [{"x": [1, 2], "y": [3, 4], "fmt": "--", "concept": "jacobian", "label": "J"}])
        >>> line = ax.get_lines()[0]
        >>> line.get_linestyle(), line.get_color() == COLORS["jacobian"], line.get_label()
        ('--', True, 'J')
        >>> plt.close(fig)
    """
    for spec in series:
        kwargs = dict(spec)
        x, y, fmt = kwargs.pop("x"), kwargs.pop("y"), kwargs.pop("fmt", "-")
        concept = kwargs.pop("concept", None)
        if concept is not None:
            if concept not in COLORS:
                raise ValueError(f"concept={concept!r} is invalid; accepted: one of {sorted(COLORS)}")
            kwargs["color"] = COLORS[concept]
        ax.plot(x, y, fmt, **kwargs)


# -- drawing a long frame by group (no loop over runs in a chapter) -----------------------------------


def _group_rows(frame, by: str | None) -> list:
    """``[(value, rows)]`` of ``frame`` grouped by column ``by`` in first-seen order (``[(None, frame)]`` if None)."""
    if by is None:
        return [(None, frame)]
    if by not in frame.columns:
        raise ValueError(f"by={by!r} is not a column; accepted: one of {list(frame.columns)}")
    return [(value, frame[frame[by] == value]) for value in dict.fromkeys(frame[by])]


def _axes_for(ax, value):
    """The Axes of group ``value``: ``ax`` itself, or ``ax[value]`` for a mapping (None: not drawn)."""
    return ax.get(value) if isinstance(ax, dict) else ax


def _colour(colors, value, default):
    if colors is None:
        return default
    if isinstance(colors, dict):
        return colors[value]
    return COLORS.get(colors, colors) if isinstance(colors, str) else colors


def _label(label: str | None, value) -> str | None:
    """``label`` with ``{}`` replaced by the group ``value`` (kept as it is without a group)."""
    if label is None or value is None:
        return label
    return label.format(value)


def plot_by(
    ax,
    frame,
    x: str,
    y: str,
    *,
    by: str | None = None,
    colors=None,
    fmt: str = "-",
    label="{}",
    end_marker: str | None = None,
    **kwargs,
) -> None:
    """Draw column ``y`` against column ``x`` of a long ``frame``, one line per value of column ``by``.

    Args:
        ax: one Axes for every group, or ``{group value: Axes}`` to draw each group on its own
            Axes (a group without an entry is not drawn).
        frame: the rows to draw; within a group, rows are drawn in frame order.
        by: the grouping column; None draws one line of the whole frame.
        colors: ``{group value: colour}``, one colour (a key of :data:`COLORS` or any matplotlib
            colour) for every line, or None (:func:`category_colors` of the groups).
        fmt: matplotlib format string (``"o-"``, ``"s--"``).
        label: legend label, a format string where ``{}`` is the group value, or None.
        end_marker: a marker drawn at each line's last point in the line's colour (e.g. ``"*"``).
        kwargs: passed to ``Axes.plot`` (``ms``, ``lw``, ``mfc``...).
    """
    groups = _group_rows(frame, by)
    default = category_colors([v for v, _ in groups])
    for value, rows in groups:
        target = _axes_for(ax, value)
        if target is None:
            continue
        col = _colour(colors, value, default.get(value))
        target.plot(rows[x], rows[y], fmt, color=col, label=_label(label, value), **kwargs)
        if end_marker is not None and len(rows):
            target.plot(rows[x].iloc[-1:], rows[y].iloc[-1:], end_marker, ms=12, color=col)


def plot_columns(ax, frame, x: str, specs, **kwargs) -> None:
    """Draw several columns of ``frame`` against column ``x`` on one Axes.

    ``specs`` is a sequence of ``(column, fmt, colour, label)``: the colour is a key of
    :data:`COLORS` or any matplotlib colour. ``kwargs`` go to every ``Axes.plot`` call.
    """
    for column, fmt, colour, label in specs:
        ax.plot(frame[x], frame[column], fmt, color=COLORS.get(colour, colour), label=label, **kwargs)


def vlines_by(ax, positions, *, label: str | None = None, **kwargs) -> None:
    """Vertical lines: ``positions`` a sequence of x (on Axes ``ax``), or ``{key: x or sequence of x}``
    with ``ax`` a mapping ``{key: Axes}`` (a key without an Axes is skipped). ``label`` goes on the
    first line of each Axes only."""
    pairs = positions.items() if isinstance(positions, dict) else [(None, positions)]
    for key, xs in pairs:
        target = _axes_for(ax, key)
        if target is None:  # a key without an Axes is not drawn
            continue
        for i, value in enumerate(np.atleast_1d(xs)):
            target.axvline(float(value), label=label if i == 0 else None, **kwargs)


def bars_by(
    ax, frame, x: str, y: str, *, by: str, colors=None, width: float = 0.8, bottom: str | None = None, label="{}"
) -> None:
    """Bars of column ``y`` at positions ``x`` of a long ``frame``, one set per value of column ``by``.

    Without ``bottom`` the groups stand side by side, ``n`` bars of width ``width / n`` centred on
    each ``x``; with ``bottom`` (a column) each bar starts at that value, for stacked bars.
    ``colors``, ``label``: as in :func:`plot_by`.
    """
    groups = _group_rows(frame, by)
    default = category_colors([v for v, _ in groups])
    n = len(groups)
    w = width if bottom is not None else width / max(n, 1)
    for i, (value, rows) in enumerate(groups):
        pos = rows[x] if bottom is not None else rows[x] + (i - (n - 1) / 2) * w
        base = rows[bottom] if bottom is not None else None
        ax.bar(pos, rows[y], w, bottom=base, label=_label(label, value), color=_colour(colors, value, default[value]))


def scatter_by(ax, frame, columns, *, by: str, label="{}", **kwargs) -> None:
    """Scatter the 2 or 3 ``columns`` of ``frame`` (3 on a 3-D Axes), one set per value of column ``by``."""
    for value, rows in _group_rows(frame, by):
        ax.scatter(*(rows[c] for c in columns), label=_label(label, value), **kwargs)


def image_grid(images, *, titles=None, cmap: str | None = "gray_r", width: float = 9.0, height: float | None = None):
    """A figure of ``images`` ``[rows, cols, H, W]`` (or ``[rows, cols, H, W, 3]``), no ticks.

    ``titles`` (one per column) go over the top row. Returns ``(fig, axes)`` with ``axes`` of shape
    ``[rows, cols]``.
    """
    images = np.asarray(images)
    if images.ndim not in (4, 5):
        raise ValueError(f"images has shape {images.shape}; accepted: [rows, cols, H, W] or [rows, cols, H, W, 3]")
    rows, cols = images.shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(width, height or 1.3 * rows), squeeze=False)
    for ax, image in zip(axes.flat, images.reshape(rows * cols, *images.shape[2:])):
        ax.imshow(image, cmap=cmap if image.ndim == 2 else None)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax, title in zip(axes[0], titles if titles is not None else []):
        ax.set_title(str(title))
    return fig, axes


def label_panels(panels: dict, x: str, y: str, titles: dict) -> None:
    """Label a row of panels ``{key: Axes}``: ``x`` under each, ``y`` on the first only, and the
    title ``titles[key]`` over each."""
    for i, (key, ax) in enumerate(panels.items()):
        label_axes(ax, x, y if i == 0 else "", title=titles[key])
