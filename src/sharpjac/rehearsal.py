"""The paper rehearsal: every chapter on the paper preset's path, at toy size, in minutes on a CPU.

Before anyone spends GPU-hours on the ``paper`` preset, ``make rehearse`` (``python -m
sharpjac.rehearsal``) executes the chapters with ``preset="paper"`` while the rehearsal is on
(``$SHARPJAC_REHEARSAL=1``, or ``with rehearsal():``). The chapters are unchanged: the shrinking is
one rule, applied where a preset becomes a config (:meth:`ExperimentConfig.from_preset
<sharpjac.experiments.base.ExperimentConfig.from_preset>`), to the ``paper`` preset only:

1. start from the paper preset (with the chapter's overrides): its data set (CIFAR-10 in the
   python-pickle format), its models (ResNet-18, the MLPs' activations), its losses, optimiser,
   augmentation and measurement code (Lanczos sharpness, Gauss-Newton, Jacobians, local variation);
2. every field the ``smoke`` preset sets takes its smoke value (grids, seeds, widths, sizes: the
   smallest grid the experiment has);
3. the sizes in :data:`CAPS` are capped (training steps to two, epochs to one, measurement subsets
   and schedules truncated; batch sizes, grids of them included, are first scaled with the
   training set, :data:`BATCH_FIELDS`), and snapshot steps beyond the last step move onto it; a capped value
   the experiment's own check refuses (``hessian_structure`` needs at least 5 steps) keeps its
   value of rule 2 (:func:`build`);
4. every training run made while the rehearsal is on (by any experiment or study) has at most
   :data:`TRAIN_CAPS` Lanczos iterations and a ResNet-18 of width multiplier 0.125
   (:func:`train_values`).

A rehearsal config differs from the paper config in its fields, so its runs have other keys and a
store never mixes rehearsal runs with real ones. The data are CIFAR-format arrays made for the
rehearsal (:func:`write_toy_cifar`: random images, the official file layout), read by the same code
(:mod:`sharpjac.data.cifar`) as the real archive. The numbers mean nothing; what is rehearsed is
that every chapter runs end to end on the paper path.

>>> from dataclasses import dataclass
>>> from sharpjac.experiments.base import ExperimentConfig
>>> @dataclass(frozen=True)
... class Grid(ExperimentConfig):
...     model: str = "mlp"
...     max_steps: int = 10
...     lrs: tuple = (0.1,)
...     PRESETS = {"smoke": {"lrs": (0.2,)}, "quick": {}, "paper": {"model": "resnet18", "max_steps": 10000,
...                                                                    "lrs": (0.01, 0.05), "seeds": (0, 1, 2)}}
>>> shrink(Grid, {**Grid.PRESETS["paper"]})
{'model': 'resnet18', 'max_steps': 2, 'lrs': (0.2,), 'seeds': (0,)}
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import pickle
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .data.cifar import TOY_MARKER

ENV = "SHARPJAC_REHEARSAL"

#: Caps of rule 3 (a field of that name is set to at most this value; ``None``, "all", becomes it).
CAPS: dict[str, int] = {
    "max_steps": 2,
    "steps": 2,
    "ce_steps": 2,
    "blind_steps": 2,
    "max_epochs": 1,
    "n_train": 64,
    "n_test": 32,
    "batch_size": 32,  # with n_train 64: two steps in the one epoch
    "batch": 32,
    "sharpness_subset": 16,
    "jacobian_subset": 8,
    "test_jacobian_points": 8,
    "variation_centres": 2,
    "variation_samples": 2,
    "variation_ascent_steps": 1,
    "lv_samples": 2,
    "lv_ascent_steps": 1,
    "lanczos_max_iter": 5,
    "measure_every": 1,
    "measure_num": 2,
    "measure_num_ce": 2,
    "measure_num_mse": 2,
    "measure_linear": 1,
    "measure_log": 1,
    "measures": 2,
    "density_iter": 5,
    "density_runs": 1,
    "residual_iter": 5,
    "k": 4,
}
#: Caps of rule 4, on every :class:`~sharpjac.training.TrainConfig` made while the rehearsal is on
#: (whatever experiment or study makes it): Lanczos iterations, and the ResNet-18's width multiplier
#: (0.125: 8-16-32-64 channels, the same architecture and code path at 1/64 of the FLOPs).
TRAIN_CAPS: dict[str, float] = {"lanczos_max_iter": 5, "resnet_width": 0.125}
#: Fields holding batch sizes: scaled by (capped n_train) / n_train, so that every batch of the
#: grid still fits the capped training set and distinct batch sizes stay distinct.
BATCH_FIELDS = ("batch_size", "batch", "batch_sizes", "smaller_batches")
#: Fields holding the steps of snapshots (kept up to the last step; later ones move onto it).
SNAPSHOT_FIELDS = ("snapshot_steps", "snapshots")
#: Per-class images of the toy CIFAR-10 (train, test): 5,000 and 1,000 images (18 MB), as many as the
#: chapters load directly (the data chapter shows 5,000 CIFAR-10 training images).
TOY_CIFAR_PER_CLASS = (500, 100)

__all__ = [
    "ENV",
    "CAPS",
    "TRAIN_CAPS",
    "active",
    "rehearsal",
    "shrink",
    "build",
    "train_values",
    "write_toy_cifar",
    "rehearse",
    "main",
]


def active() -> bool:
    """Whether the rehearsal is on (``$SHARPJAC_REHEARSAL`` is ``1``; unset or ``0``: off)."""
    value = os.environ.get(ENV, "").strip()
    if value not in ("", "0", "1"):
        raise ValueError(f"${ENV}={value!r} is invalid; accepted: unset, '0' or '1'")
    return value == "1"


@contextlib.contextmanager
def rehearsal() -> Iterator[None]:
    """Turn the rehearsal on inside the block (and in the kernels and workers started there)."""
    old = os.environ.get(ENV)
    os.environ[ENV] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = old


def _cap(value: Any, cap: int) -> Any:
    if value is None:
        return cap
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return type(value)(min(value, cap))


def shrink(cls: type, values: Mapping[str, Any], *, caps: bool = True) -> dict[str, Any]:
    """The rehearsal's rule (module docstring) applied to a paper config's field values.

    Args:
        cls: the experiment's config class (its ``PRESETS["smoke"]`` and fields are read).
        values: the paper preset's values with the caller's overrides.
        caps: apply rule 3 (False: rules 1 and 2 only).

    Returns the values of the rehearsal config (only fields of ``cls``).
    """
    names = {f.name for f in dataclasses.fields(cls)}
    smoke = cls.PRESETS.get("smoke", {})
    out = dict(values)
    for name, value in smoke.items():  # rule 2
        if name in names and name not in ("dataset", "model"):
            out[name] = value
    if "seeds" in out and len(out["seeds"]) > 1:
        out["seeds"] = tuple(out["seeds"])[:1]
    n_train = out.get("n_train", _default(cls, "n_train") if "n_train" in names else None)
    if caps and isinstance(n_train, int) and n_train > CAPS["n_train"]:  # batch sizes follow n_train
        for name in BATCH_FIELDS:
            if name in names and out.get(name) is not None:
                out[name] = _scaled(out[name], CAPS["n_train"] / n_train)
    for name, cap in CAPS.items() if caps else ():  # rule 3
        if name in names and (name in out or _default(cls, name) is not None):
            out[name] = _cap(out.get(name, _default(cls, name)), cap)
    last = max((out[n] for n in ("max_steps", "steps") if isinstance(out.get(n), int)), default=None)
    for name in SNAPSHOT_FIELDS:
        if name in out and last is not None:
            out[name] = tuple(sorted({min(int(s), last) for s in out[name]}))
    return out


def _scaled(value: Any, ratio: float) -> Any:
    if isinstance(value, tuple):
        return tuple(_scaled(v, ratio) for v in value)
    return max(1, round(value * ratio)) if isinstance(value, int) and not isinstance(value, bool) else value


def build(cls: type, values: Mapping[str, Any]):
    """The rehearsal config of a paper config's values: ``cls(**shrink(cls, values))``; a capped field
    the experiment refuses (its own check, for example "steps >= 5") keeps its value of rule 2."""
    uncapped = shrink(cls, values, caps=False)
    out = shrink(cls, values)
    for _ in range(len(CAPS) + 1):
        try:
            return cls(**out)
        except ValueError as err:
            refused = next((n for n in CAPS if f"{cls.__name__}.{n}=" in str(err) and n in out), None)
            if refused is None or out[refused] == uncapped.get(refused):
                raise
            out[refused] = uncapped.get(refused, values.get(refused))
            if refused in ("steps", "max_steps"):  # snapshots follow the last step
                out = {**out, **{k: v for k, v in uncapped.items() if k in SNAPSHOT_FIELDS}}
    return cls(**out)


def train_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Rule 4 on a TrainConfig's field values (called by ``TrainConfig.__post_init__`` while the
    rehearsal is on; applying it twice changes nothing)."""
    out = dict(values)
    out["lanczos_max_iter"] = _cap(out["lanczos_max_iter"], int(TRAIN_CAPS["lanczos_max_iter"]))
    if out["model"] == "resnet18":
        options = dict(out["model_options"])
        options["width"] = min(float(options.get("width", 1.0)), TRAIN_CAPS["resnet_width"])
        out["model_options"] = options
    return out


