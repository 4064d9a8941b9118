"""Executors: how the grid points of an experiment are run (one process, or Ray tasks).

An experiment's grid is a list of independent training runs (the README's section *Running at
the paper's scale* shows the commands, a cluster and SLURM).
:func:`sharpjac.experiments.base.run_experiment` hands the distinct runs to an executor as a list
of :class:`Point` and gets back, in the same order, what its per-run function
``run_point(train_config, progress) -> (record, last_row)`` returned for each:

* :class:`SerialExecutor` (the default) calls ``run_point`` for each point in turn, in this
  process, with one progress bar; the first error stops the grid.
* :class:`RayExecutor` sends each point to a Ray task (``num_gpus=1`` when the cluster has GPUs
  and the run may use one, else ``num_cpus=TrainConfig.threads``), on a local Ray instance when no
  address is given, or on an existing cluster (``address="HOST:PORT"`` or ``"auto"``). The workers
  write to the same run store, which must then be on a file system they all see; the store's
  per-run lock and checksums make concurrent writers safe. A task whose worker dies (killed, out
  of memory, a lost node) is retried up to ``max_retries`` times by Ray, and the retry resumes
  from the run's newest checkpoint in the store. The driver shows one progress bar over the grid;
  points that fail for good are collected, the others still finish (and are stored), and
  :class:`GridFailed` is raised at the end with a table of the failures.

Both give the same records, bit for bit: a run's record depends only on its
:class:`~sharpjac.training.TrainConfig` (``threads`` included), never on the process or machine
that trained it (on one kind of device; the device type is part of the run's key).

The executor of the calls that do not name one is :func:`current`: the serial one, unless a
``with using(executor):`` block says otherwise (that is how the command line's ``--executor ray``
reaches experiments whose runners call :func:`~sharpjac.experiments.base.run_experiment`).

Ray is an optional dependency: ``pip install -e .[cluster]``.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .training import TrainConfig

__all__ = [
    "EXECUTORS",
    "Executor",
    "Failure",
    "GridFailed",
    "Point",
    "RayExecutor",
    "SerialExecutor",
    "current",
    "make_executor",
    "using",
]

EXECUTORS = ("serial", "ray")

RunPoint = Callable[[TrainConfig, bool], tuple[pd.DataFrame, Mapping[str, Any]]]


@dataclass(frozen=True)
class Point:
    """One distinct run of a grid.

    Attributes:
        labels: the grid coordinates of its first occurrence (e.g. ``{"lr": 0.1, "seed": 0}``).
        config: the run.
        key: its run key on the driver (:func:`sharpjac.runs.config_key`).
    """

    labels: Mapping[str, Any]
    config: TrainConfig
    key: str


@dataclass(frozen=True)
class Failure:
    """A grid point that did not produce a record: its labels, run key and the error (one line)."""

    labels: Mapping[str, Any]
    key: str
    error: str


class GridFailed(RuntimeError):
    """Some grid points failed; the others finished and are stored.

    Attributes:
        failures: the failed points.
        total: number of distinct runs in the grid.
    """

    def __init__(self, name: str, failures: Sequence[Failure], total: int):
        self.failures = list(failures)
        self.total = total
        self.name = name
        super().__init__(
            f"{len(self.failures)} of {total} runs of {name!r} failed (the others are stored; run the same "
            f"command again to retry the failed ones):\n{self.table().to_string(index=False)}"
        )

    def table(self) -> pd.DataFrame:
        """One row per failure: the grid labels, ``run_key`` (12 characters) and ``error``."""
        rows = [{**dict(f.labels), "run_key": f.key[:12], "error": f.error} for f in self.failures]
        return pd.DataFrame(rows)


def _one_line(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip()
    return " ".join(text.split())[:300]


class Executor:
    """Base class: ``map(run_point, points, name=..., progress=...)`` returns, in the order of
    ``points``, ``(record, last_row, key)`` for each point, ``key`` being the run key where the run
    was trained."""

    name = "executor"

    def map(
        self, run_point: RunPoint, points: Sequence[Point], *, name: str, progress: bool
    ) -> list[tuple[pd.DataFrame, Mapping[str, Any], str]]:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        """Release what the executor started (nothing for the serial one)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SerialExecutor(Executor):
    """Every point in turn, in this process (the default); the first error propagates."""

    name = "serial"

    def map(self, run_point, points, *, name, progress):
        bar = None
        it: Any = points
        if progress:
            from tqdm.auto import tqdm

            bar = it = tqdm(points, desc=name, unit="run")
        out = []
        try:
            for p in it:
                if bar is not None:
                    bar.set_postfix(dict(p.labels))
                record, last_row = run_point(p.config, progress)
                out.append((record, last_row, p.key))
        finally:
            if bar is not None:
                bar.close()
        return out

    def __repr__(self) -> str:
        return "SerialExecutor()"


