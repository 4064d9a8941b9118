"""Sharpness and the Jacobian over the whole run, with the mediating factors (paper App. Fig. 29).

The setting of Fig. 1 (mini-batch SGD with momentum, softmax cross-entropy) trained to
convergence instead of for a few epochs, and measured on a log-spaced schedule so that both the
early phase and the long late phase are resolved. The record carries the three mediating factors
of the paper's Section 3 (mean output curvature ``curvature_norm``, ``first_layer_norm``,
``feature_norm``), which the chapter uses to explain where the sharpness-Jacobian link weakens.
Two label-smoothing values are compared by default: without smoothing the cross-entropy
saturates (:math:`\\overline{\\|C\\|}\\to0`), with smoothing it cannot.

Presets are the project's own choices (the paper's are not known): ``quick`` uses 1,000 real MNIST
digits and a 100-100 tanh MLP; ``paper`` uses CIFAR-10 and ResNet-18 (a GPU and a local copy of CIFAR-10).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .. import analysis, claims, inference
from . import _smoothed_sgd as shared
from . import register
from ._smoothed_sgd import CURVES_MENU as SHARED_MENU
from ._smoothed_sgd import (
    PAPER,
    SMOKE,
    SharpeningSummary,
    SmoothedSGDConfig,
    block_configs,
    boot_resamples,
    check_method,
    each_run,
    fmt_interval,
    peak_index,
    run_labels,
    window_correlations,
)
from .base import run_experiment

NAME = "whole_run"


@dataclass(frozen=True)
class WholeRunConfig(SmoothedSGDConfig):
    """SGD with cross-entropy to convergence, log-spaced measurements.

    The shared fields are those of :class:`~sharpjac.experiments._smoothed_sgd.SmoothedSGDConfig`
    (data, model, ``smoothings``, the SGD run, ``max_epochs``: the length of the run,
    ``sharpness_subset``, ``jacobian_subset``); this experiment adds

    Attributes:
        measure_num: number of log-spaced measurement steps (plus step 0 and the last step).
        measure_every_epochs: also measure every that many epochs (None: only the log grid).
    """

    max_epochs: int = 40
    measure_num: int = 20
    measure_every_epochs: int | None = 8

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {**SMOKE, "max_epochs": 2, "measure_num": 4, "measure_every_epochs": None},
        "quick": dict(seeds=(0, 1, 2, 3, 4)),
        "paper": {**PAPER, "max_epochs": 100, "measure_num": 60, "measure_every_epochs": 5},
    }

    def _check_schedule(self) -> None:
        self._need_positive("measure_num")
        self._need(
            self.measure_every_epochs is None
            or (isinstance(self.measure_every_epochs, int) and self.measure_every_epochs >= 1),
            "measure_every_epochs",
            "None or an int >= 1",
        )

    def schedule(self) -> dict[str, Any]:
        steps = self.max_epochs * -(-self.n_train // self.batch_size)
        return {
            "measure_num": self.measure_num,
            "measure_every_epochs": self.measure_every_epochs,
            "checkpoint_every": max(1, steps // 10),
        }


def run(
    config: WholeRunConfig | None = None, *, store=None, force: bool = False, progress: bool | None = None
) -> pd.DataFrame:
    """Run the grid (one stored run per smoothing value and seed)."""
    config = WholeRunConfig.preset("quick") if config is None else config
    return run_experiment(config, name=NAME, store=store, force=force, progress=progress)


# ------------------------------------------------------------------------------------------------
# The chapter: its parameters become runs here, and its statistics are computed here
# ------------------------------------------------------------------------------------------------

#: The windows of a run: up to and including the sharpness peak, from the peak on, all of it.
PHASES = ("before_peak", "after_peak", "all")
#: The factors followed from the sharpness peak to the end (the three mediating factors last).
FACTORS = ("sharpness", "jac_spectral_max", "curvature_norm", "feature_norm", "first_layer_norm")
#: Reader names of the mediating factors.
MEDIATOR_NAMES = {
    "curvature_norm": "the output curvature",
    "feature_norm": "the feature norms",
    "first_layer_norm": "the first-layer weights",
}
#: The factors as the static figure names them (TeX), and the concept colour (``plotting.COLORS`` key) of each.
FACTOR_TEX = {
    "sharpness": "sharpness",
    "jac_spectral_max": r"$\max_i\|Jf(x_i)\|_2$",
    "curvature_norm": r"$\overline{\|C\|}$",
    "feature_norm": "mean feature norm",
    "first_layer_norm": r"$\|W_1\|_2$",
}
FACTOR_CONCEPTS = {
    "sharpness": "sharpness",
    "jac_spectral_max": "jacobian",
    "curvature_norm": "curvature",
    "feature_norm": "baseline",
    "first_layer_norm": "first_layer",
}
#: Reader labels of the mediator table (:attr:`Summary.mediators`).
MEDIATOR_LABELS = {
    "label_smoothing": "",
    "seed": "",
    "peak_step": "peak step",
    "decoupling": "decoupling Δlog s − Δlog ‖Jf‖",
    "dominant": "dominant factor",
    "accounts": "accounts for ≥ half",
    "dlog_sharpness": "Δlog sharpness",
    "dlog_jac_spectral_max": "Δlog max ‖Jf(xᵢ)‖₂",
    "dlog_curvature_norm": "Δlog C̄",
    "dlog_feature_norm": "Δlog feature norm",
    "dlog_first_layer_norm": "Δlog ‖W₁‖₂",
}
#: The interactive figure's menu (reader label -> column) and hover columns.
CURVES_MENU = {
    **{k: v for k, v in SHARED_MENU.items() if v != "train_loss"},
    "first-layer norm ‖W₁‖₂": "first_layer_norm",
    "feature norm": "feature_norm",
    "training loss": "train_loss",
}
CURVES_HOVER = ["label_smoothing", "seed", "step", "train_acc"]


def chapter_configs(preset: str, seed: int, n_seeds: int = 5) -> list[WholeRunConfig]:
    """The chapter's one config: ``n_seeds`` training seeds ``seed, seed+1, ...`` per smoothing value
    (1 at smoke, 3 at paper) and ``data_seed = seed``."""
    return block_configs(WholeRunConfig, preset, seed, n_seeds)


def check_params(*, window: int, method: str) -> None:
    """One-line ValueError for a bad rolling ``window`` (an int >= 3) or correlation ``method``."""
    check_method(method)
    if isinstance(window, bool) or not isinstance(window, int) or window < 3:
        raise ValueError(f"window={window!r}; accepted: an int >= 3")


def effective_window(window: int, n_meas: int) -> int:
    """The rolling window actually used: ``window``, but at most ``n_meas - 2`` and at least 3."""
    return int(min(window, max(3, n_meas - 2)))


def accuracy_sentence(runs: pd.DataFrame) -> str:
    """Whether (and by which step) every run reaches 100 % training accuracy."""
    full = runs[runs.train_acc >= 1.0].groupby(["label_smoothing", "seed"])["step"].min()
    n_full, n_all = int(full.notna().sum()), int(runs.groupby(["label_smoothing", "seed"]).ngroups)
    if n_full == n_all:
        return (
            f"Every run reaches 100 % training accuracy, at the latest by step {int(full.max())} of "
            f"{int(runs['step'].max())}; the rest of the run drives the loss further down."
        )
    return f"{n_full} of {n_all} runs reach 100 % training accuracy within {int(runs['step'].max())} steps."


def curves_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """The measurements after step 0 (the plots use a log step axis) with a ``run`` label
    (``"smoothing 0.1, seed 2"``, for :func:`sharpjac.interactive.curves`) and ``first``: the run
    has the first seed (the figures draw it thick)."""
    out = runs[runs.step > 0].copy()
    out["run"] = run_labels(out)
    out["first"] = out["seed"] == runs["seed"].min()
    return out


def rolling(runs: pd.DataFrame, window: int, *, method: str = "spearman") -> pd.DataFrame:
    r"""Per run, the rank correlation of sharpness and :math:`\max_i\|Jf(x_i)\|_2` in windows of
    ``window`` measurements (:func:`~sharpjac.analysis.rolling_correlation`), columns
    ``label_smoothing``, ``seed``, ``step``, ``rho`` and ``first`` (the run has the first seed)."""
    out = []
    for (ls, s), g in each_run(runs, ["label_smoothing", "seed"]):
        r = analysis.rolling_correlation(g["sharpness"], g["jac_spectral_max"], window, method)
        out.append(pd.DataFrame({"label_smoothing": ls, "seed": s, "step": g["step"].to_numpy(), "rho": r}))
    out = pd.concat(out, ignore_index=True)
    out["first"] = out["seed"] == out["seed"].min()
    return out


def phase_correlations(runs: pd.DataFrame, *, method: str = "spearman") -> pd.DataFrame:
    r"""Per run and phase (:data:`PHASES`; the peak is the first largest sharpness and belongs to
    both sides): ``n`` measurements, ``raw`` rank correlation of sharpness and
    :math:`\max_i\|Jf(x_i)\|_2` (NaN below 3) and that of their first ``differences`` (NaN below 4)."""
    rows = []
    for (ls, s), g in each_run(runs, ["label_smoothing", "seed"]):
        p = peak_index(g)
        for phase, w in (("before_peak", g.iloc[: p + 1]), ("after_peak", g.iloc[p:]), ("all", g)):
            corr = window_correlations(w["sharpness"], w["jac_spectral_max"], method)
            rows.append({"label_smoothing": ls, "seed": s, "phase": phase, "n": len(w), **corr})
    return pd.DataFrame(rows)


def summarise_phases(per_run: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Mean over seeds per (phase, smoothing) of the raw and first-difference correlations with a
    bootstrap interval (columns ``correlation``, ``phase``, ``label_smoothing``, ``mean``, ``low``,
    ``high``, ``runs``)."""
    out = []
    for value in ("raw", "differences"):
        t = analysis.summarise_correlations(
            per_run, by=("phase", "label_smoothing"), value=value, n_resamples=n_boot, seed=seed
        )
        t.insert(0, "correlation", value)
        out.append(t)
    return pd.concat(out, ignore_index=True)


