r"""The Jacobian penalty of Hoffman et al. (2019): a causal test (beyond the paper).

The ``causal_test`` experiment of the book chapter *A causal test (beyond the paper)*.

The baseline, its checks and the runs are shared with the other flat-minima chapters
(:mod:`._grid`); this module states only the grid axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ._grid import GeneralisationConfig, grid_presets, is_non_negative, register_grid

__all__ = ["CausalTestConfig", "NAME"]

NAME = "causal_test"


@dataclass(frozen=True)
class CausalTestConfig(GeneralisationConfig):
    """The Jacobian penalty of Hoffman et al. (2019) at several strengths (beyond the paper).

    Attributes:
        penalties: coefficients :math:`\\lambda_J\\ge0` of :math:`\\lambda_J\\widehat{\\|Jf\\|_F^2}`
            (0: the baseline).
    """

    penalties: tuple[float, ...] = (0.0, 0.03, 0.3, 1.0)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = grid_presets(
        {
            "smoke": dict(penalties=(0.0, 0.1)),
            "paper": dict(penalties=(0.0, 0.01, 0.1)),
        }
    )

    def _check_axes(self) -> None:
        self._need_values("penalties", is_non_negative, "floats >= 0")

    def grid(self):
        return [
            ({"jacobian_penalty": float(p), "seed": s}, self.train_config(s, jacobian_penalty=p))
            for p in self.penalties
            for s in self.seeds
        ]


EXPERIMENT = register_grid(
    NAME,
    CausalTestConfig,
    "Jacobian penalty (Hoffman et al. 2019): does it lower sharpness and the gap?",
    chapter="A causal test (beyond the paper)",
)
