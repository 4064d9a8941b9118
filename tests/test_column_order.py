"""The wide experiment tables show the gap and the sharpness first, then the Jacobian statistics, then
the baselines (the order the chapters read them in); only the display order is fixed here."""

from __future__ import annotations

import pytest

from sharpjac.experiments import batch_size, causal_test, learning_rate, regularisers, sam_augmentation, weight_decay

_GAP = {"gap_loss", "gap_acc", "gap", "gap_change"}
_SHARPNESS = {"sharpness", "s", "s_ratio"}
_JACOBIAN = {"jac_spectral_max", "jac_spectral_mean", "jac_frobenius_max", "jac_frobenius_mean", "j", "j_ratio"}
_BASELINES = {"train_loss", "train_acc", "test_acc", "margin", "param_norm", "logit_norm", "trl"}


def _rank(column: str) -> int | None:
    for rank, group in enumerate((_GAP, _SHARPNESS, _JACOBIAN, _BASELINES)):
        if column in group:
            return rank
    return None  # grid axes, intervals and other columns keep their place


@pytest.mark.parametrize(
    "columns",
    [
        weight_decay.POINT_COLUMNS,
        sam_augmentation.POINT_COLUMNS,
        batch_size.POINT_COLUMNS,
        causal_test.MEAN_COLUMNS,
        tuple(batch_size.CHANGE_LABELS),
        tuple(weight_decay.WITHIN_LABELS),
        tuple(sam_augmentation.EFFECT_LABELS),
        tuple(regularisers.EFFECT_LABELS),
        ("gap_loss", *learning_rate.WITHIN_COLUMNS),
    ],
    ids=[
        "wd-points",
        "sam-points",
        "bs-points",
        "causal-means",
        "bs-changes",
        "wd-within",
        "sam-effects",
        "reg-effects",
        "lr-within",
    ],
)
def test_gap_and_sharpness_come_before_the_jacobian_and_the_baselines(columns):
    ranks = [r for r in map(_rank, columns) if r is not None]
    assert ranks == sorted(ranks), columns
    assert ranks[0] in (0, 1)  # the table starts with the gap or the sharpness