def phase_text(summ: pd.DataFrame, phase: str, ls: float, value: str = "raw") -> str:
    """:func:`fmt_interval` of one row of :func:`summarise_phases`."""
    r = summ[(summ.phase == phase) & (summ.label_smoothing == ls) & (summ.correlation == value)].iloc[0]
    return fmt_interval(r["mean"], r["low"], r["high"], int(r["runs"]))


def phase_table(summ: pd.DataFrame, per_run: pd.DataFrame, smoothings) -> pd.DataFrame:
    """The reader's table: per smoothing and phase the raw and first-difference intervals and the
    median number of measurements."""
    return pd.DataFrame(
        [
            {
                "label smoothing": ls,
                "phase": phase.replace("_", " "),
                "raw": phase_text(summ, phase, ls),
                "first differences": phase_text(summ, phase, ls, "differences"),
                "median measurements": float(
                    per_run[(per_run.phase == phase) & (per_run.label_smoothing == ls)]["n"].median()
                ),
            }
            for ls in smoothings
            for phase in PHASES
        ]
    )


def mediator_table(runs: pd.DataFrame) -> pd.DataFrame:
    r"""Per run, the log changes of :data:`FACTORS` from the sharpness peak to the end
    (:func:`~sharpjac.analysis.log_changes`), the decoupling
    :math:`\Delta\log s-\Delta\log\|Jf\|`, the dominant mediating factor
    (:func:`~sharpjac.analysis.dominant_mediator`) and ``accounts``: that factor moves in the
    direction of the decoupling by at least half its size."""
    rows = []
    for (ls, s), g in each_run(runs, ["label_smoothing", "seed"]):
        peak = int(g["step"].iloc[peak_index(g)])
        last = int(g["step"].iloc[-1])
        ch = analysis.log_changes(g, list(FACTORS), peak, last)
        name, r, contrib = analysis.dominant_mediator(ch)
        rows.append(
            {
                "label_smoothing": ls,
                "seed": s,
                "peak_step": peak,
                "decoupling": r,
                "dominant": name,
                "accounts": name is not None and abs(contrib[name]) >= 0.5 * abs(r),
                **{f"dlog_{c}": v for c, v in ch.items()},
            }
        )
    return pd.DataFrame(rows)


