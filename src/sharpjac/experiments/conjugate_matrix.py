r"""The conjugate matrix (the book chapter *The conjugate matrix*).

A study that trains nothing: at the initialisation of a small float64 MLP on ``n_points``
training digits it builds

* the Gauss-Newton matrix :math:`G=\frac1N\sum_i\Phi_i^\top C_i\Phi_i` ([P, P]) from the
  per-sample parameter Jacobians (:func:`sharpjac.conjugate.gauss_newton_matrix`), and
* the conjugate matrix :math:`K=\sum_lK^{(l)}` ([Nk, Nk]) from the layer Jacobians, partial
  products and layer parameter derivatives (:func:`sharpjac.conjugate.conjugate_matrix_by_layer`),

for the cross-entropy curvature :math:`C_i=\operatorname{diag}(p_i)-p_ip_i^\top` and the
squared-error curvature :math:`C_i=\frac2kI`, and compares their non-zero spectra (tables
``comparison`` and ``spectra``). For the chapter's ``loss`` it then splits the top eigenvalues and
the trace of :math:`K` into layer shares (:func:`sharpjac.conjugate.layer_shares`, table
``shares``), checks the closed form of the first layer's term
(:func:`sharpjac.conjugate.first_layer_kernel`, table ``summary``) and changes the input
coordinates, :math:`W_1\to W_1/c`, :math:`x\to cx`, for ``n_scales`` log-spaced
:math:`c\in[10^{-2},10]` (:func:`sharpjac.conjugate.input_rescaling`, table ``rescaling``).

The tables are cached whole in the run store. The presets are the project's own choices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from ..claims import choose
from ..claims import get as claims_get
from . import register
from ._chapter import ChapterSummary
from ._chapter import evaluate as _evaluate
from .base import StudyConfig

NAME = "conjugate_matrix"


@dataclass(frozen=True)
class ConjugateMatrixConfig(StudyConfig):
    """G against K, layer shares and the first layer's blind spot, at initialisation (digits, float64).

    Attributes:
        n_points: training digits N (the data split uses ``data_seed``, the network ``seeds``).
        widths: hidden widths of the MLP.
        activation: its activation (``"tanh"``, ``"relu"``, ``"elu"``, ``"gelu"``, ``"identity"``).
        loss: the loss whose curvature :math:`C_i` the shares and the rescaling use (``"ce"`` or
            ``"mse"``; the G-K comparison is done for both).
        n_test: test digits (unused by the analysis; part of the data split).
        n_scales: number of input scales c, log-spaced in [0.01, 10].
        top: number of top eigenvalues of K split into layer shares (at most N k).
    """

    n_points: int = 40
    widths: tuple[int, ...] = (20, 20)
    activation: str = "tanh"
    loss: str = "ce"
    n_test: int = 10
    n_scales: int = 13
    top: int = 10
    dtype: str = "float64"
    device: str = "cpu"

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(n_points=12, widths=(8, 8), n_scales=7),
        "quick": dict(n_points=40, widths=(20, 20), n_scales=13),
        "paper": dict(n_points=50, widths=(32, 32), n_scales=13),
    }

    def _check(self) -> None:
        from ..losses import LOSS_NAMES
        from ..models import ACTIVATIONS

        self._need_positive("n_points", "widths", "n_test", "n_scales", "top")
        self._need(self.activation in ACTIVATIONS, "activation", f"one of {ACTIVATIONS}")
        self._need(self.loss in LOSS_NAMES, "loss", f"one of {LOSS_NAMES}")
        self._need(self.top <= 10 * self.n_points, "top", f"an int in [1, N k = {10 * self.n_points}]")

    def compute(self, *, store, progress: bool | None) -> dict[str, pd.DataFrame]:
        """Tables ``comparison``, ``spectra``, ``shares``, ``rescaling`` and ``summary`` (column ``seed``).

        * ``comparison`` (one row per loss): ``num_params`` P, ``nk`` (N k), ``rank``,
          ``zero_eigenvalues_g``, ``max_abs_diff`` and ``max_rel_diff`` of the top
          :math:`\\min(P,Nk)` eigenvalues of G and K, ``lambda_max``, ``trace_g``, ``trace_k``.
        * ``spectra``: ``loss``, ``index`` (1-based, descending), ``eigenvalue_g``, ``eigenvalue_k``.
        * ``shares`` (chapter's loss): ``label`` (``lambda_1``... then ``trace``), ``value`` (the
          eigenvalue or the trace of K) and ``layer_1``... ``layer_L`` (shares, rows sum to 1).
        * ``rescaling``: the columns of :func:`sharpjac.conjugate.input_rescaling`.
        * ``summary``: ``num_params``, ``num_classes``, ``n_layers``, ``first_layer_diff`` (largest
          entry of :math:`|K^{(1)}_{\\text{closed form}}-K^{(1)}|`) and ``first_layer_scale``
          (largest :math:`|K^{(1)}_{ij}|`).
        """
        from .. import conjugate, data, losses, models
        from .._util import resolve_device

        dev, dt = resolve_device(self.device), getattr(torch, self.dtype)
        out: dict[str, list] = {k: [] for k in ("comparison", "spectra", "shares", "rescaling", "summary")}
        for seed in self.seeds:
            ds = data.load("digits", seed=self.data_seed, n_train=self.n_points, n_test=self.n_test, dtype=dt)
            model = models.MLP(
                input_shape=ds.input_shape,
                widths=self.widths,
                num_classes=ds.num_classes,
                activation=self.activation,
                seed=seed,
            ).to(device=dev, dtype=dt)
            x, y = ds.x_train.to(dev), ds.y_train.to(dev)
            num_params = sum(p.numel() for p in model.parameters())
            k = int(ds.num_classes)
            with torch.no_grad():
                outputs = model(x)
            parts_of = {}
            for name in losses.LOSS_NAMES:
                C = losses.output_curvature(name, outputs, y)
                G = conjugate.gauss_newton_matrix(model, x, C)
                parts = conjugate.conjugate_matrix_by_layer(model, x, C)
                K = torch.stack(parts).sum(0)
                cmp = conjugate.compare_nonzero_spectra(G, K)
                parts_of[name] = (C, parts)
                out["comparison"].append(
                    {
                        "seed": seed,
                        "loss": name,
                        "num_params": num_params,
                        "n_points": self.n_points,
                        "nk": self.n_points * k,
                        "rank": cmp.rank,
                        "zero_eigenvalues_g": cmp.zero_eigenvalues_g,
                        "max_abs_diff": cmp.max_abs_diff,
                        "max_rel_diff": cmp.max_rel_diff,
                        "lambda_max": float(cmp.eigenvalues_g[0]),
                        "trace_g": float(G.trace()),
                        "trace_k": float(K.trace()),
                    }
                )
                out["spectra"].append(
                    pd.DataFrame(
                        {
                            "seed": seed,
                            "loss": name,
                            "index": np.arange(1, len(cmp.eigenvalues_g) + 1),
                            "eigenvalue_g": cmp.eigenvalues_g,
                            "eigenvalue_k": cmp.eigenvalues_k,
                        }
                    )
                )
            C, parts = parts_of[self.loss]
            sh = conjugate.layer_shares(parts, top=self.top)
            L = sh.shares.shape[1]
            labels = [f"lambda_{j + 1}" for j in range(len(sh.eigenvalues))] + ["trace"]
            table = pd.DataFrame(np.vstack([sh.shares, sh.trace_shares]), columns=[f"layer_{i + 1}" for i in range(L)])
            table.insert(0, "value", np.concatenate([sh.eigenvalues, [sh.traces.sum()]]))
            table.insert(0, "label", labels)
            table.insert(0, "loss", self.loss)
            table.insert(0, "seed", seed)
            out["shares"].append(table)
            K1 = conjugate.first_layer_kernel(model, x, C)
            resc = conjugate.input_rescaling(model, x, C, np.logspace(-2, 1, self.n_scales))
            resc.insert(0, "seed", seed)
            out["rescaling"].append(resc)
            out["summary"].append(
                {
                    "seed": seed,
                    "loss": self.loss,
                    "num_params": num_params,
                    "num_classes": k,
                    "n_layers": L,
                    "first_layer_diff": float((K1 - parts[0]).abs().max()),
                    "first_layer_scale": float(parts[0].abs().max()),
                }
            )
        return {
            "comparison": pd.DataFrame(out["comparison"]),
            "spectra": pd.concat(out["spectra"], ignore_index=True),
            "shares": pd.concat(out["shares"], ignore_index=True),
            "rescaling": pd.concat(out["rescaling"], ignore_index=True),
            "summary": pd.DataFrame(out["summary"]),
        }


SEEDS = 1  # no training: the identity is algebra, checked at one initialisation


def summarise(results: dict[str, pd.DataFrame], config: ConjugateMatrixConfig) -> ChapterSummary:
    r"""Everything the conjugate-matrix chapter shows, from the study's tables.

    Args:
        results: the study's tables (``comparison``, ``spectra``, ``shares``, ``summary``,
            ``rescaling``).
        config: its config (``loss`` is the loss the chapter describes, ``n_points``).

    Returns:
        :class:`~sharpjac.experiments._chapter.ChapterSummary` with tables ``comparison``,
        ``positive`` (the described loss's non-zero spectra, :math:`\lambda_j(K)>10^{-12}\lambda_1(K)`),
        ``differences`` (every loss's :math:`|\lambda_j(G)-\lambda_j(K)|`, floored at
        :math:`10^{-20}` for a log axis), ``shares`` and ``rescaling`` (with ``jac_times_c``,
        :math:`c\max_i\|Jf_c(cx_i)\|_2`, constant in :math:`c`); series ``n_layers``; the glued
        values; and the inputs of the two claims. The five checks of the first-layer claim use a
        relative tolerance :math:`10^{-8}` (float64 rounding is about :math:`10^{-15}`).
    """
    loss = config.loss
    comparison = results["comparison"].set_index("loss")
    main = comparison.loc[loss]
    v: dict[str, Any] = {
        "cm_P": int(main.num_params),
        "cm_N": config.n_points,
        "cm_Nk": int(main.nk),
        "cm_rank": int(main["rank"]),
        "cm_rank_other": int(comparison.loc["mse" if loss == "ce" else "ce", "rank"]),
        "cm_maxdiff": float(main.max_abs_diff),
        "cm_reldiff": float(main.max_rel_diff),
        "cm_maxdiff_all": float(comparison["max_abs_diff"].max()),
        "cm_lmax": float(main.lambda_max),
        "cm_trace_diff": abs(float(main.trace_g - main.trace_k)),
    }
    worst_rel = float(comparison["max_rel_diff"].max())
    claims: dict[str, dict[str, Any]] = {
        "conjugate_matrix.equal_spectra": dict(
            evidence=(
                f"Over both losses the largest difference between corresponding eigenvalues of $G$ and $K$ is "
                f"{float(comparison['max_abs_diff'].max()):.1e}, {worst_rel:.1e} relative to $\\lambda_{{\\max}}$ "
                f"(P = {int(main.num_params)}, Nk = {int(main.nk)}, float64)."
            ),
            seeds=SEEDS,
            value=worst_rel,
            estimate=worst_rel,
            label="max relative eigenvalue difference",
            margin=(
                f"largest relative eigenvalue difference = {worst_rel:.1e} "
                f"(fails above {claims_get('conjugate_matrix.equal_spectra').rule.threshold:g})"
            ),
        )
    }
    spectra = results["spectra"]
    spec = spectra[spectra["loss"] == loss]
    positive = spec[spec["eigenvalue_k"] > 1e-12 * spec["eigenvalue_k"].iloc[0]]
    differences = spectra.assign(
        difference=np.maximum(np.abs(spectra["eigenvalue_g"] - spectra["eigenvalue_k"]), 1e-20)
    )
    shares = results["shares"]
    layer_cols = [c for c in shares.columns if c.startswith("layer_")]
    L = len(layer_cols)
    top_row, trace_row = shares.iloc[0], shares[shares["label"] == "trace"].iloc[0]
    for layer in range(1, L + 1):
        v[f"cm_share_top_{layer}"] = 100 * float(top_row[f"layer_{layer}"])
        v[f"cm_share_tr_{layer}"] = 100 * float(trace_row[f"layer_{layer}"])
    v["cm_L"] = L
    small = [layer for layer in range(1, L + 1) if float(top_row[f"layer_{layer}"]) < 0.05]
    v["cm_shares_text"] = (
        f"The first layer carries {100 * float(top_row['layer_1']):.0f}% of $\\lambda_{{\\max}}$ and "
        f"{100 * float(trace_row['layer_1']):.0f}% of the trace; the last layer "
        f"{100 * float(top_row[f'layer_{L}']):.0f}% of $\\lambda_{{\\max}}$ (in this {L}-layer network). "
        + choose(
            not small,
            "No layer carries less than 5% of $\\lambda_{\\max}$, so the sharpness is not a property of one layer",
            "Layer(s) " + ", ".join(map(str, small)) + " carry less than 5% of $\\lambda_{\\max}$",
        )
        + "; note that the first layer's term is built from the *later* layers' Jacobians and the inputs' "
        "Gram matrix, as the next section shows."
    )
    summary = results["summary"].iloc[0]
    v["cm_k1_diff"] = float(summary.first_layer_diff)
    v["cm_k1_scale"] = float(summary.first_layer_scale)
    resc = results["rescaling"].assign(jac_times_c=lambda r: r["jac_spectral_max"] * r["scale"])
    lo, hi = resc.iloc[0], resc.iloc[-1]
    mid = resc.iloc[(resc["scale"] - 1).abs().argmin()]
    v["cm_out_change"] = float(resc["output_change"].max())
    v["cm_c_lo"] = float(lo.scale)
    v["cm_c_hi"] = float(hi.scale)
    v["cm_jac_ratio"] = float(lo.jac_spectral_max / mid.jac_spectral_max)
    v["cm_lam_ratio"] = float(lo.lambda_max / mid.lambda_max)
    v["cm_lam_hi_ratio"] = float(hi.lambda_max / mid.lambda_max)
    v["cm_jac_hi_ratio"] = float(hi.jac_spectral_max / mid.jac_spectral_max)
    v["cm_lam_floor"] = float(lo.lambda_max)
    v["cm_lam_dir"] = choose(float(lo.lambda_max) < float(mid.lambda_max), "*falls*", "does not fall")
    v["cm_later"] = float(mid.lambda_max_later)
    checks = {
        "closed form of K^(1)": float(summary.first_layer_diff) <= 1e-8 * float(summary.first_layer_scale),
        "outputs unchanged": float(resc["output_change"].max()) <= 1e-8,
        "later layers' term unchanged": float(np.ptp(resc["lambda_max_later"]))
        <= 1e-8 * float(resc["lambda_max_later"].mean()),
        "lambda_max(K_c) non-decreasing in c": bool(
            (np.diff(resc.sort_values("scale")["lambda_max"]) >= -1e-8 * float(resc["lambda_max"].max())).all()
        ),
        "c times the Jacobian constant": float(np.ptp(resc["jac_times_c"])) <= 1e-8 * float(resc["jac_times_c"].mean()),
    }
    failed = [name for name, ok in checks.items() if not ok]
    claims["conjugate_matrix.first_layer_absent"] = dict(
        evidence=(
            f"{len(checks) - len(failed)} of {len(checks)} checks pass"
            + (f" (failed: {', '.join(failed)})" if failed else "")
            + f"; over $c$ from {float(lo.scale):g} to {float(hi.scale):g} the sample-maximum Jacobian changes by a "
            f"factor {float(lo.jac_spectral_max / hi.jac_spectral_max):.0f} while the outputs change by at most "
            f"{float(resc['output_change'].max()):.1e}."
        ),
        seeds=SEEDS,
        violations=len(failed),
        checks=len(checks),
        margin=(
            f"largest output change under rescaling = {float(resc['output_change'].max()):.1e} (fails above 1e-8); "
            f"closed form of K^(1) off by {float(summary.first_layer_diff / summary.first_layer_scale):.1e} "
            "relative (fails above 1e-8)"
        ),
    )
    v["cm_direction_text"] = choose(
        float(lo.lambda_max) < float(mid.lambda_max) and float(lo.jac_spectral_max) > float(mid.jac_spectral_max),
        "Sharpness and Jacobian can thus be moved in opposite directions, for the same function on the same "
        "data, by nothing but the scale of the inputs relative to $W_1$.",
        "In this run the two did not move in opposite directions over the range of $c$ shown.",
    )
    return ChapterSummary(
        tables={
            "comparison": comparison.reset_index()[
                ["loss", "num_params", "nk", "rank", "max_abs_diff", "max_rel_diff", "lambda_max"]
            ].rename(columns={"rank": "rank_G_K", "lambda_max": "lambda_max_G"}),
            "positive": positive,
            "differences": differences,
            "shares": shares,
            "rescaling": resc,
        },
        values=v,
        claims=claims,
        series={
            "n_layers": L,
            # the same stacked bars as one long frame: position, layer (1..L), share, bottom
            "share_bars": share_bars(shares),
            # the bar labels of the stacked bars
            "share_labels": [
                f"$\\lambda_{{{lab.split('_')[1]}}}$" if lab != "trace" else "trace" for lab in shares["label"]
            ],
        },
    )


def share_bars(shares: pd.DataFrame) -> pd.DataFrame:
    """The stacked bars of the layer shares as one long frame, for :func:`sharpjac.plotting.bars_by`.

    Args:
        shares: the study's ``shares`` table, one row per bar (``label``) and a column ``layer_l`` per layer.

    Returns:
        Columns ``position`` (the bar's index), ``layer`` (``l`` as an int), ``share`` and ``bottom``
        (the sum of the shares of the layers below ``l`` in that bar, where the bar segment starts).
    """
    layer_cols = [c for c in shares.columns if c.startswith("layer_")]
    values = shares[layer_cols].to_numpy()
    bottoms = np.cumsum(values, axis=1) - values
    n_bars, n_layers = values.shape
    return pd.DataFrame(
        {
            "position": np.tile(np.arange(n_bars), n_layers),
            "layer": np.repeat([int(c.split("_")[1]) for c in layer_cols], n_bars),
            "share": values.T.ravel(),
            "bottom": bottoms.T.ravel(),
        }
    )


#: the interactive explorer of the rescaling: arguments of :func:`sharpjac.interactive.curves` (after the frame)
EXPLORER = dict(
    x="scale",
    y={
        "max ‖Jf_c(cxᵢ)‖₂": "jac_spectral_max",
        "mean ‖Jf_c(cxᵢ)‖₂": "jac_spectral_mean",
        "λ_max(K_c) = λ_max(G_c)": "lambda_max",
        "λ_max(K⁽¹⁾_c), first layer": "lambda_max_layer1",
        "λ_max of the later layers' terms": "lambda_max_later",
        "c · max ‖Jf_c(cxᵢ)‖₂ (constant)": "jac_times_c",
    },
    group="network",
    hover=["scale", "lambda_max", "jac_spectral_max", "output_change"],
)


def evaluate(summary: ChapterSummary, preset: str) -> dict[str, Any]:
    """The chapter's verdicts, ``{claim id: Verdict}`` (see :func:`._chapter.evaluate`)."""
    return _evaluate(summary, preset)


def chapter_configs(preset: str, seed: int, activation: str = "tanh", loss: str = "ce") -> list[ConjugateMatrixConfig]:
    """The chapter's one study: one initialisation (``seeds = (seed,)``, ``data_seed = seed``) of
    the preset's MLP with ``activation``; ``loss`` is the one the chapter describes (the study
    compares both)."""
    return [ConjugateMatrixConfig.from_preset(preset, seeds=(seed,), data_seed=seed, activation=activation, loss=loss)]


EXPERIMENT = register(
    NAME,
    ConjugateMatrixConfig,
    "G and the conjugate matrix K built independently: equal non-zero spectra, layer shares, "
    "the first layer's blind spot under a change of input coordinates (digits MLP, no training)",
    chapter="The conjugate matrix",
    chapter_configs=chapter_configs,
)
