"""What the book found: a short account computed from the claims' outcomes.

The scorecard and the landing page open with this account, before any count. Each *theme* groups
the registered claims that answer one question of the paper; its sentence is chosen from the
outcomes of those claims (never typed), so a build with other seeds or another preset that changes
an outcome changes the sentence with it. Checks (identities and proven bounds) get one line of
their own: they can fail only through a bug, so they say whether the code is sound, not whether
the paper is right.

Example:
    >>> t = Theme("demo", "Does it work?", ("a.x", "a.y"))
    >>> t.sentence({"a.x": "agree", "a.y": "agree"})
    '**Does it work?** The runs support the paper: both claims agree.'
    >>> t.sentence({"a.x": "agree", "a.y": "disagree"})
    '**Does it work?** Mixed: 1 of 2 claims agree, 1 disagrees.'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Theme", "THEMES", "account", "checks_sentence", "fragility_sentence"]

_NOT_RUN = "not run"


def _count_words(k: int, n: int) -> str:
    return "both claims" if n == 2 and k == 2 else ("the claim" if n == 1 else f"all {n} claims")


@dataclass(frozen=True)
class Theme:
    """A question of the paper and the claims that answer it.

    Attributes:
        name: a short key (for anchors and tests).
        question: the question in a few words (bold at the start of its sentence).
        claim_ids: registered claim ids, in the order they should be read.
    """

    name: str
    question: str
    claim_ids: tuple[str, ...]

    def tally(self, outcomes: Mapping[str, str]) -> dict[str, int]:
        """``{"agree": a, "disagree": d, "inconclusive": i, "not run": r}`` over this theme's claims."""
        out = {"agree": 0, "disagree": 0, "inconclusive": 0, _NOT_RUN: 0}
        for cid in self.claim_ids:
            o = outcomes.get(cid, _NOT_RUN)
            out[o if o in out else _NOT_RUN] += 1
        return out

    def sentence(self, outcomes: Mapping[str, str]) -> str:
        """One Markdown sentence chosen by the outcomes of this theme's claims."""
        t = self.tally(outcomes)
        n = len(self.claim_ids)
        run = n - t[_NOT_RUN]
        lead = f"**{self.question}**"
        if run == 0:
            return f"{lead} Not answered in this build: none of its {n} claims was run."
        a, d, i = t["agree"], t["disagree"], t["inconclusive"]
        if a == run:
            verdict = f"The runs support the paper: {_count_words(a, run)} agree"
        elif d == run:
            verdict = f"The runs contradict the paper: {_count_words(d, run)} disagree"
        elif i == run:
            verdict = f"Undecided: the numbers cannot decide {_count_words(i, run)}"
        else:
            parts = [f"{a} of {run} claims agree"]
            if d:
                parts.append(f"{d} {'disagrees' if d == 1 else 'disagree'}")
            if i:
                parts.append(f"{i} {'is' if i == 1 else 'are'} inconclusive")
            verdict = "Mixed: " + ", ".join(parts)
        missing = f" ({t[_NOT_RUN]} not run)" if t[_NOT_RUN] else ""
        return f"{lead} {verdict}{missing}."


