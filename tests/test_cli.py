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
    assert main(["info", "label_smoothing_early"]) == 0
    out = capsys.readouterr().out
    assert "smoothings" in out and "smoke:" in out and "paper:" in out


def test_help_is_useful(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "list" in out and "info" in out and "run" in out and "SHARPJAC_CACHE" in out
    assert main(["run", "--help"]) == 0
    assert "--preset" in capsys.readouterr().out


@pytest.mark.parametrize("argv, pattern", [
    (["info", "nope"], "unknown experiment 'nope'"),
    (["run", "progressive_sharpening", "--preset", "huge"], "unknown preset='huge'"),
    (["run", "progressive_sharpening", "--preset", "smoke", "--set", "lrs_mse=-0.1"], "lrs_mse"),
    (["run", "progressive_sharpening", "--preset", "smoke", "--set", "nokey"], "key=value"),
    (["frobnicate"], "invalid choice"),
])
def test_errors_go_to_stderr_with_exit_code_2(argv, pattern, capsys):
    assert main(argv) == 2
    cap = capsys.readouterr()
    assert pattern in cap.err and cap.out == ""


def test_run_smoke_in_a_subprocess(tmp_path):
    env = {**os.environ, "SHARPJAC_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1",
           "SHARPJAC_PROGRESS": "0"}
    out_file = tmp_path / "table.csv"
    cmd = [sys.executable, "-m", "sharpjac", "run", "progressive_sharpening", "--preset", "smoke", "--seed", "0",
           "--set", "losses=mse", "--set", "max_steps=6", "--threads", "1", "--output", str(out_file)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert str(out_file) in proc.stdout and str(tmp_path / "cache") in proc.stdout
    df = pd.read_csv(out_file)
    assert set(df["loss"]) == {"mse"} and df["step"].max() == 6
    runs_made = [p for p in (tmp_path / "cache").iterdir() if len(p.name) == 64]
    assert len(runs_made) == 1
    bad = subprocess.run([sys.executable, "-m", "sharpjac", "info", "nope"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "unknown experiment" in bad.stderr and bad.stdout == ""
