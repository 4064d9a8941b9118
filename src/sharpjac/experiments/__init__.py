"""Registry of named experiments (one small module per book chapter).

>>> from sharpjac import experiments
>>> "progressive_sharpening" in experiments.names()
True
>>> cfg = experiments.get("progressive_sharpening").config_cls.preset("smoke")

Each registered :class:`Experiment` has a frozen config dataclass with ``smoke``, ``quick`` and
``paper`` presets (``Config.preset(name)``, ``Config.from_preset(name, **overrides)``) and a
``run(config, *, store=None, force=False, progress=None) -> DataFrame``.

To add an experiment: write ``sharpjac/experiments/<name>.py`` defining a config subclass of
:class:`~sharpjac.experiments.base.ExperimentConfig` (fields, ``PRESETS``, ``_check``, ``grid``)
and calling :func:`register`; every module of this package is imported when the registry is
first used.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..training import _Threads
from .base import (
    PRESET_NAMES,
    ExperimentConfig,
    StudyConfig,
    TrainedRun,
    parse_overrides,
    run_experiment,
    run_study,
    trained_run,
)

__all__ = [
    "Experiment",
    "register",
    "get",
    "names",
    "describe",
    "run",
    "ExperimentConfig",
    "StudyConfig",
    "TrainedRun",
    "trained_run",
    "PRESET_NAMES",
    "parse_overrides",
]

Result = pd.DataFrame | dict[str, pd.DataFrame]

_REGISTRY: dict[str, Experiment] = {}


@dataclass(frozen=True)
class Experiment:
    """A registered experiment.

    Attributes:
        name: registry name (used by the CLI).
        description: one line.
        config_cls: the frozen config dataclass (with presets).
        chapter: the book chapter / paper figure it belongs to.
    """

    name: str
    description: str
    config_cls: type
    chapter: str = ""
    runner: Callable[..., Result] | None = None
    chapter_configs: Callable[..., list[ExperimentConfig]] | None = None

    def configs_for(self, preset: str = "quick", seed: int = 0, **params) -> list[ExperimentConfig]:
        """The configurations a chapter with these parameters runs: the one mapping.

        The chapter, the command line, the paper pre-flight (``publish missing``) and the Ray
        executor all call this, so the pre-flight lists exactly the runs a chapter will request.

        ``seed`` means the same in every chapter: the first seed of a block. Training seeds are
        ``seed, seed + 1, ...`` (as many as the preset or ``n_seeds`` says) and every other random
        draw of the chapter (the data split, sampled points) uses ``data_seed = seed``.

        Args:
            preset: ``"smoke"``, ``"quick"`` or ``"paper"``.
            seed: first seed of the block (an int >= 0).
            **params: the rest of the chapter's parameters cell that changes its runs (for
                example ``n_seeds``); the experiment module's ``chapter_configs`` says which it
                accepts and refuses the others.

        Returns:
            A non-empty list of configs (most chapters run one; ``hessian_structure`` runs one
            per loss).
        """
        if preset not in PRESET_NAMES:
            raise ValueError(f"preset={preset!r}; accepted: {list(PRESET_NAMES)}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed={seed!r}; accepted: an integer >= 0")
        if self.chapter_configs is None:
            if params:
                raise ValueError(f"experiment {self.name!r} takes no chapter parameters; got {sorted(params)}")
            return [self.preset(preset)]
        configs = list(self.chapter_configs(preset, seed, **params))
        if not configs or not all(isinstance(c, self.config_cls) for c in configs):
            raise TypeError(f"{self.name}: chapter_configs must return a non-empty list of {self.config_cls.__name__}")
        return configs

    def run_parameters(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """The chapter parameters that change this experiment's runs, out of a chapter's whole
        ``parameters`` (its parameters cell with the values injected by ``publish``).

        ``preset`` (default ``"quick"``) and ``seed`` (default 0), plus every other name that
        ``chapter_configs`` accepts (all of them when it takes ``**params``); the other parameters
        of a chapter (``method``, ``fraction``, ...) change what it shows, not what it runs.
        """
        out = {"preset": parameters.get("preset", "quick"), "seed": parameters.get("seed", 0)}
        if self.chapter_configs is None:
            return out
        sig = inspect.signature(self.chapter_configs)
        takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
        accepted = {
            n
            for n, p in list(sig.parameters.items())[2:]
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        }
        out.update({k: v for k, v in parameters.items() if k not in out and (takes_all or k in accepted)})
        return out

    def configs_for_chapter(self, parameters: Mapping[str, Any]) -> list[ExperimentConfig]:
        """:meth:`configs_for` with a chapter's whole parameters (see :meth:`run_parameters`): what
        ``publish missing`` and the command line call."""
        params = self.run_parameters(parameters)
        return self.configs_for(params.pop("preset"), params.pop("seed"), **params)

    def preset(self, preset: str = "quick", **overrides) -> ExperimentConfig:
        return self.config_cls.from_preset(preset, **overrides)

    def run(
        self, config: ExperimentConfig | None = None, *, store=None, force: bool = False, progress: bool | None = None
    ) -> Result:
        """Run ``config`` (default: the quick preset), reusing the store, with exactly ``config.threads``
        torch threads (restored after).

        A grid experiment returns one DataFrame (one stored run per grid point); a study
        (:class:`~sharpjac.experiments.base.StudyConfig`, the theory chapters) returns
        ``{table name: DataFrame}``.
        """
        if config is None:
            config = self.preset("quick")
        if not isinstance(config, self.config_cls):
            raise TypeError(
                f"config for experiment {self.name!r} must be a {self.config_cls.__name__}, got {type(config).__name__}"
            )
        # measurements outside training (a runner's or a study's) use the runs' thread count too
        # (see run_study): results independent of the machine, no oversubscribed cores
        with _Threads(config.threads):
            if self.runner is not None:
                return self.runner(config, store=store, force=force, progress=progress)
            if isinstance(config, StudyConfig):
                return run_study(config, name=self.name, store=store, force=force, progress=progress)
            return run_experiment(config, name=self.name, store=store, force=force, progress=progress)


def register(
    name: str,
    config_cls: type,
    description: str,
    *,
    chapter: str = "",
    runner: Callable[..., Result] | None = None,
    chapter_configs: Callable[..., list[ExperimentConfig]] | None = None,
) -> Experiment:
    """Register an experiment (re-registering a name replaces it).

    Args:
        name: registry name.
        config_cls: an :class:`ExperimentConfig` subclass with smoke/quick/paper presets.
        description: one line (shown by ``python -m sharpjac list``).
        chapter: book chapter / paper figure.
        runner: ``run(config, *, store, force, progress) -> DataFrame``; default
            :func:`~sharpjac.experiments.base.run_experiment` (grid points concatenated), or
            :func:`~sharpjac.experiments.base.run_study` for a :class:`StudyConfig`.
        chapter_configs: ``chapter_configs(preset, seed, **params) -> list[config]``, the one
            mapping from a chapter's parameters to its runs (see :meth:`Experiment.configs_for`).
    """
    if not (isinstance(config_cls, type) and issubclass(config_cls, ExperimentConfig)):
        raise TypeError(f"config_cls must subclass ExperimentConfig, got {config_cls!r}")
    missing = [p for p in PRESET_NAMES if p not in config_cls.PRESETS]
    if missing:
        raise ValueError(f"experiment {name!r} lacks preset(s) {missing}; required: {PRESET_NAMES}")
    exp = Experiment(name, description, config_cls, chapter, runner, chapter_configs)
    _REGISTRY[name] = exp
    return exp


def get(name: str) -> Experiment:
    """The experiment called ``name``; ValueError listing the names if unknown."""
    _load_builtin()
    if name not in _REGISTRY:
        raise ValueError(f"unknown experiment {name!r}; accepted: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def names() -> list[str]:
    """Sorted names of the registered experiments."""
    _load_builtin()
    return sorted(_REGISTRY)


def describe(name: str) -> str:
    """Multi-line description: fields with types and defaults, presets and their values."""
    exp = get(name)
    cls = exp.config_cls
    lines = [f"{exp.name}: {exp.description}"]
    if exp.chapter:
        lines.append(f"chapter: {exp.chapter}")
    lines.append("")
    lines.append("fields (default = the 'quick' preset):")
    quick = cls.preset("quick")
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    for f in dataclasses.fields(cls):
        lines.append(f"  {f.name}: {hints[f.name]} = {getattr(quick, f.name)!r}")
    lines.append("")
    lines.append("presets (fields that differ from the class defaults):")
    for p in PRESET_NAMES:
        vals = ", ".join(f"{k}={v!r}" for k, v in cls.PRESETS[p].items())
        lines.append(f"  {p}: {vals}")
    doc = (cls.__doc__ or "").strip()
    if doc:
        lines += ["", doc]
    return "\n".join(lines)


def run(name: str, config: ExperimentConfig | None = None, **kw) -> Result:
    """``get(name).run(config, **kw)``."""
    return get(name).run(config, **kw)


_loaded = False


def _load_builtin() -> None:
    """Import every module of this package (each registers its experiments)."""
    global _loaded
    if not _loaded:
        _loaded = True
        for info in pkgutil.iter_modules(__path__):
            if info.name != "base" and not info.name.startswith("_"):
                importlib.import_module(f"{__name__}.{info.name}")