def _default(cls: type, name: str) -> Any:
    for f in dataclasses.fields(cls):
        if f.name == name:
            return None if f.default is dataclasses.MISSING else f.default
    return None


# ------------------------------------------------------------------------------------------------
# The toy CIFAR-10 and the rehearsal of the chapters
# ------------------------------------------------------------------------------------------------


def _pickled(obj: dict) -> bytes:
    data = pickle.dumps(obj, protocol=2)
    # the official files were written by numpy 1 (numpy.core); numpy 2 pickles numpy._core
    return data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def write_toy_cifar(folder: str | os.PathLike, *, seed: int = 0) -> Path:
    """Write a toy CIFAR-10 in the official python-pickle layout into ``folder``.

    ``folder/cifar-10-batches-py/`` gets ``data_batch_1`` ... ``data_batch_5``, ``test_batch`` and
    ``batches.meta``: dicts with bytes keys, ``data`` uint8 ``[N, 3072]`` (random images, channel
    means apart) and ``labels`` (every class :data:`TOY_CIFAR_PER_CLASS` times), as
    :mod:`sharpjac.data.cifar` reads them. Returns the ``cifar-10-batches-py`` folder.
    """
    rng = np.random.default_rng(seed)
    out = Path(folder) / "cifar-10-batches-py"
    out.mkdir(parents=True, exist_ok=True)
    per_train, per_test = TOY_CIFAR_PER_CLASS
    labels = np.tile(np.arange(10), per_train)
    x = rng.integers(0, 256, size=(len(labels), 3072), dtype=np.uint8)
    x[:, :1024] //= 2
    for i, idx in enumerate(np.array_split(np.arange(len(labels)), 5), start=1):
        batch = {b"batch_label": f"toy batch {i} of 5".encode(), b"labels": labels[idx].tolist(), b"data": x[idx]}
        (out / f"data_batch_{i}").write_bytes(_pickled(batch))
    lt = np.tile(np.arange(10), per_test)
    xt = rng.integers(0, 256, size=(len(lt), 3072), dtype=np.uint8)
    (out / "test_batch").write_bytes(_pickled({b"labels": lt.tolist(), b"data": xt}))
    names = [n.encode() for n in ("airplane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")]
    (out / "batches.meta").write_bytes(_pickled({b"label_names": names, b"num_vis": 3072}))
    # the toy marker: the reader checks these files against it, and only while the rehearsal is on
    files = {
        p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(out.iterdir()) if not p.name.startswith(".")
    }
    (out / TOY_MARKER).write_text(json.dumps({"toy": True, "seed": seed, "files": files}, indent=1, sort_keys=True))
    return out


