r"""What :func:`sharpjac.training.train` does at its measured steps and at the end: hooks.

The training loop only updates parameters. Everything it *keeps* is done by hooks, objects with
three optional methods:

* ``on_measure(run, row)``: called at every scheduled step :math:`t` (the state after :math:`t`
  updates, before update :math:`t+1`); adds columns to the record's row ``row`` (a dict) or
  keeps something of its own;
* ``on_end(run) -> Mapping | None``: called once with the final network; what it returns is kept
  in :attr:`sharpjac.training.TrainResult.end` under the hook's ``name``;
* ``state_dict()`` / ``load_state_dict(state)``: what the hook must carry across a checkpoint
  so that a resumed run ends exactly as an uninterrupted one (tensors, numbers, strings, lists and
  dicts only: checkpoints are loaded with ``torch.load(weights_only=True)``).

Two hooks are always present: :class:`Measurements` (the record's columns, see
:data:`sharpjac.training.METRIC_COLUMNS`) and :class:`Snapshots` (copies of the network at the
configured steps and at the end, which the run store keeps). ``train(config, hooks=[...])``
appends your own after them.

>>> from sharpjac.hooks import TrainHook
>>> class Norm(TrainHook):
...     name = "norm"
...     def on_end(self, run):
...         return {"param_norm": float(sum((p.detach() ** 2).sum() for p in run.model.parameters()) ** 0.5)}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["RunContext", "TrainHook", "Measurements", "Snapshots"]


@dataclass
class RunContext:
    """The state a hook sees (shared with the loop; do not modify the model's parameters).

    Attributes:
        config: the :class:`~sharpjac.training.TrainConfig` being run.
        model: the network, in the config's dtype and on its device.
        step: number of updates done so far.
        lr: the learning rate of the next update.
        epoch: ``step / steps_per_epoch``.
        x_train, y_train, x_test, y_test: the data (``y``: int64 class ids ``[N]`` or float
            regression targets ``[N, m]``).
        loss_fn: the mean data loss ``loss_fn(outputs, targets)`` (no penalty, no L2).
        sum_loss_fn: the same loss per sample (``reduction="none"``).
        trained: the parameters the optimiser updates (all of them unless
            ``config.trainable_layers`` restricts it).
        sharpness_data, jacobian_data: the fixed measurement subsets ``(x, y)`` (None: skipped).
        regression: True when the targets are real vectors (accuracies are NaN).
        chunks: ``chunks(n)`` yields ``(start, stop)`` physical batches of a full-batch pass.
    """

    config: Any
    model: nn.Module
    step: int
    lr: float
    epoch: float
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    loss_fn: Any
    sum_loss_fn: Any
    trained: list[torch.Tensor]
    sharpness_data: tuple[torch.Tensor, torch.Tensor] | None
    jacobian_data: tuple[torch.Tensor, torch.Tensor] | None
    regression: bool
    chunks: Any


class TrainHook:
    """Base class of hooks: override what you need (see the module docstring)."""

    name = "hook"

    def on_measure(self, run: RunContext, row: dict[str, Any]) -> None:
        """Add columns to ``row`` (the record's row of step ``run.step``)."""

    def on_end(self, run: RunContext) -> Mapping[str, Any] | None:
        """Values computed on the final network, kept in ``TrainResult.end[self.name]``."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must carry for this hook."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


class _EvalMode:
    """Put a model with batch norm into eval mode for a measurement; restore the previous mode."""

    def __init__(self, model: nn.Module, active: bool):
        self.model, self.active = model, active

    def __enter__(self):
        self.prev = self.model.training
        if self.active:
            self.model.train(False)

    def __exit__(self, *exc):
        if self.active:
            self.model.train(self.prev)


def evaluate(run: RunContext, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float, torch.Tensor]:
    """``(mean loss, accuracy, outputs)`` of the model on ``(x, y)`` in physical chunks.

    The accuracy is NaN for regression targets.
    """
    outs = []
    with torch.no_grad():
        for a, b in run.chunks(x.shape[0]):
            outs.append(run.model(x[a:b]))
    out = torch.cat(outs)
    loss = float(run.sum_loss_fn(out, y).double().mean())
    acc = float("nan") if run.regression else float((out.argmax(1) == y).double().mean())
    return loss, acc, out


class Measurements(TrainHook):
    r"""The record's columns at a measured step (see :mod:`sharpjac.training` for their meaning).

    The top Hessian eigenvalue is computed by :func:`sharpjac.curvature.lanczos` warm-started
    from the previous measurement's eigenvector (carried across checkpoints), on the **full**
    Hessian of the data loss with respect to *all* parameters, also when only some layers train.
    The Hessian operator keeps the graph of its first backward across the products of one solve
    (graph reuse, see :class:`sharpjac.curvature.HessianOperator`); when the Hessian's data is the
    whole training set, that first backward also gives the gradient norm, so the measurement does
    one forward and first backward pass less.
    """

    name = "measurements"

    def __init__(self) -> None:
        self.vectors: dict[str, torch.Tensor] = {}

    def state_dict(self) -> dict[str, Any]:
        return {k: v.detach().cpu() for k, v in self.vectors.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.vectors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}

    def on_measure(self, run: RunContext, row: dict[str, Any]) -> None:
        from . import curvature as _curv
        from . import jacobians as _jac
        from . import losses as _losses
        from . import models as _models
        from ._util import derive_seed

        c = run.config
        model = run.model
        params = [p for p in model.parameters() if p.requires_grad]
        nan = float("nan")
        with _EvalMode(model, _models.has_batch_norm(model)):
            tr_loss, tr_acc, out = evaluate(run, run.x_train, run.y_train)
            row.update(train_loss=tr_loss, train_acc=tr_acc)
            te_loss, te_acc = evaluate(run, run.x_test, run.y_test)[:2] if c.eval_test else (nan, nan)
            row.update(test_loss=te_loss, test_acc=te_acc)
            finite = math.isfinite(tr_loss)
            if not finite:
                row["curvature_norm"] = nan
            elif run.regression:  # C = (2/m) I for the mean squared error over m outputs
                row["curvature_norm"] = 2.0 / out.shape[1]
            else:
                row["curvature_norm"] = _losses.output_curvature_norm(
                    c.loss, out, run.y_train, label_smoothing=c.label_smoothing
                )
            op = None
            if run.sharpness_data is not None and finite:
                op = _curv.HessianOperator(model, run.loss_fn, run.sharpness_data, batch_size=c.physical_batch_size)
            sd = run.sharpness_data
            if op is not None and sd[0] is run.x_train and sd[1] is run.y_train:
                # the Hessian's data is the training set: its kept first backward is the gradient
                gflat = op.gradient()
                row["grad_norm"] = float(torch.linalg.vector_norm(gflat.double()))
            else:
                grads = [torch.zeros_like(p) for p in params]
                n = run.x_train.shape[0]
                for a, b in run.chunks(n):
                    part = run.loss_fn(model(run.x_train[a:b]), run.y_train[a:b]) * ((b - a) / n)
                    grads = [g0 + g1 for g0, g1 in zip(grads, torch.autograd.grad(part, params))]
                row["grad_norm"] = float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads)))
            with torch.no_grad():
                row["param_norm"] = float(torch.sqrt(sum((p.detach().double() ** 2).sum() for p in params)))
                first = next(p for p in params if p.ndim >= 2)
                W = first.detach().flatten(1).double()
                row["first_layer_norm"] = float(torch.linalg.matrix_norm(W, ord=2)) if finite else nan
            row.update(
                sharpness=nan, sharpness_residual=nan, sharpness_matvecs=0, sharpness_converged=False, gn_sharpness=nan
            )
            if op is not None:
                res = _curv.lanczos(
                    op,
                    k=1,
                    max_iter=c.lanczos_max_iter,
                    tol=c.lanczos_tol,
                    v0=self.vectors.get("hessian"),
                    seed=derive_seed(c.seed, "lanczos", run.step),
                )
                self.vectors["hessian"] = res.eigenvectors[:, 0].detach().clone()
                row.update(
                    sharpness=float(res.eigenvalues[0]),
                    sharpness_residual=float(res.residuals[0]),
                    sharpness_matvecs=int(res.num_matvecs),
                    sharpness_converged=bool(res.converged),
                )
                if c.measure_gn:
                    gop = _curv.GaussNewtonOperator(
                        model, run.loss_fn, run.sharpness_data, batch_size=c.physical_batch_size
                    )
                    gres = _curv.lanczos(
                        gop,
                        k=1,
                        max_iter=c.lanczos_max_iter,
                        tol=c.lanczos_tol,
                        v0=self.vectors.get("gauss_newton"),
                        seed=derive_seed(c.seed, "gn", run.step),
                    )
                    self.vectors["gauss_newton"] = gres.eigenvectors[:, 0].detach().clone()
                    row["gn_sharpness"] = float(gres.eigenvalues[0])
                op.release_graph()
            row.update(
                jac_spectral_max=nan,
                jac_spectral_mean=nan,
                jac_frobenius_max=nan,
                jac_frobenius_mean=nan,
                feature_norm=nan,
            )
            if run.jacobian_data is not None and finite:
                xj = run.jacobian_data[0]
                js = _jac.jacobian_stats(model, xj)
                row.update(
                    jac_spectral_max=float(js.spectral_max),
                    jac_spectral_mean=float(js.spectral_mean),
                    jac_frobenius_max=float(js.frobenius_max),
                    jac_frobenius_mean=float(js.frobenius_mean),
                )
                head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
                feats: list[torch.Tensor] = []
                handle = head.register_forward_hook(lambda m, inp, out: feats.append(inp[0].detach()))
                try:
                    with torch.no_grad():
                        for a, b in run.chunks(xj.shape[0]):
                            model(xj[a:b])
                finally:
                    handle.remove()
                F_ = torch.cat(feats).flatten(1).double()
                row["feature_norm"] = float(torch.linalg.vector_norm(F_, dim=1).mean())


class Snapshots(TrainHook):
    """Copies (CPU ``state_dict``) of the network after each of ``steps`` updates, and at the end.

    The copies travel with checkpoints, so a resumed run has them all. The run store writes them
    as ``model-<step>.pt`` (see :mod:`sharpjac.runs`).
    """

    name = "snapshots"

    def __init__(self, steps) -> None:
        self.steps = {int(s) for s in steps}
        self.states: dict[int, dict[str, torch.Tensor]] = {}

    @staticmethod
    def _copy(model: nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}

    def on_measure(self, run: RunContext, row: dict[str, Any]) -> None:
        if run.step in self.steps:
            self.states[run.step] = self._copy(run.model)

    def on_end(self, run: RunContext) -> None:
        self.states[run.step] = self._copy(run.model)
        return None

    def state_dict(self) -> dict[str, Any]:
        return {str(k): v for k, v in self.states.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.states = {int(k): dict(v) for k, v in state.items()}
