"""Formatting and glue helpers shared by the chapters (they format; they never compute a claim).

>>> fmt_iv(0.1234, -0.001, 0.5)
'0.12 [0.00, 0.50]'
>>> num_set([0.1, 0.05])
'\\\\{0.1, 0.05\\\\}'
>>> num_list([1, 2, 3])
'1, 2 and 3'
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["fmt_num", "fmt_iv", "num_set", "num_list", "glue_md", "glue_cost_box", "glue_values", "show_verdicts"]


def fmt_num(x: float, digits: int = 2) -> str:
    """``x`` with ``digits`` decimals, without a negative zero (``-0.00`` reads as ``0.00``); a
    NaN or infinity reads ``n/a`` (a reader's text never shows ``nan``)."""
    if not math.isfinite(x):
        return "n/a"
    text = f"{x:.{digits}f}"
    if text.startswith("-") and float(text) == 0.0:
        text = text[1:]
    return text


def fmt_iv(est: float, lo: float, hi: float, digits: int = 2) -> str:
    """``"est [lo, hi]"`` with ``digits`` decimals each (no ``-0.00``)."""
    return f"{fmt_num(est, digits)} [{fmt_num(lo, digits)}, {fmt_num(hi, digits)}]"


def num_set(values: Iterable[float]) -> str:
    r"""A set in TeX, ``\{v_1, v_2\}`` with ``%g`` numbers (for ``$...$`` maths)."""
    return "\\{" + ", ".join(f"{v:g}" for v in values) + "\\}"


def num_list(values: Iterable[float]) -> str:
    """``"a, b and c"`` with ``%g`` numbers."""
    words = [f"{v:g}" for v in values]
    if not words:
        raise ValueError("num_list needs at least one value")
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else words[0]


def glue_md(name: str, text: str) -> None:
    """Glue a computed sentence as Markdown, for ``{glue:md}`name:myst```."""
    from IPython.display import Markdown
    from myst_nb import glue

    glue(name, Markdown(text), display=False)


def glue_cost_box(paper_config) -> dict[str, float]:
    """Glue ``gpu_hours``, ``cpu_hours`` and ``cost_source`` for the "What this page runs" box.

    Args:
        paper_config: the experiment's ``paper`` preset config.

    Returns:
        :func:`sharpjac.costs.experiment_cost` of it.
    """
    from myst_nb import glue

    from . import costs

    cost = costs.experiment_cost(paper_config)
    glue("gpu_hours", cost["gpu_hours"], display=False)
    glue("cpu_hours", cost["cpu_hours"], display=False)
    glue_md("cost_source", costs.cost_source())
    return cost


def glue_values(values: dict) -> None:
    """Glue every ``{name: value}``: a ``str`` as Markdown (:func:`glue_md`), anything else as it is.

    For a chapter summary's ``values`` (computed in the package, glued here without change).
    """
    from myst_nb import glue

    for name, value in values.items():
        if isinstance(value, str):
            glue_md(name, value)
        else:
            glue(name, value, display=False)


def show_verdicts(verdicts: dict, prefix: str) -> None:
    """Show, in order, every verdict of ``{claim id: Verdict}`` whose id starts with ``prefix``
    (for a claim decided once per grid value, e.g. ``t1_covering.rate_d``)."""
    chosen = [v for claim_id, v in verdicts.items() if claim_id.startswith(prefix)]
    if not chosen:
        raise ValueError(f"prefix={prefix!r} matches no claim; accepted: a prefix of one of {sorted(verdicts)}")
    for verdict in chosen:
        verdict.show()


def glue_all(numbers: dict | None = None, markdown: dict | None = None) -> None:
    """Glue every ``name: value`` of ``numbers`` as is (``{glue:text}``) and every ``name: text`` of
    ``markdown`` as Markdown (``{glue:md}``): the values a chapter's ``summarise`` computed."""
    from myst_nb import glue

    for name, value in (numbers or {}).items():
        glue(name, value, display=False)
    for name, text in (markdown or {}).items():
        glue_md(name, text)


def glue_figure(name: str, fig) -> None:
    """Glue a matplotlib figure under ``name`` without displaying it here (for ``{glue:figure}``),
    then close it so that the cell shows nothing else."""
    import matplotlib.pyplot as plt
    from myst_nb import glue

    glue(name, fig, display=False)
    plt.close(fig)
