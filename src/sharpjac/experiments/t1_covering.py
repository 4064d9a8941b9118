r"""Theorem T1: the covering radius of a sample against its size (book chapter *T1: a Lipschitz
generator gives a good covering*).

For each intrinsic dimension :math:`d`, samples of :math:`N` points of the ``manifold`` data set
(a generator :math:`g:[0,1]^d\to\mathbb R^n` with :math:`L_g` known) are drawn and their covering
radius :math:`\hat\delta=\max_{s\in\text{probe}}\min_i\|s-x_i\|` is measured on a dense probe of the
support, next to T1's bound :math:`\delta(N,\varepsilon)=2L_g\sqrt d(\log(N/\varepsilon)/N)^{1/d}`.
The fitted log-log slopes are compared with :math:`-1/d`. Then the same for a generator with a
cusp, :math:`g(z)=\operatorname{sign}(t)|t|^\alpha`, which is not Lipschitz: its radius decays like
:math:`N^{-\alpha}` and eventually exceeds T1's formula for every candidate constant.

Nothing is trained; the study's tables are cached in the run store like any other study.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from scipy import stats

from ..theory import covering_radius, fit_loglog_slope, holder_curve, t1_covering_bound
from ..theory._common import _derive
from . import register
from .base import StudyConfig

NAME = "t1_covering"


def covering_study(
    dims: Sequence[int],
    sizes: Sequence[int],
    *,
    num_probe: int = 20000,
    repeats: int = 3,
    n: int = 16,
    lipschitz: float = 1.0,
    epsilon: float = 0.1,
    generator_seed: int = 0,
    seed: int = 0,
) -> pd.DataFrame:
    r"""Empirical covering radius of ``manifold`` samples against :math:`N`, with T1's bound.

    For each latent dimension :math:`d` the ``manifold`` data set's generator :math:`g` (fixed by
    ``generator_seed``, :math:`L_g=` ``lipschitz``) gives :math:`S=g([0,1]^d)\subset\mathbb R^n`.
    A probe of ``num_probe`` points of :math:`S` (its own seed) stands in for :math:`S`; for every
    :math:`N` in ``sizes`` and every repeat, a fresh i.i.d. sample of :math:`N` points is drawn
    and its covering radius measured (:func:`sharpjac.theory.covering_radius`).

    Returns:
        DataFrame with one row per (d, N, repeat): ``d, N, repeat, radius, bound`` (T1's
        :math:`\delta(N,\varepsilon)`, nan where :math:`N<\log(N/\varepsilon)`), ``lipschitz``.
    """
    from .. import data as _data

    rows = []
    for d in dims:
        ds = _data.load(
            "manifold",
            seed=seed,
            d=int(d),
            n=n,
            n_train=1,
            n_test=1,
            lipschitz=lipschitz,
            generator_seed=generator_seed,
            dtype=torch.float64,
        )
        draw = ds.extras["sample_support"]
        probe = draw(num_probe, seed=_derive(seed, 10_000 + int(d)))
        for N in sizes:
            for r in range(repeats):
                x = draw(int(N), seed=_derive(seed, int(d), int(N), r))
                try:
                    bound = t1_covering_bound(int(N), epsilon, int(d), ds.extras["lipschitz"])
                except ValueError:
                    bound = float("nan")
                rows.append(
                    {
                        "d": int(d),
                        "N": int(N),
                        "repeat": r,
                        "radius": covering_radius(probe, x),
                        "bound": bound,
                        "lipschitz": ds.extras["lipschitz"],
                    }
                )
    return pd.DataFrame(rows)


def covering_slopes(df: pd.DataFrame, *, by: str = "d") -> pd.DataFrame:
    r"""Summarise a :func:`covering_study` frame: fitted rates against the theory, per group.

    For each value of ``by`` (default the dimension d), with the radius averaged over repeats:
    ``slope`` of :math:`\log r` on :math:`\log N` (T1 predicts about :math:`-1/d`, a little
    shallower because of the logarithm), its ``stderr``, ``slope_rate``, the slope of
    :math:`\log r` on :math:`\log(\log N/N)` (T1 predicts :math:`1/d`), ``expected`` =
    :math:`-1/d`; ``fit_slope`` with ``fit_low``, ``fit_high``: the slope of :math:`\log r` on
    :math:`\log N` fitted to every sample (not the means) and its 95 % t-interval; ``violations``
    (samples above T1's bound) out of ``checks`` (samples where the bound is defined);
    ``max_ratio`` = the largest radius/bound over all rows (below 1 when the bound holds
    everywhere) and ``min_looseness`` = the smallest bound/radius.
    """
    rows = []
    for key, sub in df.groupby(by):
        mean = sub.groupby("N")["radius"].mean()
        N = mean.index.values.astype(float)
        fit_n = fit_loglog_slope(N, mean.values)
        fit_r = fit_loglog_slope(np.log(N) / N, mean.values)
        ratio = (sub["radius"] / sub["bound"]).replace([np.inf, -np.inf], np.nan)
        # every sample its own point: the slope with a 95 % t-interval (n - 2 degrees of freedom)
        fit_all = fit_loglog_slope(sub["N"].values.astype(float), sub["radius"].values)
        half = float(stats.t.ppf(0.975, len(sub) - 2)) * fit_all.stderr if len(sub) > 2 else float("nan")
        rows.append(
            {
                by: key,
                "slope": fit_n.slope,
                "stderr": fit_n.stderr,
                "slope_rate": fit_r.slope,
                "expected": -1.0 / key if by == "d" else float("nan"),
                "fit_slope": fit_all.slope,
                "fit_low": fit_all.slope - half,
                "fit_high": fit_all.slope + half,
                "violations": int((sub["radius"] > sub["bound"]).sum()),
                "checks": int(sub["bound"].notna().sum()),
                "max_ratio": float(ratio.max()),
                "min_looseness": float((1 / ratio).min()),
            }
        )
    return pd.DataFrame(rows)


def holder_study(
    sizes: Sequence[int],
    *,
    alpha: float = 0.25,
    lipschitz_candidates: Sequence[float] = (1.0, 10.0, 100.0),
    num_probe: int = 20001,
    repeats: int = 3,
    epsilon: float = 0.1,
    seed: int = 0,
) -> pd.DataFrame:
    r"""Covering radius of samples of :func:`sharpjac.theory.holder_curve` (not Lipschitz) against N.

    The probe is the image of a uniform latent grid of ``num_probe`` points (it contains the
    cusp). For each candidate constant :math:`L` the column ``bound_L<L>`` holds T1's
    :math:`\delta(N,\varepsilon)` with :math:`d=1`, :math:`L_g=L`: since the generator is not
    Lipschitz, the measured radius (which decays like :math:`N^{-\alpha}`) eventually exceeds
    every one of them.

    Returns:
        DataFrame ``N, repeat, radius, bound_L<L>...``.
    """
    probe = holder_curve(torch.linspace(0, 1, int(num_probe), dtype=torch.float64)[:, None], alpha)
    rows = []
    for N in sizes:
        for r in range(repeats):
            gen = torch.Generator().manual_seed(_derive(seed, 77, int(N), r))
            x = holder_curve(torch.rand(int(N), 1, generator=gen, dtype=torch.float64), alpha)
            row = {"N": int(N), "repeat": r, "radius": covering_radius(probe, x)}
            for L in lipschitz_candidates:
                try:
                    row[f"bound_L{L:g}"] = t1_covering_bound(int(N), epsilon, 1, float(L))
                except ValueError:
                    row[f"bound_L{L:g}"] = float("nan")
            rows.append(row)
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class T1CoveringConfig(StudyConfig):
    r"""Covering radius against sample size, for Lipschitz generators and for a cusp.

    Attributes:
        dims: intrinsic dimensions :math:`d` of the ``manifold`` generators.
        sizes: sample sizes :math:`N`.
        num_probe: probe points of the support (the probe stands in for :math:`S`).
        repeats: fresh samples per :math:`N` (and per seed).
        n: ambient dimension of the generated data.
        lipschitz: :math:`L_g` of the generators.
        generator_seed: seed of the fixed generators.
        epsilon: failure probability :math:`\varepsilon` of T1's covering event, in (0, 1).
        alpha: exponent of the cusp generator, in (0, 1] (1: Lipschitz).
        holder_sizes: sample sizes of the cusp section.
        holder_num_probe: latent grid points of the cusp section's probe.
        lipschitz_candidates: constants :math:`L` for which T1's formula is set against the cusp.
        seeds: each seed draws its own probes and samples (a column ``seed`` of every table).
            ``data_seed``, ``device``, ``dtype`` and ``threads`` are not used (nothing is trained;
            the distances are computed in float64 on the CPU).
    """

    dims: tuple[int, ...] = (1, 2, 3, 4)
    sizes: tuple[int, ...] = (100, 200, 400, 800, 1600, 3200)
    num_probe: int = 10000
    repeats: int = 2
    n: int = 16
    lipschitz: float = 1.0
    generator_seed: int = 0
    epsilon: float = 0.1
    alpha: float = 0.25
    holder_sizes: tuple[int, ...] = (100, 200, 400, 800, 1600, 3200, 6400, 12800)
    holder_num_probe: int = 20001
    lipschitz_candidates: tuple[float, ...] = (1.0, 10.0, 100.0)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        # sizes N, probe points, repeats per N (the cusp section adds N = 6400, 12800 past smoke)
        "smoke": dict(sizes=(50, 100), num_probe=1000, repeats=1, holder_sizes=(50, 100), holder_num_probe=2001),
        "quick": dict(
            sizes=(100, 200, 400, 800, 1600, 3200),
            num_probe=10000,
            repeats=2,
            holder_sizes=(100, 200, 400, 800, 1600, 3200, 6400, 12800),
            holder_num_probe=20001,
        ),
        "paper": dict(
            sizes=(100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600),
            num_probe=100000,
            repeats=5,
            holder_sizes=(100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600),
            holder_num_probe=20001,
        ),
    }

    def _check(self) -> None:
        self._need_positive(
            "dims",
            "sizes",
            "num_probe",
            "repeats",
            "n",
            "lipschitz",
            "holder_sizes",
            "holder_num_probe",
            "lipschitz_candidates",
        )
        self._need(len(set(self.sizes)) >= 2, "sizes", "at least two distinct sample sizes (a slope is fitted)")
        self._need(
            len(set(self.holder_sizes)) >= 2, "holder_sizes", "at least two distinct sample sizes (a slope is fitted)"
        )
        self._need(self.generator_seed >= 0, "generator_seed", "an int >= 0")
        self._need(0 < self.epsilon < 1, "epsilon", "a number in (0, 1)")
        self._need(0 < self.alpha <= 1, "alpha", "a number in (0, 1]")

    def compute(self, *, store, progress: bool | None) -> dict[str, pd.DataFrame]:
        """Tables (every one with a ``seed`` column):

        * ``samples``: one row per (d, N, repeat): ``radius`` (measured), ``bound`` (T1),
          ``lipschitz`` (see :func:`covering_study`);
        * ``slopes``: per d, the fitted rates and the bound's looseness (:func:`covering_slopes`,
          over all seeds);
        * ``holder``: the cusp generator, one row per (N, repeat): ``radius``, ``bound_L<L>``;
        * ``holder_summary``: one row: ``slope`` (log-log slope of the mean radius against N, over
          all seeds), ``stderr``, ``alpha``, and ``first_violation_L<L>``: the smallest N at
          which some sample's radius exceeds T1's formula with :math:`L_g=L` (NaN: none).
        """
        samples, holder = [], []
        for seed in self.seeds:
            df = covering_study(
                self.dims,
                self.sizes,
                num_probe=self.num_probe,
                repeats=self.repeats,
                n=self.n,
                lipschitz=self.lipschitz,
                epsilon=self.epsilon,
                generator_seed=self.generator_seed,
                seed=seed,
            )
            df.insert(0, "seed", seed)
            samples.append(df)
            hd = holder_study(
                sorted(set(self.holder_sizes)),
                alpha=self.alpha,
                lipschitz_candidates=self.lipschitz_candidates,
                num_probe=self.holder_num_probe,
                repeats=self.repeats,
                epsilon=self.epsilon,
                seed=seed,
            )
            hd.insert(0, "seed", seed)
            holder.append(hd)
        samples_df = pd.concat(samples, ignore_index=True)
        holder_df = pd.concat(holder, ignore_index=True)
        hmean = holder_df.groupby("N")["radius"].mean()
        hfit = fit_loglog_slope(hmean.index.values, hmean.values)
        summary: dict[str, Any] = {"alpha": float(self.alpha), "slope": hfit.slope, "stderr": hfit.stderr}
        for col in (c for c in holder_df.columns if c.startswith("bound_L")):
            over = holder_df.loc[holder_df["radius"] > holder_df[col], "N"]
            summary[f"first_violation_{col.removeprefix('bound_')}"] = float(over.min()) if len(over) else np.nan
        return {
            "samples": samples_df,
            "slopes": covering_slopes(samples_df),
            "holder": holder_df,
            "holder_summary": pd.DataFrame([summary]),
        }


EXPERIMENT = register(
    NAME,
    T1CoveringConfig,
    "T1: covering radius of manifold samples against N (slope -1/d) and a non-Lipschitz cusp",
    chapter="T1: a Lipschitz generator gives a good covering",
)
