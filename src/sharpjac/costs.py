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
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass
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
    "RunCost",
    "cost_source",
    "experiment_cost",
    "forward_flops",
    "measure",
    "run_cost",
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
