"""Run store: keys, reuse, verification of every stored file, safe checkpoints, locks, SIGKILL resumption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

import sharpjac
from sharpjac import runs
from sharpjac.runs import RunStore, StoreError, atomic_write, config_key, run
from sharpjac.training import TrainConfig

SRC = str(Path(sharpjac.__file__).resolve().parents[1])


def small(**kw) -> TrainConfig:
    base = {
        "dataset": "digits",
        "dataset_options": {"n_train": 64, "n_test": 32},
        "model": "mlp",
        "model_options": {"widths": [10], "activation": "tanh"},
        "loss": "ce",
        "optimizer": "sgd",
        "batch_size": 16,
        "momentum": 0.9,
        "lr": 0.05,
        "max_steps": 20,
        "measure_every": 4,
        "sharpness_subset": 32,
        "jacobian_subset": 8,
        "lanczos_max_iter": 10,
        "checkpoint_every": 5,
        "augment": True,
        "device": "cpu",
    }
    base.update(kw)
    return TrainConfig(**base)


def long_config() -> TrainConfig:
    """Thousands of tiny steps, so that a subprocess is still training long after its first checkpoint."""
    return small(
        dataset_options={"n_train": 60, "n_test": 30},
        model_options={"widths": [8]},
        augment=False,
        momentum=0.0,
        batch_size=20,
        max_steps=1200,
        measure_every=300,
        sharpness_subset=16,
        lanczos_max_iter=5,
        checkpoint_every=20,
    )


def _env() -> dict:
    return {
        **os.environ,
        "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "OMP_NUM_THREADS": "1",
        "SHARPJAC_PROGRESS": "0",
    }


RUN_SCRIPT = (
    "import json, sys, torch; torch.set_num_threads(1)\n"
    "from sharpjac.runs import run, RunStore\n"
    "from sharpjac.training import TrainConfig\n"
    "c = TrainConfig.from_dict(json.loads(sys.argv[1]))\n"
    "df = run(c, store=RunStore(sys.argv[2]), progress=False)\n"
    "print('SOURCE=' + df.attrs['source'])\n"
)


def _spawn(config: TrainConfig, root: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", RUN_SCRIPT, json.dumps(config.to_dict()), str(root)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


# -- keys and reuse -----------------------------------------------------------------------------


def test_key_is_stable_and_sensitive_to_config_and_version(monkeypatch):
    c = small()
    k = config_key(c)
    assert k == config_key(small()) and len(k) == 64
    assert k != config_key(small(lr=0.051))
    assert config_key(small(lr=1)) == config_key(small(lr=1.0)) == config_key(small(lr=np.float64(1)))
    assert config_key(small(max_steps=np.int64(20))) == k
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
    assert df.attrs["source"] == "trained" and store.has(c)
    meta = store.meta(c)
    assert meta["status"] == "completed" and meta["sharpjac_version"] == sharpjac.__version__
    assert meta["config"] == c.to_dict() and meta["wall_time_s"] > 0
    assert "wall_time_s" not in df.columns
    names = sorted(p.name for p in store.path(c).iterdir())
    assert names == ["meta.json", "model-20.pt", "record.parquet"], "checkpoints must be gone once stored"
    assert set(meta["files"]) == {"record.parquet", "model-20.pt"}
    monkeypatch.setattr(runs, "train", lambda *a, **k: pytest.fail("must load from the store"))
    again = run(c, store=store)
    pd.testing.assert_frame_equal(df, again, check_exact=True)
    assert again.attrs["config"] == c.to_dict() and again.attrs["status"] == "completed"
    assert again.attrs["source"] == "store"


def test_force_retrains(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    c = small(max_steps=4)
    run(c, store=store)
    calls = []
    real = runs.train
    monkeypatch.setattr(runs, "train", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert run(c, store=store, force=True).attrs["source"] == "trained"
    assert calls == [1]


def test_store_argument_validation(tmp_path):
    with pytest.raises(TypeError, match="store must be"):
        run(small(), store=3)
    df = run(small(max_steps=2), store=False)
    assert len(df) == 2 and df.attrs["source"] == "trained"


# -- networks -------------------------------------------------------------------------------------


def test_stored_network_is_the_trained_network(tmp_path):
    store = RunStore(tmp_path)
    c = small(max_steps=8, snapshot_steps=[0])
    result = runs.train(c)
    init = runs._build_model(c).state_dict()
    store.save(c, result)
    assert store.model_steps(c) == [0, 8]
    final = store.load_state(c)
    for k, v in result.model.state_dict().items():
        assert torch.equal(final[k], v) and final[k].device.type == "cpu", k  # a copy of bits: exact
    for k, v in store.load_state(c, 0).items():
        assert torch.equal(v, init[k]), k
    x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(store.load_model(c)(x), result.model(x))
    with pytest.raises(ValueError, match=r"step=3 is not stored.*\[0, 8\]"):
        store.load_state(c, 3)


def test_without_snapshots_the_final_network_is_kept(tmp_path):
    store = RunStore(tmp_path)
    c = small(max_steps=6)
    result = runs.train(c)
    store.save(c, result)
    assert store.model_steps(c) == [6]
    state = store.load_state(c)
    assert all(torch.equal(state[k], v) for k, v in result.model.state_dict().items())


# -- atomicity ------------------------------------------------------------------------------------


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


# -- verification of every stored file --------------------------------------------------------------


def _positions(n: int, count: int = 24) -> list[int]:
    """Spread byte positions over a file of n bytes: both ends and evenly in between."""
    return sorted({0, 1, n // 2, n - 2, n - 1, *np.linspace(0, n - 1, count).astype(int).tolist()})


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """A store with a run, a study and an artefact (built once: flip tests restore every byte)."""
    store = RunStore(tmp_path_factory.mktemp("filled"))
    c = small(max_steps=4)
    run(c, store=store)
    store.study("covering", {"n": 3}, lambda: pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}))
    store.artefact(c, "end", {"radius": 0.1}, lambda: {"sharpness": 1.25, "gap": float("nan")})
    study_dir = next((store.root / "studies").iterdir())
    art = next((store.path(c) / "artefacts").iterdir())
    return SimpleNamespace(store=store, config=c, study_dir=study_dir, artefact=art)


def _readers(f):
    st, c = f.store, f.config

    def never():
        pytest.fail("a damaged cache must not be recomputed silently")

    return {
        "record.parquet": (st.path(c) / "record.parquet", lambda: st.load(c)),
        "meta.json": (st.path(c) / "meta.json", lambda: st.load(c)),
        "model-4.pt": (st.path(c) / "model-4.pt", lambda: st.load_state(c)),
        "study parquet": (f.study_dir / "frame.parquet", lambda: st.study("covering", {"n": 3}, never)),
        "study meta": (f.study_dir / "meta.json", lambda: st.study("covering", {"n": 3}, never)),
        "artefact": (f.artefact, lambda: st.artefact(c, "end", {"radius": 0.1}, never)),
    }


@pytest.mark.parametrize(
    "which", ["record.parquet", "meta.json", "model-4.pt", "study parquet", "study meta", "artefact"]
)
def test_a_flipped_byte_in_any_stored_file_is_detected(filled, which):
    path, read = _readers(filled)[which]
    read()  # intact: reads fine
    original = path.read_bytes()
    n = len(original)
    # JSON files are small and their check is more than a hash (canonical form): flip every third byte
    positions = range(0, n, 3) if path.suffix == ".json" else _positions(n)
    try:
        for i, pos in enumerate(positions):
            damaged = bytearray(original)
            damaged[pos] ^= (0x01, 0x20, 0x80, 0xFF)[i % 4]
            path.write_bytes(bytes(damaged))
            with pytest.raises(StoreError) as e:
                read()
            msg = str(e.value)
            assert path.name in msg and "delete" in msg and "\n" not in msg, (pos, msg)
    finally:
        path.write_bytes(original)
    read()


def test_meta_edited_without_changing_its_content_is_detected(filled):
    """The meta must be byte-for-byte its written form: a tab for an indenting space is damage too."""
    path = filled.store.path(filled.config) / "meta.json"
    original = path.read_bytes()
    assert json.loads(original.replace(b"\n  ", b"\n\t", 1)) == json.loads(original)  # same content
    try:
        path.write_bytes(original.replace(b"\n  ", b"\n\t", 1))
        with pytest.raises(StoreError, match="meta.json is damaged"):
            filled.store.meta(filled.config)
    finally:
        path.write_bytes(original)


def test_run_of_a_damaged_stored_run_names_the_file_and_force_repairs(tmp_path):
    store = RunStore(tmp_path)
    c = small(max_steps=4)
    clean = run(c, store=store)
    rec = store.path(c) / "record.parquet"
    rec.write_bytes(rec.read_bytes()[:-10])
    with pytest.raises(StoreError, match=r"record\.parquet is damaged.*delete .*force=True / --force"):
        run(c, store=store)
    pd.testing.assert_frame_equal(run(c, store=store, force=True), clean, check_exact=True)


def test_meta_without_checksums_is_refused(tmp_path):
    store = RunStore(tmp_path)
    c = small(max_steps=2)
    run(c, store=store)
    meta = store.path(c) / "meta.json"
    body = json.loads(meta.read_text())
    del body["meta_sha256"]
    meta.write_text(json.dumps(body))  # what an older sharpjac wrote: plain JSON, no checksums
    with pytest.raises(StoreError, match="no checksum"):
        store.load(c)


# -- checkpoints ----------------------------------------------------------------------------------


class _Crash(Exception):
    pass


def _crash_after(store: RunStore, c: TrainConfig, step: int) -> None:
    """Train ``c`` with the store's checkpointer and crash right after the checkpoint of ``step``."""
    ck = store.checkpointer(c)
    real = ck.save

    def save(state):
        real(state)
        if state["step"] == step:
            raise _Crash

    ck.save = save
    with pytest.raises(_Crash):
        runs.train(c, checkpointer=ck)


