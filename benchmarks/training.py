"""Training throughput with and without the measurement schedule, and the quick preset's run time.

For one grid point per loss of the ``progressive_sharpening`` quick preset, times the same run
twice in this process: (a) training only (measurements switched off except the mandatory first
and last rows, no sharpness, no Jacobians), (b) with the preset's full schedule (sharpness by
warm-started Lanczos, Jacobian statistics, mediating factors on the preset's measurement steps).
The tracking overhead is (b - a) / a (target: at most 1x), and one measurement costs
(s / measurement) / (s / training step) training steps (target: at most 20x; the measurement also
reports its mean number of Hessian-vector products, target at most 8 in steady state). Then runs
the whole quick preset into a fresh temporary store and reports its wall time (target: under 5 minutes on a 2-core CPU).

Usage: python benchmarks/training.py [--threads N] [--skip-full] [--repeats R]
Prints tables of ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections import Counter

import torch

from sharpjac import experiments
from sharpjac.runs import RunStore
from sharpjac.training import train


def _time(cfg) -> tuple[float, float, int, float, dict]:
    t = time.perf_counter()
    res = train(cfg, progress=False)
    mv = res.frame["sharpness_matvecs"] if "sharpness_matvecs" in res.frame else None
    steady = float(mv.iloc[1:].mean()) if mv is not None and len(mv) > 1 else float("nan")
    # histogram of the Hessian-vector products per warm-started measurement (the first, cold, left out)
    hist = dict(sorted(Counter(int(v) for v in mv.iloc[1:]).items())) if mv is not None else {}
    return time.perf_counter() - t, res.measure_time_s, len(res.frame), steady, hist


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--skip-full", action="store_true", help="skip the full quick-preset run")
    ap.add_argument("--repeats", type=int, default=1, help="repeat each timed run, keep the fastest")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("SHARPJAC_PROGRESS", "0")
    exp = experiments.get("progressive_sharpening")
    cfg = exp.config_cls.preset("quick")
    print(
        f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(
        f"# quick preset: n_train={cfg.n_train}, widths={cfg.widths}, time_mse={cfg.time_mse}, "
        f"time_ce={cfg.time_ce}, sharpness_subset={cfg.sharpness_subset}, "
        f"jacobian_subset={cfg.jacobian_subset}"
    )
    grid = cfg.grid()
    picks = {}
    for labels, tc in grid:  # middle learning rate of each loss
        picks.setdefault(tc.loss, []).append((labels, tc))
    rows = []
    hists = []
    for loss, items in picks.items():
        labels, tc = items[len(items) // 2]
        bare = tc.replace(
            measure_every=None,
            measure_num=None,
            sharpness_subset=0,
            jacobian_subset=0,
            eval_test=False,
            checkpoint_every=None,
        )
        tracked = tc.replace(checkpoint_every=None)
        _time(bare.replace(max_steps=5))  # warm-up
        tb = min(_time(bare)[0] for _ in range(args.repeats))
        tt, tm, nrows, mv, hist = min((_time(tracked) for _ in range(args.repeats)), key=lambda r: r[1])
        rows.append((loss, labels["lr"], tc.max_steps, tb, tt, tm, nrows, mv))
        hists.append((loss, hist))
    print()
    print(
        "| loss | lr | steps | train only (s) | with tracking (s) | steps/s bare | steps/s tracked "
        "| measurements | s / measurement | measurement / step | Hv per measurement | overhead (tracked-bare)/bare |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for loss, lr, steps, tb, tt, tm, n, mv in rows:
        print(
            f"| {loss} | {lr:g} | {steps} | {tb:.2f} | {tt:.2f} | {steps / tb:.1f} | {steps / tt:.1f} | {n} "
            f"| {tm / n:.4f} | {(tm / n) / (tb / steps):.1f}x | {mv:.1f} | {(tt - tb) / tb:.2f}x |"
        )
    print()
    print("| loss | Hv products per warm-started measurement: count of measurements |")
    print("|---|---|")
    for loss, hist in hists:
        print(f"| {loss} | " + ", ".join(f"{k}: {v}" for k, v in hist.items()) + " |")
    if args.skip_full:
        return
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        df = exp.run(cfg, store=RunStore(d), progress=False)
        full = time.perf_counter() - t
        t = time.perf_counter()
        exp.run(cfg, store=RunStore(d), progress=False)
        cached = time.perf_counter() - t
    print()
    print("| quick preset | runs | rows | wall time (s) | reload from store (s) |")
    print("|---|---|---|---|---|")
    print(f"| progressive_sharpening | {df['run_key'].nunique()} | {len(df)} | {full:.1f} | {cached:.2f} |")


if __name__ == "__main__":
    main()