def after_peak_factors(runs: pd.DataFrame) -> pd.DataFrame:
    """For the first seed of each smoothing value: the rows from the sharpness peak on, each factor of
    :data:`FACTORS` divided by its value at the peak (columns ``label_smoothing``, ``step`` and the
    factors), ready to plot."""
    out = []
    for (ls,), g in each_run(runs[runs.seed == runs.seed.min()], ["label_smoothing"]):
        peak = int(g["step"].iloc[peak_index(g)])
        after = g[g.step >= peak]
        ref = g[g.step == peak].iloc[0]
        frame = pd.DataFrame({"label_smoothing": ls, "step": after["step"].to_numpy()})
        for col in FACTORS:
            frame[col] = (after[col] / ref[col]).to_numpy()
        out.append(frame)
    return pd.concat(out, ignore_index=True)


def _phase_sentences(summ: pd.DataFrame, smoothings) -> list[str]:
    sent = [
        f"With smoothing {ls:g}, the rank correlation between sharpness and $\\max_i\\|Jf(x_i)\\|_2$ is "
        f"{phase_text(summ, 'before_peak', ls)} up to the sharpness peak and {phase_text(summ, 'after_peak', ls)} "
        f"after it (first differences: {phase_text(summ, 'before_peak', ls, 'differences')} and "
        f"{phase_text(summ, 'after_peak', ls, 'differences')}); over the whole run {phase_text(summ, 'all', ls)}."
        for ls in smoothings
    ]
    diff_before = summ[(summ.phase == "before_peak") & (summ.correlation == "differences")]
    survive = [bool(diff_before[diff_before.label_smoothing == ls]["low"].iloc[0] > 0) for ls in smoothings]
    sent.append(
        claims.choose(
            all(survive),
            "Before the peak the first-difference correlation stays above zero for every smoothing value: the two "
            "rise and fall in the same steps (a correlation of differences does not by itself remove a trend the "
            "runs share).",
            "Before the peak the first-difference correlation does not stay above zero for "
            + claims.choose(not any(survive), "any smoothing value", "every smoothing value")
            + ": the raw correlation there shows that both rise, not that they rise in the same steps.",
        )
    )
    return sent


