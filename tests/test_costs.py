"""Costs of runs (measured table, hand-computed oracles) and the paper-preset book gate (missing runs
listed with their cost before anything trains; a filled store trains nothing)."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import threading
import time
from dataclasses import dataclass

import nbformat
import pytest
import torch

from sharpjac import costs, experiments, publish
from sharpjac.experiments.base import ExperimentConfig, run_experiment
from sharpjac.models import build_model
from sharpjac.runs import RunStore, config_key
from sharpjac.training import TrainConfig

# -- the cost model ----------------------------------------------------------------------------------


def _mlp_flops(widths, d_in=3072, k=10) -> tuple[float, float]:
    """Hand count (multiply-adds x 2) of a bias-carrying MLP's matmuls: forward, and forward plus
    backward when the input needs no gradient (the first layer has no input gradient)."""
    dims = [d_in, *widths, k]
    fwd = sum(2 * a * b for a, b in zip(dims[:-1], dims[1:]))
    bwd = sum(2 * a * b for a, b in zip(dims[:-1], dims[1:]))  # weight gradients
    bwd += sum(2 * a * b for a, b in zip(dims[1:-1], dims[2:]))  # input gradients of layers 2..L
    return float(fwd), float(fwd + bwd)


def test_forward_and_step_flops_match_a_hand_count():
    m = costs.measure("mlp", {"widths": [100], "activation": "tanh"}, batch_size=8, steps=1, hvp_points=4)
    fwd, step = _mlp_flops([100])
    assert m["forward_flops"] == fwd and m["step_flops"] == step  # integer counts, exact
    for name in ("step", "forward", "hvp", "jacobian"):
        assert m[name] > 0
    net = build_model("mlp", input_shape=(3, 32, 32), num_classes=10, widths=[100, 50], activation="tanh")
    assert costs.forward_flops(net, torch.zeros(1, 3, 32, 32)) == _mlp_flops([100, 50])[0]


def test_measured_table_has_date_machine_and_positive_costs():
    assert costs.MEASURED["date"][:2] == "20" and costs.MEASURED["machine"]
    for entry in costs.MEASURED["models"].values():
        for name in ("step", "forward", "hvp", "jacobian", "forward_flops", "step_flops"):
            assert entry[name] > 0, name
    assert "measured" in costs.cost_source() and "estimate" in costs.cost_source()


FAKE = {
    "date": "2000-01-01",
    "machine": "fake",
    "models": {
        "mlp": {
            "model": "mlp",
            "model_options": {"widths": [200, 200], "activation": "tanh"},
            "input_shape": [3, 32, 32],
            "num_classes": 10,
            "forward_flops": _mlp_flops([200, 200])[0],
            "step_flops": 3.0e6,
            "step": 2e-4,
            "forward": 5e-5,
            "hvp": 7e-4,
            "jacobian": 3e-3,
        },
        "resnet18": {"model": "resnet18", "forward_flops": 1.0, "step_flops": 1.0, "step": 1.0},
    },
}


def _cifar_mlp(**kw) -> TrainConfig:
    base = dict(
        dataset="cifar10",
        dataset_options={"n_train": 5000, "n_test": 2000},
        model="mlp",
        model_options={"widths": [200, 200], "activation": "tanh"},
        optimizer="gd",
        lr=0.01,
        max_steps=100,
        measure_every=50,
        sharpness_subset=None,
        jacobian_subset=1000,
        lanczos_max_iter=20,
        device="cpu",
    )
    return TrainConfig(**{**base, **kw})


def test_run_cost_is_the_formula_of_the_docstring(monkeypatch):
    monkeypatch.setattr(costs, "MEASURED", copy.deepcopy(FAKE))
    e = FAKE["models"]["mlp"]
    c = costs.run_cost(_cifar_mlp())
    assert (c.steps, c.measurements) == (100, 3)  # steps 0, 50 and 100 are measured
    per_measure = 7000 * e["forward"] + 5000 * e["step"] + 20 * 5000 * e["hvp"] + 1000 * (e["jacobian"] + e["forward"])
    cpu_s = 100 * 5000 * e["step"] + 3 * per_measure
    # relative 1e-12: the same sums in another order differ only by float rounding
    assert c.cpu_hours == pytest.approx(cpu_s / 3600, rel=1e-12)
    rate = costs.GPU_REFERENCE["peak_flops"] * costs.GPU_REFERENCE["utilisation"]
    assert c.gpu_hours == pytest.approx(cpu_s * (e["step_flops"] / e["step"]) / rate / 3600, rel=1e-12)
    assert c.basis == "measured mlp"
    sam = costs.run_cost(_cifar_mlp(sam_rho=0.05))
    pen = costs.run_cost(_cifar_mlp(jacobian_penalty=0.1))
    assert sam.cpu_hours - c.cpu_hours == pytest.approx(100 * 5000 * e["step"] / 3600, rel=1e-9)
    assert pen.cpu_hours - c.cpu_hours == pytest.approx(2 * 100 * 5000 * e["step"] / 3600, rel=1e-9)


def test_an_unmeasured_model_is_scaled_by_its_forward_flops(monkeypatch):
    monkeypatch.setattr(costs, "MEASURED", copy.deepcopy(FAKE))
    base = costs.run_cost(_cifar_mlp())
    small = costs.run_cost(_cifar_mlp(model_options={"widths": [100], "activation": "tanh"}))
    ratio = _mlp_flops([100])[0] / _mlp_flops([200, 200])[0]
    assert small.basis.startswith("measured mlp x")
    assert small.cpu_hours == pytest.approx(base.cpu_hours * ratio, rel=1e-9)


def test_experiment_cost_sums_the_distinct_runs():
    cfg = experiments.get("weight_decay").preset("paper")
    total = costs.experiment_cost(cfg)
    keys = {config_key(tc): tc for _, tc in cfg.grid()}
    assert total["runs"] == len(keys)
    assert total["gpu_hours"] == pytest.approx(sum(costs.run_cost(tc).gpu_hours for tc in keys.values()), rel=1e-9)


# -- the paper-preset gate of the book ----------------------------------------------------------------------

NAME = "publish_gate_test"


@dataclass(frozen=True)
class TinyConfig(ExperimentConfig):
    """Two tiny runs at every preset (a stand-in for a chapter's paper grid)."""

    PRESETS = {"smoke": {}, "quick": {}, "paper": {"seeds": (0, 1)}}

    def grid(self):
        tc = TrainConfig(
            dataset="digits",
            dataset_options={"n_train": 40, "n_test": 20},
            model="mlp",
            model_options={"widths": [6], "activation": "tanh"},
            max_steps=4,
            measure_every=2,
            sharpness_subset=8,
            jacobian_subset=4,
            lanczos_max_iter=3,
            device="cpu",
        )
        return [({"seed": s}, dataclasses.replace(tc, seed=s)) for s in self.seeds]


@pytest.fixture()
def book(tmp_path, monkeypatch):
    """A book of one chapter that uses the tiny experiment, and an empty run store."""
    experiments.register(NAME, TinyConfig, "two tiny runs (publish tests)")
    root = tmp_path / "book"
    (root / "notebooks").mkdir(parents=True)
    (root / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n- file: notebooks/executed/ch\n")
    (root / "notebooks" / "ch.md").write_text(f'```{{code-cell}}\nexp = experiments.get("{NAME}")\n```\n')
    monkeypatch.setenv("SHARPJAC_CACHE", str(tmp_path / "store"))
    monkeypatch.setenv("SHARPJAC_TRAINING", "allowed")  # restored after the test (main sets "never")
    monkeypatch.chdir(root)
    calls = []

    def fake_execute_chapter(root_, name, parameters, **kw):
        calls.append((dict(parameters), os.environ.get("SHARPJAC_TRAINING")))
        return publish.ChapterResult(name, "executed", 0.0, root_ / publish.EXECUTED_DIR / f"{name}.ipynb")

    # patched where it is called: execute_plans runs each planned chapter with execute.execute_chapter
    monkeypatch.setattr(publish.execute, "execute_chapter", fake_execute_chapter)
    yield root, RunStore(tmp_path / "store"), calls
    experiments._REGISTRY.pop(NAME, None)


def test_paper_book_on_an_empty_store_stops_before_training_with_the_list(book, capsys):
    root, store, calls = book
    assert publish.chapter_experiments(root, "ch") == [NAME]
    missing = publish.missing_runs(root, ["ch"], preset="paper", store=store)
    expected = [("ch", NAME, {"seed": 0}), ("ch", NAME, {"seed": 1})]
    assert [(m.chapter, m.experiment, m.labels) for m in missing] == expected
    assert all(m.gpu_hours > 0 and m.cpu_hours > m.gpu_hours for m in missing)
    assert publish.main(["notebooks", "--preset", "paper"]) == 1
    err = capsys.readouterr().err
    assert f"chapter ch: experiment {NAME}, 2 run(s), about" in err and "GPU-hours (estimate)" in err
    assert f"produce: python -m sharpjac run {NAME} --preset paper" in err
    assert f"run {missing[0].key[:12]}  seed=0" in err
    assert calls == [] and not any(store.has(tc) for _, tc in TinyConfig.preset("paper").grid())
    assert publish.main(["missing"]) == 1


def test_paper_book_on_a_filled_store_executes_with_training_switched_off(book, capsys):
    root, store, calls = book
    run_experiment(TinyConfig.preset("paper"), name=NAME, store=store, progress=False)
    assert publish.missing_runs(root, ["ch"], preset="paper", store=store) == []
    assert publish.main(["notebooks", "--preset", "paper"]) == 0
    assert calls == [({"preset": "paper", "seed": 0}, "never")]
    assert "nothing will train" in capsys.readouterr().out
    assert publish.main(["missing"]) == 0


def test_quick_book_has_no_gate(book):
    root, store, calls = book
    assert publish.main(["notebooks", "--preset", "quick"]) == 0
    assert calls == [({"preset": "quick", "seed": 0}, "allowed")]


# -- where a chapter's time goes (the book's cost table) ----------------------------------------------

# functions compiled under the file names the profiler classifies (a fake package path), each
# sleeping for the seconds it is given; `train` calls `measure` (a hook inside training)
_PHASE_FUNCTIONS = {
    "/fake/sharpjac/training.py": "import time\ndef train(s, m=0.0, measure=None):\n"
    "    time.sleep(s)\n    if measure is not None:\n        measure(m)\n",
    "/fake/sharpjac/hooks.py": "import time\ndef measure(s):\n    time.sleep(s)\n",
    "/fake/sharpjac/experiments/study.py": "import time\ndef summarise(s):\n    time.sleep(s)\n",
    "/fake/sharpjac/plotting.py": "import time\ndef figure(s):\n    time.sleep(s)\n",
}
_DEFINE = (
    "_fns = {}\n"
    f"for _file, _src in {_PHASE_FUNCTIONS!r}.items():\n"
    "    exec(compile(_src, _file, 'exec'), _fns)\n"
    "train, measure, summarise, figure = (_fns[k] for k in ('train', 'measure', 'summarise', 'figure'))\n"
)
# seconds slept per phase by the tiny chapter below
_SLEPT = {"training": 0.8, "measurements": 0.5, "statistics": 0.4, "figures": 0.3, "other": 0.3}
_CELLS = [
    _DEFINE,
    "train(0.8, 0.5, measure)",
    "summarise(0.4)",
    "figure(0.3)",
    "import time\ntime.sleep(0.3)",
]


def _phases_close(got: dict, want: dict, slack: float) -> None:
    # tolerance: a phase change is seen up to one sample interval (5 ms) late, and a loaded machine
    # delays the sampling thread's wake-ups; 0.1 s + 10% covers both with room (a swapped phase is
    # off by >= 0.3 s)
    for phase, seconds in want.items():
        assert abs(got[phase] - seconds) <= slack + 0.1 * seconds, (phase, got, want)


def test_phase_sampler_charges_each_phase_in_process(tmp_path):
    fns: dict = {}
    for file, src in _PHASE_FUNCTIONS.items():
        exec(compile(src, file, "exec"), fns)  # noqa: S102 - functions under the profiler's file names
    sampler = costs.PhaseSampler(tmp_path / "phases.json", thread_id=threading.get_ident())
    sampler.start()
    try:
        sampler.pre_run_cell()
        fns["train"](0.8, 0.5, fns["measure"])
        fns["summarise"](0.4)
        fns["figure"](0.3)
        time.sleep(0.3)
        sampler.post_run_cell()
    finally:
        sampler.stop()
    rec = sampler.record()
    _phases_close(rec["phases"], _SLEPT, 0.1)
    assert abs(sum(rec["phases"].values()) - rec["cells"]) < 1e-3  # the phases split the cell's time exactly
    assert rec["cell_count"] == 1 and rec["samples"] > 100
    assert max(rec["other"], key=rec["other"].get) == "test_costs.py"  # the 'other' sleep, located
    assert json.loads((tmp_path / "phases.json").read_text())["cells"] == rec["cells"]  # written after the cell


def test_chapter_cost_table_adds_up_to_the_chapter_wall_time(tmp_path):
    """A tiny chapter executed by papermill: its phases (sampled in the kernel) match what its cells
    slept, its cells' time matches papermill's own per-cell durations, and kernel start, cells and
    papermill's overhead add up to the chapter's wall time."""
    from test_book import _tiny_book

    root = _tiny_book(tmp_path, _CELLS)
    result = publish.execute_chapter(root, "tiny", {"preset": "smoke", "seed": 0})
    record = json.loads(publish.costs_path(result.output).read_text())
    assert record["chapter"] == "tiny" and set(record["phases"]) == set(costs.PHASES)
    _phases_close(record["phases"], _SLEPT, 0.15)
    # an independent clock: papermill's per-cell durations (it stamps every cell it runs)
    nb = nbformat.read(str(result.output), as_version=4)
    durations = sum(c.metadata.get("papermill", {}).get("duration") or 0.0 for c in nb.cells)
    # tolerance: papermill's stamps include its messaging around each cell (~10-50 ms a cell)
    assert abs(record["cells"] - durations) <= 0.5 + 0.05 * durations, (record["cells"], durations)
    # all phases together are the wall time: nothing lost, nothing counted twice (to the rounding)
    total = sum(record["phases"].values())
    assert abs(total - result.seconds) <= 0.01, (total, result.seconds)
    assert record["unaccounted"] == pytest.approx(0.0, abs=0.01)
    # and papermill's share (notebook writes, kernel shutdown) stays a small remainder
    assert record["phases"]["papermill"] <= 0.25 * result.seconds + 2.0, record
    assert nb.metadata["sharpjac"]["costs"]["phases"] == record["phases"]
    table = costs.cost_table([("tiny", record)])
    assert "| tiny |" in table and "kernel start s" in table and "all 1 chapters" in table
