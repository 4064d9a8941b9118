r"""Progressive sharpening and the edge of stability, on equal *time* :math:`\eta t` per step size.

Full-batch gradient descent (Cohen et al. 2021; the paper's Section 5) at three step sizes, with
squared error and with cross-entropy, on a tanh MLP. Each loss has a time horizon :math:`T` (in
units of :math:`\eta t`, the time of the gradient flow that GD discretises), a run with step
:math:`\eta` takes :math:`\lceil T/\eta\rceil` steps, and measurements are log-spaced (dense
early, where sharpness rises fast) plus one every :math:`\Delta T/\eta` steps. Equal time makes
runs with different step sizes comparable: before the edge they follow the same gradient-flow
path, so what differs at the end is the effect of the stability cap :math:`2/\eta`.

Presets are the project's own choices (the paper's are not known): ``quick`` uses 250 real MNIST
digits (``mnist5k``), whose tanh MLP starts with sharpness 7 to 8 under squared error (3.5 to 4.2
under cross-entropy, which peaks near 9), hence step sizes whose :math:`0.9\cdot2/\eta` lies
above the initial sharpness and within reach; ``paper`` uses 5,000 CIFAR-10 images and a
wider MLP, Cohen et al.'s setting in spirit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .. import analysis, claims, inference
from ..analysis import Interval
from ..training import TrainConfig
from . import _smoothed_sgd as shared
from . import register
from ._smoothed_sgd import (
    SharpeningSummary,
    block_configs,
    boot_resamples,
    check_method,
    each_run,
    peak_index,
    window_correlations,
)
from .base import ExperimentConfig, run_experiment

NAME = "progressive_sharpening"


@dataclass(frozen=True)
class ProgressiveSharpeningConfig(ExperimentConfig):
    r"""Full-batch GD, MSE and CE, several step sizes, equal time :math:`\eta t`.

    Attributes:
        dataset, n_train, n_test: data (all ``n_train`` points are in every gradient step).
        classes: optional subset of class ids.
        widths, activation: the MLP.
        losses: subset of ``("mse", "ce")``.
        lrs_mse, lrs_ce: step sizes for each loss.
        time_mse, time_ce: horizon :math:`T` per loss; a run takes :math:`\lceil T/\eta\rceil` steps.
        measure_num_mse, measure_num_ce: log-spaced measurement steps per run (dense early; cross-entropy
            sharpens within a few steps, so it needs more of them).
        measure_dt_mse, measure_dt_ce: also measure every :math:`\Delta T/\eta` steps (time units).
        sharpness_subset: training points in the Hessian (None: all, the full-batch loss).
        jacobian_subset: training points for the Jacobian statistics.
        lanczos_tol: relative residual tolerance of the warm-started Lanczos.
    """

    dataset: str = "mnist5k"
    n_train: int = 250
    n_test: int = 100
    classes: tuple[int, ...] | None = None
    widths: tuple[int, ...] = (100, 100)
    activation: str = "tanh"
    losses: tuple[str, ...] = ("mse", "ce")
    lrs_mse: tuple[float, ...] = (0.16, 0.19, 0.22)
    lrs_ce: tuple[float, ...] = (0.22, 0.3, 0.4)
    time_mse: float = 85.0
    time_ce: float = 30.0
    measure_num_mse: int = 8
    measure_num_ce: int = 20
    measure_dt_mse: float = 10.0
    measure_dt_ce: float = 3.0
    sharpness_subset: int | None = None
    jacobian_subset: int = 100
    lanczos_tol: float = 1e-3

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(
            n_train=100,
            n_test=50,
            widths=(16,),
            lrs_mse=(0.2,),
            lrs_ce=(0.3,),
            time_mse=2.0,
            time_ce=2.0,
            measure_num_mse=3,
            measure_num_ce=3,
            measure_dt_mse=1.0,
            measure_dt_ce=1.0,
            jacobian_subset=10,
        ),
        "quick": dict(seeds=(0, 1, 2, 3, 4)),
        "paper": dict(
            dataset="cifar10",
            n_train=5000,
            n_test=2000,
            widths=(200, 200),
            lrs_mse=(0.1, 0.14, 0.2),
            lrs_ce=(0.03, 0.05, 0.08),
            time_mse=400.0,
            time_ce=200.0,
            measure_num_mse=30,
            measure_num_ce=40,
            measure_dt_mse=4.0,
            measure_dt_ce=2.0,
            jacobian_subset=1000,
            seeds=(0, 1, 2),
        ),
    }

    def _check(self) -> None:
        from .. import data
        from ..models import ACTIVATIONS

        self._need(self.dataset in data.available(), "dataset", f"one of {sorted(data.available())}")
        self._need_positive(
            "n_train",
            "n_test",
            "widths",
            "measure_num_mse",
            "measure_num_ce",
            "measure_dt_mse",
            "measure_dt_ce",
            "jacobian_subset",
            "lanczos_tol",
        )
        self._need(self.activation in ACTIVATIONS, "activation", f"one of {ACTIVATIONS}")
        self._need(
            len(self.losses) > 0 and set(self.losses) <= {"mse", "ce"},
            "losses",
            "a non-empty tuple drawn from ('mse', 'ce')",
        )
        if "mse" in self.losses:
            self._need_positive("lrs_mse", "time_mse")
        if "ce" in self.losses:
            self._need_positive("lrs_ce", "time_ce")
        self._need(
            self.sharpness_subset is None or (isinstance(self.sharpness_subset, int) and self.sharpness_subset > 0),
            "sharpness_subset",
            "None (all training points) or an int > 0",
        )

    def steps(self, loss: str, lr: float) -> int:
        r""":math:`\lceil T/\eta\rceil` for ``loss``'s horizon."""
        horizon = self.time_mse if loss == "mse" else self.time_ce
        return max(1, math.ceil(horizon / lr - 1e-9))

    def grid(self) -> list[tuple[dict[str, Any], TrainConfig]]:
        opts: dict[str, Any] = {"n_train": self.n_train, "n_test": self.n_test}
        if self.classes is not None:
            opts["classes"] = list(self.classes)
        out = []
        for loss in self.losses:
            for lr in self.lrs_mse if loss == "mse" else self.lrs_ce:
                steps = self.steps(loss, lr)
                dt = self.measure_dt_mse if loss == "mse" else self.measure_dt_ce
                every = max(1, round(dt / lr))
                for seed in self.seeds:
                    tc = TrainConfig(
                        dataset=self.dataset,
                        dataset_options=opts,
                        data_seed=self.data_seed,
                        model="mlp",
                        model_options={"widths": list(self.widths), "activation": self.activation},
                        loss=loss,
                        optimizer="gd",
                        lr=float(lr),
                        max_steps=steps,
                        measure_every=min(every, steps),
                        measure_num=self.measure_num_mse if loss == "mse" else self.measure_num_ce,
                        sharpness_subset=self.sharpness_subset,
                        jacobian_subset=self.jacobian_subset,
                        lanczos_tol=self.lanczos_tol,
                        seed=seed,
                        dtype=self.dtype,
                        device=self.device,
                        threads=self.threads,
                        checkpoint_every=max(1, steps // 5),
                    )
                    out.append(({"loss": loss, "lr": float(lr), "seed": seed}, tc))
        return out


def run(
    config: ProgressiveSharpeningConfig | None = None, *, store=None, force: bool = False, progress: bool | None = None
) -> pd.DataFrame:
    r"""Run the grid; adds ``two_over_lr`` (:math:`2/\eta`) and ``time`` (:math:`\eta t`)."""
    config = ProgressiveSharpeningConfig.preset("quick") if config is None else config
    df = run_experiment(config, name=NAME, store=store, force=force, progress=progress)
    if len(df):
        df["two_over_lr"] = 2.0 / df["lr"]
        df["time"] = df["lr"] * df["step"]
    return df


# ------------------------------------------------------------------------------------------------
# The chapter: its parameters become runs here, and its statistics are computed here
# ------------------------------------------------------------------------------------------------

#: Display names of the losses.
LOSS_NAMES = {"mse": "squared error", "ce": "cross-entropy"}
#: The four Jacobian statistics correlated with sharpness.
JACOBIAN_STATS = analysis.JACOBIAN_COLUMNS
#: The three correlations of a run: of the series, of their first differences, of the detrended series.
CORRELATIONS = ("raw", "differences", "detrended")
#: The windows of a run that the correlations use.
WINDOWS = ("before_edge", "before_peak")
#: A run *hovers* at the edge when its final sharpness / (2/eta) lies in this band (the companion's choice).
HOVER = (0.8, 1.2)
#: Reader labels of the overview table's columns ("": the label of :data:`sharpjac.tables.LABELS`).
OVERVIEW_LABELS = {"loss": "", "lr": "", "seeds": "seeds", "steps": "GD steps", "measurements": "measurements per run"}
#: Reader labels of the correlation table's columns.
CORRELATION_LABELS = {
    "loss": "",
    "correlation": "correlation of",
    "mean": "mean ρ over runs",
    "low": "",
    "high": "",
    "runs": "runs",
    "interval": "interval (degenerate when low = high)",
}
#: The Jacobian statistics as the static figures write them (TeX).
JACOBIAN_TEX = {
    "jac_spectral_max": r"$\max_i\|Jf(x_i)\|_2$",
    "jac_spectral_mean": r"mean $\|Jf(x_i)\|_2$",
    "jac_frobenius_max": r"$\max_i\|Jf(x_i)\|_F$",
    "jac_frobenius_mean": r"mean $\|Jf(x_i)\|_F$",
}
#: The interactive figure's menu: reader label -> column.
CURVES_MENU = shared.CURVES_MENU
#: How the correlation figure draws :attr:`Summary.dots` (:func:`sharpjac.plotting.interval_dots`):
#: one row per Jacobian statistic, a filled circle for the raw correlation, hollow markers for the nulls.
DOT_STYLE: dict[str, Any] = {
    "rows": "statistic",
    "order": JACOBIAN_STATS,
    "by": ["loss", "correlation"],
    "markers": {"raw": "o", "differences": "s", "detrended": "D"},
    "hollow": ("differences", "detrended"),
    "label": "{loss_name}, {correlation}",
}
#: The interactive figure's hover columns.
CURVES_HOVER = ["loss", "lr", "seed", "step", "2/η"]
#: The claims decided by the trend null and by the step-size effect.
TREND_CLAIM = "progressive_sharpening.jacobian_rises_with_sharpness"
STEP_CLAIM = "progressive_sharpening.larger_step_smaller_jacobian"
#: The claim each loss's edge-of-stability share decides.
EDGE_CLAIMS = {"mse": "progressive_sharpening.edge_of_stability", "ce": "progressive_sharpening.edge_of_stability_ce"}


def chapter_configs(preset: str, seed: int, n_seeds: int = 5) -> list[ProgressiveSharpeningConfig]:
    """The chapter's one config: ``n_seeds`` training seeds ``seed, seed+1, ...`` (1 at smoke, 3 at
    paper, whatever ``n_seeds`` says) and ``data_seed = seed``."""
    return block_configs(ProgressiveSharpeningConfig, preset, seed, n_seeds)


def check_params(*, fraction: float, method: str) -> None:
    """One-line ValueError for a bad edge ``fraction`` (a number in (0, 1]) or correlation ``method``."""
    check_method(method)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction!r}; accepted: a number in (0, 1]")


