"""Measure the CPU cost of the paper preset's models and print the table of ``sharpjac.costs``.

ResNet-18 (width 1) at the paper preset's batch 128 and the 200-200 tanh MLP (the progressive
sharpening chapters' paper model) at batch 1000, on random inputs of CIFAR-10's shape, one torch
thread (the runs' default), a few dozen SGD steps each. Prints per-sample seconds and FLOP/s, the
cost of one paper-preset run of each chapter, and the JSON to paste into ``MEASURED`` in
``src/sharpjac/costs.py`` (with today's date and this machine).

    python benchmarks/costs.py [--steps 24]
"""

from __future__ import annotations

import argparse
import json
import time

from sharpjac import costs

MODELS = {
    "resnet18": {"model": "resnet18", "model_options": {"width": 1.0}, "batch_size": 128},
    "mlp": {"model": "mlp", "model_options": {"widths": [200, 200], "activation": "tanh"}, "batch_size": 1000},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=24, help="timed SGD steps per model (ResNet-18; the MLP twice)")
    args = parser.parse_args()
    table = {}
    for name, spec in MODELS.items():
        steps = args.steps if name == "resnet18" else 2 * args.steps
        start = time.perf_counter()
        m = costs.measure(spec["model"], spec["model_options"], batch_size=spec["batch_size"], steps=steps)
        table[name] = m
        print(
            f"{name:>9}: step {m['step'] * m['batch_size'] * 1e3:9.1f} ms at batch {m['batch_size']} "
            f"({m['step'] * 1e3:.3f} ms/sample), forward {m['forward'] * 1e3:.3f} ms/sample, "
            f"HVP {m['hvp'] * 1e3:.3f} ms/sample, Jacobian {m['jacobian'] * 1e3:.2f} ms/sample; "
            f"{m['step_flops'] / m['step'] / 1e9:.1f} GFLOP/s on the step ({time.perf_counter() - start:.0f} s)"
        )
    out = {"date": time.strftime("%Y-%m-%d"), "machine": costs.machine() + ", 1 torch thread", "models": table}
    print(json.dumps(out, indent=4))


if __name__ == "__main__":
    main()