def test_checkpointer_keeps_two_generations_and_round_trips(tmp_path):
    c = small()
    ck = RunStore(tmp_path).checkpointer(c)
    for step in (5, 10, 15):
        ck.save({"config": c.to_dict(), "step": step, "w": torch.arange(3.0) * step, "rows": [{"loss": 0.5}]})
    assert [p.name for p in ck.generations()] == ["checkpoint-000000015.pt", "checkpoint-000000010.pt"]
    state = ck.load()
    assert state["step"] == 15 and torch.equal(state["w"], torch.arange(3.0) * 15)
    assert state["rows"] == [{"loss": 0.5}]


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):  # unpickling this would create the marker folder
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("with_sidecar", [True, False])
def test_checkpoint_with_a_pickle_payload_is_refused_and_the_run_finishes(tmp_path, with_sidecar):
    store = RunStore(tmp_path / "store")
    c = small(max_steps=12)
    marker = tmp_path / "pwned"
    ck = store.checkpointer(c)
    path = ck.path_for(10)
    path.parent.mkdir(parents=True)
    torch.save({"config": c.to_dict(), "step": 10, "evil": _Payload(marker)}, path)
    if with_sidecar:  # a payload with a valid checksum: weights_only is what must refuse it
        path.with_name(path.name + ".sha256").write_text(runs._sha256(path.read_bytes()) + "\n")
    with pytest.warns(RuntimeWarning, match=r"checkpoint-000000010\.pt (was refused|has no).*starting afresh"):
        df = run(c, store=store)
    assert not marker.exists(), "the pickle payload was executed"
    assert (path.parent / (path.name + ".damaged-1")).exists(), "the evidence must be kept"
    assert store.meta(c)["resumed_from"] is None
    pd.testing.assert_frame_equal(df, run(c, store=False), check_exact=True)