def mediator_counts(mediators: pd.DataFrame) -> pd.DataFrame:
    """Per smoothing value, from the mediator table (:func:`mediator_table`, one row per run): the
    ``runs``, the runs in which a factor ``accounts`` for at least half the decoupling, the factor
    that does so most often (``top``, None when none does) and in how many runs (``top_runs``)."""
    rows = []
    for ls, v in mediators.groupby("label_smoothing"):
        acc = v[v["accounts"].astype(bool)]
        top = acc["dominant"].value_counts()
        rows.append(
            {
                "label_smoothing": ls,
                "runs": len(v),
                "accounts": len(acc),
                "top": top.index[0] if len(top) else None,
                "top_runs": int(top.iloc[0]) if len(top) else 0,
            }
        )
    return pd.DataFrame(rows)


def _mediator_sentence(verdicts: pd.DataFrame, smoothings) -> str:
    counts = mediator_counts(verdicts).set_index("label_smoothing")
    sent = []
    for ls in smoothings:
        v, c = verdicts[verdicts.label_smoothing == ls], counts.loc[ls]
        who = claims.choose(
            c["top"] is not None,
            f"**{MEDIATOR_NAMES.get(c['top'], 'none of the three')}** accounts for at least half of it in "
            f"{c['top_runs']} of {c['runs']} runs",
            "no mediating factor accounts for half of it in any run",
        )
        rest = claims.choose(
            c["top"] is not None and c["accounts"] > c["top_runs"],
            f" (another factor does in {c['accounts'] - c['top_runs']} more)",
            "",
        )
        sent.append(
            f"With smoothing {ls:g}, from the sharpness peak to the end of the run sharpness changes by "
            f"$\\Delta\\log s=$ {v['dlog_sharpness'].mean():.2f} and the Jacobian by "
            f"{v['dlog_jac_spectral_max'].mean():.2f} "
            f"(natural logs, means over seeds), a decoupling of {v['decoupling'].mean():.2f}; over the same stretch "
            f"$\\overline{{\\|C\\|}}$ changes by {v['dlog_curvature_norm'].mean():.2f}, the feature norm by "
            f"{v['dlog_feature_norm'].mean():.2f} and $\\|W_1\\|_2$ by {v['dlog_first_layer_norm'].mean():.2f}: "
            f"{who}{rest} (the table's column *accounts for ≥ half*)."
        )
    return " ".join(sent)


