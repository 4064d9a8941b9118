"""Shared machinery of the experiments: config base class, presets, grids, the runner.

An experiment is a frozen dataclass (subclass of :class:`ExperimentConfig`) with

* class attribute ``PRESETS = {"smoke": {...}, "quick": {...}, "paper": {...}}`` of field
  overrides (the project's own choices; the paper's hyper-parameters are not known);
* ``_check()``: extra validation (raise via :meth:`ExperimentConfig._need`);
* ``grid()``: the list of ``(labels, TrainConfig)`` pairs it trains, ``labels`` a dict of the
  grid coordinates (e.g. ``{"loss": "mse", "lr": 0.1, "seed": 0}``) that become columns.

:func:`run_experiment` validates everything (every TrainConfig, and that the data set can be
loaded) before any training, then hands the distinct grid points to an executor
(:mod:`sharpjac.executors`: serial by default, or Ray tasks), which runs each through
:func:`sharpjac.runs.run` (one stored run per point, so re-running reuses the store), and
concatenates the records. :func:`missing_runs` lists the runs a config needs that a store lacks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from .. import rehearsal, request_log
from .._util import jsonable, progress_enabled
from ..training import TrainConfig, _Threads

PRESET_NAMES = ("smoke", "quick", "paper")


def architecture_options(
    model: str,
    *,
    widths: Sequence[int] = (),
    activation: str = "tanh",
    channels: Sequence[int] = (),
    resnet_width: float = 1.0,
) -> dict[str, Any]:
    """``TrainConfig.model_options`` for the architectures the experiments train.

    ``"mlp"`` takes its hidden ``widths`` and ``activation``, ``"small_cnn"`` its ``channels``,
    and ``"resnet18"`` its width multiplier ``resnet_width``.
    """
    if model == "mlp":
        return {"widths": list(widths), "activation": activation}
    if model == "small_cnn":
        return {"channels": list(channels)}
    return {"width": resnet_width}


@dataclass(frozen=True)
class ExperimentConfig:
    """Fields every experiment has.

    Attributes:
        seeds: seeds of the runs (initialisation, batch order); the data split uses ``data_seed``.
        data_seed: seed of the train/test split.
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"`` or ``"cuda"``.
        dtype: ``"float32"`` or ``"float64"``.
        threads: torch threads of every run (part of each run's key, see
            :class:`~sharpjac.training.TrainConfig`) and of the measurements made outside
            training (a study's ``compute``, a custom runner's).
    """

    seeds: tuple[int, ...] = (0,)
    data_seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    threads: int = 1

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}

    def __post_init__(self):
        # normalise lists to tuples so configs hash and compare by value
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, list):
                object.__setattr__(self, f.name, tuple(v))
        self.validate()

    # -- presets ------------------------------------------------------------------------------

    @classmethod
    def preset(cls, name: str):
        """The config of preset ``name`` (``"smoke"``, ``"quick"`` or ``"paper"``)."""
        return cls.from_preset(name)

    @classmethod
    def from_preset(cls, preset: str = "quick", **overrides):
        """Preset ``preset`` with some fields overridden (unknown fields raise ValueError)."""
        if preset not in cls.PRESETS:
            raise ValueError(f"unknown preset={preset!r} for {cls.__name__}; accepted: {sorted(cls.PRESETS)}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"unknown field(s) {unknown} for {cls.__name__}; accepted: {sorted(names)}")
        values = {**cls.PRESETS[preset], **overrides}
        if preset == "paper" and rehearsal.active():  # the paper rehearsal's toy sizes (sharpjac.rehearsal)
            return rehearsal.build(cls, values)
        return cls(**values)

    # -- validation ---------------------------------------------------------------------------

    def _need(self, cond: bool, name: str, accepted: str) -> None:
        if not cond:
            raise ValueError(f"{type(self).__name__}.{name}={getattr(self, name)!r} is invalid; accepted: {accepted}")

    def validate(self) -> None:
        """Check every field; raise ValueError naming the field, its value and what is accepted."""
        _check_field_types(self)
        self._need(
            isinstance(self.seeds, tuple)
            and len(self.seeds) > 0
            and all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**32 for s in self.seeds),
            "seeds",
            "a non-empty tuple of ints in [0, 2**32)",
        )
        self._need(isinstance(self.data_seed, int) and 0 <= self.data_seed < 2**32, "data_seed", "an int in [0, 2**32)")
        self._need(isinstance(self.threads, int) and self.threads >= 1, "threads", "an int >= 1")
        self._need(
            self.device in ("auto", "cpu", "cuda") or str(self.device).startswith("cuda:"),
            "device",
            "'auto', 'cpu', 'cuda' or 'cuda:N'",
        )
        self._need(self.dtype in ("float32", "float64"), "dtype", "'float32' or 'float64'")
        self._check()

    def _check(self) -> None:  # pragma: no cover - overridden
        pass

    def _need_positive(self, *names: str) -> None:
        for name in names:
            v = getattr(self, name)
            vals = v if isinstance(v, tuple) else (v,)
            self._need(
                len(vals) > 0 and all(isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in vals),
                name,
                "positive number(s)" + (" (a non-empty tuple)" if isinstance(v, tuple) else ""),
            )

    # -- grid ---------------------------------------------------------------------------------

    def grid(self) -> list[tuple[dict[str, Any], TrainConfig]]:  # pragma: no cover - overridden
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {f.name: jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def key(self) -> str:
        """Short hash of the config (names output files)."""
        blob = json.dumps({"cls": type(self).__name__, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


# ------------------------------------------------------------------------------------------------
# Parsing ``--set key=value``
# ------------------------------------------------------------------------------------------------


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}


def _parse_scalar(text: str, tp) -> Any:
    t = text.strip()
    if t.lower() in ("none", "null"):
        return None
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if origin in (typing.Union, types.UnionType) and args:
        tp = args[0]
        origin = typing.get_origin(tp)
    if tp is bool:
        if t.lower() in ("true", "1", "yes", "on"):
            return True
        if t.lower() in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"expected true/false, got {text!r}")
    if tp is int:
        return int(t)
    if tp is float:
        return float(t)
    if tp is str:
        return t
    if origin is tuple or tp is tuple:
        inner = typing.get_args(tp)
        elt = inner[0] if inner else Any
        if t.startswith("["):
            items = json.loads(t)
            if not isinstance(items, list):
                raise ValueError(f"expected a list, got {text!r}")
            for item in items:
                if elt is not Any and not _is_instance(item, elt):
                    raise ValueError(f"item {item!r} of {text} is not of type {getattr(elt, '__name__', elt)}")
        else:
            items = [s for s in t.split(",") if s.strip()]
            return tuple(_parse_scalar(s, elt) if elt is not Any else _auto(s) for s in items)
        return tuple(items)
    return _auto(t)


def _is_instance(value: Any, tp) -> bool:
    """``isinstance`` for the scalar field types of configs: ints are not bools, floats accept ints."""
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is bool:
        return isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    return True


def _check_field_types(config) -> None:
    """Refuse values of the wrong scalar type (e.g. a width of 1.5, which ``int()`` would truncate)."""
    for name, tp in _field_types(type(config)).items():
        value = getattr(config, name)
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            if value is None:
                continue
            tp = args[0] if len(args) == 1 else Any
        if typing.get_origin(tp) is tuple:
            inner = [a for a in typing.get_args(tp) if a is not Ellipsis]
            elt = inner[0] if len(inner) == 1 else Any
            ok = isinstance(value, tuple) and all(_is_instance(v, elt) for v in value)
            what = f"a tuple of {getattr(elt, '__name__', elt)}"
        else:
            ok, what = _is_instance(value, tp), getattr(tp, "__name__", str(tp))
        if not ok:
            raise ValueError(f"{type(config).__name__}.{name}={value!r} is invalid; accepted: {what}")


def _auto(t: str) -> Any:
    try:
        return json.loads(t)
    except json.JSONDecodeError:
        return t


def parse_overrides(cls, assignments: Sequence[str]) -> dict[str, Any]:
    """Parse ``["lr=0.1", "seeds=0,1,2", "losses=mse"]`` against the field types of ``cls``."""
    types_ = _field_types(cls)
    out: dict[str, Any] = {}
    for a in assignments:
        if "=" not in a:
            raise ValueError(f"--set expects key=value, got {a!r}")
        k, v = a.split("=", 1)
        k = k.strip()
        if k not in types_:
            raise ValueError(f"unknown field {k!r} for {cls.__name__}; accepted: {sorted(types_)}")
        try:
            out[k] = _parse_scalar(v, types_[k])
        except (ValueError, json.JSONDecodeError) as e:
            raise ValueError(f"cannot parse --set {a!r} for field {k!r} of type {types_[k]}: {e}") from None
    return out


# ------------------------------------------------------------------------------------------------
# Running
# ------------------------------------------------------------------------------------------------


def _preflight(configs: Sequence[TrainConfig]) -> None:
    """Before any training: every device exists, every data set loads (e.g. CIFAR present), and no
    mini-batch is larger than its training set."""
    from .. import data
    from .._util import resolve_device
    from ..training import check_batch_size

    sizes: dict[tuple, int] = {}
    for c in configs:
        resolve_device(c.device)
        key = (c.dataset, c.data_seed, json.dumps(jsonable(c.dataset_options), sort_keys=True))
        if key not in sizes:
            try:
                sizes[key] = data.load(c.dataset, seed=c.data_seed, **dict(c.dataset_options)).n_train
            except FileNotFoundError as e:
                raise ValueError(f"dataset={c.dataset!r} is not available on this machine: {e}") from e
        check_batch_size(c, sizes[key])


def _labelled(labels: Mapping[str, Any], record: pd.DataFrame, last_row: Mapping[str, Any], key: str) -> pd.DataFrame:
    """One run's record with its grid labels first, ``last_row`` values on its last row, then
    ``status`` and ``run_key``."""
    status = record.attrs.get("status", "")
    df = record.copy()
    df.attrs = {}
    for i, (k, v) in enumerate(labels.items()):
        if k in df.columns:  # e.g. "lr" with a constant schedule: keep the record's column
            if not (df[k] == v).all():
                raise ValueError(f"grid label {k!r}={v!r} disagrees with the record's column {k!r}; rename the label")
            df.insert(i, k, df.pop(k))
        else:
            df.insert(i, k, [v] * len(df))
    last = (df["step"] == df["step"].max()).to_numpy() if len(df) else np.zeros(0, dtype=bool)
    for c, v in last_row.items():
        df[c] = np.where(last, v, np.nan)
    df["status"] = status
    df["run_key"] = key
    return df


TRAINING_ENV = "SHARPJAC_TRAINING"
"""Environment variable: ``never`` makes :func:`run_experiment` and :func:`run_study` raise
:class:`MissingRuns` instead of training a run that is not stored (the paper-preset book build sets
it, so that a book read from a store filled elsewhere never trains for hours by surprise)."""


class MissingRuns(RuntimeError):
    """Training is switched off (``SHARPJAC_TRAINING=never``) and some runs are not stored.

    Attributes:
        experiment: the experiment's registry name.
        points: the missing runs (:class:`sharpjac.executors.Point`).
    """

    def __init__(self, experiment: str, points: Sequence, store_root):
        self.experiment = experiment
        self.points = list(points)
        shown = "; ".join(f"{_label_text(p.labels)} (run {p.key[:12]})" for p in self.points[:20])
        more = f"; and {len(self.points) - 20} more" if len(self.points) > 20 else ""
        super().__init__(
            f"{len(self.points)} run(s) of experiment {experiment!r} are not in the store {store_root} and "
            f"{TRAINING_ENV}=never forbids training them: {shown}{more}; produce them with "
            f"`python -m sharpjac run {experiment} --preset ...` (see `python -m sharpjac.publish missing`)"
        )


def _label_text(labels: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in labels.items()) or "(no labels)"


def training_allowed() -> bool:
    """False when ``$SHARPJAC_TRAINING`` is ``never`` (see :data:`TRAINING_ENV`)."""
    import os

    value = os.environ.get(TRAINING_ENV, "").strip().lower()
    if value not in ("", "never", "allowed"):
        raise ValueError(f"${TRAINING_ENV}={value!r} is invalid; accepted: unset, 'allowed' or 'never'")
    return value != "never"


def distinct_points(configs: Sequence[tuple[Mapping[str, Any], TrainConfig]]) -> list:
    """The distinct runs of a grid (first occurrence's labels), as executor points."""
    from ..executors import Point
    from ..runs import config_key

    seen: dict[str, Any] = {}
    for labels, tc in configs:
        key = config_key(tc)
        if key not in seen:
            seen[key] = Point(dict(labels), tc, key)
    return list(seen.values())


def missing_runs(config: ExperimentConfig, *, name: str, store=None) -> list:
    """The runs ``config`` needs that ``store`` does not hold (nothing is trained or loaded).

    For a grid experiment: its distinct grid points whose run is not stored
    (:meth:`sharpjac.runs.RunStore.has`). For a :class:`StudyConfig`: none when the study's tables
    are stored, else the runs of :meth:`StudyConfig.trains` that are not. Returns
    :class:`sharpjac.executors.Point` objects (labels, TrainConfig, run key). ``store=False``
    (keep nothing) needs every run.
    """
    from ..runs import META, as_store

    st = as_store(store)
    if isinstance(config, StudyConfig) and st is not None:
        spec = {"experiment": name, "config": config.to_dict()}
        folder = st.study_folder(name, spec, code=type(config).__module__)[0]
        if (folder / META).is_file():
            return []
    points = distinct_points(config.grid())
    return points if st is None else [p for p in points if not st.has(p.config)]


def run_experiment(
    config: ExperimentConfig,
    *,
    name: str,
    store=None,
    force: bool = False,
    progress: bool | None = None,
    run_point: Callable[[TrainConfig, bool], tuple[pd.DataFrame, Mapping[str, Any]]] | None = None,
    executor=None,
) -> pd.DataFrame:
    """Run every grid point of ``config`` (reusing the store) and concatenate the records.

    Args:
        config, name, store, force, progress: the experiment, its registry name, the run store
            (see :func:`sharpjac.runs.run`), retrain even if stored, progress bar.
        run_point: ``run_point(train_config, progress) -> (record, last_row)``; default: the record
            of :func:`sharpjac.runs.run` and no extra values. ``last_row`` holds values measured at
            the end of the run (they go on the run's last row, NaN elsewhere). A grid point that
            occurs twice (same run key) is run once.
        executor: ``"serial"``, ``"ray"`` or a :class:`sharpjac.executors.Executor`; default
            :func:`sharpjac.executors.current` (serial unless inside ``executors.using(...)``).
            The distinct runs are handed to it in grid order; every executor gives the same table.

    Returns a DataFrame with the grid coordinates (and ``seed``) as leading columns, then the
    training record's columns, the ``last_row`` columns, then ``status`` (completed /
    target_reached / diverged) and ``run_key``. ``attrs``: ``experiment``, ``config``.

    Raises:
        MissingRuns: ``$SHARPJAC_TRAINING`` is ``never`` and some run is not stored.
        sharpjac.executors.GridFailed: (Ray) some runs failed; the others are stored.
    """
    from ..executors import make_executor
    from ..runs import as_store, run

    if not isinstance(config, ExperimentConfig):
        raise TypeError(f"config must be an ExperimentConfig, got {type(config).__name__}")
    ex = make_executor(executor)
    grid = config.grid()
    _preflight([tc for _, tc in grid])
    if not training_allowed():
        st = as_store(store)
        missing = missing_runs(config, name=name, store=st) if not force else distinct_points(grid)
        if missing:
            raise MissingRuns(name, missing, st.root if st is not None else "(none)")
    show = progress_enabled(progress)
    if run_point is None:

        def run_point(tc: TrainConfig, show: bool) -> tuple[pd.DataFrame, Mapping[str, Any]]:
            return run(tc, store=store, force=force, progress=show), {}

    points = distinct_points(grid)
    for p in points:
        request_log.record("run", p.key, name)
    results = dict(zip((p.key for p in points), ex.map(run_point, points, name=name, progress=show)))
    frames = []
    from ..runs import config_key

    for labels, tc in grid:
        record, last_row, key = results[config_key(tc)]
        frames.append(_labelled(labels, record, last_row, key))
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    out.attrs = {"experiment": name, "config": config.to_dict()}
    return out


# ------------------------------------------------------------------------------------------------
# Studies: experiments whose result is a set of tables (the theory chapters)
# ------------------------------------------------------------------------------------------------


class StudyConfig(ExperimentConfig):
    """An experiment computed as a whole: a few training runs plus analysis, giving named tables.

    The theory chapters are studies. A subclass defines its fields and ``PRESETS``, ``_check``,
    :meth:`trains` (the :class:`~sharpjac.training.TrainConfig` runs it uses, so that they are
    checked before any work and listed as what the study needs) and :meth:`compute`. Its result
    is cached whole in the run store (:meth:`sharpjac.runs.RunStore.study`), and its training
    runs, with their networks, are stored as ordinary runs, so a second call trains nothing.
    """

    def trains(self) -> list[TrainConfig]:
        """The training runs the study uses (default: none)."""
        return []

    def grid(self) -> list[tuple[dict[str, Any], TrainConfig]]:
        return [({"run": i}, tc) for i, tc in enumerate(self.trains())]

    def compute(self, *, store, progress: bool | None) -> dict[str, pd.DataFrame]:  # pragma: no cover - overridden
        """Compute the tables; ``store`` is a :class:`~sharpjac.runs.RunStore` or None (keep nothing)."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class TrainedRun:
    """A training run's record and its kept networks.

    Attributes:
        frame: the record (one row per measurement).
        models: ``{step: network}`` for every kept snapshot, the last step included.
        config: the run.
    """

    frame: pd.DataFrame
    models: dict[int, torch.nn.Module]
    config: TrainConfig

    @property
    def final(self) -> torch.nn.Module:
        """The network at the end of training."""
        return self.models[max(self.models)]


def trained_run(config: TrainConfig, *, store, progress: bool | None = None) -> TrainedRun:
    """Train ``config`` (or load it from ``store``) and return its record with its kept networks."""
    from ..runs import as_store, config_key, run
    from ..training import initial_model, train

    request_log.record("run", config_key(config))
    st = as_store(store)
    if st is None:
        result = train(config, progress=progress)
        models = {}
        for step, state in result.snapshots.items():
            m = initial_model(config)
            m.load_state_dict(state)
            models[int(step)] = m
        return TrainedRun(result.frame, models, config)
    frame = run(config, store=st, progress=progress)
    return TrainedRun(frame, {s: st.load_model(config, s) for s in st.model_steps(config)}, config)


def run_study(
    config: StudyConfig,
    *,
    name: str,
    store=None,
    force: bool = False,
    progress: bool | None = None,
    executor=None,
) -> dict[str, pd.DataFrame]:
    """Compute a study's tables, or load them from the store (``force``: compute again).

    With a non-serial ``executor`` (see :func:`run_experiment`) and a store, the runs of
    :meth:`StudyConfig.trains` that are not stored are first trained by the executor (in parallel),
    then :meth:`StudyConfig.compute` reads them from the store; with the serial one, ``compute``
    trains them itself, as it always has. ``$SHARPJAC_TRAINING=never`` raises :class:`MissingRuns`
    instead of training (or recomputing) anything.

    ``compute`` (its measurements: Lanczos, Jacobians, ...) runs with exactly ``config.threads``
    torch threads, like the runs it trains, so that the stored tables do not depend on the
    machine's core count, and two chapters executed at once on two cores do not each start one
    OpenMP thread per core: oversubscribed, the many small products of a Lanczos run wait on
    descheduled threads (measured on 2 cores, four chapters two at a time: the quick
    ``hessian_structure`` chapter's measurements took 122 s with torch's default two threads,
    9.5 s with one, with the same tables).
    """
    from ..executors import make_executor
    from ..runs import as_store, run

    if not isinstance(config, StudyConfig):
        raise TypeError(f"config must be a StudyConfig, got {type(config).__name__}")
    ex = make_executor(executor)
    _preflight(config.trains())
    st = as_store(store)
    spec = {"experiment": name, "config": config.to_dict()}
    if st is not None:
        request_log.record("study", st.study_folder(name, spec)[0].name, name)
    for p in distinct_points(config.grid()):
        request_log.record("run", p.key, name)
    if not training_allowed():
        missing = missing_runs(config, name=name, store=st) if not force else distinct_points(config.grid())
        if missing:
            raise MissingRuns(name, missing, st.root if st is not None else "(none)")
    if st is None:
        with _Threads(config.threads):
            return config.compute(store=None, progress=progress)
    if force:
        st.delete_study(name, spec, code=type(config).__module__)
    if ex.name != "serial":
        todo = missing_runs(config, name=name, store=st)
        if todo:

            def train_point(tc: TrainConfig, show: bool) -> tuple[pd.DataFrame, Mapping[str, Any]]:
                return run(tc, store=st, progress=show), {}

            ex.map(train_point, todo, name=name, progress=progress_enabled(progress))
    # keyed by the code of the experiment's module (its import closure), not this module's
    with _Threads(config.threads):
        return st.study(name, spec, lambda: config.compute(store=st, progress=progress), code=type(config).__module__)