def _ray_point(run_point: RunPoint, config: TrainConfig) -> tuple[pd.DataFrame, dict[str, Any], str, dict[str, Any]]:
    """The body of a Ray task: one run, without a progress bar; its key where it ran; and the
    record's ``attrs`` apart (pandas keeps ``attrs`` through pickling, but this does not rely on it)."""
    from .runs import config_key

    record, last_row = run_point(config, False)
    return record, dict(last_row), config_key(config), dict(record.attrs)


class RayExecutor(Executor):
    """Each distinct run of a grid as one Ray task.

    Args:
        address: ``None`` (start a local Ray instance in this process, stopped by :meth:`close`),
            ``"auto"`` (the cluster this machine belongs to) or ``"HOST:PORT"`` (a cluster's head).
            When Ray is already initialised in this process, that instance is used and left running.
        num_cpus: CPUs of the local instance (default: all); ignored with an address.
        max_retries: times Ray retries a task whose worker died (the retry resumes from the run's
            newest checkpoint); an exception raised by the run itself is not retried.
        gpus: ``"auto"`` (one GPU per task when the cluster has GPUs and the run's device is not
            ``"cpu"``), ``True`` (always one; an error when the cluster has none) or ``False``.
        temp_dir: Ray's session folder for a local instance (default Ray's, ``/tmp/ray``).
        task_options: extra ``ray.remote`` options for every task (e.g. ``{"memory": 8e9}``).
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        max_retries: int = 3,
        gpus: bool | str = "auto",
        temp_dir: str | os.PathLike | None = None,
        task_options: Mapping[str, Any] | None = None,
    ):
        if address is not None and not (isinstance(address, str) and address):
            raise ValueError(f"address={address!r} is invalid; accepted: None, 'auto' or 'HOST:PORT'")
        if num_cpus is not None and not (isinstance(num_cpus, int) and not isinstance(num_cpus, bool) and num_cpus > 0):
            raise ValueError(f"num_cpus={num_cpus!r} is invalid; accepted: None or an int >= 1")
        if not (isinstance(max_retries, int) and not isinstance(max_retries, bool) and max_retries >= 0):
            raise ValueError(f"max_retries={max_retries!r} is invalid; accepted: an int >= 0")
        if gpus not in ("auto", True, False):
            raise ValueError(f"gpus={gpus!r} is invalid; accepted: 'auto', True or False")
        self.address = address
        self.num_cpus = num_cpus
        self.max_retries = max_retries
        self.gpus = gpus
        self.temp_dir = None if temp_dir is None else str(temp_dir)
        self.task_options = dict(task_options or {})
        self._started = False

    def __repr__(self) -> str:
        return f"RayExecutor(address={self.address!r}, max_retries={self.max_retries})"

    @staticmethod
    def _ray():
        try:
            import ray
        except ImportError:
            raise ImportError(
                "executor='ray' needs Ray, which is not installed; install it with `pip install -e .[cluster]`"
            ) from None
        return ray

    def start(self):
        """Connect to (or start) Ray; returns the ``ray`` module."""
        ray = self._ray()
        if not ray.is_initialized():
            slow_machine_timeouts()
            kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address is None:
                if self.num_cpus is not None:
                    kw["num_cpus"] = self.num_cpus
                if self.temp_dir is not None:
                    kw["_temp_dir"] = self.temp_dir
            _check_answers(self.address)
            try:
                ray.init(address=self.address, **kw)
            except ConnectionError as e:
                raise ConnectionError(
                    f"address={self.address!r}: no Ray cluster answered ({' '.join(str(e).split())[:200]}); "
                    "start one with `ray start --head` or give --executor ray without --address"
                ) from None
            self._started = True
        return ray

    def close(self) -> None:
        """Shut down the Ray instance this executor started (one it found running is left alone)."""
        if self._started:
            ray = self._ray()
            ray.shutdown()
            self._started = False

    def _options(self, ray, config: TrainConfig, key: str) -> dict[str, Any]:
        has_gpus = float(ray.cluster_resources().get("GPU", 0)) > 0
        if self.gpus is True and not has_gpus:
            raise ValueError("gpus=True is invalid for this Ray cluster: it has no GPU; accepted: 'auto' or False")
        wants = config.device != "cpu" and (self.gpus is True or (self.gpus == "auto" and has_gpus))
        if config.device.startswith("cuda") and not has_gpus:
            raise ValueError(
                f"TrainConfig.device={config.device!r} is invalid on this Ray cluster, which has no GPU; "
                "accepted: 'auto' or 'cpu'"
            )
        opts: dict[str, Any] = {
            "num_cpus": 1 if wants else config.threads,
            "num_gpus": 1 if wants else 0,
            "max_retries": self.max_retries,
            "retry_exceptions": False,
            "name": f"sharpjac-{key[:12]}",
        }
        return {**opts, **self.task_options}

    def map(self, run_point, points, *, name, progress):
        ray = self.start()
        remote = ray.remote(_ray_point)
        fn_ref = ray.put(run_point)  # one copy of the function (and what it closes over) for all tasks
        pending = {}
        for i, p in enumerate(points):
            ref = remote.options(**self._options(ray, p.config, p.key)).remote(fn_ref, p.config)
            pending[ref] = i
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(points), desc=f"{name} (ray)", unit="run")
        results: list[Any] = [None] * len(points)
        failures: dict[int, Failure] = {}
        try:
            remaining = list(pending)
            while remaining:
                ready, remaining = ray.wait(remaining, num_returns=1)
                for ref in ready:
                    i = pending[ref]
                    try:
                        record, last_row, key, attrs = ray.get(ref)
                    except Exception as e:  # the run raised, or its worker died more than max_retries times
                        cause = getattr(e, "cause", None)
                        failures[i] = Failure(points[i].labels, points[i].key, _one_line(cause or e))
                    else:
                        record.attrs = attrs
                        results[i] = (record, last_row, key)
                    if bar is not None:
                        bar.update(1)
                        if failures:
                            bar.set_postfix({"failed": len(failures)})
        finally:
            if bar is not None:
                bar.close()
        if failures:
            raise GridFailed(name, [failures[i] for i in sorted(failures)], len(points))
        return results


def slow_machine_timeouts() -> None:
    """Give a local Ray instance's agents two minutes to register (Ray's default is seconds).

    On a loaded machine Ray's Python agents can take longer than that to import, and the node then
    dies during ``ray.init``. Sets ``RAY_agent_register_timeout_ms`` unless it is set already.
    """
    os.environ.setdefault("RAY_agent_register_timeout_ms", "120000")


_CURRENT: contextvars.ContextVar[Executor | None] = contextvars.ContextVar("sharpjac_executor", default=None)


#: seconds a ``HOST:PORT`` Ray address has to accept a connection before ``ray.init`` is tried
ADDRESS_TIMEOUT_S = 10.0


def _check_answers(address: str | None, timeout: float = ADDRESS_TIMEOUT_S) -> None:
    """ConnectionError (one line) unless ``HOST:PORT`` accepts a TCP connection within ``timeout``
    seconds: ``ray.init`` itself retries a silent address for many minutes without a word.
    ``None``, ``"auto"`` and ``ray://`` addresses are left to Ray."""
    import socket

    if address is None or address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"address={address!r} is invalid; accepted: None, 'auto' or 'HOST:PORT'")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise ConnectionError(
            f"address={address!r}: nothing answered within {timeout:g} s ({e.strerror or type(e).__name__}); "
            "start a cluster with `ray start --head` there, check HOST:PORT (the GCS port, 6379 by default), "
            "or give --executor ray without --address"
        ) from None