def weak_values(per_run: pd.DataFrame) -> dict[int, float]:
    """Per seed: the mean over smoothing values of ρ(after the peak) − ρ(up to the peak), the raw
    within-run correlations of :func:`phase_correlations` (runs with an undefined one left out)."""
    wide = per_run.pivot(index=["label_smoothing", "seed"], columns="phase", values="raw")
    change = (wide["after_peak"] - wide["before_peak"]).dropna()
    return {int(s): float(v) for s, v in change.groupby(level="seed").mean().items()}


def fmt_cluster(iv: inference.ClusterInterval) -> str:
    """``"m [lo, hi] (5 seeds)"``, or the estimate with *too few seeds*."""
    if not np.isfinite(iv.estimate):
        return "not defined"
    if iv.too_few:
        return f"{iv.estimate:.2f} (too few {iv.unit} for an interval: {iv.n})"
    return f"{iv.estimate:.2f} [{iv.low:.2f}, {iv.high:.2f}] ({iv.n} {iv.unit})"


@dataclass(frozen=True)
class Summary(SharpeningSummary):
    """Everything the chapter shows, computed from its runs (see :func:`summarise`).

    Attributes:
        preset, seed, n_seeds, n_boot, method: the chapter's parameters (``n_boot``: 200 at smoke, else 2000).
        window: the rolling window used (:func:`effective_window`); smoothings: sorted smoothing values.
        rolled: :func:`rolling`; per_run, phases: :func:`phase_correlations`, :func:`summarise_phases`.
        phase_table: :func:`phase_table`; weak: the mean over seeds of :func:`weak_values` with a t
            interval over seeds (the claim's number).
        verdicts: :func:`mediator_table`; mediators: the same with the dominant factor's reader
            name (the table the chapter shows); factors: :func:`after_peak_factors`.
        curves: :func:`curves_frame` (the figures' series).
        phase_verdict: the sentence on the trend null before the peak (part of the claim's evidence).
        numbers, markdown: the glued values and sentences.
    """

    window: int
    smoothings: list[float]
    rolled: pd.DataFrame
    per_run: pd.DataFrame
    phases: pd.DataFrame
    phase_table: pd.DataFrame
    weak: inference.ClusterInterval
    verdicts: pd.DataFrame
    mediators: pd.DataFrame
    factors: pd.DataFrame
    curves: pd.DataFrame
    phase_verdict: str
    numbers: dict[str, Any] = field(default_factory=dict)
    markdown: dict[str, str] = field(default_factory=dict)


def summarise(
    runs: pd.DataFrame,
    config: WholeRunConfig,
    *,
    preset: str,
    seed: int = 0,
    window: int = 7,
    method: str = "spearman",
) -> Summary:
    """Every table, number and sentence of the chapter from its runs (the output of :func:`run` on
    ``config``, the config :func:`chapter_configs` gave)."""
    check_params(window=window, method=method)
    n_boot = boot_resamples(preset)
    smoothings = sorted(runs["label_smoothing"].unique())
    groups = runs.groupby(["label_smoothing", "seed"])
    n_meas = int(groups.size().min())
    window = effective_window(window, n_meas)
    per_run = phase_correlations(runs, method=method)
    summ = summarise_phases(per_run, n_boot=n_boot, seed=seed)
    sent = _phase_sentences(summ, smoothings)
    wide = per_run.pivot(index=["label_smoothing", "seed"], columns="phase", values="raw")
    weak = inference.t_interval(list(weak_values(per_run).values()), unit="seeds")
    verdicts = mediator_table(runs)
    numbers = {
        "n_seeds": len(config.seeds),
        "n_runs": int(groups.ngroups),
        "n_meas": n_meas,
        "n_steps": int(runs["step"].max()),
        "window": window,
    }
    markdown = {
        "acc_sentence": accuracy_sentence(runs),
        "phase_sentence": " ".join(sent),
        "weak": fmt_cluster(weak),
        "weak_sentence": claims.choose(
            weak.too_few,
            "too few seeds to decide whether it changes",
            claims.choose(
                bool(weak.high < 0),
                "the link is weaker after the peak"
                + claims.choose(
                    bool((wide["after_peak"] < 0).mean() > 0.5),
                    ", and in most runs the two even move in *opposite* directions there",
                    "",
                ),
                claims.choose(
                    bool(weak.low > 0), "the link is *stronger* after the peak", "the change is not resolved"
                ),
            ),
        ),
        "mediator_sentence": _mediator_sentence(verdicts, smoothings),
    }
    return Summary(
        preset=preset,
        seed=seed,
        n_seeds=len(config.seeds),
        n_boot=n_boot,
        method=method,
        window=window,
        smoothings=smoothings,
        rolled=rolling(runs, window, method=method),
        per_run=per_run,
        phases=summ,
        phase_table=phase_table(summ, per_run, smoothings),
        weak=weak,
        verdicts=verdicts,
        mediators=verdicts.assign(dominant=verdicts["dominant"].map(MEDIATOR_NAMES).fillna("none of the three")),
        factors=after_peak_factors(runs),
        curves=curves_frame(runs),
        phase_verdict=sent[-1],
        numbers=numbers,
        markdown=markdown,
    )


