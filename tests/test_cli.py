"""CLI: list/info/run/help, errors on stderr with exit code 2 (smoke config in a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from sharpjac import experiments
from sharpjac.cli import main


def test_list_one_line_per_experiment_name_first(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == experiments.names()
    assert all(len(ln.split(maxsplit=1)) == 2 for ln in lines)


def test_info_shows_fields_and_presets(capsys):
    assert main(["info", "early_training"]) == 0
    out = capsys.readouterr().out
    assert "smoothings" in out and "smoke:" in out and "paper:" in out


def test_help_is_useful(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "list" in out and "info" in out and "run" in out and "SHARPJAC_CACHE" in out
    assert main(["run", "--help"]) == 0
    assert "--preset" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, pattern",
    [
        (["info", "nope"], "unknown experiment 'nope'"),
        (["run", "progressive_sharpening", "--preset", "huge"], "preset='huge'; accepted"),
        (["run", "progressive_sharpening", "--preset", "smoke", "--set", "lrs_mse=-0.1"], "lrs_mse"),
        (["run", "progressive_sharpening", "--preset", "smoke", "--set", "nokey"], "key=value"),
        (["frobnicate"], "invalid choice"),
        # a width of 1.5 would be truncated to 1 while the record says 1.5
        (["run", "progressive_sharpening", "--preset", "smoke", "--set", "widths=[1.5]"], "item 1.5 of [1.5] is not"),
        (["run", "progressive_sharpening", "--preset", "smoke", "--threads", "0"], "threads=0 is invalid"),
        (["run", "progressive_sharpening", "--preset", "smoke", "--seed", "4294967296"], "[0, 2**32)"),
        (
            ["run", "weight_decay", "--preset", "smoke", "--set", "batch_size=100000"],
            "batch_size=100000 exceeds the 200 training samples",
        ),
    ],
)
def test_errors_go_to_stderr_with_exit_code_2(argv, pattern, capsys, tmp_path, monkeypatch):
    from sharpjac import runs

    monkeypatch.setattr(runs, "train", lambda *a, **k: pytest.fail("an invalid input must stop before training"))
    assert main([*argv, "--cache", str(tmp_path)] if argv[0] == "run" and "--preset" in argv else argv) == 2
    cap = capsys.readouterr()
    assert pattern in cap.err and cap.out == ""
    if argv[0] != "frobnicate":  # argparse's own usage message is several lines
        assert len(cap.err.strip().splitlines()) == 1


def test_a_device_that_is_not_there_is_one_line(capsys, tmp_path):
    import torch

    if torch.cuda.is_available():  # the error needs a machine without CUDA; with one, cuda:99 is missing
        argv, pattern = ["--device", "cuda:99"], "device='cuda:99' is not available"
    else:
        argv, pattern = ["--device", "cuda"], "device='cuda' is not available on this machine"
    assert main(["run", "progressive_sharpening", "--preset", "smoke", "--cache", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert pattern in err and "available: cpu" in err and len(err.strip().splitlines()) == 1


def test_run_smoke_in_a_subprocess(tmp_path):
    env = {**os.environ, "SHARPJAC_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1", "SHARPJAC_PROGRESS": "0"}
    out_file = tmp_path / "table.csv"
    cmd = [
        sys.executable,
        "-m",
        "sharpjac",
        "run",
        "progressive_sharpening",
        "--preset",
        "smoke",
        "--seed",
        "0",
        "--set",
        "losses=mse",
        "--set",
        "time_mse=1.2",  # ceil(1.2 / 0.2) = 6 steps
        "--threads",
        "1",
        "--output",
        str(out_file),
    ]
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert str(out_file) in proc.stdout and str(tmp_path / "cache") in proc.stdout
    df = pd.read_csv(out_file)
    assert set(df["loss"]) == {"mse"} and df["step"].max() == 6
    runs_made = [p for p in (tmp_path / "cache").iterdir() if len(p.name) == 64]
    assert len(runs_made) == 1
    bad = subprocess.run(
        [sys.executable, "-m", "sharpjac", "info", "nope"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "unknown experiment" in bad.stderr and bad.stdout == ""


SMOKE = [
    "run",
    "progressive_sharpening",
    "--preset",
    "smoke",
    "--seed",
    "0",
    "--set",
    "losses=mse",
    "--set",
    "time_mse=0.4",  # ceil(0.4 / 0.2) = 2 steps
    "--no-progress",
]


def _no_training(monkeypatch):
    from sharpjac import runs

    monkeypatch.setattr(runs, "train", lambda *a, **k: pytest.fail("training started before the check"))


def _one_line_error(cap) -> str:
    assert cap.out == "" and "Traceback" not in cap.err
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1, cap.err
    return lines[0]


def test_cache_that_is_a_file_is_refused_before_training(tmp_path, monkeypatch, capsys):
    _no_training(monkeypatch)
    f = tmp_path / "cachefile"
    f.write_text("not a folder")
    assert main([*SMOKE, "--cache", str(f)]) == 2
    line = _one_line_error(capsys.readouterr())
    assert str(f) in line and "is a file, not a folder" in line and "--cache" in line
    assert f.read_text() == "not a folder"


@pytest.mark.parametrize("where", ["missing folder", "a folder"])
def test_unwritable_output_is_refused_before_training(tmp_path, monkeypatch, capsys, where):
    _no_training(monkeypatch)
    out = tmp_path / "nonexistent" / "dir" / "x.parquet" if where == "missing folder" else tmp_path
    assert main([*SMOKE, "--cache", str(tmp_path / "cache"), "--output", str(out)]) == 2
    line = _one_line_error(capsys.readouterr())
    assert f"--output={str(out)!r}" in line
    assert ("does not exist" in line) if where == "missing folder" else ("is a folder" in line)
    assert not [p for p in (tmp_path / "cache").iterdir() if len(p.name) == 64], "no run may have started"


def test_damaged_store_is_one_line_and_a_read_only_store_still_serves(tmp_path, monkeypatch, capsys):
    import tempfile

    cache = tmp_path / "cache"
    assert main([*SMOKE, "--cache", str(cache), "--output", str(tmp_path / "a.csv")]) == 0
    capsys.readouterr()
    # read-only store (simulated: no temp file can be created in it), table written elsewhere: served
    real = tempfile.mkstemp

    def mkstemp(*a, dir=None, **k):
        if dir is not None and str(cache) in str(dir):
            raise PermissionError(13, "Read-only file system", str(dir))
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    _no_training(monkeypatch)
    assert main([*SMOKE, "--cache", str(cache), "--output", str(tmp_path / "b.csv")]) == 0
    capsys.readouterr()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv"))
    # without --output the table would go into the read-only store: refused up front
    assert main([*SMOKE, "--cache", str(cache)]) == 2
    assert "not writable" in _one_line_error(capsys.readouterr())
    # a damaged stored run: one line naming the file and the remedy
    monkeypatch.setattr(tempfile, "mkstemp", real)
    (rec,) = [p / "record.parquet" for p in cache.iterdir() if len(p.name) == 64]
    rec.write_bytes(rec.read_bytes()[:-1] + bytes([rec.read_bytes()[-1] ^ 1]))
    assert main([*SMOKE, "--cache", str(cache), "--output", str(tmp_path / "c.csv")]) == 2
    line = _one_line_error(capsys.readouterr())
    assert str(rec) in line and "--force" in line


# -- executors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, pattern",
    [
        (["--address", "auto"], "--address='auto' is invalid with --executor serial; accepted: --executor ray"),
        (["--executor", "dask"], "invalid choice: 'dask'"),
    ],
)
def test_executor_errors_stop_before_training(extra, pattern, capsys, tmp_path, monkeypatch):
    from sharpjac import runs

    monkeypatch.setattr(runs, "train", lambda *a, **k: pytest.fail("an invalid input must stop before training"))
    argv = ["run", "progressive_sharpening", "--preset", "smoke", "--cache", str(tmp_path), *extra]
    assert main(argv) == 2
    cap = capsys.readouterr()
    assert pattern in cap.err and cap.out == ""


def test_run_help_names_the_executors(capsys):
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--executor {serial,ray}" in out and "--address" in out


def test_missing_runs_with_training_switched_off_is_one_line(capsys, tmp_path, monkeypatch):
    from sharpjac import runs

    monkeypatch.setattr(runs, "train", lambda *a, **k: pytest.fail("SHARPJAC_TRAINING=never must not train"))
    monkeypatch.setenv("SHARPJAC_TRAINING", "never")
    assert main(["run", "progressive_sharpening", "--preset", "smoke", "--cache", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "run(s) of experiment 'progressive_sharpening' are not in the store" in err
    assert len(err.strip().splitlines()) == 1
