"""Run store: keys, reuse, atomic writes, and exact resumption after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sharpjac
from sharpjac import runs
from sharpjac.runs import RunStore, atomic_write, config_key, run
from sharpjac.training import KILL_ENV, TrainConfig


def small(**kw) -> TrainConfig:
    base = dict(dataset="digits", dataset_options={"n_train": 64, "n_test": 32}, model="mlp",
                model_options={"widths": [10], "activation": "tanh"}, loss="ce", optimizer="sgd", batch_size=16,
                momentum=0.9, lr=0.05, max_steps=24, measure_every=4, sharpness_subset=32, jacobian_subset=8,
                lanczos_max_iter=10, checkpoint_every=5, augment=True, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def test_key_is_stable_and_sensitive_to_config_and_version(monkeypatch):
    c = small()
    k = config_key(c)
    assert k == config_key(small()) and len(k) == 64
    assert k != config_key(small(lr=0.051))
    assert config_key(small(lr=1)) == config_key(small(lr=1.0)) == config_key(small(lr=np.float64(1)))
    assert config_key(small(max_steps=np.int64(24))) == k
    assert k != config_key(small(model_options={"widths": [11], "activation": "tanh"}))
    monkeypatch.setattr(runs, "__version__", "999")
    assert config_key(c) != k


def test_default_root_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SHARPJAC_CACHE", str(tmp_path / "x"))
    assert RunStore().root == tmp_path / "x"
    monkeypatch.delenv("SHARPJAC_CACHE")
    assert RunStore().root == Path.home() / ".cache" / "sharpjac" / "runs"


def test_run_stores_then_loads_without_training(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    c = small()
    df = run(c, store=store)
    assert store.has(c)
    meta = store.meta(c)
    assert meta["status"] == "completed" and meta["sharpjac_version"] == sharpjac.__version__
    assert meta["config"] == c.to_dict() and meta["wall_time_s"] > 0
    assert "wall_time_s" not in df.columns
    assert not (store.path(c) / "checkpoint.pt").exists()
    monkeypatch.setattr(runs, "train", lambda *a, **k: pytest.fail("must load from the store"))
    again = run(c, store=store)
    pd.testing.assert_frame_equal(df, again, check_exact=True)
    assert again.attrs["config"] == c.to_dict() and again.attrs["status"] == "completed"


def test_force_retrains(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    c = small(max_steps=4)
    run(c, store=store)
    calls = []
    real = runs.train
    monkeypatch.setattr(runs, "train", lambda *a, **k: calls.append(1) or real(*a, **k))
    run(c, store=store, force=True)
    assert calls == [1]


def test_atomic_write_keeps_previous_content_when_interrupted(tmp_path, monkeypatch):
    p = tmp_path / "f.json"
    atomic_write(p, lambda f: f.write(b'{"v": 1}'))

    def boom(*a, **k):
        raise OSError("simulated crash during replace")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="simulated"):
        atomic_write(p, lambda f: f.write(b'{"v": 2, "partial'))
    assert json.loads(p.read_text()) == {"v": 1}
    assert [x.name for x in tmp_path.iterdir()] == ["f.json"], "temporary file left behind"


def test_interrupted_result_write_leaves_previous_result_readable(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    c = small(max_steps=4)
    first = run(c, store=store)
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        store.save(c, runs.train(c))
    monkeypatch.setattr(os, "replace", real_replace)
    pd.testing.assert_frame_equal(store.load(c), first, check_exact=True)
    assert not [x for x in store.path(c).iterdir() if x.name.endswith(".tmp")]


def test_sigkill_then_resume_gives_the_uninterrupted_record(tmp_path):
    c = small()
    store_a = RunStore(tmp_path / "a")
    script = (
        "import json, sys, torch; torch.set_num_threads(1)\n"
        "from sharpjac.runs import run, RunStore\n"
        "from sharpjac.training import TrainConfig\n"
        "c = TrainConfig.from_dict(json.loads(sys.argv[1]))\n"
        "run(c, store=RunStore(sys.argv[2]), progress=False)\n"
    )
    env = {**os.environ, KILL_ENV: "13", "OMP_NUM_THREADS": "1", "SHARPJAC_PROGRESS": "0"}
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(c.to_dict()), str(store_a.root)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not store_a.has(c)
    ck = store_a.checkpointer(c).load()
    assert ck is not None and ck["step"] == 10 and ck["rows"][-1]["step"] == 8
    resumed = run(c, store=store_a)  # same process settings: one thread
    assert store_a.meta(c)["resumed_from"] == 10
    fresh = run(c, store=RunStore(tmp_path / "b"))
    assert store_a.meta(c)["rows"] == len(fresh) == 7
    pd.testing.assert_frame_equal(resumed, fresh, check_exact=True)


def test_checkpoint_for_another_config_is_rejected(tmp_path):
    store = RunStore(tmp_path)
    c = small()
    ck = store.checkpointer(c)
    ck.save({"config": small(lr=0.2).to_dict(), "step": 5})
    with pytest.raises(ValueError, match="different config"):
        run(c, store=store)


def test_store_argument_validation(tmp_path):
    with pytest.raises(TypeError, match="store must be"):
        run(small(), store=3)
    df = run(small(max_steps=2), store=False)
    assert len(df) == 2
