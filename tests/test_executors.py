"""Executors: serial and Ray give the same records; a killed Ray task is retried and resumes; failures
are tabled; missing runs are listed and SHARPJAC_TRAINING=never refuses to train."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from sharpjac import executors, experiments
from sharpjac.cli import main
from sharpjac.executors import GridFailed, Point, RayExecutor, SerialExecutor, make_executor, using
from sharpjac.experiments.base import ExperimentConfig, MissingRuns, missing_runs, run_experiment
from sharpjac.runs import RunStore, config_key
from sharpjac.training import TrainConfig

ray = pytest.importorskip("ray")  # the cluster extra; CI installs it, so nothing is skipped there

NAME = "executor_test_grid"


@dataclass(frozen=True)
class GridConfig(ExperimentConfig):
    """Two runs (one per learning rate) of thousands of tiny steps, checkpointed every 20 steps, so a
    Ray task is still training long after its first checkpoint."""

    lrs: tuple[float, ...] = (0.05, 0.1)
    max_steps: int = 1500

    PRESETS = {"smoke": {}, "quick": {}, "paper": {}}

    def grid(self):
        return [
            (
                {"lr": lr, "seed": s},
                TrainConfig(
                    dataset="digits",
                    dataset_options={"n_train": 60, "n_test": 30},
                    model="mlp",
                    model_options={"widths": [8], "activation": "tanh"},
                    loss="ce",
                    optimizer="sgd",
                    batch_size=20,
                    lr=lr,
                    max_steps=self.max_steps,
                    measure_every=300,
                    sharpness_subset=16,
                    jacobian_subset=8,
                    lanczos_max_iter=5,
                    checkpoint_every=20,
                    seed=s,
                    device="cpu",
                    threads=self.threads,
                ),
            )
            for lr in self.lrs
            for s in self.seeds
        ]


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory):
    """One local Ray instance (2 CPUs) for the module; its session files under a test folder."""
    temp = tmp_path_factory.mktemp("ray")
    executors.slow_machine_timeouts()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=str(temp))
    yield ray
    ray.shutdown()


@pytest.fixture()
def registered():
    experiments.register(NAME, GridConfig, "two tiny runs (executor tests)")
    yield experiments.get(NAME)
    experiments._REGISTRY.pop(NAME, None)


# -- without Ray ------------------------------------------------------------------------------------


def test_make_executor_names_and_errors():
    assert isinstance(make_executor("serial"), SerialExecutor)
    assert isinstance(make_executor("ray", address="auto"), RayExecutor)
    assert isinstance(make_executor(None), SerialExecutor)
    with pytest.raises(ValueError, match=r"^executor='dask' is invalid; accepted: 'serial', 'ray'"):
        make_executor("dask")
    with pytest.raises(ValueError, match=r"^address='auto' is invalid with executor='serial'"):
        make_executor("serial", address="auto")
    with pytest.raises(ValueError, match=r"^max_retries=-1 is invalid"):
        RayExecutor(max_retries=-1)
    with pytest.raises(ValueError, match=r"^num_cpus=0 is invalid"):
        RayExecutor(num_cpus=0)


def test_docstring_examples():
    import doctest

    assert doctest.testmod(executors).failed == 0


def test_using_sets_the_default_executor_of_the_block_only():
    ex = RayExecutor()
    with using(ex) as got:
        assert got is ex and executors.current() is ex
        with using("serial"):
            assert isinstance(executors.current(), SerialExecutor)
        assert executors.current() is ex
    assert isinstance(executors.current(), SerialExecutor)


class _FakeRay:
    def __init__(self, gpus):
        self.gpus = gpus

    def cluster_resources(self):
        return {"CPU": 8.0, "GPU": float(self.gpus)}


def _tc(**kw) -> TrainConfig:
    return dataclasses.replace(GridConfig().grid()[0][1], **kw)


def test_ray_task_resources_one_gpu_where_there_are_gpus_cpus_otherwise():
    ex = RayExecutor()
    auto = _tc(device="auto", threads=2)
    with_gpu = ex._options(_FakeRay(4), auto, "k" * 64)
    assert (with_gpu["num_gpus"], with_gpu["num_cpus"]) == (1, 1)
    assert with_gpu["name"] == "sharpjac-" + "k" * 12 and with_gpu["max_retries"] == 3
    no_gpu = ex._options(_FakeRay(0), auto, "k" * 64)
    assert (no_gpu["num_gpus"], no_gpu["num_cpus"]) == (0, 2)
    on_cpu = ex._options(_FakeRay(4), _tc(device="cpu", threads=3), "k" * 64)
    assert (on_cpu["num_gpus"], on_cpu["num_cpus"]) == (0, 3)
    with pytest.raises(ValueError, match=r"^TrainConfig.device='cuda' is invalid on this Ray cluster"):
        ex._options(_FakeRay(0), _tc(device="cuda"), "k" * 64)


def test_grid_failed_table_lists_labels_key_and_error():
    err = GridFailed("g", [executors.Failure({"lr": 0.1}, "a" * 64, "ValueError: boom")], total=3)
    assert "1 of 3 runs of 'g' failed" in str(err)
    assert err.table().to_dict("records") == [{"lr": 0.1, "run_key": "a" * 12, "error": "ValueError: boom"}]


def test_missing_runs_lists_the_unstored_points_and_never_refuses_to_train(tmp_path, monkeypatch):
    cfg = GridConfig(lrs=(0.05,), seeds=(0, 1), max_steps=20)
    store = RunStore(tmp_path)
    missing = missing_runs(cfg, name=NAME, store=store)
    assert [p.labels for p in missing] == [{"lr": 0.05, "seed": 0}, {"lr": 0.05, "seed": 1}]
    assert [p.key for p in missing] == [config_key(tc) for _, tc in cfg.grid()]
    monkeypatch.setenv("SHARPJAC_TRAINING", "never")
    with pytest.raises(MissingRuns, match=r"2 run\(s\) of experiment 'executor_test_grid' are not in the store"):
        run_experiment(cfg, name=NAME, store=store, progress=False)
    assert not any(store.has(tc) for _, tc in cfg.grid())  # nothing was trained
    monkeypatch.delenv("SHARPJAC_TRAINING")
    first = run_experiment(cfg, name=NAME, store=store, progress=False)
    assert missing_runs(cfg, name=NAME, store=store) == []
    monkeypatch.setenv("SHARPJAC_TRAINING", "never")  # a filled store: read, nothing trained
    again = run_experiment(cfg, name=NAME, store=store, progress=False)
    pd.testing.assert_frame_equal(first, again, check_exact=True)
    monkeypatch.setenv("SHARPJAC_TRAINING", "sometimes")
    with pytest.raises(ValueError, match=r"^\$SHARPJAC_TRAINING='sometimes' is invalid"):
        run_experiment(cfg, name=NAME, store=store, progress=False)


def test_serial_executor_gives_the_records_of_the_default(tmp_path):
    cfg = GridConfig(lrs=(0.05, 0.05), seeds=(0,), max_steps=20)  # a repeated point runs once
    default = run_experiment(cfg, name=NAME, store=RunStore(tmp_path / "a"), progress=False)
    serial = run_experiment(cfg, name=NAME, store=RunStore(tmp_path / "b"), progress=False, executor="serial")
    assert len(default) > 0 and default["run_key"].nunique() == 1
    pd.testing.assert_frame_equal(default, serial, check_exact=True)


# -- with a local Ray instance ------------------------------------------------------------------------


def _worker_pid(task_name: str) -> int | None:
    """PID of the Ray worker whose process title is ``ray::<task_name>`` (the task it is running)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").strip()
        except OSError:
            continue
        if cmd.decode(errors="replace").split(" ")[0] == f"ray::{task_name}":
            return int(entry.name)
    return None


