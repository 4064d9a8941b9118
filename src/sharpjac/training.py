r"""Training with curvature and Jacobian tracking.

One function, :func:`train`, runs one :class:`TrainConfig` and returns a tidy
:class:`pandas.DataFrame` with one row per measurement. Everything the paper's experiments vary
is a config field: full-batch gradient descent (the edge-of-stability setting) or mini-batch SGD,
heavy-ball momentum, weight decay, label smoothing, SAM, data augmentation, a Jacobian penalty,
learning-rate schedules and stopping rules.

The update
----------
With the mini-batch (or full-batch) objective
:math:`\mathcal J_B(\theta)=\mathcal L_B(\theta)+\lambda_J\,\widehat{\|Jf\|_F^2}` (data loss plus
the optional Jacobian penalty), learning rate :math:`\eta_t`, momentum :math:`\mu` and weight
decay :math:`\lambda`, one step is ``torch.optim.SGD``'s:

.. math::
    g_t = \nabla\mathcal J_B(\tilde\theta_t) + \lambda\theta_t,\qquad
    b_t = \mu b_{t-1} + g_t\ (b_0=g_0),\qquad \theta_{t+1} = \theta_t - \eta_t b_t .

Weight decay is therefore **coupled L2 regularisation** (the gradient of
:math:`\frac\lambda2\|\theta\|^2` added to the gradient, then run through momentum), not the
decoupled (AdamW-style) decay. Without SAM :math:`\tilde\theta_t=\theta_t`; with SAM radius
:math:`\rho>0` (Foret et al. 2021)
:math:`\tilde\theta_t=\theta_t+\rho\,\nabla\mathcal J_B(\theta_t)/\|\nabla\mathcal J_B(\theta_t)\|`
(the ascent uses the data objective only, not the L2 term; the same mini-batch is used for
both gradients), and the step is taken from :math:`\theta_t`.

Jacobian penalty (Hoffman et al. 2019): per sample draw :math:`v_i` uniformly on the unit sphere
of :math:`\mathbb R^k`; since :math:`\mathbb E[v v^\top]=I/k`,
:math:`\widehat{\|Jf\|_F^2}=\frac1B\sum_i k\,\|\nabla_x (v_i^\top f(x_i))\|^2` is unbiased; it is
differentiated with ``create_graph=True``. (With batch norm in training mode samples interact and
the estimate is only approximate.)

Randomness and exact resumption
-------------------------------
Nothing draws from an advancing random stream. The batch order of epoch :math:`e` comes from a
generator seeded by ``(seed, e)``, the augmentation and penalty directions of step :math:`t`
from ``(seed, t)``, the fixed measurement subsets from ``seed``. So a run resumed from a
checkpoint draws exactly what an uninterrupted run draws, and ends with a bitwise-identical record
(checkpoints therefore hold no random-generator state). A run uses exactly ``threads`` torch
threads, a field of its configuration and so of its run key: the same key gives the same numbers
whatever the machine's load.

Hooks
-----
What a run keeps is done by hooks (:mod:`sharpjac.hooks`): the record's measurements, snapshots of
the network, and anything a caller adds (``train(config, hooks=[...])``).

Measurements
------------
At scheduled steps :math:`t` and at ``snapshot_steps`` (the state after :math:`t` updates; step 0 is the initialisation,
the last step is always measured) a row records: ``train_loss, train_acc`` (full training set,
data loss without penalty or L2), ``test_loss, test_acc``; ``sharpness`` = top eigenvalue of the
Hessian of the data loss on a fixed subset (at most ``sharpness_subset`` points; the number
used is recorded as ``attrs["sharpness_points"]``), by
:func:`sharpjac.curvature.lanczos` warm-started from the previous top eigenvector (with its
residual, number of products and convergence flag); optionally ``gn_sharpness`` (top eigenvalue
of the Gauss-Newton matrix on the same subset); ``jac_spectral_max, jac_spectral_mean,
jac_frobenius_max, jac_frobenius_mean`` of the input-output Jacobian on a fixed subset
(at most ``jacobian_subset`` points, ``attrs["jacobian_points"]``) by
:func:`sharpjac.jacobians.jacobian_stats`; the mediating
factors ``curvature_norm`` (mean :math:`\|C_i\|` over the training set,
:func:`sharpjac.losses.output_curvature_norm`), ``first_layer_norm`` (spectral norm of the first
weight matrix; for a convolution, of its kernel reshaped to ``[out, in*kh*kw]``),
``feature_norm`` (mean Euclidean norm of the input of the final Linear layer on the Jacobian
subset); ``grad_norm`` (norm of the full-training-set gradient of the data loss) and
``param_norm``. Models with batch norm are measured in eval mode and put back in the mode they
were in. Wall times are kept out of the record (see :attr:`TrainResult`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import losses as _losses
from . import models as _models
from . import rehearsal as _rehearsal
from ._util import derive_seed, generator, jsonable, progress_enabled, resolve_device
from .hooks import Measurements, RunContext, Snapshots, TrainHook
from .validation import is_int as _is_int
from .validation import is_real as _is_num

__all__ = [
    "TrainConfig",
    "TrainResult",
    "train",
    "initial_model",
    "trainable_parameters",
    "check_batch_size",
    "data_digest",
    "sam_gradient",
    "jacobian_penalty",
    "augment_batch",
    "lr_at",
    "measurement_steps",
    "OPTIMIZERS",
    "LR_SCHEDULES",
    "DTYPES",
    "METRIC_COLUMNS",
]

OPTIMIZERS = ("gd", "sgd")
LR_SCHEDULES = ("constant", "cosine", "step")
DTYPES = ("float32", "float64")

#: a run that completes with its training loss above this multiple of its initial loss is warned about
ENDED_ABOVE = 2.0

METRIC_COLUMNS = (
    "step",
    "epoch",
    "lr",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "sharpness",
    "sharpness_residual",
    "sharpness_matvecs",
    "sharpness_converged",
    "gn_sharpness",
    "jac_spectral_max",
    "jac_spectral_mean",
    "jac_frobenius_max",
    "jac_frobenius_mean",
    "curvature_norm",
    "first_layer_norm",
    "feature_norm",
    "grad_norm",
    "param_norm",
    "diverged",
)


def _freeze(obj):
    """Make JSON-like options canonical: mappings -> sorted dicts, sequences -> tuples."""
    if isinstance(obj, Mapping):
        return {str(k): _freeze(v) for k, v in sorted(obj.items())}
    if isinstance(obj, (list, tuple)):
        return tuple(_freeze(v) for v in obj)
    return obj


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one training run (hashed by :mod:`sharpjac.runs`).

    Data:
        dataset: a name known to :func:`sharpjac.data.load` (``"mnist5k", "digits", "manifold",
            "cifar10", "cifar100"``); dataset_options: extra keyword arguments for it;
            (sizes go here, e.g. ``{"n_train": 1000, "n_test": 500}``; the split is stratified);
        data_seed: seed given to the loader (the train/test split).
    Model:
        model: ``"mlp", "linear", "small_cnn", "resnet18"`` (:func:`sharpjac.models.build_model`);
        model_options: its keyword arguments (e.g. ``{"widths": [200, 200], "activation": "tanh"}``).
    Objective:
        loss: ``"mse"`` or ``"ce"``; label_smoothing in [0, 1);
        jacobian_penalty: coefficient of the Hoffman et al. penalty (0: off);
        jacobian_penalty_projections: random projections per sample.
    Optimiser:
        optimizer: ``"gd"`` (full batch; ``batch_size`` must be None) or ``"sgd"`` (mini-batch;
            ``batch_size=None`` also means full batch); lr > 0; momentum in [0, 1);
        weight_decay >= 0 (coupled L2, see module docstring); batch_size; sam_rho >= 0 (0: off);
        augment: random crops (padding 4) and horizontal flips for 3-channel images, random
            shifts of up to 2 pixels for 1-channel images;
        lr_schedule: ``"constant"``, ``"cosine"`` (to ``lr_min`` over the run) or ``"step"``
            (times ``lr_step_gamma`` every ``lr_step_every`` steps).
    Stopping (at least one of max_steps / max_epochs):
        max_steps, max_epochs; target_train_loss, target_train_acc (checked at measurements).
    Measurements:
        measure_every (steps), measure_every_epochs, measure_num (that many log-spaced steps);
        several may be combined (union); step 0 and the last step are always measured;
        sharpness_subset / jacobian_subset: the sharpness (Jacobian) is measured on a fixed random
            subset of *at most* that many training points: all of them when the training set has
            fewer (the presets' small training sets keep the paper's default of 1000 / 500), None:
            all, 0: skip. The number actually used is recorded, never left implied: the record's
            ``attrs`` and the stored ``meta.json`` hold ``sharpness_points`` / ``jacobian_points``
            (0 when skipped). A negative or non-integer value is refused;
        measure_gn: also the top Gauss-Newton eigenvalue; lanczos_tol, lanczos_max_iter;
        eval_test: measure the test set.
    Execution:
        physical_batch_size: chunk size for full-batch gradients and measurements;
        seed: initialisation, batch order, augmentation, subsets; dtype ``"float32"|"float64"``;
        device ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``...;
        checkpoint_every: steps between checkpoints (None: never; used by :mod:`sharpjac.runs`);
        threads: torch threads the run uses (part of the run's key: results can differ in the last
            bits between thread counts, so the count is configuration, not machine state);
        divergence_factor: a run diverges when its loss is not finite or exceeds this multiple of
            its initial training loss;
        divergence_baseline_factor: ... or exceeds this multiple of the loss of the best constant
            predictor on its training targets (:func:`sharpjac.losses.constant_predictor_loss`:
            :math:`\\ln k` for balanced cross-entropy, the per-output target variance for the squared
            error). The second rule catches cross-entropy blow-ups, whose initial loss is already
            near :math:`\\ln k`, so that a rule relative to the start alone rarely trips.
    Partial training and snapshots:
        trainable_layers: 1-based blocks of :func:`sharpjac.jacobians.split_layers` that the
            optimiser updates (None: all). The other parameters stay fixed but keep
            ``requires_grad``, so the measured sharpness is that of the full Hessian;
        snapshot_steps: steps at which a copy of the network is kept (and measured); the final
            network is always kept (:attr:`TrainResult.snapshots`).
        Both are *sets*: they are stored sorted (any order gives the same run), and a value given
        twice is refused (ValueError), never silently merged.
    Regression: a data set with ``num_classes == 0`` (``manifold`` with ``task="regression"``) has
    float targets ``[N, m]``; the network gets ``m`` outputs and the loss must be ``"mse"``
    (the mean over samples and outputs of the squared error); accuracies are NaN.
    """

    dataset: str = "mnist5k"
    dataset_options: Mapping[str, Any] = field(default_factory=dict)
    data_seed: int = 0
    model: str = "mlp"
    model_options: Mapping[str, Any] = field(default_factory=dict)
    loss: str = "mse"
    label_smoothing: float = 0.0
    optimizer: str = "gd"
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int | None = None
    sam_rho: float = 0.0
    augment: bool = False
    jacobian_penalty: float = 0.0
    jacobian_penalty_projections: int = 1
    lr_schedule: str = "constant"
    lr_min: float = 0.0
    lr_step_every: int | None = None
    lr_step_gamma: float = 0.1
    max_steps: int | None = None
    max_epochs: int | None = None
    target_train_loss: float | None = None
    target_train_acc: float | None = None
    measure_every: int | None = None
    measure_every_epochs: int | None = None
    measure_num: int | None = None
    sharpness_subset: int | None = 1000
    jacobian_subset: int | None = 500
    measure_gn: bool = False
    lanczos_tol: float = 1e-3
    lanczos_max_iter: int = 30
    eval_test: bool = True
    physical_batch_size: int | None = 2048
    seed: int = 0
    dtype: str = "float32"
    device: str = "auto"
    checkpoint_every: int | None = None
    trainable_layers: tuple[int, ...] | None = None
    snapshot_steps: tuple[int, ...] = ()
    divergence_factor: float = 1e3
    divergence_baseline_factor: float = 100.0
    threads: int = 1

    def __post_init__(self):
        if _rehearsal.active():  # the paper rehearsal's caps (sharpjac.rehearsal, rule 4)
            for name, value in _rehearsal.train_values(dataclasses.asdict(self)).items():
                object.__setattr__(self, name, value)
        for name in ("dataset_options", "model_options"):
            v = getattr(self, name)
            if not isinstance(v, Mapping):
                raise TypeError(f"TrainConfig.{name} must be a mapping of options, got {type(v).__name__}")
            object.__setattr__(self, name, _freeze(dict(v)))
        # canonical numbers, so that lr=1 and lr=1.0 (or numpy scalars) give the same run key
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.type in ("float", "float | None") and _is_num(v):
                object.__setattr__(self, f.name, float(v))
            elif f.type in ("int", "int | None") and isinstance(v, np.integer):
                object.__setattr__(self, f.name, int(v))
        for name in ("trainable_layers", "snapshot_steps"):
            v = getattr(self, name)
            if v is None and name == "trainable_layers":
                continue
            if not isinstance(v, (list, tuple, set, frozenset)) or not all(_is_int(x) for x in v):
                raise ValueError(
                    f"TrainConfig.{name}={v!r} is invalid; accepted: a list of ints"
                    + (" or None" if name == "trainable_layers" else "")
                )
            ints = [int(x) for x in v]
            dup = sorted({x for x in ints if ints.count(x) > 1})
            if dup:
                raise ValueError(
                    f"TrainConfig.{name}={v!r} is invalid: {dup} given more than once; accepted: a list of "
                    "distinct ints (a set of " + ("layers" if name == "trainable_layers" else "steps") + ", any order)"
                )
            object.__setattr__(self, name, tuple(sorted(ints)))
        self.validate()

    # -- validation ----------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise ValueError/TypeError naming the field, its value and what is accepted."""

        def need(cond: bool, name: str, accepted: str) -> None:
            if not cond:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r} is invalid; accepted: {accepted}")

        def opt_pos_int(name: str, allow_zero: bool = False) -> None:
            v = getattr(self, name)
            lo = 0 if allow_zero else 1
            need(v is None or (_is_int(v) and v >= lo), name, f"None or an int >= {lo}")

        from . import data as _data

        need(self.dataset in _data.available(), "dataset", f"one of {sorted(_data.available())}")
        need(_is_int(self.data_seed) and 0 <= self.data_seed < 2**32, "data_seed", "an int in [0, 2**32)")
        need(
            "dtype" not in self.dataset_options,
            "dataset_options",
            "data-set options without 'dtype' (use TrainConfig.dtype)",
        )
        need(self.model in _models.MODEL_NAMES, "model", f"one of {_models.MODEL_NAMES}")
        need(self.loss in _losses.LOSS_NAMES, "loss", f"one of {_losses.LOSS_NAMES}")
        need(
            _is_num(self.label_smoothing) and 0.0 <= self.label_smoothing < 1.0, "label_smoothing", "a float in [0, 1)"
        )
        need(self.optimizer in OPTIMIZERS, "optimizer", f"one of {OPTIMIZERS}")
        need(_is_num(self.lr) and math.isfinite(self.lr) and self.lr > 0, "lr", "a finite float > 0")
        need(_is_num(self.momentum) and 0.0 <= self.momentum < 1.0, "momentum", "a float in [0, 1)")
        need(_is_num(self.weight_decay) and self.weight_decay >= 0, "weight_decay", "a float >= 0")
        opt_pos_int("batch_size")
        if self.optimizer == "gd" and self.batch_size is not None:
            raise ValueError(
                f"TrainConfig.batch_size={self.batch_size!r} is invalid with optimizer='gd' (full-batch "
                "gradient descent); accepted: None, or use optimizer='sgd' for mini-batches"
            )
        need(_is_num(self.sam_rho) and self.sam_rho >= 0, "sam_rho", "a float >= 0 (0 turns SAM off)")
        need(isinstance(self.augment, bool), "augment", "True or False")
        need(
            _is_num(self.jacobian_penalty) and self.jacobian_penalty >= 0,
            "jacobian_penalty",
            "a float >= 0 (0 turns the penalty off)",
        )
        need(
            _is_int(self.jacobian_penalty_projections) and self.jacobian_penalty_projections >= 1,
            "jacobian_penalty_projections",
            "an int >= 1",
        )
        need(self.lr_schedule in LR_SCHEDULES, "lr_schedule", f"one of {LR_SCHEDULES}")
        need(_is_num(self.lr_min) and 0 <= self.lr_min <= self.lr, "lr_min", "a float in [0, lr]")
        opt_pos_int("lr_step_every")
        need(_is_num(self.lr_step_gamma) and self.lr_step_gamma > 0, "lr_step_gamma", "a float > 0")
        if self.lr_schedule == "step" and self.lr_step_every is None:
            raise ValueError(
                "TrainConfig.lr_step_every=None is invalid with lr_schedule='step'; "
                "accepted: an int >= 1 (steps between decays)"
            )
        opt_pos_int("max_steps")
        opt_pos_int("max_epochs")
        if self.max_steps is None and self.max_epochs is None:
            raise ValueError(
                "TrainConfig.max_steps=None and max_epochs=None: at least one must be set; "
                "accepted: an int >= 1 for either"
            )
        need(
            self.target_train_loss is None or (_is_num(self.target_train_loss) and self.target_train_loss >= 0),
            "target_train_loss",
            "None or a float >= 0",
        )
        need(
            self.target_train_acc is None or (_is_num(self.target_train_acc) and 0 <= self.target_train_acc <= 1),
            "target_train_acc",
            "None or a float in [0, 1]",
        )
        opt_pos_int("measure_every")
        opt_pos_int("measure_every_epochs")
        opt_pos_int("measure_num")
        opt_pos_int("sharpness_subset", allow_zero=True)
        opt_pos_int("jacobian_subset", allow_zero=True)
        need(isinstance(self.measure_gn, bool), "measure_gn", "True or False")
        need(_is_num(self.lanczos_tol) and self.lanczos_tol > 0, "lanczos_tol", "a float > 0")
        need(_is_int(self.lanczos_max_iter) and self.lanczos_max_iter >= 1, "lanczos_max_iter", "an int >= 1")
        need(isinstance(self.eval_test, bool), "eval_test", "True or False")
        opt_pos_int("physical_batch_size")
        need(_is_int(self.seed) and 0 <= self.seed < 2**32, "seed", "an int in [0, 2**32)")
        need(self.dtype in DTYPES, "dtype", f"one of {DTYPES}")
        need(
            isinstance(self.device, str) and (self.device == "auto" or _valid_device(self.device)),
            "device",
            "'auto', 'cpu', 'cuda' or 'cuda:N'",
        )
        opt_pos_int("checkpoint_every")
        need(
            self.trainable_layers is None or (len(self.trainable_layers) > 0 and self.trainable_layers[0] >= 1),
            "trainable_layers",
            "None (all layers) or a non-empty list of 1-based layer indices",
        )
        need(all(s >= 0 for s in self.snapshot_steps), "snapshot_steps", "a list of ints >= 0")
        need(
            _is_num(self.divergence_factor) and math.isfinite(self.divergence_factor) and self.divergence_factor > 1,
            "divergence_factor",
            "a finite float > 1 (a loss above that multiple of its initial value diverges)",
        )
        need(
            _is_num(self.divergence_baseline_factor)
            and math.isfinite(self.divergence_baseline_factor)
            and self.divergence_baseline_factor > 1,
            "divergence_baseline_factor",
            "a finite float > 1 (a loss above that multiple of a constant predictor's loss diverges)",
        )
        need(_is_int(self.threads) and self.threads >= 1, "threads", "an int >= 1 (torch threads of the run)")

    # -- helpers -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict of all fields (tuples become lists; :func:`sharpjac._util.jsonable`)."""
        return {f.name: jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s) {unknown}; accepted: {sorted(names)}")
        return cls(**dict(d))

    def replace(self, **changes) -> TrainConfig:
        """``dataclasses.replace`` with validation (unknown fields raise ValueError)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s) {unknown}; accepted: {sorted(names)}")
        return dataclasses.replace(self, **changes)


def _valid_device(s: str) -> bool:
    try:
        torch.device(s)
        return True
    except (RuntimeError, TypeError):
        return False


# ------------------------------------------------------------------------------------------------
# Schedules
# ------------------------------------------------------------------------------------------------


def lr_at(config: TrainConfig, step: int, total_steps: int) -> float:
    r"""Learning rate :math:`\eta_t` for the step from :math:`\theta_t` to :math:`\theta_{t+1}`.

    constant: :math:`\eta`; cosine: :math:`\eta_{\min}+\frac12(\eta-\eta_{\min})(1+\cos(\pi t/T))`;
    step: :math:`\eta\,\gamma^{\lfloor t/s\rfloor}`.
    """
    if config.lr_schedule == "constant":
        return float(config.lr)
    if config.lr_schedule == "cosine":
        frac = min(step, total_steps) / max(total_steps, 1)
        return float(config.lr_min + 0.5 * (config.lr - config.lr_min) * (1 + math.cos(math.pi * frac)))
    return float(config.lr * config.lr_step_gamma ** (step // config.lr_step_every))


def measurement_steps(config: TrainConfig, total_steps: int, steps_per_epoch: int) -> set[int]:
    """The set of steps at which the state is measured (always includes 0 and ``total_steps``)."""
    steps = {0, int(total_steps)}
    if config.measure_every:
        steps.update(range(0, total_steps + 1, config.measure_every))
    if config.measure_every_epochs:
        steps.update(range(0, total_steps + 1, config.measure_every_epochs * steps_per_epoch))
    if config.measure_num:
        ls = np.unique(np.round(np.geomspace(1, max(total_steps, 1), config.measure_num)).astype(int))
        steps.update(int(s) for s in ls)
    return {s for s in steps if 0 <= s <= total_steps}


# ------------------------------------------------------------------------------------------------
# Building blocks (public for testing)
# ------------------------------------------------------------------------------------------------


def augment_batch(x: torch.Tensor, *, seed: int) -> torch.Tensor:
    """Random augmentation of a batch of images ``[B, C, H, W]`` (new tensor; input untouched).

    3 channels (CIFAR-like): zero-pad 4 pixels, random crop back to ``H x W``, horizontal flip with
    probability 1/2. Otherwise (MNIST-like): random shift by up to 2 pixels in each direction
    (zero fill). Randomness from a CPU generator seeded with ``seed``.
    """
    if x.ndim != 4:
        raise ValueError(f"augment needs image batches of shape [B, C, H, W], got {tuple(x.shape)}")
    g = torch.Generator().manual_seed(int(seed))
    B, C, H, W = x.shape
    pad = 4 if C == 3 else 2
    oy = torch.randint(0, 2 * pad + 1, (B,), generator=g)
    ox = torch.randint(0, 2 * pad + 1, (B,), generator=g)
    flip = torch.rand(B, generator=g) < 0.5 if C == 3 else torch.zeros(B, dtype=torch.bool)
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dev = x.device
    rows = (oy[:, None] + torch.arange(H)[None, :]).to(dev)  # [B, H]
    cols = (ox[:, None] + torch.arange(W)[None, :]).to(dev)  # [B, W]
    bi = torch.arange(B, device=dev)[:, None, None, None]
    ci = torch.arange(C, device=dev)[None, :, None, None]
    out = xp[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]
    flip = flip.to(dev)[:, None, None, None]
    return torch.where(flip, out.flip(-1), out)


def jacobian_penalty(model: nn.Module, x: torch.Tensor, *, seed: int, projections: int = 1) -> torch.Tensor:
    r"""Hoffman et al. (2019) estimate of :math:`\frac1B\sum_i\|Jf(x_i)\|_F^2`, differentiable.

    For each of ``projections`` draws, :math:`v_i\sim\mathrm{Unif}(S^{k-1})` per sample and
    :math:`k\,\|\nabla_x(v_i^\top f(x_i))\|^2`; averaged over draws and samples.
    """
    g = torch.Generator().manual_seed(int(seed))
    xr = x.detach().requires_grad_(True)
    out = model(xr)
    B, k = out.shape
    total = out.new_zeros(())
    for _ in range(projections):
        v = torch.randn(B, k, generator=g, dtype=torch.float64).to(out.dtype).to(out.device)
        v = v / torch.linalg.vector_norm(v, dim=1, keepdim=True)
        (gx,) = torch.autograd.grad((out * v).sum(), xr, create_graph=True)
        total = total + k * gx.pow(2).flatten(1).sum(1).mean()
    return total / projections


def _grads(params: list[torch.Tensor]) -> list[torch.Tensor]:
    return [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params]


def sam_gradient(
    objective: Callable[[], torch.Tensor], params: list[torch.Tensor], rho: float
) -> tuple[float, list[torch.Tensor]]:
    r"""SAM gradient :math:`\nabla\mathcal J(\theta+\rho g/\|g\|)`, :math:`g=\nabla\mathcal J(\theta)`.

    ``objective()`` must compute the objective *and call backward* (accumulating into ``.grad``,
    which is zeroed here before each call). The parameters are moved to the ascent point and then
    copied back exactly. Returns the objective at :math:`\theta` and the gradients.
    """
    for p in params:
        p.grad = None
    loss = objective()
    g = _grads(params)
    gnorm = torch.sqrt(sum((gi.double() ** 2).sum() for gi in g))
    saved = [p.detach().clone() for p in params]
    scale = rho / (float(gnorm) + 1e-12)
    with torch.no_grad():
        for p, gi in zip(params, g):
            p.add_(gi, alpha=scale)
    for p in params:
        p.grad = None
    objective()
    g_sam = _grads(params)
    with torch.no_grad():
        for p, s in zip(params, saved):
            p.copy_(s)
    return float(torch.as_tensor(loss).detach()), g_sam


# ------------------------------------------------------------------------------------------------
# Result
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        frame: the record (one row per measurement; ``frame.attrs`` holds ``config``,
            ``diverged``, ``status``, ``data_sha256`` (:func:`data_digest`), ``sharpness_points``
            and ``jacobian_points`` (points each measurement used)); deterministic given the config.
        status: ``"completed"``, ``"target_reached"`` or ``"diverged"``.
        diverged: True when the loss became non-finite or exceeded ``divergence_factor`` times
            its initial value (the record keeps what was measured before).
        message: a human-readable summary.
        wall_time_s: total seconds in this process (a resumed run counts only its own part).
        measure_time_s: seconds spent in measurements.
        steps: number of updates done in total.
        resumed_from: step of the checkpoint this process started from (None: fresh).
        model: the trained model (in the train/eval mode it had during training).
        snapshots: ``{step: state_dict}`` (CPU copies) at each reached ``config.snapshot_steps``
            and at the end (key ``steps``).
        end: ``{hook name: values}`` returned by the hooks' ``on_end``.
    """

    frame: pd.DataFrame
    status: str
    diverged: bool
    message: str
    wall_time_s: float
    measure_time_s: float
    steps: int
    resumed_from: int | None
    model: nn.Module | None = None
    snapshots: Mapping[int, Mapping[str, torch.Tensor]] = field(default_factory=dict)
    end: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


