r"""Losses and their output-space curvature :math:`C_i=\nabla_z^2\ell(f(x_i),y_i)`.

Two losses, both averaged over the batch, both taking int64 class ids as targets (the squared
error also takes real regression targets ``[N, k]`` of the outputs' shape, used as they are):

* ``"mse"``: :math:`\frac1N\sum_i\frac1k\|z_i-t_i\|^2` with :math:`t_i` the one-hot label,
  optionally smoothed: :math:`t_i=(1-\alpha)\,e_{y_i}+\alpha\,\mathbf 1/k`. This equals
  ``F.mse_loss(z, t)`` (mean over all entries). Its curvature is :math:`C=\frac2kI`.
* ``"ce"``: softmax cross-entropy :math:`-\sum_c t_c\log p_c` with :math:`p=\mathrm{softmax}(z)`
  and the same (smoothed) targets (``F.cross_entropy(z, y, label_smoothing=alpha)``). Since
  :math:`\sum_ct_c=1`, its curvature does not depend on the targets:
  :math:`C=\mathrm{diag}(p)-pp^\top`, whose spectral norm tends to 0 as the prediction becomes
  confident (the paper's first *mediating factor*).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from . import validation as V

__all__ = [
    "LOSS_NAMES",
    "constant_predictor_loss",
    "get_loss",
    "smoothed_targets",
    "output_curvature",
    "output_curvature_norm",
]

LOSS_NAMES = ("mse", "ce")


def _check(name: str, label_smoothing: float) -> None:
    V.one_of("loss", name, LOSS_NAMES)
    V.fraction("label_smoothing", label_smoothing, high_open=True)


def _check_io(outputs: torch.Tensor, targets: torch.Tensor) -> None:
    if outputs.ndim != 2:
        raise ValueError(f"outputs must have shape [N, k], got {tuple(outputs.shape)}")
    if targets.ndim != 1 or targets.shape[0] != outputs.shape[0]:
        raise ValueError(
            f"targets must have shape [N]={[outputs.shape[0]]} (int64 class ids), got {tuple(targets.shape)}"
        )
    if targets.dtype not in (torch.int64, torch.int32, torch.uint8, torch.int16):
        raise TypeError(f"targets must be integer class ids (int64), got dtype {targets.dtype}")


def smoothed_targets(
    targets: torch.Tensor, num_classes: int, label_smoothing: float = 0.0, *, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    r"""One-hot targets :math:`(1-\alpha)e_y+\alpha\mathbf1/k`, shape ``[N, k]``."""
    t = F.one_hot(targets.long(), num_classes).to(dtype)
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + label_smoothing / num_classes
    return t


def get_loss(
    name: str, *, label_smoothing: float = 0.0, reduction: str = "mean"
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    r"""Return ``loss_fn(outputs [N, k], targets [N] int64) -> scalar`` (or ``[N]``).

    Args:
        name: ``"mse"`` or ``"ce"``.
        label_smoothing: :math:`\alpha\in[0,1)`.
        reduction: ``"mean"`` (over the batch, the training loss) or ``"none"`` (per sample).
    """
    _check(name, label_smoothing)
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction={reduction!r} is not supported; accepted values: ('mean', 'none')")
    ls = float(label_smoothing)

    if name == "mse":

        def loss_fn(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            if targets.is_floating_point() and targets.shape == outputs.shape:
                t = targets.to(outputs.dtype)  # regression: real targets [N, k]
            else:
                _check_io(outputs, targets)
                t = smoothed_targets(targets, outputs.shape[1], ls, dtype=outputs.dtype)
            per = ((outputs - t) ** 2).mean(dim=1)
            return per.mean() if reduction == "mean" else per
    else:

        def loss_fn(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            _check_io(outputs, targets)
            return F.cross_entropy(outputs, targets.long(), label_smoothing=ls, reduction=reduction)

    loss_fn.__name__ = f"{name}_loss"
    loss_fn.__qualname__ = loss_fn.__name__
    return loss_fn


def output_curvature(
    name: str, outputs: torch.Tensor, targets: torch.Tensor, *, label_smoothing: float = 0.0
) -> torch.Tensor:
    r"""Per-sample output-space Hessians :math:`C_i=\nabla_z^2\ell(z_i,y_i)`, shape ``[N, k, k]``.

    ``"mse"``: :math:`\frac2kI`; ``"ce"``: :math:`\mathrm{diag}(p_i)-p_ip_i^\top` (independent of
    the label and of the smoothing). ``targets`` is only validated.
    """
    _check(name, label_smoothing)
    _check_io(outputs, targets)
    n, k = outputs.shape
    z = outputs.detach()
    if name == "mse":
        eye = torch.eye(k, dtype=z.dtype, device=z.device)
        return (2.0 / k) * eye.expand(n, k, k).clone()
    p = torch.softmax(z, dim=1)
    return torch.diag_embed(p) - p[:, :, None] * p[:, None, :]


def output_curvature_norm(
    name: str, outputs: torch.Tensor, targets: torch.Tensor, *, label_smoothing: float = 0.0
) -> float:
    r"""Mean spectral norm :math:`\frac1N\sum_i\|C_i\|_2` (the paper's first mediating factor)."""
    C = output_curvature(name, outputs, targets, label_smoothing=label_smoothing)
    if name == "mse":
        return float(2.0 / outputs.shape[1])
    # C_i is symmetric PSD: its spectral norm is its largest eigenvalue.
    ev = torch.linalg.eigvalsh(C.double())
    return float(ev[:, -1].clamp_min(0).mean())


def constant_predictor_loss(
    name: str, targets: torch.Tensor, num_classes: int, *, label_smoothing: float = 0.0
) -> float:
    r"""The training loss of the best *constant* predictor :math:`z_i=z` on ``targets``.

    With :math:`T\in\mathbb R^{N\times k}` the (smoothed one-hot, or regression) targets and
    :math:`\bar t=\frac1N\sum_iT_i`:

    * ``"mse"``: :math:`\min_z\frac1{Nk}\sum_i\|z-T_i\|^2=\frac1k\sum_j\frac1N\sum_i(T_{ij}-\bar t_j)^2`
      (the mean per-output variance, reached at :math:`z=\bar t`);
    * ``"ce"``: :math:`\min_p-\frac1N\sum_i\sum_cT_{ic}\log p_c=H(\bar t)=-\sum_c\bar t_c\log\bar t_c`
      (Gibbs' inequality, reached at :math:`p=\bar t`).

    It is the scale a loss is judged by in :func:`sharpjac.training.train`'s divergence rule: a run
    far above what predicting a constant achieves has blown up, whatever the loss.

    Args:
        name: ``"mse"`` or ``"ce"``; targets: int class ids ``[N]`` or regression targets ``[N, m]``
            (``"mse"`` only); num_classes: ``k`` (ignored for regression targets).
    """
    _check(name, label_smoothing)
    if targets.is_floating_point():
        if name != "mse":
            raise ValueError(f"name={name!r} with real-valued targets is invalid; accepted: 'mse'")
        t = targets.double().reshape(targets.shape[0], -1)
    else:
        t = smoothed_targets(targets, num_classes, label_smoothing, dtype=torch.float64)
    mean = t.mean(dim=0)
    if name == "mse":
        return float(((t - mean) ** 2).mean())
    positive = mean[mean > 0]
    return float(-(positive * positive.log()).sum())