WEAK_CLAIM = "whole_run.link_weakens_late"
MEDIATOR_CLAIM = "whole_run.mediators_account"


def weak_verdict(per_run: pd.DataFrame, *, preset: str, n_seeds: int, phase_verdict: str = "") -> claims.Verdict:
    """The late-weakening claim from :func:`phase_correlations`: :func:`weak_values`, a t interval over seeds."""

    def evidence(iv: inference.ClusterInterval) -> str:
        return (
            "Per seed (averaged over the smoothing values), the change of the within-run rank correlation of "
            f"sharpness and $\\max_i\\|Jf(x_i)\\|_2$ from up to the sharpness peak to after it is {fmt_cluster(iv)} "
            f"(mean over seeds, 95 % t interval over seeds). {phase_verdict}"
        ).strip()

    return claims.from_clusters(
        WEAK_CLAIM,
        weak_values(per_run),
        unit="seeds",
        evidence=evidence,
        preset=preset,
        seeds=n_seeds,
        label="ρ after peak − ρ before peak",
    )


def mediator_verdict(mediators: pd.DataFrame, *, preset: str, n_seeds: int) -> claims.Verdict:
    """The mediator claim from the mediator table the chapter shows: the runs whose column
    ``accounts`` holds, of all runs, fragility leaving out each seed."""
    counts = mediator_counts(mediators)
    per_value = "; ".join(
        f"smoothing {r.label_smoothing:g}: {r.accounts} of {r.runs} runs"
        + (f", most often {MEDIATOR_NAMES.get(r.top, r.top)} ({r.top_runs})" if r.top is not None else "")
        for r in counts.itertuples()
    )
    evidence = (
        f"In {int(mediators['accounts'].sum())} of {len(mediators)} runs a mediating factor moves, from the sharpness "
        f"peak to the end, in the direction of the decoupling by at least half its size ({per_value}; mean "
        f"decoupling {mediators['decoupling'].mean():.2f})."
    )
    hits = mediators.assign(accounts=mediators["accounts"].astype(bool))
    return shared.count_verdict(
        MEDIATOR_CLAIM,
        hits,
        "accounts",
        evidence=evidence,
        preset=preset,
        n_seeds=n_seeds,
        label="share of runs explained by a mediator",
    )


def evaluate(summary: Summary) -> dict[str, claims.Verdict]:
    """The chapter's two claims decided from ``summary`` (:func:`sharpjac.claims.evaluate`), by claim id."""
    common = {"preset": summary.preset, "n_seeds": summary.n_seeds}
    return {
        WEAK_CLAIM: weak_verdict(summary.per_run, phase_verdict=summary.phase_verdict, **common),
        MEDIATOR_CLAIM: mediator_verdict(summary.verdicts, **common),
    }


# ------------------------------------------------------------------------------------------------
# Known answers: each claim's rule on simulated records at the quick design (2 smoothings x 5 seeds)
# ------------------------------------------------------------------------------------------------

_SMOOTHINGS = WholeRunConfig.smoothings
_QUICK_SEEDS = 5
#: About the quick schedule: step 0, 23 log-spaced steps up to 400 x 40 / 4 steps.
_QUICK_STEPS = np.concatenate([[0], np.unique(np.geomspace(1, 4000, 23).astype(int))])


