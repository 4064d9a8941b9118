r"""What a run costs: measured CPU times per training step and per measurement, and GPU estimates.

The paper preset's runs (ResNet-18 on CIFAR-10, batch 128; the 200-200 tanh MLP on CIFAR-10
subsets) were timed on this project's CPU machine by ``benchmarks/costs.py``, which calls
:func:`measure` for each model, on random inputs of CIFAR's shape, one torch thread (the default
``TrainConfig.threads``, so these are the CPU costs of the runs as configured), timing the
process's CPU time (so other jobs on a shared machine do not inflate it). The results are the
table :data:`MEASURED` below, with the date and the machine.

**Per-sample costs** (seconds per training point) of one model:

* ``step``: one SGD update (forward, backward, optimiser step) divided by the batch size;
* ``forward``: one evaluation forward pass (no gradient);
* ``hvp``: one Hessian-vector product (double backward, :class:`sharpjac.curvature.HessianOperator`);
* ``jacobian``: the input-output Jacobian statistics (:func:`sharpjac.jacobians.jacobian_stats`);
* ``forward_flops``, ``step_flops``: FLOPs per sample of a forward pass and of a forward and
  backward pass, counted by ``torch.utils.flop_counter``.

**A run** of a :class:`~sharpjac.training.TrainConfig` with :math:`T` updates of batch :math:`B`,
:math:`M` measurements, :math:`n` training and :math:`n'` test points costs on the CPU

.. math::

    T\,B\,c\,t_{\text{step}} + M\big[(n + n')\,t_{\text{fwd}} + n\,t_{\text{step}}
    + I\,s\,t_{\text{hvp}} + j\,(t_{\text{jac}} + t_{\text{fwd}})\big],

with :math:`c` = 2 with SAM (two gradients) and 3 with the Jacobian penalty (a double backward),
:math:`I` = ``lanczos_max_iter`` Hessian-vector products (an upper bound: Lanczos may stop
earlier; doubled with ``measure_gn``) on :math:`s` = ``sharpness_subset`` points, and :math:`j` =
``jacobian_subset`` points (these terms follow what :class:`sharpjac.hooks.Measurements` computes).
A model that was not measured is scaled from the measured model of its kind (convolutional or
not) by the ratio of their forward FLOPs (counted by ``torch.utils.flop_counter``).

**GPU estimates** (not measurements: no GPU was available when this table was made) divide each
measured CPU time by the ratio of two throughputs: the CPU's *measured* FLOP/s on that model (FLOPs
counted by torch over the measured time) and a *stated* sustained GPU FLOP/s,
:data:`GPU_REFERENCE` (an A100's FP32 peak times a stated utilisation). For the small MLPs a GPU is
bound by kernel launches rather than FLOPs, so their GPU figures are optimistic; for ResNet-18 at
batch 128 the FLOP model is the usual first-order one.

**Where a chapter's time goes** (the book's cost table, ``python -m sharpjac.publish costs``). While
a chapter executes, its kernel runs a sampling profiler (:class:`PhaseSampler`, started by
:func:`start_phase_sampler` from an IPython startup file that
:func:`sharpjac.publish.execute.execute_chapter` provides): every :data:`SAMPLE_INTERVAL` seconds a
thread reads the stack of the kernel's main thread and charges the wall time since the previous
sample to the phase of that stack (:func:`classify`: the innermost frame that belongs to a phase
decides, so a measurement made by a training hook is a measurement, and a figure drawn inside a
summary is a figure). Cell boundaries come from IPython's ``pre_run_cell`` / ``post_run_cell``
events, so the phases of a cell add up to the cell's wall time exactly; only the split between
phases is sampled (its error is about one interval per phase change). No chapter and no training
or measurement code is changed: the profiler sees every code path, including the ones a chapter
calls directly. The chapter's record (:func:`chapter_costs`) adds the kernel start (from the
moment papermill is called to the start of the first cell: kernel launch and the package import)
and papermill's own time between and after cells (saving the notebook, stopping the kernel).
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from . import curvature, data, jacobians, losses, models
from ._util import jsonable
from .experiments.base import distinct_points
from .training import measurement_steps

__all__ = [
    "GPU_REFERENCE",
    "MEASURED",
    "PHASES",
    "PhaseSampler",
    "RunCost",
    "chapter_costs",
    "classify",
    "cost_source",
    "cost_table",
    "experiment_cost",
    "forward_flops",
    "measure",
    "run_cost",
    "start_phase_sampler",
]

# ------------------------------------------------------------------------------------------------
# The measured table (written by benchmarks/costs.py; see the module docstring)
# ------------------------------------------------------------------------------------------------

MEASURED: dict[str, Any] = {
    "date": "2026-12-01",
    "machine": "AMD EPYC (2 vCPUs, shared with other jobs), Linux x86_64, torch 2.13.0+cpu, 1 torch thread, CPU time",
    "models": {
        "resnet18": {
            "model": "resnet18",
            "model_options": {"width": 1.0},
            "input_shape": [3, 32, 32],
            "num_classes": 10,
            "batch_size": 128,
            "steps": 24,
            "forward_flops": 1110845440.0,
            "step_flops": 3328997376.0,
            "step": 0.08895825730501301,
            "forward": 0.021904563990885473,
            "hvp": 0.23562226105208298,
            "jacobian": 0.3217229634166661,
        },
        "mlp": {
            "model": "mlp",
            "model_options": {"widths": [200, 200], "activation": "tanh"},
            "input_shape": [3, 32, 32],
            "num_classes": 10,
            "batch_size": 1000,
            "steps": 48,
            "forward_flops": 1312800.0,
            "step_flops": 2709600.0,
            "step": 6.477138356250005e-05,
            "forward": 2.4041687416665053e-05,
            "hvp": 0.00048661584375035244,
            "jacobian": 0.001887909499998841,
        },
    },
}

GPU_REFERENCE: dict[str, Any] = {
    "name": "an NVIDIA A100 in FP32 without TF32",
    "peak_flops": 19.5e12,
    "utilisation": 0.4,
    "note": "stated, not measured: the FP32 peak of the data sheet times an assumed 40% utilisation",
}

_KNOWN_SHAPES = {"cifar10": ((3, 32, 32), 10, 50000, 10000), "cifar100": ((3, 32, 32), 100, 50000, 10000)}


def cost_source() -> str:
    """One sentence saying where the cost figures come from (for the chapters)."""
    m = MEASURED["models"]["resnet18"]
    g = GPU_REFERENCE
    tflops = g["peak_flops"] * g["utilisation"] / 1e12
    return (
        f"CPU times measured by `benchmarks/costs.py` on {MEASURED['date']} ({MEASURED['machine']}): "
        f"{m['step'] * m['batch_size']:.2f} s per ResNet-18 step at batch {m['batch_size']}; GPU figures are "
        f"*estimates* that scale these by the measured CPU FLOP/s over a stated {tflops:.1f} "
        f"TFLOP/s ({g['name']}, at {g['utilisation']:.0%} of its peak), not measurements"
    )


# ------------------------------------------------------------------------------------------------
# Measuring
# ------------------------------------------------------------------------------------------------


def forward_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    """FLOPs of one forward pass of ``model`` on ``x`` (counted by ``torch.utils.flop_counter``)."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return float(counter.get_total_flops())


