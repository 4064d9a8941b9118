r"""End-of-run measurements of the flat-minima grids: what a trained network's record does not hold.

At the end of every run of the six flat-minima chapters (:mod:`._grid`) the trained network is
measured once more:

* the **local variation** of the Jacobian :math:`V_i=\sup_{x'\in B(x_i,r)}\|Jf(x')-Jf(x_i)\|_2`
  at a fixed set of training points (:func:`sharpjac.jacobians.local_variation`; its maximum and
  mean), with :math:`r` by default the :func:`nearest_neighbour_radius`;
* the Jacobian statistics on test points;
* the data losses without label smoothing, and two baseline predictors of the gap that need
  neither the Hessian nor the Jacobian: the mean output norm ``logit_norm`` and the mean logit
  ``margin`` over the training points.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["END_COLUMNS", "EndMeasurements", "end_measurements", "nearest_neighbour_radius"]

#: Columns added by :func:`end_measurements` (filled on each run's last row only).
END_COLUMNS = (
    "local_variation_max",
    "local_variation_mean",
    "test_jac_spectral_max",
    "test_jac_spectral_mean",
    "test_jac_frobenius_max",
    "test_jac_frobenius_mean",
    "variation_radius",
    "train_loss_unsmoothed",
    "test_loss_unsmoothed",
    "gap_loss_unsmoothed",
    "logit_norm",
    "margin",
)


def _is_num(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def nearest_neighbour_radius(
    x_train: torch.Tensor, x_test: torch.Tensor, *, points: int = 500, chunk_size: int = 256
) -> float:
    r"""Median over test points of the Euclidean distance to the nearest training point.

    An empirical scale for the covering radius :math:`\delta` of the theorems: a test point is
    typically within this distance of the training sample.

    Args:
        x_train: ``[N, *input_shape]``; x_test: ``[M, *input_shape]`` (the first ``points`` are used).
        points: number of test points (>= 1).
        chunk_size: test points per distance block.
    """
    if not (isinstance(points, int) and points >= 1):
        raise ValueError(f"points={points!r} is invalid; accepted: an int >= 1")
    if x_train.ndim < 2 or x_test.ndim < 2 or x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"x_train and x_test must be batches of equal input shape, got {tuple(x_train.shape)} "
            f"and {tuple(x_test.shape)}"
        )
    if len(x_train) == 0 or len(x_test) == 0:
        raise ValueError("x_train and x_test must be non-empty")
    a = x_train.flatten(1).double()
    b = x_test[:points].flatten(1).double()
    mins = torch.cat([torch.cdist(b[i : i + chunk_size], a).min(dim=1).values for i in range(0, len(b), chunk_size)])
    return float(mins.median())


@dataclass(frozen=True)
class EndMeasurements:
    """What :func:`end_measurements` returns (see there); ``as_dict()`` keys are :data:`END_COLUMNS`."""

    local_variation_max: float
    local_variation_mean: float
    test_jac_spectral_max: float
    test_jac_spectral_mean: float
    test_jac_frobenius_max: float
    test_jac_frobenius_mean: float
    variation_radius: float
    train_loss_unsmoothed: float
    test_loss_unsmoothed: float
    gap_loss_unsmoothed: float
    logit_norm: float
    margin: float

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def end_measurements(
    model: torch.nn.Module,
    x_train: torch.Tensor,
    x_test: torch.Tensor,
    *,
    radius: float,
    centres: int,
    samples: int,
    ascent_steps: int,
    test_points: int,
    seed: int,
    y_train: torch.Tensor | None = None,
    y_test: torch.Tensor | None = None,
    loss: str | None = None,
    chunk_size: int = 2048,
) -> EndMeasurements:
    r"""Measurements of a trained network that its training record does not hold.

    * ``local_variation_max`` / ``_mean``: max / mean over ``centres`` training points (a seeded
      random subset) of :func:`sharpjac.jacobians.local_variation` with radius ``radius``
      (a lower estimate of :math:`\sup_{x'\in B(x_i,r)}\|Jf(x')-Jf(x_i)\|_2`);
    * ``test_jac_*``: :func:`sharpjac.jacobians.jacobian_stats` on the first ``test_points`` test
      points;
    * ``variation_radius``: ``radius``;
    * with ``loss`` and the labels: ``train_loss_unsmoothed``, ``test_loss_unsmoothed`` (mean
      data loss **without** label smoothing on the whole training / test set) and their difference
      ``gap_loss_unsmoothed``. The training record's losses are the objective's (smoothed for a
      label-smoothed run), so these put every run's gap on the same loss;
    * ``logit_norm``: :math:`\frac1N\sum_{i=1}^N\|f(x_i)\|_2` over the whole training set
      (outputs ``[N, K]``);
    * ``margin`` (needs ``y_train``; NaN without): :math:`\frac1N\sum_{i=1}^N\big(f(x_i)_{y_i}
      -\max_{k\ne y_i}f(x_i)_k\big)`, negative for a misclassified point.

    A model with batch norm is measured in eval mode (as the training record is) and put back in
    the mode it was in.

    Args:
        model: the trained network. x_train, x_test: inputs ``[N, *input_shape]`` (model's dtype
            and device). radius: r > 0. centres, samples, ascent_steps: see
            :func:`~sharpjac.jacobians.local_variation`. test_points: >= 1. seed: keyword-only.
        y_train, y_test: class labels ``[N]``, ``[M]`` (needed with ``loss``).
        loss: ``"ce"`` or ``"mse"`` (None: skip the unsmoothed losses, NaN).
        chunk_size: inputs per forward pass for the outputs and the losses.
    """
    from .. import jacobians
    from .. import losses as _losses
    from ..models import has_batch_norm

    if not (_is_num(radius) and radius > 0):
        raise ValueError(f"radius={radius!r} is invalid; accepted: a float > 0")
    for name, v in (("centres", centres), ("samples", samples), ("test_points", test_points)):
        if not (isinstance(v, int) and v >= 1):
            raise ValueError(f"{name}={v!r} is invalid; accepted: an int >= 1")
    g = torch.Generator().manual_seed(int(seed))
    idx = torch.randperm(len(x_train), generator=g)[:centres].sort().values.to(x_train.device)
    bn = has_batch_norm(model)
    was_training = model.training
    if bn:
        model.train(False)
    try:
        lv = jacobians.local_variation(
            model, x_train[idx], float(radius), num_samples=samples, ascent_steps=ascent_steps, seed=int(seed)
        )
        ts = jacobians.jacobian_stats(model, x_test[:test_points])
        with torch.no_grad():
            out_train = torch.cat(
                [model(x_train[a : a + chunk_size]).double() for a in range(0, len(x_train), chunk_size)]
            )
        logit_norm = float(out_train.flatten(1).norm(dim=1).mean())
        margin = float("nan")
        if y_train is not None and out_train.shape[1] > 1:
            yy = y_train.to(out_train.device).long()
            true = out_train.gather(1, yy[:, None])[:, 0]
            others = out_train.scatter(1, yy[:, None], float("-inf"))
            margin = float((true - others.max(dim=1).values).mean())
        plain = {}
        if loss is not None:
            if y_train is None or y_test is None:
                raise ValueError("loss given without y_train and y_test; accepted: both label tensors")
            fn = _losses.get_loss(loss, reduction="none")
            for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
                with torch.no_grad():
                    vals = torch.cat(
                        [
                            fn(model(x[a : a + chunk_size]), y[a : a + chunk_size]).double()
                            for a in range(0, len(x), chunk_size)
                        ]
                    )
                plain[name] = float(vals.mean())
    finally:
        if bn:
            model.train(was_training)
    lv = lv.double()
    nan = float("nan")
    return EndMeasurements(
        local_variation_max=float(lv.max()),
        local_variation_mean=float(lv.mean()),
        test_jac_spectral_max=float(ts.spectral_max),
        test_jac_spectral_mean=float(ts.spectral_mean),
        test_jac_frobenius_max=float(ts.frobenius_max),
        test_jac_frobenius_mean=float(ts.frobenius_mean),
        variation_radius=float(radius),
        train_loss_unsmoothed=plain.get("train", nan),
        test_loss_unsmoothed=plain.get("test", nan),
        gap_loss_unsmoothed=plain.get("test", nan) - plain.get("train", nan),
        logit_norm=logit_norm,
        margin=margin,
    )
