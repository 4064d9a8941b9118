"""Tables for readers: reader labels with units, sensible rounding, no index, nothing cut off.

A chapter shows a table with :func:`show` as the cell's last value::

    from sharpjac import tables
    tables.show(summary, {"lr": "step size η", "sharpness": "λₘₐₓ(H)"}, caption="Final values per run.")

Internal column names (``jac_spectral_max``, ``gap_loss``, ...) get their reader label from
:data:`LABELS` unless the chapter names the column itself. Floats are shown with ``digits``
significant digits (3 by default; values such as 0.05 as written), integers plainly, booleans as
"yes"/"no", missing values as "–".
The HTML sits in a ``<div class="sharpjac-table">`` that the book's style sheet lets scroll
horizontally, so a wide table scrolls on a phone instead of being clipped.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

__all__ = ["LABELS", "ReaderTable", "format_value", "html_label", "label", "show"]

#: Internal column name -> reader label (with the unit or the symbol of the book's notation).
LABELS: dict[str, str] = {
    # hyper-parameters and run identity
    "lr": "step size η",
    "learning_rate": "step size η",
    "two_over_lr": "2/η",
    "batch_size": "batch size",
    "weight_decay": "weight decay",
    "label_smoothing": "label smoothing",
    "sam_rho": "SAM radius ρ",
    "rho": "SAM radius ρ",
    "radius": "radius",
    "augment": "augmentation",
    "jacobian_penalty": "Jacobian penalty",
    "regulariser": "regulariser",
    "momentum": "momentum",
    "loss": "loss",
    "seed": "seed",
    "run": "run",
    "n_train": "training points n",
    "n_test": "test points",
    "epochs": "epochs",
    "updates": "updates",
    "budget": "budget",
    "preset": "preset",
    # training trajectory
    "step": "step",
    "epoch": "epoch",
    "train_loss": "training loss",
    "test_loss": "test loss",
    "train_mse": "training MSE",
    "train_acc": "training accuracy",
    "test_acc": "test accuracy",
    "train_loss_unsmoothed": "training loss (no smoothing)",
    "test_loss_unsmoothed": "test loss (no smoothing)",
    "final_loss": "final loss",
    "grad_norm": "‖∇L‖",
    "param_norm": "‖θ‖",
    "feature_norm": "feature norm",
    "diverged": "diverged",
    "label_noise": "label noise",
    "jac_max": "max ‖Jf(xᵢ)‖₂",
    "converged": "converged",
    # curvature
    "sharpness": "sharpness λₘₐₓ(H)",
    "lambda_max": "λₘₐₓ(H)",
    "max_sharpness": "max sharpness",
    "gn_sharpness": "λₘₐₓ(G), Gauss-Newton",
    "sharpness_converged": "Lanczos converged",
    "sharpness_matvecs": "Hessian-vector products",
    "curvature_norm": "output curvature ‖∂²f‖",
    "first_layer_norm": "‖W₁‖₂",
    "trace": "tr(H)",
    "eigenvalue_k": "eigenvalue of K",
    # Jacobian statistics (over training points i unless "test")
    "jac_spectral_max": "max ‖Jf(xᵢ)‖₂",
    "jac_spectral_mean": "mean ‖Jf(xᵢ)‖₂",
    "jac_frobenius_max": "max Frobenius ‖Jf(xᵢ)‖",
    "jac_frobenius_mean": "mean Frobenius ‖Jf(xᵢ)‖",
    "test_jac_spectral_max": "max ‖Jf(x)‖₂, test points",
    "test_jac_spectral_mean": "mean ‖Jf(x)‖₂, test points",
    "test_jac_frobenius_max": "max Frobenius ‖Jf(x)‖, test points",
    "test_jac_frobenius_mean": "mean Frobenius ‖Jf(x)‖, test points",
    "final_jac": "final max ‖Jf(xᵢ)‖₂",
    "jac_at_level": "max ‖Jf(xᵢ)‖₂ at the loss level",
    "local_variation": "local variation",
    "local_variation_max": "max local variation",
    "local_variation_mean": "mean local variation",
    "variation_radius": "variation radius",
    "jac_plus_variation": "Jacobian + variation",
    "logit_norm": "mean ‖f(xᵢ)‖",
    "margin": "mean logit margin",
    # theory chapters (labels as those chapters' figures word them)
    "path_length": "path length in S",
    "path_slope": "largest slope along paths in S",
    "path_lipschitz": "largest chord / path length",
    "probe_sup": "max ‖Jf‖ on the dense probe",
    "upper_phi": "(i) upper bound",
    "lower_phi": "(ii) lower bound max ‖Cᵢ^½Φᵢ‖²/N",
    "upper_layers": "(i) layer-wise upper bound",
    "lower_jacobian": "(ii) Jacobian lower bound",
    "output_change": "output change",
    "max_abs_diff": "max |λⱼ(G) − λⱼ(K)|",
    "relative_difference": "relative difference",
    # generalisation
    "gap": "generalisation gap",
    "gap_loss": "gap (test − train loss)",
    "gap_loss_unsmoothed": "gap (loss, no smoothing)",
    "gap_acc": "gap (train − test accuracy)",
    # statistics
    "estimate": "estimate",
    "low": "95 % low",
    "high": "95 % high",
    "partial": "partial ρ (train loss held fixed)",
    "partial_low": "partial ρ, 95 % low",
    "partial_high": "partial ρ, 95 % high",
    "abs_estimate": "|estimate|",
    "spearman": "Spearman ρ",
    "kendall": "Kendall τ",
    "statistic": "statistic",
    "predictor": "predictor",
    "ratio": "ratio",
    "diff": "difference",
    "slope": "slope",
    "holds": "holds",
    "phase": "phase",
    # costs
    "cpu_hours": "CPU hours",
    "gpu_hours": "GPU hours",
    "cost_source": "cost source",
    # theory chapters (data, hessian_structure, conjugate_matrix, T1-T4): their tables' columns
    "data_set": "data set",
    "num_classes": "classes",
    "input_shape": "input shape",
    "lipschitz_generated": "Lipschitz constant of g (generated)",
    "target_lipschitz_generated": "L* (generated)",
    "moment": "moment",
    "lambda1_H": "λ₁(H)",
    "lambda1_G": "λ₁(G)",
    "R_max": "λₘₐₓ(R)",
    "R_min": "λₘᵢₙ(R)",
    "gap1_j": "largest gap of G after j > 1",
    "class_directions": "class directions of G",
    "lanczos_converged": "Lanczos converged",
    "train_loss_median": "training loss (median)",
    "lambda1_H_median": "λ₁(H) (median)",
    "lambda1_G_median": "λ₁(G) (median)",
    "R_rel_median": "‖R‖₂ / λ₁(H) (median)",
    "R_rel_min": "lowest over seeds",
    "R_rel_max": "highest over seeds",
    "num_params": "parameters P",
    "nk": "N k",
    "rank_G_K": "rank of G and K",
    "max_rel_diff": "same, relative to λₘₐₓ",
    "lambda_max_G": "λₘₐₓ(G)",
    "d": "intrinsic dimension d",
    "expected_slope": "−1/d",
    "fit_slope": "slope of log radius on log N",
    "slope_rate": "slope on log(log N / N)",
    "max_ratio": "largest radius / bound",
    "sample_max": "maxᵢ ‖Jf(xᵢ)‖",
    "upper_pointwise": "maxᵢ (‖Jf(xᵢ)‖ + φ̂ᵢ)",
    "layer_product": "∏ₗ ‖Wₗ‖₂",
    "covering_radius": "δ (covering radius)",
    "sandwich_holds": "sandwich holds",
    "labels": "labels",
    "t3_level": "ρ (MSE) or η (CE)",
    "t3_sample_max": "maxₘ ‖Jf(xₘ)‖",
    "in_regime": "in the bound's regime",
    "bound_path": "T3 bound on the hardest path",
    "path_sup": "measured sup on that path",
    "euclidean_distance": "Euclidean distance",
    "t4_empirical": "term: Voronoi-weighted training loss",
    "t4_jacobian": "term: δ max‖Jf(xᵢ)‖",
    "t4_variation": "term: δ V",
    "t4_target": "term: δ L*",
    "t4_total": "bound (measured δ)",
    "t4_delta": "measured δ",
    "t4_total_t1": "bound (T1's δ(N, ε))",
    "t4_trivial": "constant predictor",
    "target_rate": "1/d",
    "rate_slope": "slope on log(log N / N)",
    "rate_low": "90 % low",
    "rate_high": "90 % high",
    "samples": "samples",
}

_MISSING = "–"


def label(column: str) -> str:
    """The reader label of an internal column name (the name itself when :data:`LABELS` has none)."""
    return LABELS.get(column, column)


_SUBSCRIPT = re.compile(r"(?<=[^\s_$])_(?:\{([^{}$]+)\}|([A-Za-z0-9]+))")


def html_label(text: str, column: str | None = None) -> str:
    """A label for an HTML context (tables, interactive figures) without raw underscores.

    A label that is the internal ``column`` name itself (no reader label exists) has its
    underscores written as spaces (``n_seeds`` -> "n seeds"); in a reader label a TeX-style
    subscript becomes ``<sub>`` (``λ_max(H)`` -> ``λ<sub>max</sub>(H)``, ``‖Jf‖_F``, ``τ_{b}``).
    Text between ``$`` signs (MathJax) is left alone.

    Example:
        >>> html_label("n_seeds", "n_seeds"), html_label("max ‖Jf‖_F"), html_label("$x_i$ and τ_b")
        ('n seeds', 'max ‖Jf‖<sub>F</sub>', '$x_i$ and τ<sub>b</sub>')
    """
    text = str(text)
    if column is not None and text == column:
        return text.replace("_", " ")
    parts = text.split("$")
    for i in range(0, len(parts), 2):  # outside $...$
        parts[i] = _SUBSCRIPT.sub(lambda m: f"<sub>{m.group(1) or m.group(2)}</sub>", parts[i])
    return "$".join(parts)


def format_value(value, digits: int = 3) -> str:
    """One cell as text: ``digits`` significant digits for floats, integers plainly, booleans yes/no.

    A float that has at most ``digits`` significant digits (a hyper-parameter such as 0.05 or
    1e-4) is written as it is: ``0.05``, ``0.0001``, ``10``, ``1e-05``. Any other float with
    magnitude in $[10^{-3}, 10^{6})$ is written in fixed point with ``digits`` significant digits
    (``0.0523``, ``1.23``, ``1235``); smaller or larger magnitudes in scientific notation
    (``1.23e-05``). NaN and None are shown as "–". Numpy scalars are formatted like Python
    numbers (never ``np.float64(...)``).

    Example:
        >>> [format_value(v) for v in (0.05, 1e-4, 0.052345, 1234.6, 2, True, float("nan"), 3.21e-7, 3.2e-7)]
        ['0.05', '0.0001', '0.0523', '1235', '2', 'yes', '–', '3.21e-07', '3.2e-07']
    """
    if not isinstance(digits, numbers.Integral) or isinstance(digits, bool) or digits < 1:
        raise ValueError(f"digits={digits!r} is not accepted; expected an integer >= 1")
    if value is None or value is pd.NA or value is pd.NaT:
        return _MISSING
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        v = float(value)
        if math.isnan(v):
            return _MISSING
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        if v == 0.0:
            return "0"
        magnitude = math.floor(math.log10(abs(v)))
        if float(f"{v:.{digits}g}") == v:
            # a value written with at most `digits` significant digits (a hyper-parameter such as
            # 0.05 or 1e-4, an integral count) is shown as written, without padding zeros
            if -4 <= magnitude < 6:
                return np.format_float_positional(v, trim="-")
            return f"{v:g}"
        if -3 <= magnitude < 6:
            decimals = max(0, digits - 1 - magnitude)
            return f"{v:.{decimals}f}"
        return f"{v:.{digits - 1}e}"
    return str(value)


class ReaderTable(Styler):
    """A pandas ``Styler`` whose HTML is wrapped in ``<div class="sharpjac-table">`` (horizontal scroll)."""

    def _repr_html_(self) -> str:  # noqa: D401 - the notebook's HTML representation
        return f'<div class="sharpjac-table">{super()._repr_html_()}</div>'


def show(
    df: pd.DataFrame,
    columns: Mapping[str, str] | None = None,
    *,
    digits: int | Mapping[str, int] = 3,
    caption: str | None = None,
) -> ReaderTable:
    """A reader's table of ``df``: no index, reader labels, rounded values, horizontal scrolling.

    Args:
        df: the table; its index is dropped (put anything the reader needs into a column first).
        columns: ``{internal name: reader label}``: which columns to show, in this order, and their
            labels (an empty label ``""`` or ``None`` takes the default from :data:`LABELS`). When
            omitted every column is shown with its :data:`LABELS` label.
        digits: significant digits of float columns, one integer for all or ``{column: digits}``
            (columns not named get 3).
        caption: an optional caption above the table.

    Returns:
        the ``Styler`` (a :class:`ReaderTable`); make it the cell's last value to display it.

    Example:
        >>> import pandas as pd
        >>> t = show(pd.DataFrame({"lr": [0.05, 0.1], "jac_spectral_max": [3.14159, 12.5]}))
        >>> "max ‖Jf(xᵢ)‖₂" in t.to_html() and "3.14" in t.to_html()
        True
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"df={type(df).__name__} is not accepted; expected a pandas DataFrame")
    if columns is None:
        names = {c: label(c) for c in df.columns}
    else:
        if not isinstance(columns, Mapping):
            raise ValueError(f"columns={columns!r} is not accepted; expected a dict {{column: label}} or None")
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise ValueError(f"columns={missing!r} is not accepted; expected columns of df: {list(df.columns)!r}")
        names = {c: (lab or label(c)) for c, lab in columns.items()}
    if isinstance(digits, Mapping):
        unknown = [c for c in digits if c not in names]
        if unknown:
            raise ValueError(f"digits={dict(digits)!r} is not accepted; expected keys among {list(names)!r}")
        per_column = {c: digits.get(c, 3) for c in names}
    else:
        per_column = {c: digits for c in names}
    for c, d in per_column.items():
        if not isinstance(d, numbers.Integral) or isinstance(d, bool) or d < 1:
            raise ValueError(f"digits={d!r} (column {c!r}) is not accepted; expected an integer >= 1")
    labels = list(names.values())
    if len(set(labels)) != len(labels):
        raise ValueError(f"columns={names!r} is not accepted; expected distinct reader labels")

    labels = [html_label(lab, c) for c, lab in names.items()]
    frame = df.loc[:, list(names)].reset_index(drop=True)
    frame.columns = labels
    styler = ReaderTable(frame)
    styler.hide(axis="index")
    for c, lab in names.items():
        styler.format(lambda v, d=per_column[c]: format_value(v, d), subset=[html_label(lab, c)])
    if caption is not None:
        styler.set_caption(caption)
    styler.set_table_attributes('class="sharpjac-table-inner"')
    return styler