def _per_run(runs: pd.DataFrame) -> list:
    """``[((loss, lr, seed), rows in step order)]``, one per run."""
    return each_run(runs, ["loss", "lr", "seed"])


def overview(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (loss, step size): seeds, GD steps of a run and measurements per run (loss display names)."""
    out = (
        runs.groupby(["loss", "lr"])
        .agg(seeds=("seed", "nunique"), steps=("step", "max"), measurements=("step", "size"))
        .reset_index()
    )
    out["loss"] = out["loss"].map(LOSS_NAMES)
    out["measurements"] = out["measurements"] // out["seeds"]
    return out


def edges(runs: pd.DataFrame, *, fraction: float = 0.9) -> pd.DataFrame:
    r"""Per run: :func:`sharpjac.analysis.edge_summary` against :math:`2/\eta`, and more.

    Returns:
        One row per (loss, lr, seed) with the edge summary's fields (``two_over_lr``,
        ``final_sharpness``, ``ratio``, ``max_sharpness``, ``reached``, ...), the
        ``initial_sharpness``, ``dlog_curvature`` :math:`=\log(\overline{\|C\|}_{\rm end} /
        \overline{\|C\|}_{\rm peak})` from the sharpness peak to the end, ``final_train_acc`` and
        ``hovers`` (final ratio within :data:`HOVER`).
    """
    rows = []
    for (loss, lr, s), g in _per_run(runs):
        e = analysis.edge_summary(g["step"], g["sharpness"], lr, fraction=fraction)
        peak = peak_index(g)
        c = g["curvature_norm"].to_numpy(float)
        rows.append(
            {
                "loss": loss,
                "lr": lr,
                "seed": s,
                **e.as_dict(),
                "initial_sharpness": float(g["sharpness"].iloc[0]),
                "dlog_curvature": float(np.log(c[-1] / c[peak])),
                "final_train_acc": float(g["train_acc"].iloc[-1]),
            }
        )
    out = pd.DataFrame(rows)
    out["hovers"] = (out["ratio"] >= HOVER[0]) & (out["ratio"] <= HOVER[1])
    return out


def edge_labels(fraction: float) -> dict[str, str]:
    """Reader labels of :func:`edge_table`'s columns (the edge threshold ``fraction`` and :data:`HOVER` named)."""
    return {
        "loss": "",
        "lr": "",
        "two_over_lr": "limit 2/η",
        "final_sharpness": "final sharpness",
        "ratio": "final / (2/η)",
        "max_sharpness": "peak sharpness",
        "reached": f"share reaching {fraction:g}·2/η",
        "hovers": f"share ending in [{HOVER[0]:g}, {HOVER[1]:g}]·2/η",
    }


