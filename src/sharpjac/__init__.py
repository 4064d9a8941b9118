"""sharpjac: sharpness <-> input-output Jacobian.

The computations behind the executable companion to MacDonald, Valmadre & Lucey, *On
progressive sharpening, flat minima and generalisation* (arXiv:2305.14683).

The public surface is small; the modules carry the rest:

- :mod:`sharpjac.curvature`: Hessian and Gauss-Newton operators over a data set, Lanczos,
  spectral density, trace, sharpness;
- :mod:`sharpjac.jacobians`: per-sample input-output Jacobians, their norms, layer structure,
  Lipschitz helpers; :mod:`sharpjac.conjugate`: the conjugate matrix :math:`K` of the Gauss-Newton
  matrix, built from the layer quantities;
- :mod:`sharpjac.theory`: the theorems' quantities; :mod:`sharpjac.analysis`: statistics of runs;
- :mod:`sharpjac.data`, :mod:`sharpjac.models`, :mod:`sharpjac.losses`,
  :mod:`sharpjac.training`, :mod:`sharpjac.runs`, :mod:`sharpjac.experiments`;
- :mod:`sharpjac.plotting` (the book's figure style) and :mod:`sharpjac.publish` (papermill and
  the book build);
- :mod:`sharpjac.validation`: the generic argument validators every module uses.

Example:
    >>> import torch
    >>> from torch import nn
    >>> import sharpjac
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)).double()
    >>> x, y = torch.randn(32, 4, dtype=torch.float64), torch.randn(32, 2, dtype=torch.float64)
    >>> s = sharpjac.sharpness(model, nn.functional.mse_loss, (x, y))
    >>> stats = sharpjac.jacobian_stats(model, x)
    >>> s > 0 and stats.spectral_max >= stats.spectral_mean
    True
"""

__version__ = "0.1.0"

from sharpjac.curvature import (  # noqa: E402
    EigenResult,
    GaussNewtonOperator,
    HessianOperator,
    lanczos,
    power_iteration,
    sharpness,
    spectral_density,
    trace,
)
from sharpjac.jacobians import (  # noqa: E402
    JacobianStats,
    input_jacobians,
    jacobian_norms,
    jacobian_stats,
)

__all__ = [
    "__version__",
    "EigenResult",
    "GaussNewtonOperator",
    "HessianOperator",
    "JacobianStats",
    "input_jacobians",
    "jacobian_norms",
    "jacobian_stats",
    "lanczos",
    "power_iteration",
    "sharpness",
    "spectral_density",
    "trace",
]
