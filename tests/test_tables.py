"""Reader tables (sharpjac.tables): labels, rounding, no index, validation."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from sharpjac import tables


@pytest.mark.parametrize(
    "value, digits, expected",
    [
        # expected strings written by hand from the rules: values with <= digits significant digits as
        # written; otherwise digits significant digits, fixed point in [1e-3, 1e6), scientific outside
        (0.05, 3, "0.05"),
        (1e-4, 3, "0.0001"),
        (1e-5, 3, "1e-05"),
        (10.0, 3, "10"),
        (0.123456, 3, "0.123"),
        (0.0500001, 3, "0.0500"),
        (3.14159, 3, "3.14"),
        (12.5, 3, "12.5"),
        (1234.6, 3, "1235"),
        (999999.4, 3, "999999"),
        (1.0e6, 3, "1e+06"),
        (1.2345e6, 3, "1.23e+06"),
        (3.2e-7, 3, "3.2e-07"),
        (3.21e-7, 2, "3.2e-07"),
        (-0.002718, 2, "-0.0027"),
        (0.0, 3, "0"),
        (np.float64(0.05), 3, "0.05"),
        (np.int64(7), 3, "7"),
        (42, 3, "42"),
        (True, 3, "yes"),
        (np.False_, 3, "no"),
        (float("nan"), 3, "–"),
        (None, 3, "–"),
        (float("inf"), 3, "∞"),
        ("tanh", 3, "tanh"),
    ],
)
def test_format_value_matches_hand_written_strings(value, digits, expected):
    assert tables.format_value(value, digits) == expected


def test_format_value_never_shows_numpy_reprs():
    for v in (np.float64(0.05), np.float32(1.5), np.int32(3), np.bool_(True)):
        assert "np." not in tables.format_value(v)


@pytest.mark.parametrize("digits", [0, -1, 2.5, True])
def test_format_value_rejects_bad_digits(digits):
    with pytest.raises(ValueError, match="digits="):
        tables.format_value(1.0, digits)


def _frame():
    return pd.DataFrame(
        {
            "lr": [0.05, 0.1],
            "jac_spectral_max": [3.14159, 12.5],
            "gap_loss": [0.0123456, 0.2],
            "seed": [0, 1],
            "diverged": [False, True],
        },
        index=[10, 11],
    )


def _cells(html: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>.*?</td>", html, flags=re.S)]


def test_show_uses_reader_labels_rounds_and_hides_the_index():
    html = tables.show(_frame())._repr_html_()
    assert html.startswith('<div class="sharpjac-table">')
    for internal in ("jac_spectral_max", "gap_loss"):
        assert f">{internal}<" not in html
    for reader in (tables.LABELS["jac_spectral_max"], tables.LABELS["gap_loss"], tables.LABELS["lr"]):
        assert reader in html
    cells = _cells(html)
    # row-major order of the five columns; the index (10, 11) is not a cell
    assert cells == ["0.05", "3.14", "0.0123", "0", "no", "0.1", "12.5", "0.2", "1", "yes"]
    assert "row_heading" not in html or "10" not in [c for c in cells]


def test_show_selects_orders_and_relabels_columns_with_per_column_digits():
    html = tables.show(_frame(), {"seed": "seed", "lr": "η", "gap_loss": None}, digits={"gap_loss": 2})._repr_html_()
    headers = [re.sub(r"<[^>]+>", "", h).strip() for h in re.findall(r"<th[^>]*>.*?</th>", html, flags=re.S)]
    assert headers == ["seed", "η", tables.LABELS["gap_loss"]]
    assert _cells(html) == ["0", "0.05", "0.012", "1", "0.1", "0.2"]


def test_show_caption():
    assert "<caption>Final values.</caption>" in tables.show(_frame(), caption="Final values.")._repr_html_()


def test_show_validation_names_the_parameter():
    with pytest.raises(ValueError, match=r"columns=\['nope'\]"):
        tables.show(_frame(), {"nope": "x"})
    with pytest.raises(ValueError, match="digits="):
        tables.show(_frame(), digits={"nope": 2})
    with pytest.raises(ValueError, match="digits="):
        tables.show(_frame(), digits=0)
    with pytest.raises(ValueError, match="df="):
        tables.show([1, 2])
    with pytest.raises(ValueError, match="distinct reader labels"):
        tables.show(_frame(), {"lr": "a", "seed": "a"})


def test_labels_cover_the_internal_columns_chapters_use():
    for name in (
        "jac_spectral_max",
        "jac_spectral_mean",
        "jac_frobenius_mean",
        "jac_frobenius_max",
        "gap_loss",
        "gap_acc",
        "train_acc",
        "test_acc",
        "weight_decay",
        "lr",
        "curvature_norm",
        "first_layer_norm",
        "sharpness",
        "gn_sharpness",
        "param_norm",
        "logit_norm",
        "margin",
        "train_loss",
        "test_loss",
        "label_smoothing",
        "batch_size",
        "sam_rho",
    ):
        assert name in tables.LABELS and tables.LABELS[name] != name, name


def test_docstring_examples():
    import doctest

    result = doctest.testmod(tables, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_labels_have_no_raw_underscores():
    assert all("_" not in text for text in tables.LABELS.values())
    html = tables.show(pd.DataFrame({"n_seeds": [1], "x": [0.5]}), {"n_seeds": "", "x": "λ_max(H)"})
    text = html.to_html()
    assert "n seeds" in text and "λ<sub>max</sub>(H)" in text and "n_seeds" not in text