def copy_sources(root: Path, target: Path) -> Path:
    """Copy what executing and building the book reads (``_config.yml``, ``_toc.yml``, ``book/``,
    ``notebooks/*.md``) from ``root`` into ``target``; returns ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(root / name, target / name)
    shutil.copytree(root / "book", target / "book", dirs_exist_ok=True)
    (target / "notebooks").mkdir(exist_ok=True)
    for source in (root / "notebooks").glob("*.md"):
        shutil.copy(source, target / "notebooks" / source.name)
    return target


def rehearse(root: Path, work: Path, *, only: list[str] | None = None, seed: int = 0, log=print) -> list:
    """Execute the chapters (all, or ``only``) with ``preset="paper"`` under the rehearsal.

    Everything is written under ``work``: a copy of the book's sources, the toy CIFAR-10
    (``$SHARPJAC_DATA``) and the run store (``$SHARPJAC_CACHE``); ``root`` is only read.
    Returns the :class:`sharpjac.publish.ChapterResult` of each chapter; the first chapter that
    fails raises :class:`sharpjac.publish.ChapterError`.
    """
    from . import publish  # publish imports papermill and jupytext: only the rehearsal needs them

    book = copy_sources(root, work / "book")
    names = publish.chapters(book)
    unknown = [n for n in only or () if n not in names]
    if unknown:
        raise ValueError(f"unknown chapter(s) {unknown}; chapters: {', '.join(names)}")
    names = list(only) if only else names
    write_toy_cifar(work / "data")
    saved = {k: os.environ.get(k) for k in ("SHARPJAC_DATA", "SHARPJAC_CACHE", "SHARPJAC_TRAINING", ENV)}
    os.environ.update(
        {"SHARPJAC_DATA": str(work / "data"), "SHARPJAC_CACHE": str(work / "runs"), "SHARPJAC_TRAINING": "allowed"}
    )
    results = []
    try:
        with rehearsal():
            for name in names:
                start = time.perf_counter()
                result = publish.execute_chapter(book, name, {"preset": "paper", "seed": seed}, force=True)
                log(f"  {name:<28} rehearsed in {time.perf_counter() - start:6.1f} s")
                results.append(result)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sharpjac.rehearsal",
        description="Execute every chapter on the paper preset's path at toy size (see the module docstring).",
    )
    parser.add_argument("--only", nargs="*", help="chapter names (default: all)")
    parser.add_argument("--keep", type=Path, default=None, help="write into this folder and keep it")
    args = parser.parse_args(argv)
    from .publish import ChapterError, repository_root

    root = repository_root()
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        work = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sharpjac-rehearsal-")))
        try:
            # `make rehearse NB="a b"` passes NB as one argument (never through a shell): split it here
            only = [name for arg in args.only for name in arg.split()] if args.only else None
            results = rehearse(root, work, only=only)
        except (ChapterError, ValueError, FileNotFoundError) as err:
            print(f"rehearsal failed: {err}", file=sys.stderr)
            return 1
    print(f"rehearsal passed: {len(results)} chapter(s) on the paper path in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