def test_ray_grid_with_a_killed_task_gives_the_serial_records(ray_local, registered, tmp_path):
    cfg = registered.preset("smoke")
    target = cfg.grid()[1][1]
    key = config_key(target)
    ray_store = RunStore(tmp_path / "ray-store")
    ck = ray_store.checkpointer(target)
    argv = ["run", NAME, "--preset", "smoke", "--no-progress", "--executor", "ray"]
    outcome = {}

    def drive():
        outcome["rc"] = main([*argv, "--cache", str(ray_store.root), "--output", str(tmp_path / "ray.parquet")])

    driver = threading.Thread(target=drive)
    driver.start()
    killed = None
    deadline = time.monotonic() + 300  # a generous cap on waiting, not a timing assertion
    try:
        while time.monotonic() < deadline and driver.is_alive() and killed is None:
            complete = [p for p in ck.generations() if p.with_name(p.name + ".sha256").exists()]
            pid = _worker_pid(f"sharpjac-{key[:12]}") if complete else None
            if pid is not None:
                os.kill(pid, signal.SIGKILL)  # from outside the task: its worker process dies
                killed = pid
            time.sleep(0.01)
    finally:
        driver.join(timeout=600)
    assert killed is not None, "the task finished before it could be killed"
    assert outcome.get("rc") == 0
    resumed_from = ray_store.meta(target)["resumed_from"]
    assert resumed_from is not None and resumed_from > 0  # the retry resumed from a checkpoint

    assert main([*argv[:4], "--cache", str(tmp_path / "serial-store"), "--output", str(tmp_path / "ser.parquet")]) == 0
    ray_df = pd.read_parquet(tmp_path / "ray.parquet")
    serial_df = pd.read_parquet(tmp_path / "ser.parquet")
    assert ray_df["run_key"].nunique() == 2
    pd.testing.assert_frame_equal(ray_df, serial_df, check_exact=True)


