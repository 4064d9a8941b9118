r"""SAM radii and data augmentation (probably paper Fig. 3).

The ``sam_augmentation`` experiment of the book chapter *SAM and data augmentation (Fig. 3, probable)*.

The baseline, its checks and the runs are shared with the other flat-minima chapters
(:mod:`._grid`); this module states only the grid axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ._grid import GeneralisationConfig, grid_presets, is_non_negative, register_grid

__all__ = ["SamAugmentationConfig", "NAME"]

NAME = "sam_augmentation"


@dataclass(frozen=True)
class SamAugmentationConfig(GeneralisationConfig):
    """SAM radii x data augmentation on/off (probably paper Fig. 3).

    Attributes:
        sam_rhos: SAM radii :math:`\\rho` (0: plain SGD, the baseline).
        augments: augmentation off/on (random shifts of up to 2 pixels for MNIST; crops and flips
            for CIFAR).
    """

    sam_rhos: tuple[float, ...] = (0.0, 0.05, 0.2)
    augments: tuple[bool, ...] = (False, True)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = grid_presets(
        {
            "smoke": dict(sam_rhos=(0.0, 0.1)),
            "paper": dict(sam_rhos=(0.0, 0.05, 0.1)),
        }
    )

    def _check_axes(self) -> None:
        self._need_values("sam_rhos", is_non_negative, "floats >= 0")
        self._need_values("augments", lambda v: isinstance(v, bool), "booleans")

    def grid(self):
        return [
            ({"sam_rho": float(r), "augment": bool(a), "seed": s}, self.train_config(s, sam_rho=r, augment=a))
            for a in self.augments
            for r in self.sam_rhos
            for s in self.seeds
        ]


EXPERIMENT = register_grid(
    NAME,
    SamAugmentationConfig,
    "SAM radii x augmentation on/off: final gap, sharpness, Jacobian",
    chapter="SAM and data augmentation (Fig. 3, probable)",
)
