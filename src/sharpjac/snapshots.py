r"""Train one :class:`~sharpjac.training.TrainConfig` and keep copies of the model at chosen steps.

:func:`sharpjac.training.train` returns the record of a run, not its models. The theory chapters
need the network itself at a few moments (initialisation, mid-training, the end) to compute
whole spectra, conjugate matrices or bounds that the record does not hold. This module gets them
through the checkpoint protocol that :func:`~sharpjac.training.train` already supports: a
checkpointer that never resumes and, when asked to save the state after :math:`t` updates, keeps
a deep copy of the model's ``state_dict`` if :math:`t` is wanted.

The training loop saves checkpoints every ``checkpoint_every`` steps, strictly after step 0 and
strictly before the last step. So :func:`train_with_snapshots` sets ``checkpoint_every`` to the
greatest common divisor of the wanted steps, rebuilds the initial model from the config for step
0 (the model constructors are seeded, so this is the run's initial model), and, when the last
step is wanted, runs **one extra update** whose measurement is dropped from the record.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import reduce

import pandas as pd
import torch
from torch import nn

from . import data as _data
from . import models as _models
from .training import TrainConfig, TrainResult, train

__all__ = ["SnapshotRun", "train_with_snapshots", "build_initial_model", "training_tensors"]


@dataclass(frozen=True)
class SnapshotRun:
    """A training run with model snapshots.

    Attributes:
        frame: the training record (rows with ``step <= config.max_steps`` only).
        models: ``{step: model}``, each an independent ``nn.Module`` holding the state after
            ``step`` updates (in the config's dtype, on the config's device).
        result: the :class:`~sharpjac.training.TrainResult` of the underlying call.
        config: the config as given (not the one with the extra step).
    """

    frame: pd.DataFrame
    models: Mapping[int, nn.Module]
    result: TrainResult
    config: TrainConfig


class _Collector:
    """A checkpointer (``load``/``save``) that keeps deep copies of wanted model states."""

    def __init__(self, wanted: set[int]):
        self.wanted = wanted
        self.states: dict[int, dict[str, torch.Tensor]] = {}

    def load(self) -> None:
        return None

    def save(self, state: dict) -> None:
        step = int(state["step"])
        if step in self.wanted:
            # the state_dict shares storage with the live parameters: copy it
            self.states[step] = {k: v.detach().clone() for k, v in state["model"].items()}


def build_initial_model(config: TrainConfig) -> nn.Module:
    """The model :func:`~sharpjac.training.train` starts from (same constructor, seed, dtype)."""
    ds = _data.load(config.dataset, seed=config.data_seed, **dict(config.dataset_options))
    from ._util import resolve_device

    model = _models.build_model(config.model, input_shape=tuple(ds.input_shape), num_classes=int(ds.num_classes),
                                seed=config.seed, **dict(config.model_options))
    return model.to(device=resolve_device(config.device), dtype=getattr(torch, config.dtype))


def training_tensors(config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train, y_train, x_test, y_test)`` of the config's data, in its dtype and on its device."""
    from ._util import resolve_device

    ds = _data.load(config.dataset, seed=config.data_seed, **dict(config.dataset_options))
    dev, dt = resolve_device(config.device), getattr(torch, config.dtype)
    return (ds.x_train.to(device=dev, dtype=dt), ds.y_train.to(dev).long(),
            ds.x_test.to(device=dev, dtype=dt), ds.y_test.to(dev).long())


def train_with_snapshots(config: TrainConfig, steps: Iterable[int], *, progress: bool | None = None) -> SnapshotRun:
    """Run ``config`` with :func:`sharpjac.training.train` and keep the model after each of ``steps``.

    Args:
        config: a config with ``max_steps`` set and ``max_epochs=None`` (so the number of updates is
            known in advance); its ``checkpoint_every`` is overridden.
        steps: update counts in ``[0, config.max_steps]``; 0 is the initialisation.
        progress: passed to :func:`~sharpjac.training.train`.

    Returns:
        :class:`SnapshotRun`. A run that stops early (target reached, divergence) has no snapshots
        after its last step; asking for them raises ``RuntimeError`` naming the missing steps.

    Raises:
        ValueError: ``max_steps`` missing or ``max_epochs`` set; steps outside ``[0, max_steps]``.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if config.max_steps is None or config.max_epochs is not None:
        raise ValueError(
            f"config must set max_steps and leave max_epochs=None, got max_steps={config.max_steps!r}, "
            f"max_epochs={config.max_epochs!r}"
        )
    wanted = sorted({int(s) for s in steps})
    T = int(config.max_steps)
    if not wanted or wanted[0] < 0 or wanted[-1] > T:
        raise ValueError(f"steps must be a non-empty set of ints in [0, max_steps={T}], got {wanted!r}")
    positive = [s for s in wanted if s > 0]
    every = reduce(math.gcd, positive) if positive else T + 1
    extra = bool(positive) and positive[-1] == T
    run_cfg = config.replace(checkpoint_every=every, max_steps=T + 1 if extra else T)
    collector = _Collector(set(positive))
    result = train(run_cfg, checkpointer=collector, progress=progress)
    missing = [s for s in positive if s not in collector.states]
    if missing:
        raise RuntimeError(
            f"the run stopped at step {result.steps} ({result.status}: {result.message}); no snapshot for steps "
            f"{missing}"
        )
    init = build_initial_model(config)
    out: dict[int, nn.Module] = {}
    for s in wanted:
        m = copy.deepcopy(init)
        if s > 0:
            m.load_state_dict(collector.states[s])
        out[s] = m
    frame = result.frame[result.frame["step"] <= T].reset_index(drop=True)
    frame.attrs = dict(result.frame.attrs)
    return SnapshotRun(frame=frame, models=out, result=result, config=config)