def simulate_link_runs(rng: np.random.Generator, *, weakens: bool) -> pd.DataFrame:
    """Whole-run records (2 smoothing values x 5 seeds, :data:`_QUICK_STEPS`): sharpness is a bump in
    log time peaking at the 9th measurement; the Jacobian follows it (15 % noise) before the peak
    and, where the claim is false, after it too (the same link); where it is true it keeps rising
    after the peak regardless of sharpness (the link breaks)."""
    u = np.log1p(_QUICK_STEPS)
    peak = u[8]
    frames = []
    for ls in _SMOOTHINGS:
        for seed in range(_QUICK_SEEDS):
            width = rng.uniform(1.5, 2.5)
            sharp = np.exp(-((u - peak) ** 2) / (2 * width**2)) * (1 + 0.02 * rng.normal(size=len(u)))
            jac = sharp * (1 + 0.15 * rng.normal(size=len(u)))
            if weakens:
                after = u > peak
                jac[after] = jac[8] * (1 + 0.1 * (u[after] - peak)) * (1 + 0.05 * rng.normal(size=after.sum()))
            frames.append(
                pd.DataFrame(
                    {
                        "label_smoothing": ls,
                        "seed": seed,
                        "step": _QUICK_STEPS,
                        "sharpness": sharp,
                        "jac_spectral_max": jac,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def simulate_mediator_runs(rng: np.random.Generator, *, accounted: bool) -> pd.DataFrame:
    """Records at step 0, the sharpness peak and the end (2 smoothing values x 5 seeds): from the
    peak sharpness falls (Δlog -0.5 ± 0.2) while the Jacobian rises (+0.3 ± 0.2), a decoupling near
    -0.8. Where the claim is true the output curvature falls with it (Δlog C̄ = decoupling ± 0.1, the
    other factors ± 0.1); where it is false the three factors move as much (sd 0.8 in log) but
    independently of the decoupling."""
    frames = []
    for ls in _SMOOTHINGS:
        for seed in range(_QUICK_SEEDS):
            ds, dj = -0.5 + 0.2 * rng.normal(), 0.3 + 0.2 * rng.normal()
            if accounted:
                dm = {
                    "curvature_norm": ds - dj + 0.1 * rng.normal(),
                    "feature_norm": 0.1 * rng.normal(),
                    "first_layer_norm": 0.1 * rng.normal(),
                }
            else:
                dm = {m: 0.8 * rng.normal() for m in MEDIATOR_NAMES}
            frame = {
                "label_smoothing": ls,
                "seed": seed,
                "step": [0, 100, 4000],
                "sharpness": [0.5, 1.0, np.exp(ds)],
                "jac_spectral_max": [0.5, 1.0, np.exp(dj)],
            }
            frame.update({m: [1.0, 1.0, np.exp(d)] for m, d in dm.items()})
            frames.append(pd.DataFrame(frame))
    return pd.concat(frames, ignore_index=True)


claims.known_answer(
    WEAK_CLAIM,
    design="2 smoothing values x 5 seeds, 24 log-spaced measurements, peak at the 9th; per seed the mean over the "
    "smoothing values of ρ(after the peak) − ρ(up to it); t interval over the 5 seeds",
    truth="true: after the peak the Jacobian keeps rising while sharpness falls; false: it follows sharpness "
    "(15 % noise) on both sides of the peak",
    simulate_false=lambda rng: simulate_link_runs(rng, weakens=False),
    simulate_true=lambda rng: simulate_link_runs(rng, weakens=True),
    decide=lambda runs: weak_verdict(phase_correlations(runs), preset="quick", n_seeds=5).outcome,
)

claims.known_answer(
    MEDIATOR_CLAIM,
    design="2 smoothing values x 5 seeds; log changes from the sharpness peak to the end; agree when a factor "
    "accounts for at least half the decoupling in every run (at least 5 runs)",
    truth="true: the output curvature falls by the decoupling (±0.1); false: the three factors move by as much "
    "(sd 0.8 in log) but independently of it",
    simulate_false=lambda rng: simulate_mediator_runs(rng, accounted=False),
    simulate_true=lambda rng: simulate_mediator_runs(rng, accounted=True),
    decide=lambda runs: mediator_verdict(mediator_table(runs), preset="quick", n_seeds=5).outcome,
)


EXPERIMENT = register(
    NAME,
    WholeRunConfig,
    "SGD + cross-entropy to convergence: sharpness, Jacobian and mediating factors over the whole run",
    chapter="The whole run (App. Fig. 29)",
    runner=run,
    chapter_configs=chapter_configs,
)
