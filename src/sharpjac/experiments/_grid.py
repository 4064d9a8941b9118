r"""The shared grid of the six flat-minima chapters (paper Figs. 2-5, a causal test): baseline, runs.

Each chapter has its own module (:mod:`.weight_decay`, :mod:`.sam_augmentation`,
:mod:`.batch_size`, :mod:`.learning_rate`, :mod:`.regularisers`, :mod:`.causal_test`) that states
only its grid axes; this module holds what they share: the baseline config
:class:`GeneralisationConfig` (fields, presets and checks, declared once), :func:`run_grid` and
the one mapping :func:`grid_chapter_configs`. The end-of-run measurements are in
:mod:`._end_of_run`, the statistics the chapters share in :mod:`._gap_stats`.

The paper's Section 6 asks which end-of-training quantity follows the **generalisation gap**:
the sharpness :math:`s=\lambda_{\max}(\nabla^2_\theta\mathcal L)` or the Jacobian statistics of the
input-output Jacobian over the training sample. Six chapters vary one thing each around **one
baseline** and measure, at the end of every run,

* the gaps: ``gap_loss`` :math:`=\mathcal L_{\text{test}}-\mathcal L_{\text{train}}` and
  ``gap_acc`` :math:`=\text{acc}_{\text{train}}-\text{acc}_{\text{test}}` (data loss, without
  penalties or L2; label-smoothed runs use their smoothed loss on both sets);
* the sharpness and the four Jacobian statistics (from :func:`sharpjac.training.train`'s record);
* end-of-training extras that need the trained network
  (:func:`._end_of_run.end_measurements`): the **local variation** of the Jacobian
  :math:`V_i=\sup_{x'\in B(x_i,r)}\|Jf(x')-Jf(x_i)\|_2` at a fixed set of training points
  (:func:`sharpjac.jacobians.local_variation`; its maximum and mean), and the Jacobian statistics
  on test points (how far the sample maximum is from the Jacobian on unseen data);
* two **baseline predictors** of the gap that need neither the Hessian nor the Jacobian: the
  mean output norm ``logit_norm`` :math:`=\frac1N\sum_i\|f(x_i)\|_2` and the mean logit margin
  ``margin`` :math:`=\frac1N\sum_i\big(f(x_i)_{y_i}-\max_{k\ne y_i}f(x_i)_k\big)` over the
  training points (beside ``train_loss`` and ``param_norm`` of the training record).

Sharing runs
------------
Every chapter's config subclasses :class:`GeneralisationConfig`, whose fields are the baseline;
all presets of all six chapters share the same baseline values (:data:`BASE_PRESETS`), and
:meth:`GeneralisationConfig.train_config` builds a :class:`~sharpjac.training.TrainConfig` from the
baseline plus the changes of a grid point, canonically. So a grid point that coincides with one
of another chapter (the baseline, the learning-rate runs, the large-rate or small-batch runs...)
has the same TrainConfig, the same run key, and is trained **once** for the whole book.

The extras are stored beside the run record in the run store
(``<store>/<key>/end-<hash>.json``, ``hash`` of the extras' settings). A run whose record is
stored but whose extras are not (e.g. trained by another experiment) is trained again to get its
network (training is deterministic, so the record is the same) and the extras are added.

Budgets and measurements
------------------------
``budget="epochs"`` trains ``max_epochs`` epochs; ``budget="updates"`` trains as many SGD updates
as the baseline does (``max_epochs * ceil(n_train / batch_size)``; expressed in whole epochs when
it divides, so that the baseline's batch size gives the baseline itself). Every run is measured at
``measure_linear`` evenly spaced steps and ``measure_log`` log-spaced steps (plus step 0 and the
last), relative to its own number of updates.

Presets are the project's own choices (the paper's hyper-parameters are not known). ``quick``:
1,000 real MNIST digits, a 100-100 tanh MLP, softmax cross-entropy, plain SGD (batch 100, step
0.2) for 30 epochs; ``paper``: CIFAR-10 with ResNet-18 (a GPU and a local copy of CIFAR-10).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ..training import TrainConfig
from . import register
from ._end_of_run import END_COLUMNS, end_measurements, nearest_neighbour_radius
from .base import PRESET_NAMES, ExperimentConfig, architecture_options, run_experiment

__all__ = [
    "GeneralisationConfig",
    "BASE_PRESETS",
    "BUDGETS",
    "run_grid",
    "describe_setting",
    "grid_chapter_configs",
    "register_grid",
]

#: Changes a grid point may make to the baseline (TrainConfig field names).
_CHANGEABLE = (
    "lr",
    "momentum",
    "batch_size",
    "weight_decay",
    "label_smoothing",
    "sam_rho",
    "augment",
    "jacobian_penalty",
)

BUDGETS = ("epochs", "updates")


#: The baseline of every chapter, per preset (the project's own choices).
BASE_PRESETS: dict[str, dict[str, Any]] = {
    "smoke": dict(
        n_train=200,
        n_test=200,
        widths=(16,),
        batch_size=50,
        max_epochs=2,
        measure_linear=1,
        measure_log=1,
        variation_centres=8,
        variation_samples=4,
        variation_ascent_steps=0,
        test_jacobian_points=100,
        seeds=(0,),
    ),
    "quick": dict(seeds=(0, 1, 2, 3, 4)),
    "paper": dict(
        dataset="cifar10",
        n_train=50000,
        n_test=10000,
        model="resnet18",
        lr=0.05,
        momentum=0.9,
        batch_size=128,
        max_epochs=50,
        measure_linear=10,
        measure_log=6,
        sharpness_subset=2048,
        jacobian_subset=512,
        variation_centres=128,
        variation_samples=16,
        variation_ascent_steps=2,
        test_jacobian_points=512,
        seeds=(0, 1, 2),
    ),
}


def grid_presets(axes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p: {**BASE_PRESETS[p], **axes.get(p, {})} for p in BASE_PRESETS}


def _is_num(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def is_positive(x) -> bool:
    return _is_num(x) and x > 0


def is_non_negative(x) -> bool:
    return _is_num(x) and x >= 0


@dataclass(frozen=True)
class GeneralisationConfig(ExperimentConfig):
    """The shared baseline of the generalisation chapters (subclasses add the grid axes).

    Attributes:
        dataset, n_train, n_test: data. Each run's split uses its own seed (``data_seed = seed``,
            :meth:`train_config`); ``data_seed`` only picks the split on which the default
            variation radius is computed (one radius for the whole grid).
        model: ``"mlp"`` (uses widths, activation), ``"small_cnn"`` (channels) or ``"resnet18"``
            (resnet_width).
        loss: ``"ce"`` or ``"mse"``.
        lr, momentum, batch_size, weight_decay, label_smoothing, sam_rho, augment: the baseline's
            SGD run (constant step; coupled L2 weight decay; SAM off at ``sam_rho=0``).
        max_epochs: epochs of the baseline (and of every ``budget="epochs"`` run).
        measure_linear: evenly spaced measurements per run (``total_steps // measure_linear``).
        measure_log: log-spaced measurements per run (0: none).
        sharpness_subset, jacobian_subset: training points for the Hessian / the Jacobian
            statistics (None: all).
        lanczos_tol, lanczos_max_iter: accuracy of the sharpness.
        variation_centres: training points at which the local variation is estimated.
        variation_samples, variation_ascent_steps: search effort of
            :func:`sharpjac.jacobians.local_variation`.
        variation_radius: radius :math:`r` of the balls (None: the median distance from a test
            point to its nearest training point, :func:`nearest_neighbour_radius`).
        test_jacobian_points: test points for the test-set Jacobian statistics.
    """

    dataset: str = "mnist5k"
    n_train: int = 1000
    n_test: int = 2000
    model: str = "mlp"
    widths: tuple[int, ...] = (100, 100)
    activation: str = "tanh"
    channels: tuple[int, ...] = (16, 32)
    resnet_width: float = 1.0
    loss: str = "ce"
    lr: float = 0.2
    momentum: float = 0.0
    batch_size: int = 100
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    sam_rho: float = 0.0
    augment: bool = False
    max_epochs: int = 30
    measure_linear: int = 4
    measure_log: int = 4
    sharpness_subset: int | None = None
    jacobian_subset: int | None = None
    lanczos_tol: float = 1e-3
    lanczos_max_iter: int = 30
    variation_centres: int = 100
    variation_samples: int = 16
    variation_ascent_steps: int = 2
    variation_radius: float | None = None
    test_jacobian_points: int = 1000

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = BASE_PRESETS

    # -- validation ---------------------------------------------------------------------------

    def _check(self) -> None:
        from .. import data
        from ..models import ACTIVATIONS

        self._need(self.dataset in data.available(), "dataset", f"one of {sorted(data.available())}")
        self._need(self.model in ("mlp", "small_cnn", "resnet18"), "model", "'mlp', 'small_cnn' or 'resnet18'")
        self._need(self.loss in ("ce", "mse"), "loss", "'ce' or 'mse'")
        self._need_positive(
            "n_train",
            "n_test",
            "widths",
            "channels",
            "resnet_width",
            "lr",
            "batch_size",
            "max_epochs",
            "measure_linear",
            "lanczos_tol",
            "lanczos_max_iter",
            "variation_centres",
            "variation_samples",
            "test_jacobian_points",
        )
        self._need(self.activation in ACTIVATIONS, "activation", f"one of {ACTIVATIONS}")
        self._need(0 <= self.momentum < 1, "momentum", "a float in [0, 1)")
        self._need(self.weight_decay >= 0, "weight_decay", "a float >= 0")
        self._need(0 <= self.label_smoothing < 1, "label_smoothing", "a float in [0, 1)")
        self._need(self.sam_rho >= 0, "sam_rho", "a float >= 0")
        self._need(isinstance(self.augment, bool), "augment", "True or False")
        self._need(isinstance(self.measure_log, int) and self.measure_log >= 0, "measure_log", "an int >= 0")
        self._need(
            isinstance(self.variation_ascent_steps, int) and self.variation_ascent_steps >= 0,
            "variation_ascent_steps",
            "an int >= 0",
        )
        for name in ("sharpness_subset", "jacobian_subset"):
            v = getattr(self, name)
            self._need(v is None or (isinstance(v, int) and v >= 1), name, "None (all points) or an int >= 1")
        self._need(
            self.variation_radius is None or (_is_num(self.variation_radius) and self.variation_radius > 0),
            "variation_radius",
            "None (nearest-neighbour radius) or a float > 0",
        )
        self._check_axes()

    def _check_axes(self) -> None:  # overridden by the chapters
        pass

    def _need_values(self, name: str, ok, accepted: str) -> None:
        v = getattr(self, name)
        self._need(
            isinstance(v, tuple) and len(v) > 0 and all(ok(x) for x in v), name, f"a non-empty tuple of {accepted}"
        )

    # -- building runs ------------------------------------------------------------------------

    def model_options(self) -> dict[str, Any]:
        return architecture_options(
            self.model,
            widths=self.widths,
            activation=self.activation,
            channels=self.channels,
            resnet_width=float(self.resnet_width),
        )

    def steps_per_epoch(self, batch_size: int | None = None) -> int:
        b = self.batch_size if batch_size is None else int(batch_size)
        return math.ceil(self.n_train / min(b, self.n_train))

    def baseline_steps(self) -> int:
        """SGD updates of the baseline: ``max_epochs * ceil(n_train / batch_size)``."""
        return self.max_epochs * self.steps_per_epoch()

    def train_config(self, seed: int, *, budget: str = "epochs", **changes) -> TrainConfig:
        """The TrainConfig of the baseline with ``changes`` (canonical: equal inputs, equal run key).

        Args:
            seed: the run's seed (initialisation, batch order, augmentation, subsets) and its data
                split (``data_seed = seed``: each seed draws its own training subset, so the seeds
                replicate the sampling of the training set too).
            budget: ``"epochs"`` (``max_epochs`` epochs) or ``"updates"`` (the baseline's number of
                updates; whole epochs when that divides).
            changes: TrainConfig fields among ``lr, momentum, batch_size, weight_decay,
                label_smoothing, sam_rho, augment, jacobian_penalty``.
        """
        unknown = sorted(set(changes) - set(_CHANGEABLE))
        if unknown:
            raise ValueError(f"changes {unknown} are not supported; accepted: {_CHANGEABLE}")
        if budget not in BUDGETS:
            raise ValueError(f"budget={budget!r} is invalid; accepted: {BUDGETS}")
        p: dict[str, Any] = {k: getattr(self, k) for k in _CHANGEABLE if k != "jacobian_penalty"}
        p["jacobian_penalty"] = 0.0
        p.update(changes)
        spe = self.steps_per_epoch(p["batch_size"])
        if budget == "epochs":
            epochs, steps = self.max_epochs, None
            total = epochs * spe
        else:
            total = self.baseline_steps()
            epochs, steps = (total // spe, None) if total % spe == 0 else (None, total)
        return TrainConfig(
            dataset=self.dataset,
            dataset_options={"n_train": self.n_train, "n_test": self.n_test},
            data_seed=int(seed),
            model=self.model,
            model_options=self.model_options(),
            loss=self.loss,
            label_smoothing=float(p["label_smoothing"]),
            optimizer="sgd",
            lr=float(p["lr"]),
            momentum=float(p["momentum"]),
            weight_decay=float(p["weight_decay"]),
            batch_size=int(p["batch_size"]),
            sam_rho=float(p["sam_rho"]),
            augment=bool(p["augment"]),
            jacobian_penalty=float(p["jacobian_penalty"]),
            max_epochs=epochs,
            max_steps=steps,
            measure_every=max(1, total // self.measure_linear),
            measure_num=self.measure_log or None,
            sharpness_subset=self.sharpness_subset,
            jacobian_subset=self.jacobian_subset,
            lanczos_tol=self.lanczos_tol,
            lanczos_max_iter=self.lanczos_max_iter,
            seed=int(seed),
            dtype=self.dtype,
            device=self.device,
            threads=self.threads,
            checkpoint_every=max(1, total // 5),
        )

    def baseline(self, seed: int) -> TrainConfig:
        """The baseline run of ``seed`` (shared by every chapter)."""
        return self.train_config(seed)

    def grid(self) -> list[tuple[dict[str, Any], TrainConfig]]:
        """The baseline alone (one run per seed); the chapters override this."""
        return [({"seed": s}, self.baseline(s)) for s in self.seeds]

    def workload(self) -> dict[str, float]:
        """Size of the grid, for cost estimates: distinct runs, SGD updates and measurements.

        ``gradient_passes`` counts one per update, two with SAM (two gradients per step) and
        three with the Jacobian penalty (a double backward pass), times the batch size over the
        baseline's: a proxy for compute in units of one baseline update.
        """
        from ..training import measurement_steps

        seen: dict[str, TrainConfig] = {}
        for _, tc in self.grid():
            seen.setdefault(json.dumps(tc.to_dict(), sort_keys=True), tc)
        updates = passes = measurements = 0.0
        for tc in seen.values():
            spe = self.steps_per_epoch(tc.batch_size)
            total = tc.max_steps if tc.max_steps is not None else tc.max_epochs * spe
            factor = (2.0 if tc.sam_rho > 0 else 1.0) * (3.0 if tc.jacobian_penalty > 0 else 1.0)
            updates += total
            passes += total * factor * min(tc.batch_size, self.n_train) / self.batch_size
            measurements += len(measurement_steps(tc, total, spe))
        return {"runs": float(len(seen)), "updates": updates, "gradient_passes": passes, "measurements": measurements}

    def end_spec(self, radius: float) -> dict[str, Any]:
        """Settings of the end-of-training extras (their hash names the stored file)."""
        return {
            "radius": float(f"{radius:.6g}"),
            "centres": self.variation_centres,
            "samples": self.variation_samples,
            "ascent_steps": self.variation_ascent_steps,
            "test_points": self.test_jacobian_points,
            "version": 3,
        }


def _nan_extras(radius: float) -> dict[str, float]:
    out = {c: float("nan") for c in END_COLUMNS}
    out["variation_radius"] = float(radius)
    return out


def _end_values(model, tc: TrainConfig, spec: dict[str, Any], tensors) -> dict[str, float]:
    """The :data:`END_COLUMNS` of a trained network (the end-of-training measurements)."""
    x_train, y_train, x_test, y_test = tensors
    dev = next(model.parameters()).device
    dt = next(model.parameters()).dtype
    out = end_measurements(
        model,
        x_train.to(device=dev, dtype=dt),
        x_test.to(device=dev, dtype=dt),
        radius=spec["radius"],
        centres=spec["centres"],
        samples=spec["samples"],
        ascent_steps=spec["ascent_steps"],
        test_points=spec["test_points"],
        seed=tc.seed,
        y_train=y_train.to(dev).long(),
        y_test=y_test.to(dev).long(),
        loss=tc.loss,
        chunk_size=tc.physical_batch_size or 2048,
    )
    return out.as_dict()


def _run_point(
    tc: TrainConfig, spec: dict[str, Any], tensors, *, store, force: bool, progress: bool
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Record and end-of-training values of one run.

    The record comes from :func:`sharpjac.runs.run` (the store keeps the final network); the end
    values are computed from that kept network once and stored beside the run as an artefact, so
    nothing is ever trained twice.
    """
    from ..runs import as_store, run
    from ..training import train

    st = as_store(store)
    if st is None:
        result = train(tc, progress=progress)
        frame = result.frame.copy()
        values = _nan_extras(spec["radius"]) if result.diverged else _end_values(result.model, tc, spec, tensors)
        return frame, values
    rec = run(tc, store=st, force=force, progress=progress)
    if rec.attrs.get("diverged"):
        return rec, _nan_extras(spec["radius"])
    values = st.artefact(tc, "end", spec, lambda: _end_values(st.load_model(tc), tc, spec, tensors))
    return rec, dict(values)


def run_grid(
    config: GeneralisationConfig, *, name: str, store=None, force: bool = False, progress: bool | None = None
) -> pd.DataFrame:
    """Run every grid point of ``config`` (reusing the store) and concatenate the records.

    Returns one row per measurement: the grid labels, the training record's columns, ``gap_loss``
    and ``gap_acc`` (every row), the :data:`END_COLUMNS` (on each run's last row; NaN elsewhere),
    ``status`` and ``run_key``. ``attrs``: ``experiment``, ``config``, ``variation_radius``.
    """
    from .. import data

    if not isinstance(config, GeneralisationConfig):
        raise TypeError(f"config must be a GeneralisationConfig, got {type(config).__name__}")
    splits: dict[int, tuple] = {}

    def tensors_of(data_seed: int) -> tuple:
        """The split of one data seed (each seed draws its own training subset), loaded once."""
        if data_seed not in splits:
            d = data.load(config.dataset, seed=data_seed, n_train=config.n_train, n_test=config.n_test)
            splits[data_seed] = (d.x_train, d.y_train, d.x_test, d.y_test)
        return splits[data_seed]

    ds = data.load(config.dataset, seed=config.data_seed, n_train=config.n_train, n_test=config.n_test)
    radius = (
        float(config.variation_radius)
        if config.variation_radius is not None
        else nearest_neighbour_radius(ds.x_train, ds.x_test)
    )
    spec = config.end_spec(radius)

    def run_point(tc: TrainConfig, show: bool) -> tuple[pd.DataFrame, dict[str, float]]:
        record, values = _run_point(tc, spec, tensors_of(tc.data_seed), store=store, force=force, progress=show)
        attrs = dict(record.attrs)
        record = record.assign(
            gap_loss=record["test_loss"] - record["train_loss"], gap_acc=record["train_acc"] - record["test_acc"]
        )
        record.attrs = attrs
        return record, {c: values.get(c, np.nan) for c in END_COLUMNS}

    out = run_experiment(config, name=name, store=store, force=force, progress=progress, run_point=run_point)
    out.attrs["variation_radius"] = spec["radius"]
    return out


_DATASET_WORDS = {"mnist5k": "real MNIST digits", "cifar10": "CIFAR-10 images"}
_LOSS_WORDS = {"ce": "softmax cross-entropy", "mse": "squared error"}


def describe_setting(config: GeneralisationConfig) -> str:
    """One Markdown sentence fragment describing a config's baseline, built from its fields.

    E.g. ``"1,000 real MNIST digits (`mnist5k`, 2,000 test points), an MLP with hidden widths
    100-100 (tanh), plain SGD (step 0.2, batch 100, softmax cross-entropy) for 30 epochs"``, so
    that a page never types a preset's numbers by hand.
    """
    if not isinstance(config, GeneralisationConfig):
        raise TypeError(f"config must be a GeneralisationConfig, got {type(config).__name__}")
    data = (
        f"{config.n_train:,} {_DATASET_WORDS.get(config.dataset, 'training points')} "
        f"(`{config.dataset}`, {config.n_test:,} test points)"
    )
    if config.model == "mlp":
        model = f"an MLP with hidden widths {'-'.join(str(w) for w in config.widths)} ({config.activation})"
    elif config.model == "small_cnn":
        model = f"a small CNN with channels {'-'.join(str(c) for c in config.channels)}"
    else:
        model = f"a ResNet-18 (width factor {config.resnet_width:g})"
    opt = "plain SGD" if config.momentum == 0 else f"SGD with momentum {config.momentum:g}"
    return (
        f"{data}, {model}, {opt} (step {config.lr:g}, batch {config.batch_size}, "
        f"{_LOSS_WORDS.get(config.loss, config.loss)}) for {config.max_epochs} epochs"
    )


#: Seeds per grid point where the preset fixes them (``quick`` takes the chapter's ``n_seeds``).
PRESET_SEEDS = {"smoke": 1, "paper": 3}


def grid_chapter_configs(
    config_cls: type[GeneralisationConfig], preset: str, seed: int, *, n_seeds: int = 5, **overrides
) -> list[GeneralisationConfig]:
    """The one mapping from a flat-minima chapter's parameters to its config.

    Training seeds ``seed, ..., seed + n - 1`` with ``n = 1`` at ``smoke``, ``3`` at ``paper`` and
    ``n_seeds`` at ``quick``; each training seed ``s`` draws its own training subset
    (``data_seed = s``, :meth:`GeneralisationConfig.train_config`), and the config's ``data_seed =
    seed`` picks the split of the variation radius.

    Args:
        config_cls: the chapter's :class:`GeneralisationConfig` subclass.
        preset: ``"smoke"``, ``"quick"`` or ``"paper"``. seed: first seed (int >= 0).
        n_seeds: seeds per grid point at ``quick`` (int >= 1). overrides: other config fields.
    """
    if preset not in PRESET_NAMES:
        raise ValueError(f"preset={preset!r}; accepted: {list(PRESET_NAMES)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r}; accepted: an integer >= 0")
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, int) or n_seeds < 1:
        raise ValueError(f"n_seeds={n_seeds!r}; accepted: an integer >= 1")
    n = PRESET_SEEDS.get(preset, n_seeds)
    return [config_cls.from_preset(preset, seeds=tuple(range(seed, seed + n)), data_seed=seed, **overrides)]