#: The questions the book answers, in reading order (claim ids from :mod:`sharpjac.claims`).
THEMES: tuple[Theme, ...] = (
    Theme(
        "hessian",
        "Is the top of the Hessian the Gauss-Newton part?",
        (
            "hessian_structure.outliers_from_gauss_newton",
            "hessian_structure.outliers_per_class",
            "hessian_structure.residual_shrinks",
        ),
    ),
    Theme(
        "ansatz",
        "Do sharpness and the Jacobian move together, and do the mediating factors act as the ansatz says?",
        (
            "ansatz.move_together",
            "ansatz.saturation_mediates",
            "ansatz.smoothing_keeps_curvature",
            "ansatz.first_layer_blind_spot",
        ),
    ),
    Theme(
        "dynamics",
        "During training, does the Jacobian follow sharpness?",
        (
            "progressive_sharpening.jacobian_rises_with_sharpness",
            "early_training.jacobian_tracks_sharpness",
            "early_training.curvature_explains_scale",
            "whole_run.link_weakens_late",
            "whole_run.mediators_account",
        ),
    ),
    Theme(
        "stability",
        "Does the stability limit 2/η cap sharpness and, through it, the Jacobian?",
        (
            "progressive_sharpening.edge_of_stability",
            "progressive_sharpening.edge_of_stability_ce",
            "progressive_sharpening.larger_step_smaller_jacobian",
        ),
    ),
    Theme(
        "generalisation",
        "Across settings, does the Jacobian order the runs by their generalisation gap better than sharpness?",
        (
            "weight_decay.jacobian_tracks_gap",
            "batch_size.jacobian_tracks_gap_fixed_epochs",
            "batch_size.jacobian_tracks_gap_fixed_updates",
            "batch_size.high_rate_exception",
            "learning_rate.jacobian_beats_sharpness",
            "learning_rate.gap_tracks_jacobian",
            "regularisers.jacobian_beats_sharpness",
            "t4_generalisation.bound_ranks_runs",
        ),
    ),
    Theme(
        "baselines",
        "Does the Jacobian predict the gap better than sharpness and simple baselines (training loss, "
        "parameter norm, output norm, margin), with the training loss held fixed?",
        tuple(
            f"{chapter}.jacobian_beats_baselines_{gap}"
            for chapter in (
                "weight_decay",
                "sam_augmentation",
                "batch_size",
                "learning_rate",
                "regularisers",
                "causal_test",
            )
            for gap in ("loss_gap", "acc_gap")
        ),
    ),
    Theme(
        "regularisers",
        "Do regularisers that help generalisation lower the Jacobian (and not always sharpness)?",
        (
            "weight_decay.lowers_gap",
            "weight_decay.raises_sharpness",
            "sam_augmentation.sam_lowers_gap",
            "sam_augmentation.sam_lowers_jacobian",
            "sam_augmentation.sam_lowers_sharpness",
            "sam_augmentation.augmentation_lowers_gap",
            "sam_augmentation.augmentation_lowers_jacobian",
            "learning_rate.larger_step_lower_gap",
            "learning_rate.larger_step_lower_jacobian",
            "learning_rate.larger_step_lower_sharpness",
            "regularisers.effective_lower_jacobian",
        ),
    ),
    Theme(
        "causal",
        "Does lowering the Jacobian directly lower sharpness and the gap, and raise test accuracy?",
        (
            "causal_test.penalty_lowers_jacobian",
            "causal_test.penalty_lowers_sharpness",
            "causal_test.sharpness_at_equal_loss",
            "causal_test.penalty_lowers_gap",
            "causal_test.penalty_raises_test_accuracy",
        ),
    ),
    Theme(
        "theory",
        "Do the theorems' rates show in data?",
        (
            "t1_covering.rate_d1",
            "t1_covering.rate_d2",
            "t1_covering.rate_d3",
            "t1_covering.rate_d4",
            "t3_low_loss.random_labels_force_growth",
        ),
    ),
)


def checks_sentence(outcomes: Mapping[str, str], check_ids: Sequence[str]) -> str:
    """The checks' line: all pass, some fail (a bug), or some not run."""
    n = len(check_ids)
    if n == 0:
        return ""
    failed = [c for c in check_ids if outcomes.get(c) == "disagree"]
    passed = sum(outcomes.get(c) == "agree" for c in check_ids)
    lead = "**Are the code's identities and the theorems' bounds intact?**"
    if failed:
        return (
            f"{lead} No: {len(failed)} of {n} checks fail ({', '.join(f'`{c}`' for c in failed)}), which can "
            "only come from a bug; distrust the numbers until it is fixed."
        )
    if passed == n:
        return f"{lead} Yes: all {n} checks pass (they can fail only through a bug, so they are not tallied)."
    return f"{lead} {passed} of {n} checks pass; the others were not run or could not be decided."


def fragility_sentence(fragile: Mapping[str, bool | None]) -> str:
    """How many decided outcomes one seed or grid point alone can change.

    Args:
        fragile: ``{claim id: True/False/None}`` for the tallied claims that were run (None: not
            assessed, e.g. a single study).
    """
    assessed = {cid: f for cid, f in fragile.items() if f is not None}
    if not assessed:
        return ""
    flips = sorted(cid for cid, f in assessed.items() if f)
    lead = "**How firm are these outcomes?**"
    if not flips:
        return (
            f"{lead} None of the {len(assessed)} assessed outcomes changes when any one seed or grid point is left out."
        )
    return (
        f"{lead} {len(flips)} of the {len(assessed)} assessed outcomes change when one seed or grid point is left "
        "out (marked *fragile* on the scorecard); read them as tentative."
    )


def account(
    outcomes: Mapping[str, str],
    *,
    check_ids: Sequence[str] = (),
    registered: Sequence[str] | None = None,
    fragile: Mapping[str, bool | None] | None = None,
) -> list[str]:
    """The findings as Markdown bullets: one per theme, the fragility line, then the checks' line.

    Args:
        outcomes: ``{claim id: outcome}`` of this build (ids missing are *not run*).
        check_ids: the registered checks.
        registered: the registered claim ids (default: every theme's); a theme keeps only these,
            and a theme left with none is not shown.
        fragile: ``{claim id: fragile}`` of the tallied claims (see :func:`fragility_sentence`).
    """
    keep = None if registered is None else set(registered)
    themes = [
        t if keep is None else Theme(t.name, t.question, tuple(c for c in t.claim_ids if c in keep)) for t in THEMES
    ]
    lines = [f"- {t.sentence(outcomes)}" for t in themes if t.claim_ids]
    firm = fragility_sentence(fragile or {})
    if firm:
        lines.append(f"- {firm}")
    checks = checks_sentence(outcomes, check_ids)
    if checks:
        lines.append(f"- {checks}")
    return lines
