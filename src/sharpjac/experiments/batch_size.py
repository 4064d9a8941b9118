r"""Batch size at fixed epochs and at fixed updates (paper Fig. 4).

The ``batch_size`` experiment of the book chapter *Batch size (Fig. 4)*.

The baseline, its checks and the runs are shared with the other flat-minima chapters
(:mod:`._grid`); this module states only the grid axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ._grid import BUDGETS, GeneralisationConfig, grid_presets, is_positive, register_grid

__all__ = ["BatchSizeConfig", "NAME"]

NAME = "batch_size"


@dataclass(frozen=True)
class BatchSizeConfig(GeneralisationConfig):
    """Batch size at a fixed number of epochs and at a fixed number of updates (paper Fig. 4).

    Attributes:
        batch_sizes: mini-batch sizes (the baseline's is where both budgets meet).
        lrs: step sizes (the paper's exception is the large-batch, high-rate corner).
        budgets: ``"epochs"`` and/or ``"updates"`` (see :meth:`GeneralisationConfig.train_config`).
    """

    batch_sizes: tuple[int, ...] = (50, 100, 500)
    lrs: tuple[float, ...] = (0.2, 0.8)
    budgets: tuple[str, ...] = BUDGETS

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = grid_presets(
        {
            "smoke": dict(batch_sizes=(50, 100), lrs=(0.2, 0.8)),
            "paper": dict(batch_sizes=(32, 128, 512), lrs=(0.05, 0.2)),
        }
    )

    def _check_axes(self) -> None:
        self._need_values("batch_sizes", lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "ints > 0")
        self._need_values("lrs", is_positive, "floats > 0")
        self._need_values("budgets", lambda v: v in BUDGETS, f"values in {BUDGETS}")

    def grid(self):
        return [
            (
                {"budget": b, "batch_size": int(bs), "lr": float(lr), "seed": s},
                self.train_config(s, budget=b, batch_size=bs, lr=lr),
            )
            for b in self.budgets
            for lr in self.lrs
            for bs in self.batch_sizes
            for s in self.seeds
        ]


EXPERIMENT = register_grid(
    NAME,
    BatchSizeConfig,
    "batch size at fixed epochs and at fixed updates, with local variation",
    chapter="Batch size (Fig. 4)",
)