def test_truncated_checkpoint_is_set_aside_and_the_previous_generation_used(tmp_path):
    store = RunStore(tmp_path / "a")
    c = small()
    _crash_after(store, c, 15)
    ck = store.checkpointer(c)
    newest = ck.path_for(15)
    assert [p.name for p in ck.generations()] == [newest.name, ck.path_for(10).name]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    with pytest.warns(RuntimeWarning, match=r"checkpoint-000000015\.pt fails its SHA-256 check.*previous"):
        resumed = run(c, store=store)
    assert store.meta(c)["resumed_from"] == 10
    assert (newest.parent / (newest.name + ".damaged-1")).exists()
    clean = run(c, store=RunStore(tmp_path / "b"))
    pd.testing.assert_frame_equal(resumed, clean, check_exact=True)


def test_checkpoint_of_another_config_is_set_aside_not_a_crash(tmp_path):
    store = RunStore(tmp_path)
    c = small(max_steps=8)
    other = small(max_steps=8, lr=0.2)
    path = store.checkpointer(c).path_for(5)
    runs._FileCheckpointer(store.path(c)).save({"config": other.to_dict(), "step": 5})
    with pytest.warns(RuntimeWarning, match="different config"):
        df = run(c, store=store)
    assert store.meta(c)["resumed_from"] is None and (path.parent / (path.name + ".damaged-1")).exists()
    pd.testing.assert_frame_equal(df, run(c, store=False), check_exact=True)


