"""Static figure labels: TeX-style subscripts become readable (Unicode or mathtext), never a raw ``_``."""

from __future__ import annotations

import importlib
import pkgutil
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from IPython.core.formatters import PNGFormatter  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from sharpjac import experiments, plotting, tables  # noqa: E402


def _raw_underscores(text: str) -> str:
    """The parts of ``text`` outside ``$...$`` that still hold an underscore ('' when none)."""
    return "".join(p for i, p in enumerate(text.split("$")) if i % 2 == 0 and "_" in p)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("λ_max(H)", "λₘₐₓ(H)"),  # every letter has a Unicode subscript
        ("max ‖Jf(xᵢ)‖_F", "max ‖Jf(xᵢ)‖$_{\\mathrm{F}}$"),  # no capital subscripts in Unicode: mathtext
        ("W_{12} and a_1", "W₁₂ and a₁"),  # braced and bare subscripts
        ("τ_b", "τ$_{\\mathrm{b}}$"),  # "b" has no Unicode subscript
        ("sharpness $\\lambda_{\\max}(H)$", "sharpness $\\lambda_{\\max}(H)$"),  # mathtext left alone
        ("label_smoothing", "label smoothing"),  # an internal column name
        ("cost $5 and x_i", "cost $5 and x_i"),  # an odd number of $ is not mathtext: unchanged
        ("training loss", "training loss"),
    ],
)
def test_figure_label_writes_subscripts(text, expected):
    assert plotting.figure_label(text) == expected


def _label_dicts() -> dict[str, dict]:
    """tables.LABELS and every ``*LABELS`` dict of the experiment modules (reader labels of figures)."""
    found = {"tables.LABELS": tables.LABELS}
    for info in pkgutil.iter_modules(experiments.__path__):
        module = importlib.import_module(f"{experiments.__name__}.{info.name}")
        for name, value in vars(module).items():
            if name.endswith("LABELS") and isinstance(value, dict):
                found[f"{info.name}.{name}"] = value
    return found


def test_no_reader_label_keeps_a_raw_underscore_in_a_figure():
    dicts = _label_dicts()
    assert len(dicts) > 3  # the experiment modules' dicts were found, not just tables.LABELS
    raw = {
        f"{where}[{key!r}] = {text!r}": plotting.figure_label(text)
        for where, labels in dicts.items()
        for key, text in labels.items()
        if isinstance(text, str) and _raw_underscores(plotting.figure_label(text))
    }
    assert not raw, raw


def test_readable_figure_rewrites_every_text_and_draws():
    fig, ax = plt.subplots()
    ax.plot([1, 2], [1, 2], label="‖Jf‖_F")
    ax.set_xlabel("λ_max(G)")
    ax.set_ylabel("$\\lambda_{\\max}(H)$")
    ax.set_title("label_smoothing")
    ax.legend()
    plotting.readable_figure(fig)
    texts = [ax.get_xlabel(), ax.get_ylabel(), ax.get_title(), ax.get_legend().get_texts()[0].get_text()]
    assert texts == ["λₘₐₓ(G)", "$\\lambda_{\\max}(H)$", "label smoothing", "‖Jf‖$_{\\mathrm{F}}$"]
    fig.canvas.draw()  # the mathtext parses
    plt.close(fig)


def test_inline_formatters_pass_figures_through_readable_figure_once():
    # a stand-in for IPython's shell: its PNG formatter returns the figure's x label
    png = PNGFormatter()
    png.for_type(Figure, lambda fig: fig.axes[0].get_xlabel())
    ip = SimpleNamespace(display_formatter=SimpleNamespace(formatters={"image/png": png}))
    plotting._readable_inline_figures(ip)
    once = png.lookup_by_type(Figure)
    plotting._readable_inline_figures(ip)  # idempotent: not wrapped twice
    assert png.lookup_by_type(Figure) is once
    fig, ax = plt.subplots()
    ax.set_xlabel("λ_max(H)")
    assert png.lookup_by_type(Figure)(fig) == "λₘₐₓ(H)"
    plt.close(fig)
