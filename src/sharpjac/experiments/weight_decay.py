r"""Weight decay across learning rates (paper Fig. 2).

The ``weight_decay`` experiment of the book chapter *Weight decay across learning rates (Fig. 2)*.

The baseline, its checks and the runs are shared with the other flat-minima chapters
(:mod:`._grid`); this module states only the grid axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ._grid import GeneralisationConfig, grid_presets, is_non_negative, is_positive, register_grid

__all__ = ["WeightDecayConfig", "NAME"]

NAME = "weight_decay"


@dataclass(frozen=True)
class WeightDecayConfig(GeneralisationConfig):
    """Weight decay x learning rate (paper Fig. 2): final gap, sharpness and Jacobian.

    Attributes:
        weight_decays: L2 coefficients (>= 0; 0 is the baseline's).
        lrs: SGD step sizes.
    """

    weight_decays: tuple[float, ...] = (0.0, 0.001, 0.003)
    lrs: tuple[float, ...] = (0.05, 0.2, 0.8)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = grid_presets(
        {
            "smoke": dict(weight_decays=(0.0, 0.01), lrs=(0.2, 0.8)),
            "paper": dict(weight_decays=(0.0, 5e-4, 2e-3), lrs=(0.01, 0.05, 0.2)),
        }
    )

    def _check_axes(self) -> None:
        self._need_values("weight_decays", is_non_negative, "floats >= 0")
        self._need_values("lrs", is_positive, "floats > 0")

    def grid(self):
        return [
            ({"lr": float(lr), "weight_decay": float(wd), "seed": s}, self.train_config(s, lr=lr, weight_decay=wd))
            for lr in self.lrs
            for wd in self.weight_decays
            for s in self.seeds
        ]


EXPERIMENT = register_grid(
    NAME,
    WeightDecayConfig,
    "weight decay x learning rate: final gap, sharpness, Jacobian",
    chapter="Weight decay across learning rates (Fig. 2)",
)