class Checkpointer(Protocol):
    """What :func:`train` needs to checkpoint: ``load() -> dict | None`` and ``save(state)``.

    A state holds only tensors, numbers, strings, None and lists/dicts of those, so that it can
    be loaded with ``torch.load(weights_only=True)``.
    """

    def load(self) -> dict | None: ...

    def save(self, state: dict) -> None: ...


# ------------------------------------------------------------------------------------------------
# The training loop
# ------------------------------------------------------------------------------------------------


def _loaded_data(config: TrainConfig):
    from . import data as _data

    return _data.load(
        config.dataset, seed=config.data_seed, dtype=getattr(torch, config.dtype), **dict(config.dataset_options)
    )


def _data_tensors(x, y, dtype: torch.dtype, regression: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs as ``dtype``; targets as ``dtype`` ``[N, m]`` (regression) or int64 class labels."""
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).to(dtype)
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
    y = y.to(dtype).reshape(y.shape[0], -1) if regression else y.long()
    return x, y


def _arrays_sha256(tensors: Sequence[torch.Tensor]) -> str:
    """SHA-256 over each tensor's shape, dtype and bytes, in order (device-independent)."""
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(str((tuple(t.shape), str(t.dtype))).encode())
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


#: data digests computed in this process, by (dataset, data_seed, dataset_options, dtype)
_DATA_DIGESTS: dict[str, str] = {}


def _data_key(config: TrainConfig) -> str:
    import json

    spec = [config.dataset, config.data_seed, jsonable(dict(config.dataset_options)), config.dtype]
    return json.dumps(spec, sort_keys=True, default=str)


def data_digest(config: TrainConfig) -> str:
    """SHA-256 of the arrays a run of ``config`` trains and is tested on (``x_train, y_train,
    x_test, y_test`` as the run sees them: shapes, dtypes and bytes).

    :func:`train` records it (``frame.attrs["data_sha256"]``, kept in the store's ``meta.json``) and
    :class:`sharpjac.runs.RunStore` compares it before serving a stored run, so a run trained on
    other data is never served as this one. It is computed once per process for each
    ``(dataset, data_seed, dataset_options, dtype)`` (a chapter serving a hundred runs of one data
    set loads the data once).
    """
    key = _data_key(config)
    if key not in _DATA_DIGESTS:
        ds = _loaded_data(config)
        regression = int(ds.num_classes) <= 0
        dtype = getattr(torch, config.dtype)
        arrays = (
            *_data_tensors(ds.x_train, ds.y_train, dtype, regression),
            *_data_tensors(ds.x_test, ds.y_test, dtype, regression),
        )
        _DATA_DIGESTS[key] = _arrays_sha256(arrays)
    return _DATA_DIGESTS[key]


def _output_size(ds) -> int:
    """Number of network outputs: classes, or the regression target's width."""
    if int(ds.num_classes) > 0:
        return int(ds.num_classes)
    return int(ds.y_train.reshape(ds.y_train.shape[0], -1).shape[1])


def initial_model(config: TrainConfig, *, dataset=None) -> nn.Module:
    """The network :func:`train` starts from: same constructor, seed, dtype and device.

    Args:
        config: the run.
        dataset: the loaded :class:`~sharpjac.data.Dataset` (loaded from the config when None).
    """
    ds = _loaded_data(config) if dataset is None else dataset
    model = _models.build_model(
        config.model,
        input_shape=tuple(int(s) for s in ds.input_shape),
        num_classes=_output_size(ds),
        seed=config.seed,
        **dict(config.model_options),
    )
    return model.to(device=resolve_device(config.device), dtype=getattr(torch, config.dtype))


def trainable_parameters(model: nn.Module, layers: tuple[int, ...] | None) -> list[torch.Tensor]:
    """The parameters of the 1-based blocks ``layers`` of :func:`sharpjac.jacobians.split_layers`.

    ``None``: every parameter that requires a gradient. The other parameters keep
    ``requires_grad``, so curvature operators still see the full Hessian; only the optimiser is
    restricted.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if layers is None:
        return params
    from .jacobians import split_layers

    blocks = split_layers(model)
    bad = [l for l in layers if not 1 <= l <= len(blocks)]
    if bad:
        raise ValueError(
            f"TrainConfig.trainable_layers={list(layers)!r} is invalid for a model with "
            f"{len(blocks)} layers; accepted: None or 1-based layer indices in [1, {len(blocks)}]"
        )
    chosen = {id(p) for l in layers for p in blocks[l - 1].parameters()}
    return [p for p in params if id(p) in chosen]


class _Setup:
    """Data, model, subsets and schedules for one config (internal)."""

    def __init__(self, config: TrainConfig):
        self.config = c = config
        self.device = resolve_device(c.device)
        self.dtype = getattr(torch, c.dtype)
        ds = _loaded_data(c)
        self.regression = int(ds.num_classes) <= 0
        if self.regression and (c.loss != "mse" or c.label_smoothing):
            raise ValueError(
                f"TrainConfig.loss={c.loss!r} (label_smoothing={c.label_smoothing}) is invalid for the "
                f"regression data set {c.dataset!r}; accepted: loss='mse' with label_smoothing=0"
            )
        self.input_shape = tuple(int(s) for s in ds.input_shape)
        self.x_train, self.y_train = self._tensors(ds.x_train, ds.y_train)
        self.x_test, self.y_test = self._tensors(ds.x_test, ds.y_test)
        self.n = int(self.x_train.shape[0])
        if c.augment and len(self.input_shape) != 3:
            raise ValueError(
                f"TrainConfig.augment=True needs image data of shape (C, H, W); data set "
                f"{c.dataset!r} has input_shape {self.input_shape}"
            )
        check_batch_size(c, self.n)
        self.batch = self.n if c.batch_size is None else c.batch_size
        self.steps_per_epoch = math.ceil(self.n / self.batch)
        caps = []
        if c.max_steps is not None:
            caps.append(c.max_steps)
        if c.max_epochs is not None:
            caps.append(c.max_epochs * self.steps_per_epoch)
        self.total_steps = int(min(caps))
        self.schedule = measurement_steps(c, self.total_steps, self.steps_per_epoch) | {
            s for s in c.snapshot_steps if s <= self.total_steps
        }

        def subset(size, tag):
            if size == 0:
                return None
            if size is None or size >= self.n:
                return self.x_train, self.y_train
            idx = torch.randperm(self.n, generator=generator(c.seed, "subset", tag))[:size].sort().values
            idx = idx.to(self.device)
            return self.x_train[idx], self.y_train[idx]

        self.baseline_loss = _losses.constant_predictor_loss(
            c.loss, self.y_train.cpu(), int(ds.num_classes), label_smoothing=c.label_smoothing
        )
        self.data_sha256 = _arrays_sha256((self.x_train, self.y_train, self.x_test, self.y_test))
        self.sharp_data = subset(c.sharpness_subset, 2)
        self.jac_data = subset(c.jacobian_subset, 3)
        # the number of points each measurement actually uses (recorded: a subset larger than the
        # training set means all of it, and the record says so instead of leaving it implied)
        self.sharp_points = 0 if self.sharp_data is None else int(self.sharp_data[0].shape[0])
        self.jac_points = 0 if self.jac_data is None else int(self.jac_data[0].shape[0])
        self.model = initial_model(c, dataset=ds)
        self.params = trainable_parameters(self.model, c.trainable_layers)
        self.loss_fn = _losses.get_loss(c.loss, label_smoothing=c.label_smoothing)
        self.sum_loss_fn = _losses.get_loss(c.loss, label_smoothing=c.label_smoothing, reduction="none")
        self.optimizer = torch.optim.SGD(
            self.params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay, foreach=False
        )

    def _tensors(self, x, y):
        x, y = _data_tensors(x, y, self.dtype, self.regression)
        return x.to(self.device), y.to(self.device)

    def chunks(self, n: int):
        size = self.config.physical_batch_size or n
        for s in range(0, n, size):
            yield s, min(s + size, n)

    def batch_indices(self, step: int) -> torch.Tensor | None:
        if self.batch >= self.n:
            return None
        epoch, b = divmod(step, self.steps_per_epoch)
        perm = torch.randperm(self.n, generator=generator(self.config.seed, "batch", epoch))
        return perm[b * self.batch : (b + 1) * self.batch].to(self.device)

    def context(self, step: int, lr: float) -> RunContext:
        return RunContext(
            config=self.config,
            model=self.model,
            step=step,
            lr=lr,
            epoch=step / self.steps_per_epoch,
            x_train=self.x_train,
            y_train=self.y_train,
            x_test=self.x_test,
            y_test=self.y_test,
            loss_fn=self.loss_fn,
            sum_loss_fn=self.sum_loss_fn,
            trained=self.params,
            sharpness_data=self.sharp_data,
            jacobian_data=self.jac_data,
            regression=self.regression,
            chunks=self.chunks,
        )


def check_batch_size(config: TrainConfig, n_train: int) -> None:
    """Refuse a mini-batch larger than the training set (it would silently become full batch)."""
    if config.batch_size is not None and config.batch_size > n_train:
        raise ValueError(
            f"TrainConfig.batch_size={config.batch_size} exceeds the {n_train} training samples of "
            f"{config.dataset!r}; accepted: an int in [1, {n_train}], or None for full batch"
        )


def _objective_closure(S: _Setup, x: torch.Tensor, y: torch.Tensor, step: int):
    """Closure computing the mini-batch objective in physical chunks and calling backward."""
    c = S.config
    n = x.shape[0]

    def objective() -> torch.Tensor:
        total = 0.0
        for a, b in S.chunks(n):
            w = (b - a) / n
            xb = x[a:b]
            out = S.model(xb)
            loss = S.loss_fn(out, y[a:b])
            obj = loss
            if c.jacobian_penalty > 0:
                pen = jacobian_penalty(
                    S.model, xb, seed=derive_seed(c.seed, "jacpen", step, a), projections=c.jacobian_penalty_projections
                )
                obj = obj + c.jacobian_penalty * pen
            (obj * w).backward()
            total += float(loss.detach()) * w
        return torch.tensor(total)

    return objective


def _train_step(S: _Setup, step: int, lr: float) -> float:
    """One update; returns the mini-batch data loss at the current parameters."""
    c = S.config
    idx = S.batch_indices(step)
    x, y = (S.x_train, S.y_train) if idx is None else (S.x_train[idx], S.y_train[idx])
    if c.augment:
        x = augment_batch(x, seed=derive_seed(c.seed, "augment", step))
    objective = _objective_closure(S, x, y, step)
    for group in S.optimizer.param_groups:
        group["lr"] = lr
    if c.sam_rho > 0:
        loss, g = sam_gradient(objective, S.params, c.sam_rho)
        for p, gi in zip(S.params, g):
            p.grad = gi
    else:
        S.optimizer.zero_grad(set_to_none=True)
        loss = float(objective())
    if not math.isfinite(loss):
        return loss
    S.optimizer.step()
    return loss


def _frame(rows: list[dict], config: TrainConfig, status: str, diverged: bool, diverged_at) -> pd.DataFrame:
    extra = [k for r in rows for k in r if k not in METRIC_COLUMNS]
    df = pd.DataFrame(rows, columns=list(METRIC_COLUMNS) + list(dict.fromkeys(extra)))
    if len(df):
        df["diverged"] = diverged
    df = df.astype({"step": "int64", "sharpness_matvecs": "int64", "sharpness_converged": bool, "diverged": bool})
    df.attrs["config"] = config.to_dict()
    df.attrs["status"] = status
    df.attrs["diverged"] = bool(diverged)
    df.attrs["diverged_at_step"] = diverged_at
    return df


class _Threads:
    """Run with exactly ``config.threads`` torch threads; restore the previous count after."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        self.prev = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.prev)


def _diverging(loss: float, initial: float | None, factor: float, baseline: float = 0.0, bfactor: float = 0.0) -> bool:
    """Not finite, above ``factor`` times the initial training loss, or above ``bfactor`` times
    the constant predictor's loss ``baseline`` (0: that rule off)."""
    if not math.isfinite(loss):
        return True
    if baseline > 0 and bfactor > 0 and loss > bfactor * baseline:
        return True
    return initial is not None and initial > 0 and loss > factor * initial


def train(
    config: TrainConfig,
    *,
    hooks: Sequence[TrainHook] = (),
    checkpointer: Checkpointer | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Run one configuration and return its record, final network and snapshots.

    Args:
        config: the run. It runs with exactly ``config.threads`` torch threads (restored after),
            so its numbers do not depend on the machine's load or core count.
        hooks: extra :class:`~sharpjac.hooks.TrainHook` objects, called after the built-in
            :class:`~sharpjac.hooks.Measurements` and :class:`~sharpjac.hooks.Snapshots`.
        checkpointer: optional; if it holds a checkpoint the run resumes from it, and a new one is
            saved every ``config.checkpoint_every`` steps (state after the step's measurement).
        progress: tqdm bar (None: automatic, see :func:`sharpjac._util.progress_enabled`).

    Returns:
        :class:`TrainResult`. A diverging run (loss not finite, or above ``divergence_factor``
        times its initial value) stops, warns, and returns what was recorded, with
        ``status="diverged"``.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    with _Threads(config.threads):
        return _train(config, list(hooks), checkpointer, progress)


def _train(config: TrainConfig, user_hooks: list[TrainHook], checkpointer, progress) -> TrainResult:  # noqa: C901 - the one training loop (resume, schedule, hooks, divergence, checkpoints) is kept in one place
    t0 = time.perf_counter()
    S = _Setup(config)
    c = config
    snapshots = Snapshots(c.snapshot_steps)
    hooks: list[TrainHook] = [Measurements(), snapshots, *user_hooks]
    rows: list[dict] = []
    start = 0
    resumed_from = None
    ck = checkpointer.load() if checkpointer is not None else None
    fresh = {k: v.detach().clone() for k, v in S.model.state_dict().items()} if ck is not None else None
    while ck is not None:
        if ck.get("config") != c.to_dict():
            raise ValueError("checkpoint belongs to a different config; delete it or use force=True")
        try:
            S.model.load_state_dict(ck["model"])
            S.optimizer.load_state_dict(ck["optimizer"])
            rows = [dict(r) for r in ck["rows"]]
            for h in hooks:
                h.load_state_dict(ck["hooks"].get(h.name, {}))
            start = resumed_from = int(ck["step"])
            break
        except (RuntimeError, ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
            # passed its checksum but does not fit this model / optimiser: set aside like a damaged one
            if not hasattr(checkpointer, "reject"):
                raise
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            checkpointer.reject(f"does not fit the model or optimiser ({first})")
            S.model.load_state_dict(fresh)
            S.optimizer = torch.optim.SGD(
                S.params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay, foreach=False
            )
            snapshots = Snapshots(c.snapshot_steps)
            hooks = [Measurements(), snapshots, *user_hooks]
            rows, start, resumed_from = [], 0, None
            ck = checkpointer.load()

    bar = None
    if progress_enabled(progress):
        from tqdm.auto import tqdm

        bar = tqdm(total=S.total_steps, initial=start, desc=f"{c.loss} lr={c.lr:g}", leave=False)

    measure_time = 0.0
    limits = (S.baseline_loss, c.divergence_baseline_factor)
    status, diverged, diverged_at, message = "completed", False, None, ""
    step = start
    measured = {int(r["step"]) for r in rows}
    initial_loss = rows[0]["train_loss"] if rows and rows[0]["step"] == 0 else None
    try:
        while True:
            lr = lr_at(c, step, S.total_steps)
            if step in S.schedule and step not in measured:
                tm = time.perf_counter()
                row: dict[str, Any] = {"step": int(step), "epoch": step / S.steps_per_epoch, "lr": lr}
                ctx = S.context(step, lr)
                for h in hooks:
                    h.on_measure(ctx, row)
                row["diverged"] = False
                measure_time += time.perf_counter() - tm
                rows.append(row)
                measured.add(step)
                if step == 0:
                    initial_loss = row["train_loss"]
                if _diverging(row["train_loss"], initial_loss, c.divergence_factor, *limits):
                    status, diverged, diverged_at = "diverged", True, step
                    message = (
                        f"training loss became {row['train_loss']:.4g} at step {step} (initial "
                        f"{initial_loss:.4g}, limit {c.divergence_factor:g}x; constant predictor "
                        f"{S.baseline_loss:.4g}, limit {c.divergence_baseline_factor:g}x)"
                    )
                    break
                if (c.target_train_loss is not None and row["train_loss"] <= c.target_train_loss) or (
                    c.target_train_acc is not None and row["train_acc"] >= c.target_train_acc
                ):
                    status = "target_reached"
                    message = (
                        f"target reached at step {step}: train_loss={row['train_loss']:.4g}, "
                        f"train_acc={row['train_acc']:.4g}"
                    )
                    break
            if step >= S.total_steps:
                message = f"completed {step} steps"
                break
            if (
                checkpointer is not None
                and c.checkpoint_every
                and step > 0
                and step % c.checkpoint_every == 0
                and step != resumed_from
            ):
                checkpointer.save(
                    {
                        "config": c.to_dict(),
                        "step": step,
                        "model": S.model.state_dict(),
                        "optimizer": S.optimizer.state_dict(),
                        "rows": [dict(r) for r in rows],
                        "hooks": {h.name: h.state_dict() for h in hooks},
                    }
                )
            loss = _train_step(S, step, lr)
            if _diverging(loss, initial_loss, c.divergence_factor, *limits):
                status, diverged, diverged_at = "diverged", True, step
                message = f"mini-batch loss became {loss:.4g} at step {step} (lr={lr:g}); stopped"
                break
            step += 1
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if diverged:
        warnings.warn(
            f"run diverged: {message}; the record keeps the {len(rows)} measurements made before",
            RuntimeWarning,
            stacklevel=3,
        )
    elif initial_loss is not None and rows and rows[-1]["train_loss"] > ENDED_ABOVE * initial_loss:
        ratio = rows[-1]["train_loss"] / initial_loss
        message += f"; ended at {ratio:.3g} times its initial training loss (not converging: lr too large?)"
        warnings.warn(
            f"run {status} but its training loss ended at {ratio:.3g} times its initial value "
            f"({rows[-1]['train_loss']:.4g} vs {initial_loss:.4g}; lr={c.lr:g}): it did not train",
            RuntimeWarning,
            stacklevel=3,
        )
    end: dict[str, Mapping[str, Any]] = {}
    ctx = S.context(step, lr_at(c, step, S.total_steps))
    for h in hooks:
        values = h.on_end(ctx)
        if values is not None:
            end[h.name] = dict(values)
    df = _frame(rows, c, status, diverged, diverged_at)
    df.attrs["data_sha256"] = S.data_sha256
    df.attrs["sharpness_points"] = S.sharp_points
    df.attrs["jacobian_points"] = S.jac_points
    return TrainResult(
        frame=df,
        status=status,
        diverged=diverged,
        message=message,
        wall_time_s=time.perf_counter() - t0,
        measure_time_s=measure_time,
        steps=step,
        resumed_from=resumed_from,
        model=S.model,
        snapshots=dict(snapshots.states),
        end=end,
    )
