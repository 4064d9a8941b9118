r"""Temporary: the full-batch fitting helper of the old theory chapters (to be removed)."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ._common import _check_positive_int

# --------------------------------------------------------------------------------------------
# small training helper and statistics
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        steps: measured steps ``[T]`` (numpy int).
        train_loss: full-batch training loss at those steps ``[T]``.
        snapshots: ``{step: state_dict}`` (deep copies) at the requested steps.
        diverged: whether the loss became non-finite (training stopped there).
    """

    steps: np.ndarray
    train_loss: np.ndarray
    snapshots: Mapping[int, dict]
    diverged: bool


def fit(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    loss: str = "mse",
    lr: float = 0.1,
    steps: int = 1000,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    snapshot_steps: Sequence[int] = (),
    record_every: int = 10,
    target_loss: float | None = None,
) -> FitResult:
    r"""Full-batch gradient descent on a small model, keeping snapshots of the parameters.

    A minimal loop for the theory chapters, which need the trained *model* (for Jacobians away
    from the sample, local variations, paths) and regression targets, which
    :func:`sharpjac.training.train` does not provide. Update (``torch.optim.SGD``):
    :math:`\theta\leftarrow\theta-\eta(\nabla\mathcal L(\theta)+\lambda\theta)` (with heavy-ball
    momentum if given). The model is trained **in place**.

    Losses: ``"mse"``: :math:`\frac1N\sum_i\frac1k\|f(x_i)-t_i\|^2` with :math:`t_i` the one-hot
    label (int ``y``) or the real target (float ``y`` ``[N, k]``); ``"ce"``: softmax
    cross-entropy (int ``y``).

    Args:
        model: the network (trained in place).
        x: inputs ``[N, ...]``; y: int64 labels ``[N]`` or float targets ``[N, k]``.
        loss: ``"mse"`` or ``"ce"``.
        lr, steps, weight_decay, momentum: optimiser settings.
        snapshot_steps: steps (0..steps) at which a copy of ``model.state_dict()`` is kept.
        record_every: loss recorded every this many steps (and at the last step).
        target_loss: stop once the training loss is at most this (a snapshot is then taken).

    Returns:
        :class:`FitResult`.
    """
    if loss not in ("mse", "ce"):
        raise ValueError(f"loss={loss!r}; accepted: 'mse', 'ce'")
    steps = _check_positive_int("steps", steps, 0)
    record_every = _check_positive_int("record_every", record_every)
    if y.dtype.is_floating_point:
        if loss != "mse":
            raise ValueError("loss='ce' needs int64 class labels y [N]")

        def loss_fn(z: Tensor) -> Tensor:
            return ((z - y.to(z.dtype)) ** 2).mean()
    else:
        from .. import losses as _losses

        base = _losses.get_loss(loss)

        def loss_fn(z: Tensor) -> Tensor:
            return base(z, y)

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    wanted = set(int(s) for s in snapshot_steps)
    snaps: dict[int, dict] = {}
    rec_s, rec_l = [], []
    diverged = False
    for t in range(steps + 1):
        opt.zero_grad(set_to_none=True)
        value = loss_fn(model(x))
        lv = float(value.detach())
        stop = target_loss is not None and lv <= target_loss
        if t % record_every == 0 or t == steps or stop:
            rec_s.append(t)
            rec_l.append(lv)
        if t in wanted or stop:
            snaps[t] = copy.deepcopy(model.state_dict())
        if not math.isfinite(lv):
            diverged = True
            break
        if t == steps or stop:
            break
        value.backward()
        opt.step()
    return FitResult(steps=np.asarray(rec_s), train_loss=np.asarray(rec_l), snapshots=snaps, diverged=diverged)


def rank_agreement(a: Any, b: Any) -> float:
    r"""Kendall's :math:`\tau_b` between two score vectors (1: same ranking, -1: reversed)."""
    from scipy.stats import kendalltau

    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape or a.size < 2:
        raise ValueError(f"a and b must have the same length >= 2; got {a.size} and {b.size}")
    return float(kendalltau(a, b).statistic)
