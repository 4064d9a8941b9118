"""Cost of per-sample input-output Jacobian norms, as a multiple of one forward pass.

Prints, for 1000 CIFAR-sized inputs (3x32x32, float32) and two models (an MLP 3072-200-200-10
tanh and a small CNN), the wall time of each way of getting the per-sample norms divided by the
time of one forward pass of the same 1000 inputs (best of a few repeats). No assertions.

    .venv/bin/python benchmarks/jacobians.py [--n 1000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from sharpjac import jacobians as jj


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(3072, 200), nn.Tanh(), nn.Linear(200, 200), nn.Tanh(), nn.Linear(200, 10)
    )


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 8 * 8, 10),
    )


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    x = torch.randn(args.n, 3, 32, 32)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, N = {args.n}, float32\n")
    header = f"{'model':<6} {'quantity':<44} {'ms':>9} {'x forward':>10}"
    print(header)
    print("-" * len(header))
    for name, build in (("mlp", mlp), ("cnn", cnn)):
        model = build().eval()

        def forward():
            with torch.no_grad():
                model(x)

        def full_jacobian_then_norms():
            J = jj.input_jacobians(model, x)
            torch.linalg.matrix_norm(J, ord=2), torch.linalg.matrix_norm(J)

        rows = [
            ("forward pass", forward),
            ("jacobian_norms spectral", lambda: jj.jacobian_norms(model, x, "spectral")),
            ("jacobian_norms frobenius", lambda: jj.jacobian_norms(model, x, "frobenius")),
            ("jacobian_stats (all four, one evaluation)", lambda: jj.jacobian_stats(model, x)),
            ("input_jacobians + svd/frobenius of [N,k,n0]", full_jacobian_then_norms),
            (
                "jacobian_norms spectral, method='lanczos'",
                lambda: jj.jacobian_norms(model, x, "spectral", method="lanczos"),
            ),
        ]
        base = None
        for label, fn in rows:
            t = best_time(fn, args.repeats if "lanczos" not in label else 1)
            base = base or t
            print(f"{name:<6} {label:<44} {1e3 * t:9.1f} {t / base:10.1f}")
        print()


if __name__ == "__main__":
    main()
