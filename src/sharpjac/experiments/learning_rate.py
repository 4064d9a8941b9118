r"""Several step sizes, measured over training (paper Fig. 5, ICLR version).

The ``learning_rate`` experiment of the book chapter *Learning rate over training (Fig. 5, ICLR)*.

The baseline, its checks and the runs are shared with the other flat-minima chapters
(:mod:`._grid`); this module states only the grid axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ._grid import GeneralisationConfig, grid_presets, is_positive, register_grid

__all__ = ["LearningRateConfig", "NAME"]

NAME = "learning_rate"


@dataclass(frozen=True)
class LearningRateConfig(GeneralisationConfig):
    """Several step sizes, measured over training (paper Fig. 5, ICLR version).

    Attributes:
        lrs: SGD step sizes.
    """

    lrs: tuple[float, ...] = (0.05, 0.2, 0.8)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = grid_presets(
        {
            "smoke": dict(lrs=(0.2, 0.8)),
            "paper": dict(lrs=(0.01, 0.05, 0.2)),
        }
    )

    def _check_axes(self) -> None:
        self._need_values("lrs", is_positive, "floats > 0")

    def grid(self):
        return [({"lr": float(lr), "seed": s}, self.train_config(s, lr=lr)) for lr in self.lrs for s in self.seeds]


EXPERIMENT = register_grid(
    NAME,
    LearningRateConfig,
    "several step sizes: gap, sharpness and Jacobian over training",
    chapter="Learning rate over training (Fig. 5, ICLR)",
)