# -- processes ------------------------------------------------------------------------------------


def test_sigkill_then_resume_gives_the_uninterrupted_record(tmp_path):
    c = long_config()
    store = RunStore(tmp_path / "a")
    ck = store.checkpointer(c)
    proc = _spawn(c, store.root)
    seen = None
    deadline = time.monotonic() + 300  # a generous cap on waiting, not a timing assertion
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            complete = [p for p in ck.generations() if p.with_name(p.name + ".sha256").exists()]
            if complete:
                seen = complete[0]
                break
            time.sleep(0.005)
    finally:
        proc.kill()
        _, err = proc.communicate()
    assert seen is not None, f"no checkpoint observed before the subprocess ended: {err[-2000:]}"
    assert proc.returncode == -signal.SIGKILL, "the subprocess finished before it could be killed: " + err[-2000:]
    assert not store.has(c)
    seen_step = int(seen.name.split("-")[1].split(".")[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the kill may have torn the newest generation
        resumed = run(c, store=store)
    resumed_from = store.meta(c)["resumed_from"]
    assert resumed_from is not None and resumed_from >= seen_step - c.checkpoint_every
    fresh = run(c, store=False)
    assert len(fresh) == 5
    pd.testing.assert_frame_equal(resumed, fresh, check_exact=True)


def test_two_processes_on_one_run_train_once(tmp_path):
    c = small(max_steps=120, measure_every=40, checkpoint_every=30)
    procs = [_spawn(c, tmp_path) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    sources = sorted(line.split("=", 1)[1] for o in outs for line in o[0].splitlines() if line.startswith("SOURCE="))
    assert sources == ["store", "trained"]


def test_lock_is_a_per_run_file_lock(tmp_path):
    store = RunStore(tmp_path)
    c = small()
    lock = store.lock(c)
    assert lock.path == tmp_path / ".locks" / f"{config_key(c)}.lock"
    with lock:
        other = store.lock(c)
        with pytest.raises(StoreError, match="gave up after .* held by pid"):
            other.acquire(timeout=0)  # held by `lock`; another lock object on the same file
    other.acquire(timeout=0)
    other.release()


# -- writability and read-only stores ----------------------------------------------------------------


def _read_only(monkeypatch, root: Path) -> None:
    """Make every temp-file creation under ``root`` fail as on a read-only file system."""
    real = tempfile.mkstemp

    def mkstemp(*a, dir=None, **k):
        if dir is not None and Path(dir).resolve().is_relative_to(root.resolve()):
            raise PermissionError(13, "Read-only file system", str(dir))
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def test_a_read_only_store_is_readable_and_refuses_training_up_front(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    c = small(max_steps=4)
    first = run(c, store=store)
    store.artefact(c, "end", {"r": 1}, lambda: {"v": 2.0})
    state = store.load_state(c)
    before = _tree(tmp_path)
    _read_only(monkeypatch, tmp_path)
    monkeypatch.setattr(runs, "train", lambda *a, **k: pytest.fail("train must not be called"))
    again = run(c, store=store)
    pd.testing.assert_frame_equal(again, first, check_exact=True)
    assert all(torch.equal(v, state[k]) for k, v in store.load_state(c).items())
    assert store.artefact(c, "end", {"r": 1}, lambda: pytest.fail("must be read")) == {"v": 2.0}
    assert _tree(tmp_path) == before, "reading a stored run must write nothing"
    with pytest.raises(StoreError, match=r"run store .* is not writable.*SHARPJAC_CACHE or --cache"):
        run(small(max_steps=5), store=store)


def test_check_writable_names_a_file_root(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(StoreError, match=r"afile is a file, not a folder.*SHARPJAC_CACHE or --cache"):
        RunStore(f).check_writable()
    with pytest.raises(StoreError, match=r"afile/sub is not writable"):
        RunStore(f / "sub").check_writable()
    RunStore(tmp_path / "new" / "root").check_writable()
    assert (tmp_path / "new" / "root").is_dir() and not list((tmp_path / "new" / "root").iterdir())


# -- studies and artefacts ------------------------------------------------------------------------


def test_study_is_computed_once_and_restores_frames_and_attrs(tmp_path):
    store = RunStore(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        df = pd.DataFrame({"n": [1, 2, 3], "radius": [0.5, 0.25, np.nan]})
        df.attrs = {"claim": "T1", "bounds": (1.0, 2.0), "tensor": torch.zeros(1)}
        return df

    first = store.study("covering", {"dims": [1, 2], "seed": 0}, compute)
    second = store.study("covering", {"seed": 0, "dims": (1, 2)}, compute)  # same canonical JSON
    assert calls == [1]
    expected = compute()
    pd.testing.assert_frame_equal(first, expected, check_exact=True)
    pd.testing.assert_frame_equal(second, expected, check_exact=True)
    assert second.attrs == {"claim": "T1", "bounds": [1.0, 2.0]}  # JSON-serialisable attrs only
    store.study("covering", {"dims": [1, 2], "seed": 1}, compute)
    assert len(calls) == 3 and len(list((tmp_path / "studies").iterdir())) == 2

    tables = store.study("pair", {}, lambda: {"a": pd.DataFrame({"x": [1]}), "b": pd.DataFrame({"y": ["z"]})})
    assert sorted(tables) == ["a", "b"]
    again = store.study("pair", {}, lambda: pytest.fail("must be loaded"))
    pd.testing.assert_frame_equal(again["b"], pd.DataFrame({"y": ["z"]}))


def test_study_and_artefact_validation(tmp_path):
    store = RunStore(tmp_path)
    with pytest.raises(ValueError, match=r"name='a/b' is invalid; accepted"):
        store.study("a/b", {}, pd.DataFrame)
    with pytest.raises(ValueError, match=r"spec=.* is invalid .*JSON-serialisable"):
        store.study("ok", {"x": object()}, pd.DataFrame)
    with pytest.raises(ValueError, match="compute\\(\\) returned list"):
        store.study("ok", {}, lambda: [1])
    with pytest.raises(KeyError, match="no stored run"):
        store.artefact(small(), "end", {}, dict)


def test_artefact_is_computed_once_per_spec(tmp_path):
    store = RunStore(tmp_path)
    c = small(max_steps=2)
    run(c, store=store)
    calls = []

    def compute():
        calls.append(1)
        return {"sharpness": 3.5, "per_layer": [1.0, 2.0], "nan": float("nan")}

    a = store.artefact(c, "end", {"radius": 0.1}, compute)
    b = store.artefact(c, "end", {"radius": 0.1}, compute)
    assert calls == [1] and a["sharpness"] == b["sharpness"] == 3.5 and np.isnan(b["nan"])
    store.artefact(c, "end", {"radius": 0.2}, compute)
    assert len(calls) == 2
    assert len(list((store.path(c) / "artefacts").glob("end-*.json"))) == 2