def make_executor(executor: str | Executor | None = None, *, address: str | None = None, **kw) -> Executor:
    """An executor from its name (``"serial"`` or ``"ray"``), or ``executor`` itself.

    ``None`` gives :func:`current`. ``address`` and ``kw`` go to :class:`RayExecutor`.
    """
    if executor is None:
        return current()
    if isinstance(executor, Executor):
        return executor
    if executor == "serial":
        if address is not None:
            raise ValueError(f"address={address!r} is invalid with executor='serial'; accepted: None")
        return SerialExecutor()
    if executor == "ray":
        return RayExecutor(address, **kw)
    raise ValueError(f"executor={executor!r} is invalid; accepted: {', '.join(map(repr, EXECUTORS))} or an Executor")


def current() -> Executor:
    """The executor of calls that name none: the innermost :func:`using` block's, else serial."""
    ex = _CURRENT.get()
    return ex if ex is not None else SerialExecutor()


@contextlib.contextmanager
def using(executor: str | Executor) -> Iterator[Executor]:
    """Within the block, experiments run their grids with ``executor`` (a name or an Executor).

    >>> with using("serial") as ex:
    ...     ex.name
    'serial'
    """
    ex = make_executor(executor)
    token = _CURRENT.set(ex)
    try:
        yield ex
    finally:
        _CURRENT.reset(token)