def _fail_on_lr_01(store):
    from sharpjac.runs import run

    def run_point(tc, show):
        if tc.lr == 0.1:
            raise ValueError("this run fails on purpose")
        return run(tc, store=store, progress=show), {"extra": 1.5}

    return run_point


def test_ray_failures_are_tabled_and_the_other_runs_stored(ray_local, tmp_path):
    cfg = GridConfig(lrs=(0.05, 0.1), seeds=(0,), max_steps=20)
    store = RunStore(tmp_path)
    with pytest.raises(GridFailed) as info:
        run_experiment(cfg, name=NAME, store=store, progress=False, run_point=_fail_on_lr_01(store), executor="ray")
    table = info.value.table()
    assert table[["lr", "seed"]].to_dict("records") == [{"lr": 0.1, "seed": 0}]
    assert table["error"].iloc[0] == "ValueError: this run fails on purpose"
    good, bad = (tc for _, tc in cfg.grid())
    assert store.has(good) and not store.has(bad)


def test_ray_last_row_values_and_attrs_come_back(ray_local, tmp_path):
    cfg = GridConfig(lrs=(0.05,), seeds=(0, 1), max_steps=20)
    a, b = RunStore(tmp_path / "a"), RunStore(tmp_path / "b")
    on_ray = run_experiment(cfg, name=NAME, store=a, progress=False, run_point=_fail_on_lr_01(a), executor="ray")
    serial = run_experiment(cfg, name=NAME, store=b, progress=False, run_point=_fail_on_lr_01(b))
    pd.testing.assert_frame_equal(on_ray, serial, check_exact=True)
    assert on_ray["extra"].notna().sum() == 2  # one value per run, on its last row
    assert on_ray.attrs == serial.attrs


def test_points_are_executor_points():
    cfg = GridConfig(lrs=(0.05, 0.05), seeds=(0,), max_steps=20)
    from sharpjac.experiments.base import distinct_points

    pts = distinct_points(cfg.grid())
    assert len(pts) == 1 and isinstance(pts[0], Point) and pts[0].labels == {"lr": 0.05, "seed": 0}
