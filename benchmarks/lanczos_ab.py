"""Lanczos's own work before and after a change: an older commit's ``sharpjac.curvature`` beside
the working tree's, interleaved in one process (prints a table, asserts nothing).

The top eigenvalue to 1e-4 of the Hessian of the MLP 3072-200-200-10 of ``benchmarks/curvature.py``
(P = 656,810), at each N, by ``lanczos(tol=1e-4)`` stopped on the error bound and on the residual,
with both versions of the solver and the same operator class (the working tree's). Columns, in
gradients of the same loss (CPU time, ``time.process_time``, one thread, best of K with every
contender interleaved, so a shared machine's load hits all alike): the whole solve, the solver's
own work per product (solve minus its products' time, per product) and one product; the error is
against a float64 Lanczos reference.

Run:  python benchmarks/lanczos_ab.py [--before d5879e9] [--n 250,1000] [--reps 9]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from curvature import _TimedHessian, cpu, num_params, problem_mlp, reference_top  # noqa: E402 - after the path

import sharpjac.curvature as after  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def module_at(rev: str):
    """``sharpjac.curvature`` as of git revision ``rev``, imported under another name."""
    source = subprocess.run(
        ["git", "show", f"{rev}:src/sharpjac/curvature.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    source = source.replace("from . import validation as V", "from sharpjac import validation as V")
    path = Path(tempfile.mkdtemp(prefix="lanczos-ab-")) / "curvature_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("curvature_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default="d5879e9", help="git revision of the 'before' solver (default d5879e9)")
    ap.add_argument("--n", default="250,1000", help="comma-separated data set sizes (default 250,1000)")
    ap.add_argument("--reps", type=int, default=9, help="best-of repetitions (default 9)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    threadpool_limits(limits=1)  # scipy's BLAS too (the tridiagonal solves)
    before = module_at(args.before)
    print(f"lanczos before ({args.before}) and after (working tree), CPU time, 1 thread, best of {args.reps}")
    print("| N | solver | stop | products | gradients | solver / product | product | rel. error |")
    print("|---|---|---|---|---|---|---|---|")
    for n in (int(x) for x in args.n.split(",")):
        _, model, loss_fn, x, y = problem_mlp(n, 0)
        params = [p for p in model.parameters() if p.requires_grad]
        ref, _ = reference_top(model, loss_fn, x, y)
        v0 = torch.randn(num_params(model), generator=torch.Generator().manual_seed(7))

        def grad(model=model, loss_fn=loss_fn, x=x, y=y, params=params):
            return torch.autograd.grad(loss_fn(model(x), y), params)

        def solve(module, stop, model=model, loss_fn=loss_fn, x=x, y=y, v0=v0):
            op = _TimedHessian(model, loss_fn, (x, y))
            t, r = cpu(lambda: module.lanczos(op, 1, tol=1e-4, v0=v0, stop=stop))
            return t, op.product_seconds, r

        cases = [
            (label, module, stop)
            for label, module in (("before", before), ("after", after))
            for stop in ("eigenvalue", "residual")
        ]
        for _, module, stop in cases:  # warm-up
            solve(module, stop)
        runs = {case[::2]: [] for case in cases}
        grads = []
        for _ in range(args.reps):
            grads.append(cpu(grad)[0])
            for label, module, stop in cases:
                runs[(label, stop)].append(solve(module, stop))
        g = min(grads)
        for (label, stop), results in runs.items():
            t, tp, r = min(results, key=lambda run: run[0])
            m = r.num_matvecs
            error = abs(float(r.eigenvalues[0]) - ref) / abs(ref)
            print(
                f"| {n} | {label} | {stop} | {m} | {t / g:.1f} | {(t - tp) / m / g:.3f} | {tp / m / g:.2f} | "
                f"{error:.1e} |"
            )


if __name__ == "__main__":
    main()