def edge_table(edge_rows: pd.DataFrame) -> pd.DataFrame:
    """:func:`edges` averaged over seeds per (loss, step size) (loss display names)."""
    out = (
        edge_rows.groupby(["loss", "lr"])
        .agg(
            two_over_lr=("two_over_lr", "first"),
            final_sharpness=("final_sharpness", "mean"),
            ratio=("ratio", "mean"),
            max_sharpness=("max_sharpness", "mean"),
            reached=("reached", "mean"),
            hovers=("hovers", "mean"),
        )
        .reset_index()
    )
    out["loss"] = out["loss"].map(LOSS_NAMES)
    return out


def windowed(frame: pd.DataFrame, window: str, *, fraction: float = 0.9) -> pd.DataFrame:
    r"""The rows of one run inside ``window``, in step order.

    ``"before_edge"``: the measurements strictly before sharpness first reaches
    ``fraction``:math:`\cdot2/\eta` (:func:`sharpjac.analysis.before_edge`; all of them if it never
    does). ``"before_peak"``: the measurements up to and including the (first) largest sharpness.
    """
    if window not in WINDOWS:
        raise ValueError(f"window={window!r}; accepted: {WINDOWS}")
    g = frame.sort_values("step")
    if window == "before_edge":
        return analysis.before_edge(g, fraction=fraction)
    return g.iloc[: peak_index(g) + 1]


def trend_null_runs(
    runs: pd.DataFrame, window: str, *, fraction: float = 0.9, method: str = "spearman", stats=JACOBIAN_STATS
) -> pd.DataFrame:
    """Per run and Jacobian statistic: the rank correlation with sharpness over :func:`windowed`.

    Returns:
        One row per (loss, lr, seed, statistic) with ``n`` (measurements in the window), ``raw``
        (:func:`~sharpjac.analysis.rank_correlation`, NaN below 3 measurements), ``differences`` and
        ``detrended`` (:func:`~sharpjac.analysis.trend_null_correlation`, NaN below 4 measurements:
        first differences of 4 give 3 pairs, the least a rank correlation needs).
    """
    rows = []
    for (loss, lr, s), g in _per_run(runs):
        w = windowed(g, window, fraction=fraction)
        for stat in stats:
            corr = window_correlations(w["sharpness"], w[stat], method, kinds=CORRELATIONS)
            rows.append({"loss": loss, "lr": lr, "seed": s, "statistic": stat, "n": len(w), **corr})
    return pd.DataFrame(rows)


