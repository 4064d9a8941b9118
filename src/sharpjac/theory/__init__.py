r"""The quantities in the companion's theorems T1-T4 and Proposition A, made computable.

Notation follows the book's notation page: data
:math:`x\in\mathbb R^{n}` from :math:`\mu` with support :math:`S`, sample :math:`x_1,\dots,x_N`,
network :math:`f` with :math:`k` outputs and input-output Jacobian :math:`Jf(x)\in\mathbb R^{k\times
n}`, local variation :math:`V_B(Jf)=\sup_{x,x'\in B}\|Jf(x)-Jf(x')\|`. Norms of matrices are
spectral norms.

What is here:

* **T1 (covering)**: :func:`covering_radius` (the empirical covering radius of a sample, measured
  on a dense probe of :math:`S`), :func:`t1_covering_bound`
  (:math:`\delta(N,\varepsilon)=2L_g\sqrt d(\log(N/\varepsilon)/N)^{1/d}`, refused outside
  :func:`t1_hypothesis`: :math:`N\ge\log(N/\varepsilon)\ge1`), :func:`fit_loglog_slope`,
  and :func:`holder_curve` (a generator with a cusp, which is *not* Lipschitz).
* **Proposition A** (the ansatz made two-sided for the Gauss-Newton matrix):
  :func:`proposition_a`.
* **T2 (sample Jacobian vs Lipschitz constant)**: :func:`t2_sandwich`, with the path helpers
  :func:`latent_path` and :func:`polyline_length`, and the certified upper estimate
  :func:`layer_norm_product`.
* **T3 (low loss forces a large Jacobian)**: :func:`hardest_pairs`, :func:`t3_lower_bound`,
  :func:`ce_margin`, :func:`t3_ce_bound`, :func:`residual_radius`.
* **T4 (generalisation)**: :func:`voronoi_weights`, :func:`t4_bound`.
* **Intrinsic dimension**: :func:`twonn_dimension` (Facco et al. 2017),
  :func:`levina_bickel_dimension` (Levina & Bickel 2004).

Every randomised routine takes a keyword-only ``seed``; results are frozen dataclasses; nothing
here changes a model's train/eval mode or device.
"""

from ._common import derive_seed
from .covering import (
    LogLogFit,
    covering_radius,
    fit_loglog_slope,
    holder_curve,
    nearest_sample,
    refined_covering_radius,
    t1_covering_bound,
    t1_hypothesis,
)
from .generalisation import T4Bound, t4_bound, voronoi_weights
from .intrinsic_dimension import knn_distances, levina_bickel_dimension, twonn_dimension
from .lipschitz import T2Sandwich, latent_path, layer_norm_product, polyline_length, t2_sandwich
from .low_loss import (
    HardestPairs,
    ce_margin,
    hardest_pairs,
    residual_radius,
    t3_ce_bound,
    t3_lower_bound,
)
from .proposition_a import PropositionA, proposition_a

__all__ = [
    "derive_seed",
    "knn_distances",
    "covering_radius",
    "nearest_sample",
    "refined_covering_radius",
    "t1_covering_bound",
    "t1_hypothesis",
    "LogLogFit",
    "fit_loglog_slope",
    "holder_curve",
    "PropositionA",
    "proposition_a",
    "latent_path",
    "polyline_length",
    "T2Sandwich",
    "t2_sandwich",
    "layer_norm_product",
    "HardestPairs",
    "hardest_pairs",
    "residual_radius",
    "t3_lower_bound",
    "ce_margin",
    "t3_ce_bound",
    "voronoi_weights",
    "T4Bound",
    "t4_bound",
    "twonn_dimension",
    "levina_bickel_dimension",
]
