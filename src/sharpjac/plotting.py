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

from typing import Sequence

import matplotlib
import matplotlib.pyplot as plt
import seaborn as sns

#: The book's palette (colour-blind safe), used in this order for categories.
PALETTE = sns.color_palette("colorblind")

#: Fixed colours for the two quantities the book is about, on every page.
SHARPNESS_COLOR = PALETTE[0]
JACOBIAN_COLOR = PALETTE[1]
BOUND_COLOR = PALETTE[7]


def use_book_style() -> None:
    """Apply the book's seaborn theme and matplotlib settings (idempotent)."""
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


def subplots(nrows: int = 1, ncols: int = 1, *, width: float | None = None,
             height: float | None = None, **kwargs):
    """``plt.subplots`` with the book's default panel size (3.4 x 3.0 inches per panel)."""
    w = width if width is not None else min(3.6 * ncols, 11.0)
    h = height if height is not None else 3.0 * nrows
    return plt.subplots(nrows, ncols, figsize=(w, h), **kwargs)


def edge_of_stability(ax, lr: float, *, color=None, label: bool = True) -> None:
    """Draw the stability threshold $2/\\eta$ of full-batch gradient descent as a dashed line."""
    ax.axhline(2.0 / lr, ls="--", lw=1.0, color=color or BOUND_COLOR,
               label=f"$2/\\eta$ = {2.0 / lr:.3g}" if label else None)


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
    """Map each label to a palette colour, in order, consistently across figures of a page."""
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}