def summarise_trend_nulls(per_run: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Mean over the runs of each (loss, statistic) of each of :data:`CORRELATIONS`, with a 95 %
    percentile-bootstrap interval over runs (:func:`~sharpjac.analysis.summarise_correlations`).

    Returns:
        Columns ``correlation`` (raw/differences/detrended), ``loss``, ``statistic``, ``mean``,
        ``low``, ``high``, ``runs`` (runs with a finite value).
    """
    out = []
    for value in CORRELATIONS:
        t = analysis.summarise_correlations(
            per_run, by=("loss", "statistic"), value=value, n_resamples=n_boot, seed=seed
        )
        t.insert(0, "correlation", value)
        out.append(t)
    return pd.concat(out, ignore_index=True)


def cross_run_null(
    runs: pd.DataFrame,
    loss: str,
    *,
    window: str = "before_edge",
    fraction: float = 0.9,
    method: str = "spearman",
    stat: str = "jac_spectral_max",
    seed: int = 0,
    n_permutations: int = 9999,
) -> inference.TrendNull:
    """Does sharpness co-move with ``stat`` within a run more than across runs of the same step size?

    :func:`~sharpjac.experiments._smoothed_sgd.trend_null` over ``loss``'s runs, the runs of one step
    size permuted among themselves, each run cut to :func:`windowed`.

    Returns:
        :class:`~sharpjac.inference.TrendNull` (``p_value`` NaN and ``n_runs`` 0 when no step size
        has 2 usable runs).
    """
    return shared.trend_null(
        runs[runs["loss"] == loss],
        "lr",
        window=lambda r: windowed(r, window, fraction=fraction),
        y=stat,
        method=method,
        seed=seed,
        n_permutations=n_permutations,
    )


def correlation_interval(
    table: pd.DataFrame, loss: str, value: str, *, n_boot: int, stat: str = "jac_spectral_max"
) -> Interval:
    """The row of :func:`summarise_trend_nulls` for (loss, correlation, statistic) as an Interval."""
    r = table[(table.loss == loss) & (table.correlation == value) & (table.statistic == stat)].iloc[0]
    return Interval(float(r["mean"]), float(r["low"]), float(r["high"]), 0.95, int(r["runs"]), n_boot)


def fmt_correlation(i: Interval) -> str:
    """A mean correlation with its interval, saying so when it is undefined or degenerate."""
    if not np.isfinite(i.estimate):
        return "not defined (no run has enough measurements)"
    if i.low == i.high:
        return f"{i.estimate:.2f} (a degenerate interval: every resample gives the same value, {i.n} run(s))"
    return f"{i.estimate:.2f} [{i.low:.2f}, {i.high:.2f}]"


def fmt_change(r: inference.ClusterInterval) -> str:
    """A relative change in per cent with its t interval and the number of seeds (said so when there
    are too few seeds for an interval, or it is degenerate)."""
    if r.too_few:
        return f"{100 * r.estimate:+.1f} % (too few {r.unit} for an interval: {r.n})"
    text = f"{100 * r.estimate:+.1f} % [{100 * r.low:+.1f} %, {100 * r.high:+.1f} %] ({r.n} {r.unit})"
    return text + (" (a degenerate interval)" if r.low == r.high else "")


def _survives(i: Interval) -> bool:
    return bool(np.isfinite(i.low) and i.low > 0)


def correlation_table(summary_table: pd.DataFrame, *, n_boot: int, stat: str = "jac_spectral_max") -> pd.DataFrame:
    """The rows of :func:`summarise_trend_nulls` for one statistic, with an ``interval`` text column."""
    show = summary_table[summary_table.statistic == stat].copy()
    show["loss"] = show["loss"].map(LOSS_NAMES)
    show["interval"] = [
        str(Interval(m, lo, hi, 0.95, int(r), n_boot))
        for m, lo, hi, r in zip(show["mean"], show["low"], show["high"], show["runs"])
    ]
    return show[["loss", "correlation", "mean", "low", "high", "runs", "interval"]]


def finals(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    r"""Per run: the final :math:`\max_i\|Jf(x_i)\|_2` (``final_jac``), the final training loss, and
    ``jac_at_level``, its value when the training loss first falls to the *level*: the largest
    final training loss of that loss's runs (a level every run reaches).

    Returns:
        ``(table, level)`` with ``level`` a Series indexed by loss.
    """
    rows = [
        {
            "loss": loss,
            "lr": lr,
            "seed": s,
            "final_jac": float(g["jac_spectral_max"].iloc[-1]),
            "final_loss": float(g["train_loss"].iloc[-1]),
        }
        for (loss, lr, s), g in _per_run(runs)
    ]
    out = pd.DataFrame(rows)
    out["loss_name"] = out["loss"].map(LOSS_NAMES)
    level = out.groupby("loss")["final_loss"].max()
    out["jac_at_level"] = [
        analysis.value_when(
            runs[(runs.loss == r.loss) & (runs.lr == r.lr) & (runs.seed == r.seed)].sort_values("step"),
            "jac_spectral_max",
            at="train_loss",
            threshold=float(level[r.loss]),
        )
        for r in out.itertuples()
    ]
    return out, level


def step_changes(final_rows: pd.DataFrame, loss: str) -> dict[int, float]:
    r"""Per seed (one initialisation, run at every step size): the relative change of the final
    :math:`\max_i\|Jf(x_i)\|_2` from the smallest to the largest step size of ``loss``,
    ``final(largest) / final(smallest) - 1`` (seeds that lack either run are left out)."""
    f = final_rows[final_rows.loss == loss]
    if not len(f):
        return {}
    small = f[f.lr == f.lr.min()].set_index("seed")["final_jac"]
    large = f[f.lr == f.lr.max()].set_index("seed")["final_jac"]
    both = small.index.intersection(large.index)
    return {int(s): float(large[s] / small[s] - 1) for s in both}


def step_effect(final_rows: pd.DataFrame, loss: str) -> inference.ClusterInterval:
    """The mean of :func:`step_changes` with a 95 % t interval over seeds (none below 3 seeds)."""
    return inference.t_interval(list(step_changes(final_rows, loss).values()), unit="seeds")


def final_means(final_rows: pd.DataFrame) -> pd.DataFrame:
    """:func:`finals` averaged over seeds per (loss, step size): the figure's lines."""
    return final_rows.groupby(["loss", "lr"], sort=False)[["final_jac", "jac_at_level"]].mean().reset_index()


def correlation_dots(table: pd.DataFrame, losses) -> pd.DataFrame:
    """The rows of :func:`summarise_trend_nulls` in the figure's order (``losses``, then
    :data:`CORRELATIONS`), with the loss's display name ``loss_name``."""
    out = pd.concat([table[(table.loss == loss) & (table.correlation == c)] for loss in losses for c in CORRELATIONS])
    return out.assign(loss_name=out["loss"].map(LOSS_NAMES)).reset_index(drop=True)


def jacobian_means(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds of the Jacobian statistics at each time, per (loss, lr): ready to plot."""
    return runs.groupby(["loss", "lr", "time"])[list(JACOBIAN_STATS)].mean().reset_index()


def curves_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with loss display names, a ``run`` label and a ``2/η`` column, for
    :func:`sharpjac.interactive.curves`, and ``first``: the run has the first seed (drawn thick)."""
    out = runs.copy()
    out["first"] = out["seed"] == out["seed"].min()
    out["loss"] = out["loss"].map(LOSS_NAMES)
    out["run"] = [f"{l}, η = {lr:g}, seed {s}" for l, lr, s in zip(out["loss"], out["lr"], out["seed"])]  # noqa: E741
    out["2/η"] = out["two_over_lr"]
    return out


@dataclass(frozen=True)
class Summary(SharpeningSummary):
    """Everything the chapter shows, computed from its runs (see :func:`summarise`).

    Attributes:
        preset, seed, n_seeds, n_boot, fraction, method: the chapter's parameters (``n_boot``
            bootstrap resamples: 200 at smoke, else 2000).
        losses: the losses run, in ("mse", "ce") order; lrs: their step sizes.
        overview, edges, edge_table: see :func:`overview`, :func:`edges`, :func:`edge_table`.
        per_run, correlations, peak: :func:`trend_null_runs` before the edge, and
            :func:`summarise_trend_nulls` of the runs before the edge and before the peak.
        correlation_table: :func:`correlation_table` of ``correlations``.
        trend_null: per loss, :func:`cross_run_null` before the edge (the claim's test); fragility: that
            test's outcome with each seed left out (by claim id).
        finals, level, effects: :func:`finals` and :func:`step_effect` (a t interval over seeds) per loss;
            final_means: :func:`final_means`.
        curves, jac_means, dots: the figures' series (:func:`curves_frame`, :func:`jacobian_means`
            by loss, :func:`correlation_dots`).
        numbers: values glued as numbers (name -> int/float).
        markdown: sentences glued as Markdown (name -> text).
    """

    fraction: float
    losses: list[str]
    lrs: dict[str, list[float]]
    overview: pd.DataFrame
    edges: pd.DataFrame
    edge_table: pd.DataFrame
    per_run: pd.DataFrame
    correlations: pd.DataFrame
    peak: pd.DataFrame
    correlation_table: pd.DataFrame
    trend_null: dict[str, inference.TrendNull]
    fragility: dict[str, inference.Fragility | None]
    finals: pd.DataFrame
    level: pd.Series
    effects: dict[str, Interval]
    final_means: pd.DataFrame
    curves: pd.DataFrame
    jac_means: dict[str, pd.DataFrame]
    dots: pd.DataFrame
    numbers: dict[str, float | int] = field(default_factory=dict)
    markdown: dict[str, str] = field(default_factory=dict)


def _edge_sentences(e: pd.DataFrame) -> dict[str, str]:
    ce = e[e.loss == "ce"]
    if not len(ce):
        return {}
    falls = bool(ce["dlog_curvature"].mean() < 0)
    return {
        "ce_stay_sentence": claims.choose(
            bool(ce["hovers"].mean() >= 0.8),
            "and most of them stay there",
            "but most of them do not stay there: their final sharpness is "
            f"{ce['ratio'].min():.2f} to {ce['ratio'].max():.2f} times $2/\\eta$, outside that band",
        ),
        "ce_curvature_sentence": claims.choose(
            falls,
            f"From the sharpness peak to the end of the cross-entropy runs the mean output curvature "
            f"$\\overline{{\\|C\\|}}$ falls by a factor {np.exp(-ce['dlog_curvature'].mean()):.1f} on average "
            f"(the final training accuracy is {100 * ce['final_train_acc'].mean():.0f} %): the loss saturates and "
            "$\\overline{\\|C\\|}$, the first of the paper's mediating factors, pulls sharpness down (Cohen et al. "
            "also saw cross-entropy sharpness fall late in training).",
            "The mean output curvature $\\overline{\\|C\\|}$ does not fall from the sharpness peak to the end of "
            "the cross-entropy runs, so the first mediating factor does not explain where sharpness ends.",
        ),
    }


def trend_null_words(null: inference.TrendNull, alpha: float = 0.05) -> str:
    """What :func:`cross_run_null` says, in words chosen by its numbers."""
    return shared.trend_null_words(null, "step size", alpha)


def _correlation_sentences(losses, per_run, table, peak, n_boot, nulls) -> str:
    sentences = []
    for loss in losses:
        raw, dif, det = (correlation_interval(table, loss, v, n_boot=n_boot) for v in CORRELATIONS)
        med = float(per_run[(per_run.loss == loss) & (per_run.statistic == "jac_spectral_max")]["n"].median())
        sentences.append(
            f"With {LOSS_NAMES[loss]} (median window {med:.0f} measurements), the raw correlation of sharpness with "
            f"$\\max_i\\|Jf(x_i)\\|_2$ is {fmt_correlation(raw)}, that of first differences {fmt_correlation(dif)} "
            f"and that of detrended series {fmt_correlation(det)}; the last two do not remove a trend the runs "
            f"share, so the test is across runs: {trend_null_words(nulls[loss])}."
        )
        p = correlation_interval(peak, loss, "raw", n_boot=n_boot)
        pdif = correlation_interval(peak, loss, "differences", n_boot=n_boot)
        sentences.append(
            f"Up to the sharpness peak instead of the edge, the {LOSS_NAMES[loss]} figures are {fmt_correlation(p)} "
            f"(raw) and {fmt_correlation(pdif)} (first differences)."
        )
    return " ".join(sentences)


def summarise(
    runs: pd.DataFrame,
    config: ProgressiveSharpeningConfig,
    *,
    preset: str,
    seed: int = 0,
    fraction: float = 0.9,
    method: str = "spearman",
) -> Summary:
    """Every table, number and sentence of the chapter from its runs (the output of :func:`run` on
    ``config``, the config :func:`chapter_configs` gave)."""
    check_params(fraction=fraction, method=method)
    n_boot = boot_resamples(preset)
    losses = [l for l in ("mse", "ce") if l in set(runs["loss"])]  # noqa: E741
    lrs = {l: sorted(runs.loc[runs.loss == l, "lr"].unique()) for l in losses}  # noqa: E741
    e = edges(runs, fraction=fraction)
    per_run = trend_null_runs(runs, "before_edge", fraction=fraction, method=method)
    table = summarise_trend_nulls(per_run, n_boot=n_boot, seed=seed)
    peak = summarise_trend_nulls(
        trend_null_runs(runs, "before_peak", fraction=fraction, method=method), n_boot=n_boot, seed=seed
    )
    nulls = {loss: cross_run_null(runs, loss, fraction=fraction, method=method, seed=seed) for loss in losses}
    fragility = {
        TREND_CLAIM: shared.trend_fragility(
            TREND_CLAIM,
            runs[runs.loss == "mse"],
            lambda r: cross_run_null(r, "mse", fraction=fraction, method=method, seed=seed),
        )
    }
    fin, level = finals(runs)
    numbers: dict[str, float | int] = {"n_train": config.n_train, "n_seeds": len(config.seeds), "fraction": fraction}
    numbers.update({"hover_low": HOVER[0], "hover_high": HOVER[1]})
    markdown = {"widths": "-".join(str(w) for w in config.widths)}
    effects = {}
    for loss in losses:
        el = e[e.loss == loss]
        numbers[f"{loss}_ratio_min"] = float(el["ratio"].min())
        numbers[f"{loss}_ratio_max"] = float(el["ratio"].max())
        numbers[f"{loss}_reached"] = int(el["reached"].sum())
        numbers[f"{loss}_hovers"] = int(el["hovers"].sum())
        numbers[f"{loss}_runs"] = len(el)
        numbers[f"{loss}_peak_ratio"] = float((el["max_sharpness"] / el["two_over_lr"]).max())
        numbers[f"{loss}_dlogC"] = float(el["dlog_curvature"].mean())
        numbers[f"{loss}_init_min"] = float(el["initial_sharpness"].min())
        numbers[f"{loss}_init_max"] = float(el["initial_sharpness"].max())
        f = fin[fin.loss == loss]
        numbers[f"{loss}_lr_final_rho"] = analysis.spearman(f["lr"], f["final_jac"])
        numbers[f"{loss}_lr_level_rho"] = analysis.spearman(f["lr"], f["jac_at_level"])
        numbers[f"{loss}_level"] = float(level[loss])
        numbers[f"{loss}_jac_small_lr"] = float(f[f.lr == min(f.lr)]["final_jac"].mean())
        numbers[f"{loss}_jac_large_lr"] = float(f[f.lr == max(f.lr)]["final_jac"].mean())
        numbers[f"{loss}_lr_small"] = float(min(f.lr))
        numbers[f"{loss}_lr_large"] = float(max(f.lr))
        r = effects[loss] = step_effect(fin, loss)
        markdown[f"{loss}_jac_change"] = fmt_change(r)
        markdown[f"{loss}_direction"] = claims.choose(
            r.too_few,
            "too few seeds to say in which direction",
            claims.choose(
                bool(r.high < 0),
                "smaller at the largest step, with an interval entirely below no change",
                claims.choose(
                    bool(r.low > 0),
                    "larger at the largest step, with an interval entirely above no change",
                    "not distinguishable from no change",
                ),
            ),
        )
    if "mse" in losses:
        em = e[e.loss == "mse"]
        numbers["start_above_07"] = int((em["initial_sharpness"] >= 0.7 * em["two_over_lr"]).sum())
        numbers["limit_07"] = float(0.7 * 2 / max(lrs["mse"]))
    markdown.update(_edge_sentences(e))
    markdown["corr_sentences"] = _correlation_sentences(losses, per_run, table, peak, n_boot, nulls)
    return Summary(
        preset=preset,
        seed=seed,
        n_seeds=len(config.seeds),
        n_boot=n_boot,
        fraction=fraction,
        method=method,
        losses=losses,
        lrs=lrs,
        overview=overview(runs),
        edges=e,
        edge_table=edge_table(e),
        per_run=per_run,
        correlations=table,
        peak=peak,
        correlation_table=correlation_table(table, n_boot=n_boot),
        trend_null=nulls,
        fragility=fragility,
        finals=fin,
        level=level,
        effects=effects,
        final_means=final_means(fin),
        curves=curves_frame(runs),
        jac_means={loss: m for loss, m in jacobian_means(runs).groupby("loss", sort=False)},
        dots=correlation_dots(table, losses),
        numbers=numbers,
        markdown=markdown,
    )


def edge_verdict(edge_rows: pd.DataFrame, loss: str, *, preset: str, n_seeds: int, fraction: float) -> claims.Verdict:
    """The edge-of-stability claim of ``loss`` from :func:`edges`: the runs that hover (``k`` of
    ``n`` runs), fragility leaving out each seed."""
    e = edge_rows[edge_rows.loss == loss]
    evidence = (
        f"{int(e['hovers'].sum())} of {len(e)} {LOSS_NAMES[loss]} runs end with a sharpness within "
        f"[{HOVER[0]:g}, {HOVER[1]:g}] times $2/\\eta$ (final ratios {e['ratio'].min():.2f} to "
        f"{e['ratio'].max():.2f}; {int(e['reached'].sum())} reach {fraction:g}·$2/\\eta$)."
    )
    return shared.count_verdict(
        EDGE_CLAIMS[loss],
        e,
        "hovers",
        evidence=evidence,
        preset=preset,
        n_seeds=n_seeds,
        label="share of runs hovering at 2/η",
    )


def trend_verdict(null: inference.TrendNull, fragility, *, preset: str, n_seeds: int, dif: str = "") -> claims.Verdict:
    """The co-movement claim from the squared-error runs' :func:`cross_run_null` before the edge."""
    evidence = (
        f"Before the edge, {trend_null_words(null)} (squared error, runs permuted within each step size"
        + (
            f"; the first-difference correlation, {dif}, is shown for comparison but does not remove a shared trend"
            if dif
            else ""
        )
        + ")."
    )
    return shared.permutation_verdict(
        TREND_CLAIM,
        null,
        fragility,
        evidence=evidence,
        preset=preset,
        n_seeds=n_seeds,
        label="mean within-run ρ(sharpness, max‖Jf‖)",
    )


def step_verdict(final_rows: pd.DataFrame, *, preset: str, n_seeds: int) -> claims.Verdict:
    """The step-size claim from :func:`finals`: :func:`step_changes` of the squared error, a t interval over seeds."""
    f = final_rows[final_rows.loss == "mse"]
    lo, hi = f.lr.min(), f.lr.max()

    def evidence(iv: inference.ClusterInterval) -> str:
        return (
            f"With the squared error, the final $\\max_i\\|Jf(x_i)\\|_2$ at $\\eta$ = {hi:g} changes by "
            f"{fmt_change(iv)} relative to $\\eta$ = {lo:g} (per seed, from the same initialisation; mean over seeds "
            "with a 95 % t interval over seeds)."
        )

    return claims.from_clusters(
        STEP_CLAIM,
        step_changes(final_rows, "mse"),
        unit="seeds",
        evidence=evidence,
        preset=preset,
        seeds=n_seeds,
        label="relative change of final max‖Jf‖, largest vs smallest η",
    )


def evaluate(summary: Summary) -> dict[str, claims.Verdict]:
    """The chapter's claims decided from ``summary`` (:func:`sharpjac.claims.evaluate`), by claim id."""
    out: dict[str, claims.Verdict] = {}
    common = {"preset": summary.preset, "n_seeds": summary.n_seeds}
    for loss in summary.losses:
        out[EDGE_CLAIMS[loss]] = edge_verdict(summary.edges, loss, fraction=summary.fraction, **common)
    if "mse" in summary.losses:
        dif = correlation_interval(summary.correlations, "mse", "differences", n_boot=summary.n_boot)
        null, fragility = summary.trend_null["mse"], summary.fragility[TREND_CLAIM]
        out[TREND_CLAIM] = trend_verdict(null, fragility, dif=fmt_correlation(dif), **common)
        out[STEP_CLAIM] = step_verdict(summary.finals, **common)
    return out


# ------------------------------------------------------------------------------------------------
# Known answers: each claim's rule on simulated records at the quick design (3 step sizes x 5 seeds)
# ------------------------------------------------------------------------------------------------

_QUICK = {"mse": ProgressiveSharpeningConfig.lrs_mse, "ce": ProgressiveSharpeningConfig.lrs_ce}
_QUICK_SEEDS = 5


def simulate_edge_runs(rng: np.random.Generator, loss: str, *, hovers: bool, n_meas: int = 20) -> pd.DataFrame:
    """Records of ``loss``'s quick runs (3 step sizes x 5 seeds, ``n_meas`` log-spaced measurements)
    whose sharpness rises from 0.4 x 2/eta to a plateau: at 2/eta with a +-8 % oscillation
    (``hovers=True``: the edge of stability) or, where the claim is false, at 0.60 to 0.78 x 2/eta
    (progressive sharpening that stalls below the edge, up to just outside the band); 3 %
    measurement noise. Columns as :func:`edges` reads them."""
    steps = np.concatenate([[0], np.unique(np.geomspace(1, 400, n_meas - 1).astype(int))])
    frames = []
    for lr in _QUICK[loss]:
        limit = 2.0 / lr
        for seed in range(_QUICK_SEEDS):
            level = limit * (1.0 if hovers else rng.uniform(0.60, 0.78))
            rise = 1 - np.exp(-steps / 60.0)
            wobble = 0.08 * np.sin(steps / 7.0 + rng.uniform(0, 2 * np.pi)) * rise if hovers else 0.0
            sharp = (
                (0.4 * limit + (level - 0.4 * limit) * rise) * (1 + wobble) * (1 + 0.03 * rng.normal(size=len(steps)))
            )
            frames.append(
                pd.DataFrame(
                    {
                        "loss": loss,
                        "lr": lr,
                        "seed": seed,
                        "step": steps,
                        "sharpness": sharp,
                        "curvature_norm": 1.0,
                        "train_acc": 0.9,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def _simulate_finals(rng: np.random.Generator, change: float) -> pd.DataFrame:
    """Final max‖Jf‖ of the squared-error quick runs: a per-seed level (log-normal, 20 %) shared by the
    seed's step sizes, 5 % run noise, and a relative ``change`` at the largest step (linear in between)."""
    lrs = _QUICK["mse"]
    rows = []
    for seed in range(_QUICK_SEEDS):
        base = np.exp(0.2 * rng.normal())
        for i, lr in enumerate(lrs):
            effect = 1 + change * i / (len(lrs) - 1)
            rows.append(
                {"loss": "mse", "lr": lr, "seed": seed, "final_jac": base * effect * np.exp(0.05 * rng.normal())}
            )
    return pd.DataFrame(rows)


for _loss in ("mse", "ce"):
    claims.known_answer(
        EDGE_CLAIMS[_loss],
        design=f"3 step sizes x 5 seeds ({LOSS_NAMES[_loss]}), 20 log-spaced measurements; a run hovers when the "
        "median of its last fifth lies in [0.8, 1.2] x 2/η; agree when at least 80 % of the runs hover",
        truth="true: sharpness settles at 2/η with a ±8 % oscillation; false: it stalls at 0.60-0.78 × 2/η; 3 % noise",
        simulate_false=lambda rng, _l=_loss: simulate_edge_runs(rng, _l, hovers=False),
        simulate_true=lambda rng, _l=_loss: simulate_edge_runs(rng, _l, hovers=True),
        decide=lambda runs, _l=_loss: edge_verdict(edges(runs), _l, preset="quick", n_seeds=5, fraction=0.9).outcome,
    )

claims.known_answer(
    TREND_CLAIM,
    design="3 step sizes x 5 seeds, 30 log-spaced measurements before the edge; runs permuted within a step size "
    "(999 permutations in the simulation, 9999 in the chapter)",
    truth="true: the Jacobian follows its own run's sharpness (5 % fluctuations, 2 % noise); false: the two share "
    "only their step size's saturating trend (1 % noise each)",
    simulate_false=lambda rng: shared.simulate_trend_runs(
        rng, "lr", _QUICK["mse"], coupled=False, extra={"loss": "mse"}
    ),
    simulate_true=lambda rng: shared.simulate_trend_runs(rng, "lr", _QUICK["mse"], coupled=True, extra={"loss": "mse"}),
    decide=lambda runs: (
        trend_verdict(cross_run_null(runs, "mse", n_permutations=999), None, preset="quick", n_seeds=5).outcome
    ),
)

claims.known_answer(
    STEP_CLAIM,
    design="3 step sizes x 5 seeds (squared error); per seed the relative change of the final max‖Jf‖ from the "
    "smallest to the largest step; t interval over the 5 seeds",
    truth="true: −10 % at the largest step (seed levels vary by 20 %, runs by 5 %); false: no change",
    simulate_false=lambda rng: _simulate_finals(rng, 0.0),
    simulate_true=lambda rng: _simulate_finals(rng, -0.10),
    decide=lambda finals: step_verdict(finals, preset="quick", n_seeds=5).outcome,
)


EXPERIMENT = register(
    NAME,
    ProgressiveSharpeningConfig,
    "full-batch GD, MSE and CE, 3 step sizes on equal time eta*t: sharpness to 2/lr, Jacobian",
    chapter="Progressive sharpening and the edge of stability",
    runner=run,
    chapter_configs=chapter_configs,
)