def register_grid(
    name: str,
    config_cls: type[GeneralisationConfig],
    description: str,
    *,
    chapter: str,
    chapter_configs: Callable[..., list[GeneralisationConfig]] | None = None,
    known_answers: tuple[Callable[[GeneralisationConfig], dict], str] | None = None,
):
    """Register a flat-minima chapter's experiment (runner :func:`run_grid`).

    Args:
        name, config_cls, description, chapter: as for :func:`sharpjac.experiments.register`.
        chapter_configs: the one mapping (default: :func:`grid_chapter_configs` of ``config_cls``).
        known_answers: ``(claim_specs, design)``: ``claim_specs(quick_config) -> {claim_id: spec}``
            and the design sentence; each claim's known answer is registered at the quick preset's
            grid (:func:`._gap_stats.register_known_answers`).
    """

    def run(config=None, *, store=None, force: bool = False, progress: bool | None = None) -> pd.DataFrame:
        config = config_cls.preset("quick") if config is None else config
        return run_grid(config, name=name, store=store, force=force, progress=progress)

    run.__doc__ = f"Run the {name!r} grid (one stored run per grid point; shared runs trained once)."
    if chapter_configs is None:

        def chapter_configs(preset: str, seed: int, *, n_seeds: int = 5) -> list[GeneralisationConfig]:
            return grid_chapter_configs(config_cls, preset, seed, n_seeds=n_seeds)

    experiment = register(name, config_cls, description, chapter=chapter, runner=run, chapter_configs=chapter_configs)
    if known_answers is not None:
        from ._gap_stats import register_known_answers

        specs, design = known_answers
        quick = config_cls.preset("quick")
        register_known_answers(specs(quick), quick, design=design)
    return experiment
