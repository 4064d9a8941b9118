r"""Six regularisers against the baseline (paper Fig. 5, later revision).

The ``regularisers`` experiment of the book chapter *Six regularisers compared (Fig. 5, later revision)*.

The baseline, its checks and the runs are shared with the other flat-minima chapters
(:mod:`._grid`); this module states only the grid axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ._grid import GeneralisationConfig, grid_presets, is_positive, register_grid

__all__ = ["RegularisersConfig", "NAME", "REGULARISERS"]

NAME = "regularisers"


#: The six regularisers of the later revision's Fig. 5, as (name, TrainConfig field, config attribute).
REGULARISERS = (
    ("label smoothing", "label_smoothing", "label_smoothings"),
    ("weight decay", "weight_decay", "weight_decays"),
    ("SAM", "sam_rho", "sam_rhos"),
    ("augmentation", "augment", "augments"),
    ("larger rate", "lr", "larger_lrs"),
    ("smaller batch", "batch_size", "smaller_batches"),
)


@dataclass(frozen=True)
class RegularisersConfig(GeneralisationConfig):
    """Six regularisers vs the baseline (paper Fig. 5, later revision).

    Each attribute lists the strengths used for one regulariser, applied alone to the baseline.

    Attributes:
        label_smoothings, weight_decays, sam_rhos: values > 0.
        augments: ``(True,)`` (augmentation on) or ``()`` to leave it out.
        larger_lrs: step sizes larger than the baseline's.
        smaller_batches: batch sizes smaller than the baseline's.
    """

    label_smoothings: tuple[float, ...] = (0.1,)
    weight_decays: tuple[float, ...] = (0.003,)
    sam_rhos: tuple[float, ...] = (0.2,)
    augments: tuple[bool, ...] = (True,)
    larger_lrs: tuple[float, ...] = (0.8,)
    smaller_batches: tuple[int, ...] = (50,)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = grid_presets(
        {
            "smoke": dict(
                label_smoothings=(0.1,),
                weight_decays=(0.01,),
                sam_rhos=(0.1,),
                larger_lrs=(0.8,),
                smaller_batches=(25,),
            ),
            "paper": dict(weight_decays=(5e-4,), sam_rhos=(0.05,), larger_lrs=(0.2,), smaller_batches=(32,)),
        }
    )

    def _check_axes(self) -> None:
        self._need(all(0 < v < 1 for v in self.label_smoothings), "label_smoothings", "floats in (0, 1)")
        self._need(all(is_positive(v) for v in self.weight_decays), "weight_decays", "floats > 0")
        self._need(all(is_positive(v) for v in self.sam_rhos), "sam_rhos", "floats > 0")
        self._need(all(v is True for v in self.augments), "augments", "() or (True,)")
        self._need(
            all(is_positive(v) and v > self.lr for v in self.larger_lrs),
            "larger_lrs",
            f"floats > the baseline lr={self.lr}",
        )
        self._need(
            all(isinstance(v, int) and 0 < v < self.batch_size for v in self.smaller_batches),
            "smaller_batches",
            f"ints in (0, batch_size={self.batch_size})",
        )

    def grid(self):
        out = [({"regulariser": "baseline", "strength": 0.0, "seed": s}, self.baseline(s)) for s in self.seeds]
        for name, field, attr in REGULARISERS:
            for v in getattr(self, attr):
                for s in self.seeds:
                    out.append(
                        ({"regulariser": name, "strength": float(v), "seed": s}, self.train_config(s, **{field: v}))
                    )
        return out


EXPERIMENT = register_grid(
    NAME,
    RegularisersConfig,
    "six regularisers vs a baseline: Kendall's tau of the gap with each measure",
    chapter="Six regularisers compared (Fig. 5, later revision)",
)