def _timed(fn, repeats: int) -> float:
    """CPU seconds of the process per call (``time.process_time``): with one torch thread this is
    the compute a call costs, whatever else shares the machine (wall time would count the waits)."""
    fn()  # warm-up (allocations, first-call dispatch)
    start = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - start) / repeats


def measure(
    model: str,
    model_options: Mapping[str, Any],
    *,
    input_shape: tuple[int, ...] = (3, 32, 32),
    num_classes: int = 10,
    batch_size: int = 128,
    steps: int = 24,
    hvp_points: int = 32,
    jacobian_points: int = 4,
    threads: int = 1,
    seed: int = 0,
) -> dict[str, Any]:
    """Time one model on random inputs: per-sample seconds of a step, a forward pass, a
    Hessian-vector product and the Jacobian statistics, and its forward FLOPs per sample.

    Args:
        model, model_options: as in :class:`~sharpjac.training.TrainConfig`.
        input_shape, num_classes: of the data (CIFAR-10: ``(3, 32, 32)``, 10).
        batch_size: of the timed SGD steps (the per-sample cost is the step's time over it).
        steps: timed SGD steps (after one warm-up step).
        hvp_points, jacobian_points: points of the timed Hessian-vector product and Jacobian.
        threads: torch threads while timing.

    Returns a dict of the arguments and ``forward_flops`` (per sample), ``step``, ``forward``,
    ``hvp``, ``jacobian`` (seconds per sample).
    """
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(seed)
        net = models.build_model(
            model, input_shape=input_shape, num_classes=num_classes, seed=seed, **dict(model_options)
        )
        x = torch.randn(batch_size, *input_shape, generator=gen)
        y = torch.randint(0, num_classes, (batch_size,), generator=gen)
        loss_fn = losses.get_loss("ce")
        opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
        net.train()

        def step():
            opt.zero_grad(set_to_none=True)
            loss_fn(net(x), y).backward()
            opt.step()

        t_step = _timed(step, steps)
        net.eval()
        with torch.no_grad():
            t_fwd = _timed(lambda: net(x), max(2, steps // 4))
        op = curvature.HessianOperator(net, loss_fn, (x[:hvp_points], y[:hvp_points]), batch_size=hvp_points)
        v = torch.randn(sum(p.numel() for p in net.parameters()), generator=gen)
        t_hvp = _timed(lambda: op.matvec(v), 3)
        t_jac = _timed(lambda: jacobians.jacobian_stats(net, x[:jacobian_points]), 3)
        flops = forward_flops(net, x[:1])
        net.train()
        counter = FlopCounterMode(display=False)
        with counter:  # a batch of 2 (batch norm needs more than one point in training mode)
            loss_fn(net(x[:2]), y[:2]).backward()
        step_flops = float(counter.get_total_flops()) / 2
    finally:
        torch.set_num_threads(prev)
    return {
        "model": model,
        "model_options": {k: list(v) if isinstance(v, tuple) else v for k, v in dict(model_options).items()},
        "input_shape": list(input_shape),
        "num_classes": num_classes,
        "batch_size": batch_size,
        "steps": steps,
        "forward_flops": flops,
        "step_flops": step_flops,
        "step": t_step / batch_size,
        "forward": t_fwd / batch_size,
        "hvp": t_hvp / hvp_points,
        "jacobian": t_jac / jacobian_points,
    }


def machine() -> str:
    """This machine in words (processor, cores, OS, torch)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu} ({os.cpu_count()} vCPUs), {platform.system()} {platform.machine()}, torch {torch.__version__}"


# ------------------------------------------------------------------------------------------------
# Costs of runs and experiments
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunCost:
    """The cost of one run.

    Attributes:
        steps, measurements: SGD updates and measurements of the run.
        cpu_hours: CPU time (one process with the run's threads), from :data:`MEASURED`.
        gpu_hours: an *estimate* for one GPU of :data:`GPU_REFERENCE`'s throughput.
        basis: which measured model it was scaled from, and by what FLOP ratio.
    """

    steps: int
    measurements: int
    cpu_hours: float
    gpu_hours: float
    basis: str


def _data_shape(tc) -> tuple[tuple[int, ...], int, int, int]:
    """(input_shape, num_classes, n_train, n_test) of a run's data, without loading CIFAR."""
    opts = dict(tc.dataset_options)
    if tc.dataset in _KNOWN_SHAPES:
        shape, k, n, nt = _KNOWN_SHAPES[tc.dataset]
        return shape, k, int(opts.get("n_train", n)), int(opts.get("n_test", nt))
    ds = data.load(tc.dataset, seed=tc.data_seed, **opts)
    k = int(ds.num_classes) if int(ds.num_classes) > 0 else int(ds.y_train.reshape(len(ds.y_train), -1).shape[1])
    return tuple(int(s) for s in ds.input_shape), k, int(ds.n_train), int(len(ds.x_test))


def _entry_for(tc, shape, k) -> tuple[dict[str, Any], float]:
    """The measured entry of the run's kind and the ratio of the run's forward FLOPs to the entry's."""
    kind = "resnet18" if tc.model in ("resnet18", "small_cnn") else "mlp"
    entry = MEASURED["models"][kind]
    same = (
        tc.model == entry["model"]
        and jsonable(dict(tc.model_options)) == entry["model_options"]
        and list(shape) == entry["input_shape"]
        and k == entry["num_classes"]
    )
    if same or entry["forward_flops"] <= 0:
        return entry, 1.0
    net = models.build_model(tc.model, input_shape=shape, num_classes=k, seed=0, **dict(tc.model_options))
    return entry, forward_flops(net, torch.zeros(1, *shape)) / entry["forward_flops"]


def run_cost(tc) -> RunCost:
    """The cost of the run ``tc`` (a :class:`~sharpjac.training.TrainConfig`): formula in the module
    docstring; CPU time from :data:`MEASURED`, GPU time an estimate."""
    shape, k, n, n_test = _data_shape(tc)
    batch = n if tc.batch_size is None else min(tc.batch_size, n)
    spe = math.ceil(n / batch)
    caps = [c for c in (tc.max_steps, None if tc.max_epochs is None else tc.max_epochs * spe) if c is not None]
    total = int(min(caps))
    m = len(measurement_steps(tc, total, spe))
    entry, ratio = _entry_for(tc, shape, k)
    t = {name: entry[name] * ratio for name in ("step", "forward", "hvp", "jacobian")}
    factor = (2.0 if tc.sam_rho > 0 else 1.0) * (3.0 if tc.jacobian_penalty > 0 else 1.0)
    s = n if tc.sharpness_subset is None else min(tc.sharpness_subset, n)
    j = n if tc.jacobian_subset is None else min(tc.jacobian_subset, n)
    per_measure = (
        (n + (n_test if tc.eval_test else 0)) * t["forward"]
        + n * t["step"]
        + tc.lanczos_max_iter * (2 if tc.measure_gn else 1) * s * t["hvp"]
        + j * (t["jacobian"] + t["forward"])
    )
    cpu_s = total * batch * factor * t["step"] + m * per_measure
    cpu_flops = entry["step_flops"] / entry["step"]  # the CPU's measured FLOP/s on this model's SGD step
    gpu_rate = GPU_REFERENCE["peak_flops"] * GPU_REFERENCE["utilisation"]
    gpu_s = cpu_s * cpu_flops / gpu_rate
    basis = f"measured {entry['model']}" + ("" if ratio == 1.0 else f" x {ratio:.3g} (forward FLOPs)")
    return RunCost(total, m, cpu_s / 3600.0, gpu_s / 3600.0, basis)


def experiment_cost(config) -> dict[str, float]:
    """Total cost of an experiment config's distinct runs: ``runs``, ``cpu_hours``, ``gpu_hours``
    (an estimate; see :func:`run_cost`)."""
    costs = [run_cost(p.config) for p in distinct_points(config.grid())]
    return {
        "runs": float(len(costs)),
        "cpu_hours": float(sum(c.cpu_hours for c in costs)),
        "gpu_hours": float(sum(c.gpu_hours for c in costs)),
    }


# ------------------------------------------------------------------------------------------------
# Where a chapter's time goes: a sampling profiler in the chapter's kernel (see the module docstring)
# ------------------------------------------------------------------------------------------------

#: The phases of the cost table, in its column order: ``kernel start`` and ``papermill`` are timed
#: by the executor, the others sampled inside the cells.
PHASES = ("kernel start", "training", "measurements", "statistics", "figures", "other", "papermill")
#: Seconds between two samples of the kernel's stack.
SAMPLE_INTERVAL = 0.005

_PKG = os.sep + "sharpjac" + os.sep
# (path fragment, phase) for whole modules; first match of the innermost frame wins
_MODULE_PHASES = (
    (os.sep + "matplotlib", "figures"),  # also matplotlib_inline (the inline backend's rendering)
    (os.sep + "plotly" + os.sep, "figures"),
    (os.sep + "PIL" + os.sep, "figures"),
    (_PKG + "plotting.py", "figures"),
    (_PKG + "interactive.py", "figures"),
    (_PKG + "analysis.py", "statistics"),
    (_PKG + "inference.py", "statistics"),
    (_PKG + "claims" + os.sep, "statistics"),
    (_PKG + "hooks.py", "measurements"),
    (_PKG + "curvature.py", "measurements"),
    (_PKG + "jacobians.py", "measurements"),
    (_PKG + "spectra.py", "measurements"),
    (_PKG + "conjugate.py", "measurements"),
    (_PKG + "theory" + os.sep, "measurements"),
    (_PKG + "training.py", "training"),
)
_STAT_NAMES = ("summarise", "summarize", "evaluate")


def _code_phase(filename: str, name: str) -> str | None:
    """The phase of one function (its file and name), or None when it belongs to none."""
    if _PKG in filename and name.startswith(_STAT_NAMES):
        return "statistics"  # every experiment's summarise* / evaluate*
    if _PKG + "experiments" + os.sep in filename and name == "compute":
        return "measurements"  # a study's computation on stored runs (its training is found inside)
    for fragment, phase in _MODULE_PHASES:
        if fragment in filename:
            return phase
    return None


_PHASE_OF_CODE: dict[Any, str | None] = {}


def classify(frame: Any) -> str:
    """The phase of a stack, given its innermost frame: that of the innermost frame whose
    function belongs to a phase (:func:`_code_phase`), else ``"other"`` (loading stored runs,
    tables, the chapter's own code)."""
    depth = 0
    while frame is not None and depth < 400:
        code = frame.f_code
        phase = _PHASE_OF_CODE.get(code, "?")
        if phase == "?":
            phase = _PHASE_OF_CODE[code] = _code_phase(code.co_filename, code.co_name)
        if phase is not None:
            return phase
        frame = frame.f_back
        depth += 1
    return "other"


def _other_label(frame: Any) -> str:
    """Where an ``"other"`` sample was, for the record's breakdown of that phase: ``"imports"``
    when an import is running, else the innermost package module on the stack
    (``sharpjac/<file>``), else the innermost frame's library (its top-level package) or
    ``"chapter cells"``."""
    inner, depth, package = frame, 0, None
    while frame is not None and depth < 400:
        name = frame.f_code.co_filename
        if name.startswith("<frozen importlib"):
            return "imports"
        if package is None and _PKG in name:
            package = "sharpjac/" + name.rsplit(_PKG, 1)[1].replace(os.sep, "/")
        frame, depth = frame.f_back, depth + 1
    if package is not None:
        return package
    if inner is None:
        return "unknown"
    name = inner.f_code.co_filename
    for marker in ("site-packages" + os.sep, "dist-packages" + os.sep):
        if marker in name:
            return name.rsplit(marker, 1)[1].split(os.sep, 1)[0]
    if "ipykernel" in name:
        return "chapter cells"
    return os.path.basename(name)


class PhaseSampler:
    """Charges the wall time of every cell to the phases of :data:`PHASES`, by sampling.

    ``pre_run_cell`` / ``post_run_cell`` (IPython event callbacks) open and close a cell; a daemon
    thread samples the main thread's stack every ``interval`` seconds while a cell runs and adds
    the time since the previous sample to the phase :func:`classify` gives; the cell's end adds the
    rest to the phase last seen. So the phases' sum is the cells' summed wall time (``cells``),
    exactly. After every cell the totals are written to ``path`` (JSON: ``phases`` seconds,
    ``cells`` seconds, ``cell_count``, ``samples``, ``first_cell_start`` epoch seconds,
    ``interval``), so a kernel that dies still leaves the totals of its finished cells.
    """

    def __init__(self, path: str | os.PathLike, *, interval: float = SAMPLE_INTERVAL, thread_id: int | None = None):
        self.path = Path(path)
        self.interval = float(interval)
        self.thread_id = threading.main_thread().ident if thread_id is None else thread_id
        self.phases = {p: 0.0 for p in PHASES if p not in ("kernel start", "papermill")}
        self.cells = 0.0
        self.cell_count = 0
        self.samples = 0
        self.first_cell_start: float | None = None
        self.other: dict[str, float] = {}
        self._lock = threading.Lock()
        self._cell_start: float | None = None
        self._last = 0.0
        self._phase = "other"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sharpjac-phases", daemon=True)

    def start(self) -> PhaseSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def pre_run_cell(self, *_: Any) -> None:
        now = time.perf_counter()
        with self._lock:
            if self.first_cell_start is None:
                self.first_cell_start = time.time()
            self._cell_start = self._last = now
            self._phase = "other"

    def post_run_cell(self, *_: Any) -> None:
        now = time.perf_counter()
        with self._lock:
            if self._cell_start is None:
                return
            self.phases[self._phase] += now - self._last
            self.cells += now - self._cell_start
            self.cell_count += 1
            self._cell_start = None
        self.write()

    def sample(self) -> None:
        """One sample: charge the time since the last one to the main thread's current phase."""
        frame = sys._current_frames().get(self.thread_id)  # noqa: SLF001 - the stdlib's only view of another thread's stack
        phase = classify(frame)
        label = _other_label(frame) if phase == "other" else None
        del frame
        now = time.perf_counter()
        with self._lock:
            if self._cell_start is None:
                return
            self.phases[phase] += now - self._last
            if label is not None:
                self.other[label] = self.other.get(label, 0.0) + now - self._last
            self._last, self._phase = now, phase
            self.samples += 1

    def record(self) -> dict[str, Any]:
        with self._lock:
            return {
                "phases": {k: round(v, 4) for k, v in self.phases.items()},
                "cells": round(self.cells, 4),
                "cell_count": self.cell_count,
                "samples": self.samples,
                "first_cell_start": self.first_cell_start,
                "interval": self.interval,
                "other": {k: round(v, 3) for k, v in sorted(self.other.items(), key=lambda kv: -kv[1])[:12]},
            }

    def write(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.record()))
        os.replace(tmp, self.path)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception:  # noqa: BLE001 - the profiler must never break a chapter
                continue


def start_phase_sampler(path: str | os.PathLike, shell: Any = None) -> PhaseSampler:
    """Start a :class:`PhaseSampler` writing to ``path`` in an IPython kernel (``shell``, default
    the running one), registered on its cell events; returns it."""
    if shell is None:
        from IPython import get_ipython  # noqa: PLC0415 - IPython exists in a kernel, not in every use of costs

        shell = get_ipython()
    if shell is None:
        raise RuntimeError("start_phase_sampler needs a running IPython kernel (get_ipython() is None)")
    sampler = PhaseSampler(path)
    shell.events.register("pre_run_cell", sampler.pre_run_cell)
    shell.events.register("post_run_cell", sampler.post_run_cell)
    return sampler.start()


def chapter_costs(sampled: Mapping[str, Any], *, started: float, wall: float) -> dict[str, Any]:
    """A chapter's record of the cost table, from its kernel's :class:`PhaseSampler` record.

    ``started`` is the epoch second at which the executor called papermill and ``wall`` the
    seconds papermill took. ``kernel start`` is the time to the first cell's start, the sampled
    phases are the cells' time, and ``papermill`` the rest (notebook writes between cells, the
    kernel's shutdown); ``unaccounted`` is ``wall`` minus the sum of all of them (zero up to
    clock differences, as :func:`tests.test_costs` checks)."""
    first = sampled.get("first_cell_start")
    kernel = max(0.0, first - started) if first is not None else 0.0
    phases = {"kernel start": kernel, **{k: float(v) for k, v in sampled["phases"].items()}}
    phases["papermill"] = max(0.0, wall - kernel - float(sampled["cells"]))
    total = sum(phases.values())
    return {
        "wall": round(wall, 3),
        "phases": {p: round(phases.get(p, 0.0), 3) for p in PHASES},
        "unaccounted": round(wall - total, 3),
        "cells": sampled["cells"],
        "cell_count": sampled["cell_count"],
        "samples": sampled["samples"],
        "interval": sampled["interval"],
        "other": dict(sampled.get("other", {})),
    }


def cost_table(records: Iterable[tuple[str, Mapping[str, Any]]]) -> str:
    """The cost table (Markdown) of ``(chapter, record)`` pairs, records from :func:`chapter_costs`:
    seconds per phase and each chapter's wall time, with a total row (chapters that ran at the
    same time add up to more than the elapsed time)."""
    records = list(records)
    header = ["chapter", "wall s", *(f"{p} s" for p in PHASES)]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    totals = dict.fromkeys(PHASES, 0.0)
    wall = 0.0
    for name, rec in records:
        wall += rec["wall"]
        cells = []
        for p in PHASES:
            totals[p] += rec["phases"][p]
            cells.append(f"{rec['phases'][p]:.1f}")
        lines.append(f"| {name} | {rec['wall']:.1f} | " + " | ".join(cells) + " |")
    if records:
        share = " | ".join(f"{totals[p]:.1f} ({100 * totals[p] / wall:.0f}%)" if wall else "0.0" for p in PHASES)
        lines.append(f"| **all {len(records)} chapters** | {wall:.1f} | {share} |")
    return "\n".join(lines)
