"""Bad inputs and faults, tried as a new user would: nothing runs that should not, nothing wrong is
served silently, every fault is one line naming the path or parameter and the remedy, nothing is
lost. Run alone with ``pytest -m faults``.

Each case can fail: it asserts the refusal (or the fallback) *and* its evidence (marker file not
created, numbers equal to a fresh run, the file still there, ...).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sharpjac import cli, codekey, losses, publish, runs, training
from sharpjac.runs import RunStore, StoreError, config_key
from sharpjac.training import TrainConfig, train

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"


def small(**kw) -> TrainConfig:
    base = {
        "dataset": "digits",
        "dataset_options": {"n_train": 40, "n_test": 20},
        "model": "mlp",
        "model_options": {"widths": [6], "activation": "tanh"},
        "loss": "ce",
        "optimizer": "gd",
        "lr": 0.05,
        "max_steps": 6,
        "measure_every": 2,
        "sharpness_subset": 0,
        "jacobian_subset": 0,
        "eval_test": False,
        "dtype": "float64",
        "device": "cpu",
    }
    base.update(kw)
    return TrainConfig(**base)


def one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


# ------------------------------------------------------------------------------------------------
# 1. Shell injection through make variables (nothing runs; make fails with one line from us)
# ------------------------------------------------------------------------------------------------

INJECTIONS = {
    "semicolon": "x;touch {m}",
    "quote": "x' ; touch {m} ; echo '",
    "dollar": "$(touch {m})",
    "backtick": "`touch {m}`",
}


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("var", ["NB", "PRESET", "SEED", "PARAMS", "JOBS"])
@pytest.mark.parametrize("kind", sorted(INJECTIONS))
def test_make_variables_never_reach_a_shell(tmp_path, var, kind):
    marker = tmp_path / "pwned"
    value = INJECTIONS[kind].format(m=marker)
    stamp = tmp_path / "stamp"
    stamp.touch()
    extra = [] if var == "NB" else ["NB=data"]
    done = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "chapter", f"{var}={value}", *extra]
        + [f"PY={sys.executable}", f"STAMP={stamp}", f"VENV={tmp_path / 'venv'}"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        timeout=60,
    )
    assert not marker.exists(), "the injected command ran"
    assert done.returncode != 0
    ours = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(ours) == 1 and var in ours[0] and "accepted" in ours[0] or "not NAME=VALUE" in ours[0], done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_a_quoted_params_value_is_passed_as_one_argument(tmp_path):
    marker = tmp_path / "pwned"
    stamp = tmp_path / "stamp"
    stamp.touch()
    value = f"nope=1' ; touch {marker} ; echo '"
    done = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "chapter", "NB=data", f"PARAMS={value}"]
        + [f"PY={sys.executable}", f"STAMP={stamp}", f"VENV={tmp_path / 'venv'}"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "SHARPJAC_MAKE_PRINT": "1"},
        timeout=60,
        check=True,
    )
    import shlex

    argv = shlex.split(done.stdout)
    assert argv[argv.index("--params") + 1] == value and not marker.exists()


# ------------------------------------------------------------------------------------------------
# 2. Every configuration field: out-of-range values refused in one line naming the field
# ------------------------------------------------------------------------------------------------

BAD_FIELDS = [
    ("dataset", "nope"),
    ("dataset_options", 5),
    ("data_seed", -1),
    ("model", "nope"),
    ("model_options", 5),
    ("loss", "l1"),
    ("label_smoothing", 1.0),
    ("optimizer", "adam"),
    ("lr", 0.0),
    ("lr", float("nan")),
    ("lr", float("inf")),
    ("momentum", 1.0),
    ("weight_decay", -0.1),
    ("batch_size", 0),
    ("sam_rho", -1.0),
    ("augment", "yes"),
    ("jacobian_penalty", -1.0),
    ("jacobian_penalty_projections", 0),
    ("lr_schedule", "linear"),
    ("lr_min", 1.0),
    ("lr_step_every", 0),
    ("lr_step_gamma", 0.0),
    ("max_steps", 0),
    ("max_epochs", -1),
    ("target_train_loss", -1.0),
    ("target_train_acc", 1.5),
    ("measure_every", 0),
    ("measure_every_epochs", 0),
    ("measure_num", -2),
    ("sharpness_subset", -1),
    ("jacobian_subset", -1),
    ("measure_gn", 1),
    ("lanczos_tol", 0.0),
    ("lanczos_max_iter", 0),
    ("eval_test", "no"),
    ("physical_batch_size", 0),
    ("seed", -1),
    ("seed", 2**32),
    ("dtype", "float16"),
    ("device", "gpu7"),
    ("checkpoint_every", 0),
    ("trainable_layers", [0]),
    ("trainable_layers", "x"),
    ("trainable_layers", [1, 1]),
    ("snapshot_steps", [-1]),
    ("snapshot_steps", ["a"]),
    ("snapshot_steps", [0, 4, 4]),
    ("divergence_factor", 1.0),
    ("divergence_factor", float("inf")),
    ("divergence_baseline_factor", 0.5),
    ("divergence_baseline_factor", float("nan")),
    ("threads", 0),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS, ids=[f"{f}={v!r}" for f, v in BAD_FIELDS])
def test_every_config_field_refuses_out_of_range_values(field, value):
    with pytest.raises((ValueError, TypeError)) as info:
        small(**{field: value})
    message = one_line(str(info.value))
    assert field in message


@pytest.mark.parametrize(("field", "value"), [("snapshot_steps", (2, 0, 2)), ("trainable_layers", [2, 1, 2])])
def test_a_setting_given_twice_is_refused_not_merged(field, value):
    with pytest.raises(ValueError) as info:
        small(**{field: value})
    message = one_line(str(info.value))
    assert f"TrainConfig.{field}={value!r}" in message and "[2] given more than once" in message
    assert "distinct ints" in message


def test_a_set_setting_in_any_order_is_the_same_run():
    # snapshot steps and trainable layers are sets: order is not a setting, so it may not change the key
    a, b = small(snapshot_steps=[4, 0], trainable_layers=[2, 1]), small(snapshot_steps=(0, 4), trainable_layers=(1, 2))
    assert a == b and config_key(a) == config_key(b) and a.snapshot_steps == (0, 4)


@pytest.mark.parametrize("study", ["t2", "t3", "ansatz"])
def test_study_snapshots_given_twice_are_refused(study):
    from sharpjac.experiments.ansatz import AnsatzConfig
    from sharpjac.experiments.t2_lipschitz import T2Config
    from sharpjac.experiments.t3_low_loss import T3Config

    cls, field = {
        "t2": (T2Config, "snapshots"),
        "t3": (T3Config, "snapshots"),
        "ansatz": (AnsatzConfig, "snapshot_steps"),
    }[study]
    steps = cls.from_preset("smoke").steps
    with pytest.raises(ValueError) as info:
        cls.from_preset("smoke", **{field: (0, steps, steps)})
    message = one_line(str(info.value))
    assert f"{cls.__name__}.{field}=" in message and "distinct" in message


def test_the_walk_covers_every_config_field():
    import dataclasses

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert fields == {f for f, _ in BAD_FIELDS}


# ------------------------------------------------------------------------------------------------
# 3. Command-line settings honoured exactly or refused
# ------------------------------------------------------------------------------------------------

CLI_BAD = {
    "threads-too-many": (["--threads", "100000"], "--threads"),
    "threads-zero": (["--threads", "0"], "threads=0"),
    "duplicate-seed": (["--seed", "1", "--seed", "1"], "--seed"),
    "output-suffix": (["--output", "table.txt"], "--output"),
    "unknown-preset": (["--preset", "huge"], "preset"),
    "bad-set": (["--set", "max_steps=-3"], "max_steps"),
    "unknown-field": (["--set", "nonsense=1"], "nonsense"),
    "bad-device": (["--device", "gpu7"], "device"),
    "address-without-ray": (["--address", "127.0.0.1:1"], "--address"),
}


@pytest.mark.parametrize("case", sorted(CLI_BAD))
def test_cli_refuses_settings_it_cannot_honour(case, tmp_path, capsys):
    args, name = CLI_BAD[case]
    code = cli.main(["run", "progressive_sharpening", "--preset", "smoke", "--cache", str(tmp_path / "s"), *args])
    err = capsys.readouterr().err
    assert code == 2 and name in one_line(err)
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").glob("[0-9a-f]" * 8 + "*"))


@pytest.mark.parametrize("what", ["cache-is-a-file", "experiments-is-a-file"])
def test_cli_store_paths_that_are_files(tmp_path, capsys, what):
    cache = tmp_path / "cache"
    if what == "cache-is-a-file":
        cache.write_text("not a folder")
    else:
        cache.mkdir()
        (cache / "experiments").write_text("not a folder")
    code = cli.main(["run", "progressive_sharpening", "--preset", "smoke", "--cache", str(cache)])
    line = one_line(capsys.readouterr().err)
    assert code == 2 and str(cache) in line and ("--cache" in line or "CACHE" in line)
    assert cache.exists()  # nothing removed


def test_cli_store_command_on_a_missing_store(tmp_path, capsys):
    assert cli.main(["store", "list-stale", "--cache", str(tmp_path / "none")]) == 2
    assert "--cache" in one_line(capsys.readouterr().err)


def test_ctrl_c_exits_quietly_with_130(tmp_path):
    env = dict(os.environ, SHARPJAC_CACHE=str(tmp_path), PYTHONPATH=str(SRC))
    proc = subprocess.Popen(
        [sys.executable, "-m", "sharpjac", "run", "progressive_sharpening", "--preset", "quick", "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not any(tmp_path.glob("[0-9a-f]" * 64)):  # a run is training
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, err)
    assert "Traceback" not in err and "interrupted" in one_line(err)
    assert any(tmp_path.glob("[0-9a-f]" * 64))  # the run folder (its checkpoints) is kept


def test_closed_pipe_exits_quietly(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(SRC))
    done = subprocess.run(
        f"{sys.executable} -m sharpjac list | head -1",
        shell=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 1
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


# ------------------------------------------------------------------------------------------------
# 4. The store checks what it serves
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    a, b = small(seed=0), small(seed=1)
    for c in (a, b):
        runs.run(c, store=root, progress=False)
    return root, a, b


def _copy_store(stored, tmp_path) -> Path:
    root = tmp_path / "s"
    shutil.copytree(stored[0], root)
    return root


def test_a_run_folder_copied_under_another_key_is_refused(stored, tmp_path):
    root = _copy_store(stored, tmp_path)
    _, a, b = stored
    st = RunStore(root)
    shutil.rmtree(st.path(b))
    shutil.copytree(st.path(a), st.path(b))  # seed 0's folder under seed 1's key
    with pytest.raises(StoreError) as info:
        runs.run(b, store=st, progress=False)
    assert "describes another run" in one_line(str(info.value)) and str(st.path(b)) in str(info.value)
    assert (st.path(b) / "meta.json").exists()  # evidence kept


def test_a_study_folder_copied_under_another_spec_is_refused(tmp_path):
    st = RunStore(tmp_path)
    st.study("demo", {"n": 1}, lambda: pd.DataFrame({"v": [1.0]}), code="sharpjac.losses")
    one, _, _ = st.study_folder("demo", {"n": 1}, code="sharpjac.losses")
    two, _, _ = st.study_folder("demo", {"n": 2}, code="sharpjac.losses")
    shutil.copytree(one, two)
    with pytest.raises(StoreError, match="describes another study"):
        st.study("demo", {"n": 2}, lambda: pd.DataFrame({"v": [2.0]}), code="sharpjac.losses")


def test_a_study_whose_code_changes_while_it_computes_is_not_stored(tmp_path, monkeypatch):
    st = RunStore(tmp_path)

    def edited_meanwhile():
        monkeypatch.setattr(runs, "code_digest", lambda modules: "0" * 64)  # the package edited mid-run
        return pd.DataFrame({"v": [1.0]})

    with pytest.raises(StoreError) as info:
        st.study("demo", {"n": 1}, edited_meanwhile, code="sharpjac.losses")
    assert "changed while it was computed" in one_line(str(info.value))
    assert not list((tmp_path / "studies").glob("demo-*/meta.json"))  # nothing half-true was kept
    monkeypatch.undo()
    assert st.study("demo", {"n": 1}, lambda: pd.DataFrame({"v": [2.0]}), code="sharpjac.losses")["v"].tolist() == [2.0]


def test_a_checkpoint_that_does_not_fit_the_model_is_set_aside(tmp_path):
    c = small(checkpoint_every=2, max_steps=6)
    st = RunStore(tmp_path)
    fresh = runs.run(c, store=False, progress=False)
    ck = st.checkpointer(c)
    wrong = train(small(model_options={"widths": [9], "activation": "tanh"}, max_steps=2)).model.state_dict()
    state = {"config": c.to_dict(), "step": 2, "model": wrong, "optimizer": {}, "rows": [], "hooks": {}}
    ck.save(state)
    with pytest.warns(RuntimeWarning, match="does not fit"):
        df = runs.run(c, store=st, progress=False)
    pd.testing.assert_frame_equal(df.drop(columns=[]), fresh, check_exact=True, check_like=False)
    assert list(st.path(c).glob("checkpoint-*.damaged-1"))  # kept as evidence


@pytest.mark.parametrize("component", [".locks", "run-folder"])
def test_store_components_that_are_files(tmp_path, component):
    c = small()
    st = RunStore(tmp_path)
    target = tmp_path / ".locks" if component == ".locks" else st.path(c)
    target.write_text("in the way")
    with pytest.raises(StoreError) as info:
        runs.run(c, store=st, progress=False)
    line = one_line(str(info.value))
    assert "is a file" in line or "not a folder" in line or "not a plain file" in line
    assert target.read_text() == "in the way"  # nothing overwritten


def test_a_lock_file_that_is_a_symlink_is_refused(tmp_path):
    c = small()
    st = RunStore(tmp_path)
    (tmp_path / ".locks").mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (tmp_path / ".locks" / f"{config_key(c)}.lock").symlink_to(victim)
    with pytest.raises(StoreError, match="not a plain file"):
        runs.run(c, store=st, progress=False)
    assert victim.read_text() == "keep"


def test_a_path_longer_than_path_max_is_one_line(tmp_path):
    deep = tmp_path
    for _ in range(18):  # 18 x 251 characters > PATH_MAX (4096)
        deep = deep / ("x" * 250)
    with pytest.raises(StoreError) as info:
        runs.run(small(), store=deep, progress=False)
    assert "CACHE" in one_line(str(info.value))


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EFBIG])
def test_a_full_disk_is_one_line_and_loses_nothing(tmp_path, monkeypatch, err, stored):
    root = _copy_store(stored, tmp_path)
    _, a, _ = stored
    st = RunStore(root)
    before = {p: p.read_bytes() for p in st.path(a).rglob("*") if p.is_file()}
    c = small(seed=7)
    real = runs._write_bytes

    def full(path, data):
        if path.name == runs.RECORD:
            raise OSError(err, os.strerror(err), str(path))
        return real(path, data)

    monkeypatch.setattr(runs, "_write_bytes", full)
    with pytest.raises(StoreError) as info:
        runs.run(c, store=st, progress=False)
    line = one_line(str(info.value))
    assert str(st.path(c)) in line and "CACHE" in line
    assert not (st.path(c) / "meta.json").exists()  # not stored half-written
    assert {p: p.read_bytes() for p in st.path(a).rglob("*") if p.is_file()} == before  # nothing lost
    monkeypatch.setattr(runs, "_write_bytes", real)
    assert runs.run(a, store=st).attrs["source"] == "store"


def test_a_lock_wait_names_the_holder_and_gives_up(tmp_path, capsys):
    st = RunStore(tmp_path)
    c = small()
    with st.lock(c):
        start = time.monotonic()
        with pytest.raises(StoreError) as info:
            with st.lock(c, timeout=1.0):
                pass
        assert time.monotonic() - start < 10
    line = one_line(str(info.value))
    assert f"pid {os.getpid()}" in line and "SHARPJAC_LOCK_TIMEOUT" in line
    assert f"pid {os.getpid()}" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["soon", "-1", "inf"])
def test_a_bad_lock_timeout_setting_is_refused(tmp_path, monkeypatch, value):
    monkeypatch.setenv("SHARPJAC_LOCK_TIMEOUT", value)
    with pytest.raises(StoreError, match="SHARPJAC_LOCK_TIMEOUT"):
        with RunStore(tmp_path).lock(small()):
            pass


@pytest.mark.parametrize(("umask", "mode"), [(0o002, 0o664), (0o022, 0o644), (0o077, 0o600)])
def test_store_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        runs.run(small(), store=tmp_path, progress=False)
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file() and ".locks" not in p.parts]
    assert files and {p.stat().st_mode & 0o777 for p in files} == {mode}


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to act as two users")
def test_two_users_of_one_group_share_a_store():
    """The README's recipe: a setgid folder of the group, umask 002. User A (this process, in the
    group) trains into it; user B (another uid, same group, not root) reads every stored file and adds
    to the store and its lock folder (B runs shell tools: this Python may not be readable by B)."""
    import tempfile

    top = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        top.chmod(0o755)
        shared = top / "shared"
        shared.mkdir()
        gid, uid_b = 61000, 61002
        os.chown(shared, 0, gid)
        os.chmod(shared, 0o2775)
        old = os.umask(0o002)
        try:
            runs.run(small(), store=shared, progress=False)
        finally:
            os.umask(old)
        files = [p for p in shared.rglob("*") if p.is_file()]
        assert files and all(p.stat().st_gid == gid for p in files)

        def as_b():
            os.setgroups([gid])
            os.setgid(gid)
            os.setuid(uid_b)

        key = config_key(small())
        script = (
            'set -e; for f in "$@"; do cat "$f" > /dev/null; done; '
            f"mkdir {shared}/newrun && touch {shared}/newrun/meta.json {shared}/.locks/{key}.lock.b"
        )
        done = subprocess.run(
            ["/bin/sh", "-c", script, "sh", *map(str, files)],
            preexec_fn=as_b,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        # and without the recipe (umask 077) user B could not read: the test can fail
        os.umask(0o077)
        try:
            runs.run(small(seed=3), store=shared, progress=False)
        finally:
            os.umask(old)
        private = RunStore(shared).path(small(seed=3)) / "meta.json"
        denied = subprocess.run(["/bin/cat", str(private)], preexec_fn=as_b, capture_output=True, timeout=60)
        assert denied.returncode != 0
    finally:
        shutil.rmtree(top, ignore_errors=True)


# ------------------------------------------------------------------------------------------------
# 5. Keys that follow the code (issue 18, item 3)
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def src_copy(tmp_path_factory):
    dest = tmp_path_factory.mktemp("src")
    shutil.copytree(SRC / "sharpjac", dest / "sharpjac", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _edit(src_copy, module: str, old: str, new: str) -> str:
    path = src_copy / "sharpjac" / module
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    try:
        return codekey.code_digest(codekey.RUN_ENTRY, root=src_copy)
    finally:
        path.write_text(text)


CODE_EDITS = {
    # name: (module, old, new, changes the key)
    "numerics-loss": (
        "losses.py",
        "per = ((outputs - t) ** 2).mean(dim=1)",
        "per = ((outputs - t) ** 2).sum(dim=1)",
        True,
    ),
    "numerics-measure": (
        "hooks.py",
        'row["curvature_norm"] = 2.0 / out.shape[1]',
        'row["curvature_norm"] = 1.0 / out.shape[1]',
        True,
    ),
    "numerics-curvature": ("curvature.py", "def ", "_NEW_CONSTANT = 2\n\n\ndef ", True),
    "comment": ("training.py", "import dataclasses\n", "import dataclasses  # a comment\n# another\n", False),
    "docstring": ("losses.py", "Two losses, both averaged", "Two losses (reworded), both averaged", False),
    "formatting": ("models.py", "\n\n", "\n\n\n", False),
}


@pytest.mark.parametrize("case", sorted(CODE_EDITS))
def test_the_code_digest_follows_numerics_not_comments(src_copy, case):
    module, old, new, changes = CODE_EDITS[case]
    base = codekey.code_digest(codekey.RUN_ENTRY, root=src_copy)
    assert base == codekey.code_digest(codekey.RUN_ENTRY, root=SRC)  # the copy is the same code
    assert (_edit(src_copy, module, old, new) != base) is changes


def test_the_code_digest_is_its_documented_formula_over_each_files_normalised_source():
    # the key of every stored run: recomputed by hand from the files (normalised_source parses each
    # one on its own), so that a faster reading of the modules can never change the stored keys
    import hashlib
    import sys

    closure = codekey.module_closure([codekey.RUN_ENTRY])
    h = hashlib.sha256(f"python {sys.version_info.major}.{sys.version_info.minor}\n".encode())
    for name in sorted(closure):
        path = SRC.joinpath(*name.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        source = codekey.normalised_source(path.read_text(encoding="utf-8"))
        assert closure[name] == source, name
        h.update(f"{name}\n{len(source)}\n".encode())
        h.update(source.encode())
    assert {"sharpjac.training", "sharpjac.curvature", "sharpjac.losses"} <= set(closure)
    assert codekey.code_digest(codekey.RUN_ENTRY, root=SRC) == h.hexdigest()


def test_a_study_key_follows_its_experiment_module(src_copy):
    path = src_copy / "sharpjac" / "experiments" / "t3_low_loss.py"
    text = path.read_text()
    own = codekey.code_digest("sharpjac.experiments.t3_low_loss", root=src_copy)
    every = codekey.code_digest(runs.ALL_EXPERIMENTS, root=src_copy)  # a compute of unknown module
    other = codekey.code_digest("sharpjac.experiments.t1_covering", root=src_copy)
    try:
        path.write_text(text + "\n_CHANGED = 1\n")
        assert codekey.code_digest("sharpjac.experiments.t3_low_loss", root=src_copy) != own
        assert codekey.code_digest(runs.ALL_EXPERIMENTS, root=src_copy) != every
        assert codekey.code_digest("sharpjac.experiments.t1_covering", root=src_copy) == other  # not its code
    finally:
        path.write_text(text)


def test_a_run_of_other_code_is_never_read_and_is_pruned(tmp_path, monkeypatch):
    st = RunStore(tmp_path)
    c = small()
    runs.run(c, store=st, progress=False)
    old_folder = st.path(c)
    monkeypatch.setattr(runs, "code_digest", lambda *a, **k: "0" * 64)  # "the code changed"
    assert st.path(c) != old_folder
    df = runs.run(c, store=st, progress=False)
    assert df.attrs["source"] == "trained"  # the old run was not served
    stale = st.stale()
    assert [p for p, _ in stale] == [old_folder] and "other code" in stale[0][1]
    assert cli.main(["store", "prune", "--cache", str(tmp_path)]) == 0
    assert not old_folder.exists() and (st.path(c) / "meta.json").exists()
    assert st.stale() == []


# ------------------------------------------------------------------------------------------------
# 6. Divergence for every loss
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loss", "k"),
    [("ce", 10), ("mse", 10)],
)
def test_constant_predictor_loss_against_a_direct_minimisation(loss, k):
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, k, (200,), generator=g)
    value = losses.constant_predictor_loss(loss, y, k)
    freq = torch.bincount(y, minlength=k).double() / len(y)
    if loss == "ce":  # the best constant logits are log-frequencies
        z = freq.log().expand(len(y), k)
        direct = float(torch.nn.functional.cross_entropy(z, y))
    else:  # the best constant output is the mean one-hot vector
        t = torch.nn.functional.one_hot(y, k).double()
        direct = float(((t - freq) ** 2).mean())
    assert value == pytest.approx(direct, rel=1e-12)


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_a_blow_up_is_diverged_for_every_loss(loss):
    c = small(loss=loss, lr=1000.0, max_steps=12, measure_every=1, divergence_factor=1e300)
    with pytest.warns(RuntimeWarning, match="diverged"):
        res = train(c)
    assert res.status == "diverged" and res.diverged and "constant predictor" in res.message


def test_a_run_that_ends_above_its_start_is_warned():
    c = small(loss="ce", lr=30.0, max_steps=12, measure_every=1, divergence_factor=1e300)
    c = c.replace(divergence_baseline_factor=1e300)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = train(c)
    final, first = res.frame["train_loss"].iloc[-1], res.frame["train_loss"].iloc[0]
    assert final > 2 * first  # the setting does blow up
    assert any("initial" in str(w.message) for w in caught) and "initial training loss" in res.message


# ------------------------------------------------------------------------------------------------
# 7. publish-notebooks and list
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "book"
    root.mkdir()
    (root / "_toc.yml").write_text("format: jb-book\nroot: index\n")
    (root / "_config.yml").write_text("repository:\n  url: https://user:s3cret@github.com/x/book.git/\n")
    git = ["git", "-C", str(root), "-c", "user.email=a@b", "-c", "user.name=a"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    return root


@pytest.mark.parametrize("branch", ["main", "HEAD", "a/b", "..x", "-x", "x.lock", "a b", "refs/heads/y"])
def test_publish_notebooks_refuses_branches_it_must_not_write(repo, branch):
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    with pytest.raises(ValueError) as info:
        publish.publish_notebooks(repo, branch=branch)
    assert "--branch" in one_line(str(info.value))
    after = subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True)
    assert after.stdout == ""
    assert subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout == head


def test_repository_url_credentials_never_reach_an_install_cell(repo):
    url = publish.repository_url(repo)
    assert url == "https://github.com/x/book.git" and "s3cret" not in publish.install_cell_source(url)


def test_publish_list_outside_the_repository_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert publish.main(["list"]) == 2
    assert "_toc.yml" in one_line(capsys.readouterr().err)


def test_publish_notebooks_warns_when_the_origin_is_not_a_web_url(repo, monkeypatch, capsys):
    (repo / "_config.yml").write_text("repository: {}\n")
    subprocess.run(["git", "-C", str(repo), "remote", "add", "origin", "/srv/git/book.git"], check=True)
    monkeypatch.chdir(repo)
    monkeypatch.setattr(publish.launch, "chapters", lambda root: [])  # where publish_notebooks reads it
    assert publish.main(["publish-notebooks"]) == 0
    assert "not a web URL" in capsys.readouterr().err


def test_downloads_carry_the_install_cell_in_force(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# T")]
    publish.add_install_cell(nb, None)
    site = tmp_path / "_sources" / "notebooks" / "executed"
    site.mkdir(parents=True)
    (site / "a.ipynb").write_text(nbformat.writes(nb))
    assert publish.refresh_downloads(tmp_path, "https://github.com/x/book")
    assert "git+https://github.com/x/book" in (site / "a.ipynb").read_text()


# ------------------------------------------------------------------------------------------------
# 8. Data verified in every form, and a Ray address that does not answer
# ------------------------------------------------------------------------------------------------


def _fake_folder(tmp_path) -> Path:
    from test_data import _fake_cifar

    from sharpjac.data import cifar

    path, _ = _fake_cifar(tmp_path, "cifar10")
    import hashlib

    good = hashlib.md5(path.read_bytes()).hexdigest()
    return path, good, cifar


def test_an_extracted_folder_that_does_not_match_is_refused(tmp_path):
    from sharpjac import data

    path, _, _ = _fake_folder(tmp_path)
    import tarfile

    with tarfile.open(path) as tar:
        tar.extractall(tmp_path, filter="data")
    path.unlink()  # only the (unverifiable) folder is left
    with pytest.raises(ValueError) as info:
        data.load("cifar10", root=tmp_path)
    line = one_line(str(info.value))
    assert "published checksums" in line and "data_batch_1" in line


def test_a_folder_that_does_not_match_falls_back_to_a_verified_archive(tmp_path, monkeypatch):
    from sharpjac import data

    path, good, cifar = _fake_folder(tmp_path)
    monkeypatch.setitem(cifar._CIFAR_MD5, path.name, good)
    first = data.load("cifar10", root=tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(b"tampered")
    cifar._cifar_raw.cache_clear() if hasattr(cifar._cifar_raw, "cache_clear") else None
    again = data.load("cifar10", root=tmp_path)
    torch.testing.assert_close(first.x_train, again.x_train, rtol=0, atol=0)
    assert (tmp_path / "cifar-10-batches-py.mismatch-1" / "data_batch_2").read_bytes() == b"tampered"  # kept


def test_a_ray_address_that_does_not_answer_fails_fast_in_one_line():
    from sharpjac.executors import _check_answers

    start = time.monotonic()
    with pytest.raises(ConnectionError) as info:
        _check_answers("127.0.0.1:1", timeout=5)
    assert time.monotonic() - start < 60 and "127.0.0.1:1" in one_line(str(info.value))


@pytest.mark.parametrize("address", ["nohost", "host:port", "host:99999"])
def test_a_malformed_ray_address_is_refused(address):
    from sharpjac.executors import _check_answers

    with pytest.raises(ValueError, match="HOST:PORT"):
        _check_answers(address)


def test_meta_records_the_data_digest(stored):
    root, a, _ = stored
    meta = json.loads((RunStore(root).path(a) / "meta.json").read_text())
    assert len(meta["data_sha256"]) == 64 and meta["code_digest"] == codekey.code_digest()
    assert meta["data_sha256"] == training.data_digest(a)
    assert np.isfinite(runs.run(a, store=root)["train_loss"]).all()


@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_the_served_data_digest_is_the_trained_one(kind, monkeypatch):
    # computed from the loader, not from a training run's tensors: the two routes must agree
    monkeypatch.setattr(training, "_DATA_DIGESTS", {})
    extra = {}
    if kind == "regression":
        extra = {
            "dataset": "manifold",
            "dataset_options": {"d": 1, "n": 4, "n_train": 40, "n_test": 10, "task": "regression", "num_outputs": 2},
            "loss": "mse",
        }
    c = small(**extra, max_steps=1)
    digest = training.data_digest(c)
    assert len(digest) == 64 and train(c).frame.attrs["data_sha256"] == digest


def _resign_meta(folder: Path, **changes) -> None:
    meta = json.loads((folder / "meta.json").read_text())
    meta.pop(runs.META_CHECKSUM)
    meta.update(changes)
    runs._write_verified_json(folder / "meta.json", meta)


def test_a_stored_run_whose_recorded_data_digest_differs_is_not_served(stored, tmp_path):
    root = _copy_store(stored, tmp_path)
    _, a, _ = stored
    st = RunStore(root)
    _resign_meta(st.path(a), data_sha256="0" * 64)  # a valid meta, but of a run on other data
    with pytest.raises(StoreError) as info:
        runs.run(a, store=st, progress=False)
    message = one_line(str(info.value))
    assert "run on other data" in message and str(st.path(a) / "meta.json") in message and "force=True" in message
    assert (st.path(a) / "meta.json").exists()  # evidence kept
    assert len(runs.run(a, store=st, force=True, progress=False)) > 0  # the remedy works


@pytest.mark.parametrize("serve", ["record", "network"])
def test_a_stored_run_is_not_served_when_the_data_changed_under_it(stored, tmp_path, monkeypatch, serve):
    root = _copy_store(stored, tmp_path)
    _, a, _ = stored
    real = training._loaded_data

    def other_data(config):
        ds = real(config)
        return dataclasses.replace(ds, x_train=ds.x_train + 1e-6)  # the data set a run would now see

    monkeypatch.setattr(training, "_loaded_data", other_data)
    monkeypatch.setattr(training, "_DATA_DIGESTS", {})
    st = RunStore(root)
    with pytest.raises(StoreError, match="run on other data"):
        runs.run(a, store=st, progress=False) if serve == "record" else st.load_model(a)


def test_the_data_digest_is_computed_once_per_data_set(stored, monkeypatch):
    root, a, b = stored
    calls = []
    real = training._loaded_data
    monkeypatch.setattr(training, "_loaded_data", lambda c: calls.append(c) or real(c))
    monkeypatch.setattr(training, "_DATA_DIGESTS", {})
    for c in (a, b, a, b):  # two runs (seeds) of one data set, each served twice
        runs.run(c, store=root, progress=False)
        RunStore(root).load_state(c)
    assert len(calls) == 1


@pytest.mark.parametrize(("sharpness_subset", "jacobian_subset"), [(1000, 7), (None, 0), (12, 500)])
def test_measurement_subsets_record_the_points_they_used(tmp_path, sharpness_subset, jacobian_subset):
    # "at most k points": a subset larger than the 40 training points uses all of them, and says so
    c = small(sharpness_subset=sharpness_subset, jacobian_subset=jacobian_subset, max_steps=2)
    expect = {
        "sharpness_points": 40 if sharpness_subset is None else min(sharpness_subset, 40),
        "jacobian_points": min(jacobian_subset, 40),
    }
    fresh = runs.run(c, store=False, progress=False)
    served = runs.run(c, store=tmp_path, progress=False)
    meta = json.loads((RunStore(tmp_path).path(c) / "meta.json").read_text())
    for where in (fresh.attrs, served.attrs, meta):
        assert {k: where[k] for k in expect} == expect
    if sharpness_subset == 1000:  # identical to measuring on all points, as the record says
        everything = runs.run(c.replace(sharpness_subset=None), store=False, progress=False)
        pd.testing.assert_series_equal(fresh["sharpness"], everything["sharpness"], check_exact=True)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (MemoryError("cannot allocate"), "out of memory"),
        (type("OutOfMemoryError", (RuntimeError,), {})("CUDA out of memory"), "out of memory"),
        (OSError(errno.ENOSPC, "No space left on device", "/x/record.parquet"), "full"),
        (OSError(errno.EROFS, "Read-only file system", "/x/meta.json"), "/x/meta.json"),
    ],
    ids=["memory", "cuda-oom", "enospc", "erofs"],
)
def test_cli_faults_during_a_run_are_one_line(tmp_path, monkeypatch, capsys, fault, expected):
    from sharpjac import experiments

    exp = experiments.get("progressive_sharpening")

    def boom(*a, **k):
        raise fault

    monkeypatch.setattr(type(exp), "run", boom)
    code = cli.main(["run", "progressive_sharpening", "--preset", "smoke", "--cache", str(tmp_path)])
    assert code == 2 and expected in one_line(capsys.readouterr().err)


def test_publish_notebooks_refuses_a_branch_checked_out_in_another_worktree(repo, tmp_path):
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "-q", "-b", "other", str(tmp_path / "wt2")], check=True)
    with pytest.raises(ValueError, match="checked out"):
        publish.publish_notebooks(repo, branch="other")
    status = subprocess.run(["git", "-C", str(tmp_path / "wt2"), "status", "--porcelain"], capture_output=True)
    assert status.stdout == b""


def test_make_args_presets_agree_with_publish():
    import importlib.util

    spec = importlib.util.spec_from_file_location("_make_args", SRC / "sharpjac" / "_make_args.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.PRESETS == publish.PRESETS
    with pytest.raises(mod.MakeArgError, match="RESET"):
        mod.arguments("notebooks", {"SHARPJAC_MAKE_RESET": "maybe"})


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize(("target", "var"), [("rehearse", "NB"), ("new", "NAME")])
@pytest.mark.parametrize("kind", sorted(INJECTIONS))
def test_rehearse_and_new_take_their_variable_as_data(tmp_path, target, var, kind):
    """`make rehearse NB=…` and `make new NAME=…` pass the value as one argument, never to a shell:
    an injected command does not run and the value is refused as an unknown chapter or a bad name."""
    marker = tmp_path / "pwned"
    stamp = tmp_path / "stamp"
    stamp.touch()
    done = subprocess.run(
        ["make", "-s", "-C", str(ROOT), target, f"{var}={INJECTIONS[kind].format(m=marker)}"]
        + [f"PY={sys.executable}", f"STAMP={stamp}", f"VENV={tmp_path / 'venv'}"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        timeout=120,
    )
    assert not marker.exists(), "the injected command ran"
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "unknown chapter" in done.stderr or "is invalid" in done.stderr, done.stderr
