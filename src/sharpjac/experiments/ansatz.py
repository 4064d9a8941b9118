r"""The ansatz and its mediating factors (the book chapter *The ansatz and its mediating factors*).

A study: a few full-batch gradient-descent runs of a small float64 ReLU MLP on scikit-learn's
8 x 8 digits, and the analysis the chapter plots, as tables.

* **Proposition A along training** (squared error, step size ``lr``): networks kept at
  ``snapshot_steps``; at each, :func:`sharpjac.theory.proposition_a` with the squared-error
  curvature :math:`C_i=\frac2kI` evaluates the exact :math:`\lambda_{\max}(G)` and both sides of
  the two-sided bound (table ``bounds``; the run's record is ``prop_record``).
* **Mediating factor 2 (rescaling)**: :func:`sharpjac.mediators.rescaling_study` applies the
  function-preserving map :math:`(W_l,b_l,W_{l+1})\mapsto(\alpha W_l,\alpha b_l,W_{l+1}/\alpha)`
  (``l = rescaled_layer``) to the final network of that run for ``n_alphas`` log-spaced
  :math:`\alpha\in[0.1,10]` (table ``rescaling``).
* **Mediating factor 1 (cross-entropy saturation)**: two cross-entropy runs from the same
  initialisation, label smoothing 0 and ``label_smoothing`` (table ``ce``, with the floor
  :math:`\lambda_{\max}(\operatorname{diag}(t)-tt^\top)` of
  :func:`sharpjac.mediators.smoothed_curvature_at_optimum` as ``curvature_floor``).
* **Mediating factor 3 (first-layer blind spot)**: the MLP trained with all layers, the first
  layer only and the last layer only (``TrainConfig.trainable_layers``; the measured sharpness is
  always the full Hessian's), and a linear model :math:`f(x)=Wx+b` (table ``blind``). The linear
  model's Hessian under squared error is constant,
  :math:`H=\frac2{Nk}I_k\otimes\tilde X^\top\tilde X` with :math:`\tilde X=[X\ \mathbf1]`; it is
  trained with :math:`\eta=1/\lambda_{\max}(H)`, half its stability limit, computed in closed form
  (:func:`linear_model_sharpness`).

Every run goes through :func:`sharpjac.experiments.base.trained_run` (stored, with its networks),
and the tables are cached whole, so a second call trains and computes nothing. The presets are
the project's own choices (sizes that run on a laptop CPU; one seed at ``smoke``, three at
``quick`` and ``paper``), not the paper's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from .. import claims
from ..training import TrainConfig
from . import register
from .base import StudyConfig, trained_run

NAME = "ansatz"
BLIND_RUNS = ("all layers", "first layer only", "last layer only", "linear model")


def linear_model_sharpness(x: torch.Tensor, num_outputs: int) -> float:
    r"""Exact sharpness of a linear model :math:`f(x)=Wx+b` under the mean squared error.

    With :math:`\mathcal L=\frac1{Nk}\sum_i\|Wx_i+b-t_i\|^2` the Hessian is
    :math:`\frac2{Nk}I_k\otimes\tilde X^\top\tilde X` (:math:`\tilde X=[X\ \mathbf1]`, shape
    ``[N, n+1]``) whatever the parameters, so
    :math:`\lambda_{\max}(H)=\frac2{Nk}\lambda_{\max}(\tilde X^\top\tilde X)=\frac2{Nk}\sigma_{\max}(\tilde X)^2`.

    Args:
        x: inputs ``[N, ...]`` (flattened to ``[N, n]``).
        num_outputs: k >= 1.
    """
    if isinstance(num_outputs, bool) or not isinstance(num_outputs, int) or num_outputs < 1:
        raise ValueError(f"num_outputs={num_outputs!r} is invalid; accepted: an int >= 1")
    X = x.detach().reshape(x.shape[0], -1).to(torch.float64).cpu()
    Xt = torch.cat([X, torch.ones(X.shape[0], 1, dtype=torch.float64)], dim=1)
    top = float(torch.linalg.eigvalsh(Xt.T @ Xt)[-1])
    return 2.0 * top / (X.shape[0] * num_outputs)


def _round_sig(v: float, digits: int = 6) -> float:
    """``v`` to ``digits`` significant digits (a learning rate that is the same on every machine)."""
    return float(f"{v:.{digits - 1}e}")


def _plain(frame: pd.DataFrame, **labels: Any) -> pd.DataFrame:
    """A copy of ``frame`` without attrs, with constant label columns in front."""
    out = frame.copy()
    out.attrs = {}
    for i, (k, v) in enumerate(labels.items()):
        out.insert(i, k, [v] * len(out))
    return out


@dataclass(frozen=True)
class AnsatzConfig(StudyConfig):
    """Proposition A along training and the three mediating factors, on digits (float64, CPU).

    Attributes:
        n_prop: training digits of the Proposition A run (squared error).
        widths: hidden widths of the ReLU MLP.
        steps: gradient-descent steps of the Proposition A run.
        snapshot_steps: steps at which the network is kept and Proposition A evaluated (in [0, steps]).
        n_ce, ce_steps: training digits and steps of the two cross-entropy runs.
        n_blind, blind_steps: training digits and steps of the first-layer blind-spot runs.
        n_alphas: number of log-spaced rescaling factors in [0.1, 10].
        measures: about that many measurements per run (every ``max(1, steps // measures)`` steps).
        lr: step size of the MLP runs (edge of stability at ``2 / lr``).
        n_test: test digits of every run.
        label_smoothing: smoothing of the second cross-entropy run (the first has none), in (0, 1).
        rescaled_layer: the ReLU layer ``l`` the rescaling scales (with layer ``l + 1``).
    """

    n_prop: int = 40
    widths: tuple[int, ...] = (16, 16)
    steps: int = 600
    snapshot_steps: tuple[int, ...] = (0, 30, 100, 300, 600)
    n_ce: int = 100
    ce_steps: int = 600
    n_blind: int = 100
    blind_steps: int = 400
    n_alphas: int = 9
    measures: int = 8
    lr: float = 0.5
    n_test: int = 200
    label_smoothing: float = 0.1
    rescaled_layer: int = 1
    dtype: str = "float64"
    device: str = "cpu"

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(
            n_prop=12,
            widths=(8, 8),
            steps=10,
            snapshot_steps=(0, 10),
            n_ce=30,
            ce_steps=10,
            n_blind=30,
            blind_steps=10,
            n_alphas=3,
            measures=2,
        ),
        "quick": dict(
            seeds=(0, 1, 2),
            n_prop=40,
            widths=(16, 16),
            steps=600,
            snapshot_steps=(0, 30, 100, 300, 600),
            n_ce=100,
            ce_steps=600,
            n_blind=100,
            blind_steps=400,
            n_alphas=9,
            measures=8,
        ),
        "paper": dict(
            seeds=(0, 1, 2),
            n_prop=100,
            widths=(32, 32),
            steps=2000,
            snapshot_steps=(0, 10, 30, 100, 300, 1000, 2000),
            n_ce=500,
            ce_steps=4000,
            n_blind=500,
            blind_steps=2000,
            n_alphas=13,
            measures=20,
        ),
    }

    def _check(self) -> None:
        self._need_positive(
            "n_prop",
            "widths",
            "steps",
            "n_ce",
            "ce_steps",
            "n_blind",
            "blind_steps",
            "n_alphas",
            "measures",
            "lr",
            "n_test",
        )
        self._need(
            len(self.snapshot_steps) > 0 and all(0 <= s <= self.steps for s in self.snapshot_steps),
            "snapshot_steps",
            f"a non-empty tuple of ints in [0, steps={self.steps}]",
        )
        self._need(0.0 < self.label_smoothing < 1.0, "label_smoothing", "a float in (0, 1)")
        self._need(
            1 <= self.rescaled_layer <= len(self.widths),
            "rescaled_layer",
            f"an int in [1, {len(self.widths)}] (a ReLU layer followed by a dense layer)",
        )

    # -- the runs -----------------------------------------------------------------------------

    def _run(self, seed: int, n_train: int, steps: int, **kw) -> TrainConfig:
        """A full-batch GD run on ``n_train`` digits (float64; all points measured)."""
        base = dict(
            dataset="digits",
            dataset_options={"n_train": n_train, "n_test": self.n_test},
            data_seed=self.data_seed,
            model="mlp",
            model_options={"widths": list(self.widths), "activation": "relu"},
            loss="mse",
            optimizer="gd",
            lr=self.lr,
            max_steps=steps,
            measure_every=max(1, steps // self.measures),
            sharpness_subset=None,
            jacobian_subset=None,
            lanczos_tol=1e-3,
            lanczos_max_iter=40,
            dtype=self.dtype,
            device=self.device,
            seed=seed,
            threads=self.threads,
        )
        base.update(kw)
        return TrainConfig(**base)

    def prop_run(self, seed: int) -> TrainConfig:
        """The squared-error run along which Proposition A is evaluated (networks kept at ``snapshot_steps``)."""
        return self._run(seed, self.n_prop, self.steps, measure_gn=True, snapshot_steps=self.snapshot_steps)

    def ce_runs(self, seed: int) -> dict[float, TrainConfig]:
        """``{label smoothing: run}``: cross-entropy without and with ``label_smoothing``."""
        return {
            ls: self._run(seed, self.n_ce, self.ce_steps, loss="ce", label_smoothing=ls)
            for ls in (0.0, self.label_smoothing)
        }

    def blind_runs(self, seed: int) -> dict[str, TrainConfig]:
        """``{name: run}`` for :data:`BLIND_RUNS` (the linear model at half its stability limit)."""
        last = len(self.widths) + 1
        out = {
            name: self._run(seed, self.n_blind, self.blind_steps, trainable_layers=layers)
            for name, layers in (("all layers", None), ("first layer only", (1,)), ("last layer only", (last,)))
        }
        linear = self._run(seed, self.n_blind, self.blind_steps, model="linear", model_options={})
        out["linear model"] = linear.replace(lr=self.linear_lr(linear))
        return out

    @staticmethod
    def linear_lr(config: TrainConfig) -> float:
        """:math:`1/\\lambda_{\\max}(H)` of the linear run ``config`` (closed form), to 6 significant digits."""
        from .. import data

        ds = data.load(config.dataset, seed=config.data_seed, dtype=torch.float64, **dict(config.dataset_options))
        return _round_sig(1.0 / linear_model_sharpness(ds.x_train, int(ds.num_classes)))

    def trains(self) -> list[TrainConfig]:
        out = []
        for seed in self.seeds:
            out += [self.prop_run(seed), *self.ce_runs(seed).values(), *self.blind_runs(seed).values()]
        return out

    # -- the tables ---------------------------------------------------------------------------

    def compute(self, *, store, progress: bool | None) -> dict[str, pd.DataFrame]:
        """Tables ``bounds``, ``prop_record``, ``rescaling``, ``ce``, ``blind`` and ``summary`` (column ``seed``).

        * ``bounds``: ``step``, the fields of :class:`sharpjac.theory.PropositionA` and ``holds``.
        * ``prop_record``, ``ce`` (with ``label_smoothing``, ``curvature_floor``), ``blind`` (with
          ``run`` in :data:`BLIND_RUNS`): training records (:mod:`sharpjac.training`).
        * ``rescaling``: ``layer`` and the columns of :func:`sharpjac.mediators.rescaling_study`.
        * ``summary``: ``num_classes``, ``proposition_a_holds`` (at every snapshot),
          ``linear_lr`` and ``linear_sharpness_exact`` (closed form).
        """
        from .. import data, losses, mediators, theory
        from .._util import resolve_device

        tables: dict[str, list[pd.DataFrame]] = {k: [] for k in ("bounds", "prop_record", "rescaling", "ce", "blind")}
        summary = []
        mse = losses.get_loss("mse")
        for seed in self.seeds:
            # Proposition A along training
            pc = self.prop_run(seed)
            prop = trained_run(pc, store=store, progress=progress)
            ds = data.load(pc.dataset, seed=pc.data_seed, dtype=getattr(torch, pc.dtype), **dict(pc.dataset_options))
            dev = resolve_device(pc.device)
            x, y = ds.x_train.to(dev), ds.y_train.to(dev).long()
            k = int(ds.num_classes)
            C_mse = (2.0 / k) * torch.eye(k, dtype=x.dtype, device=dev)
            rows = []
            for step in sorted(prop.models):
                pa = theory.proposition_a(prop.models[step], x, C_mse)
                rows.append({"step": step, **pa.as_dict(), "holds": pa.holds})
            bounds = pd.DataFrame(rows)
            tables["bounds"].append(_plain(bounds, seed=seed))
            tables["prop_record"].append(_plain(prop.frame, seed=seed))

            # mediating factor 2: rescaling the trained network
            alphas = np.logspace(-1, 1, self.n_alphas)
            resc = mediators.rescaling_study(prop.final, mse, x, y, alphas, layer=self.rescaled_layer, tol=1e-6)
            tables["rescaling"].append(_plain(resc, seed=seed, layer=self.rescaled_layer))

            # mediating factor 1: cross-entropy saturation, with and without smoothing
            for ls, cfg in self.ce_runs(seed).items():
                fr = _plain(trained_run(cfg, store=store, progress=progress).frame, seed=seed, label_smoothing=ls)
                fr["curvature_floor"] = mediators.smoothed_curvature_at_optimum(k, ls) if ls > 0 else float("nan")
                tables["ce"].append(fr)

            # mediating factor 3: the first-layer blind spot
            blind = self.blind_runs(seed)
            for name, cfg in blind.items():
                fr = trained_run(cfg, store=store, progress=progress).frame
                tables["blind"].append(_plain(fr, seed=seed, run=name))
            lin = blind["linear model"]
            ds_b = data.load(lin.dataset, seed=lin.data_seed, dtype=torch.float64, **dict(lin.dataset_options))
            summary.append(
                {
                    "seed": seed,
                    "num_classes": k,
                    "proposition_a_holds": bool(bounds["holds"].all()),
                    "linear_lr": lin.lr,
                    "linear_sharpness_exact": linear_model_sharpness(ds_b.x_train, int(ds_b.num_classes)),
                }
            )
        out = {name: pd.concat(frames, ignore_index=True) for name, frames in tables.items()}
        out["summary"] = pd.DataFrame(summary)
        return out


# ------------------------------------------------------------------------------------------------
# The chapter: its parameters become the study config here, and its statistics are computed here
# ------------------------------------------------------------------------------------------------


def chapter_configs(
    preset: str, seed: int, label_smoothing: float = 0.1, rescaled_layer: int = 1
) -> list[AnsatzConfig]:
    """The chapter's study config: the preset's seeds shifted by ``seed`` (``seed, seed+1, ...``),
    ``data_seed = seed``, and the chapter's ``label_smoothing`` and ``rescaled_layer``."""
    base = AnsatzConfig.preset(preset)
    return [
        AnsatzConfig.from_preset(
            preset,
            seeds=tuple(seed + s for s in base.seeds),
            data_seed=seed,
            label_smoothing=label_smoothing,
            rescaled_layer=rescaled_layer,
        )
    ]


@dataclass(frozen=True)
class Saturation:
    r"""The three signs of cross-entropy saturation in one run (see :func:`saturation`).

    Attributes:
        falls: the final mean :math:`\|C_i\|` is below a tenth of its first value.
        drops: the final sharpness is below the run's largest sharpness.
        stays: the final :math:`\max_i\|Jf(x_i)\|` is at least its value at the (first) sharpness peak.
    """

    falls: bool
    drops: bool
    stays: bool

    @property
    def all(self) -> bool:
        """All three signs at once."""
        return self.falls and self.drops and self.stays


def saturation(frame: pd.DataFrame) -> Saturation:
    """The saturation signs of one cross-entropy run (its record, rows in step order, with
    ``curvature_norm``, ``sharpness`` and ``jac_spectral_max``)."""
    pk = int(frame["sharpness"].to_numpy().argmax())
    return Saturation(
        falls=float(frame["curvature_norm"].iloc[-1]) < 0.1 * float(frame["curvature_norm"].iloc[0]),
        drops=float(frame["sharpness"].iloc[-1]) < float(frame["sharpness"].max()),
        stays=float(frame["jac_spectral_max"].iloc[-1]) >= float(frame["jac_spectral_max"].iloc[pk]),
    )


def smoothing_keeps_curvature(plain: pd.DataFrame, smooth: pd.DataFrame) -> bool:
    r"""Whether the smoothed run ends with a larger mean :math:`\|C_i\|` than the unsmoothed one and at
    least half its floor ``curvature_floor``."""
    c0, c1 = float(plain["curvature_norm"].iloc[-1]), float(smooth["curvature_norm"].iloc[-1])
    floor = float(smooth["curvature_floor"].iloc[0])
    return (c1 > c0) and (c1 >= 0.5 * floor)


def saturation_by_seed(ce: pd.DataFrame, label_smoothing: float) -> pd.DataFrame:
    """Per seed of the ``ce`` table: the :func:`saturation` signs of the unsmoothed run and
    :func:`smoothing_keeps_curvature` against the run with ``label_smoothing``.

    Returns:
        Columns ``seed``, ``falls``, ``drops``, ``stays``, ``all``, ``keeps`` (Python bools).
    """
    rows = []
    for s, g in ce.groupby("seed"):
        p0 = g[g["label_smoothing"] == 0.0].reset_index(drop=True)
        p1 = g[g["label_smoothing"] == label_smoothing].reset_index(drop=True)
        sat = saturation(p0)
        rows.append(
            {
                "seed": s,
                "falls": sat.falls,
                "drops": sat.drops,
                "stays": sat.stays,
                "all": sat.all,
                "keeps": smoothing_keeps_curvature(p0, p1),
            }
        )
    return pd.DataFrame(rows, columns=["seed", "falls", "drops", "stays", "all", "keeps"])


def saturation_sentence(sat: Saturation) -> str:
    """What one run shows: sharpness and Jacobian part ways, or not."""
    return claims.choose(
        sat.drops and sat.stays,
        "Sharpness and Jacobian part ways late in training: the sharpness falls from its peak while the "
        "Jacobian does not, and the output curvature is what separates them.",
        claims.choose(
            sat.drops,
            "The sharpness falls from its peak late in training, but so does the Jacobian in this run: the "
            "two do not part ways here.",
            "In this run the sharpness does not fall from its peak by the end of training.",
        ),
    )


def ce_numbers(ce: pd.DataFrame, *, seed: int, label_smoothing: float) -> tuple[dict[str, Any], dict[str, str]]:
    """The glued numbers (``an_ce_*``) and sentences of the cross-entropy section, for the runs of ``seed``."""
    runs = ce[ce["seed"] == seed]
    plain = runs[runs["label_smoothing"] == 0.0].reset_index(drop=True)
    smooth = runs[runs["label_smoothing"] == label_smoothing].reset_index(drop=True)
    peak = int(plain["sharpness"].idxmax())
    numbers = {
        "an_ls": label_smoothing,
        "an_ce_c_end0": float(plain["curvature_norm"].iloc[-1]),
        "an_ce_c_end1": float(smooth["curvature_norm"].iloc[-1]),
        "an_ce_c_start": float(plain["curvature_norm"].iloc[0]),
        "an_ce_floor": float(smooth["curvature_floor"].iloc[0]),
        "an_ce_loss_end0": float(plain["train_loss"].iloc[-1]),
        "an_ce_s_peak0": float(plain["sharpness"].max()),
        "an_ce_s_peak_step": int(plain["step"].iloc[peak]),
        "an_ce_s_end0": float(plain["sharpness"].iloc[-1]),
        "an_ce_s_end1": float(smooth["sharpness"].iloc[-1]),
        "an_ce_j_peak0": float(plain["jac_spectral_max"].iloc[peak]),
        "an_ce_j_end0": float(plain["jac_spectral_max"].iloc[-1]),
        "an_ce_j_end1": float(smooth["jac_spectral_max"].iloc[-1]),
    }
    markdown = {
        "an_ce_floor_side": claims.choose(numbers["an_ce_c_end1"] >= numbers["an_ce_floor"], "above", "below"),
        "an_ce_text": saturation_sentence(saturation(plain)),
    }
    return numbers, markdown


def evaluate_saturation(
    ce: pd.DataFrame, *, label_smoothing: float, preset: str, n_seeds: int
) -> dict[str, claims.Verdict]:
    """The claims ``ansatz.saturation_mediates`` and ``ansatz.smoothing_keeps_curvature``, decided over
    every seed of the ``ce`` table (:func:`saturation_by_seed`), by claim id."""
    by_seed = saturation_by_seed(ce, label_smoothing)
    n = len(by_seed)
    k_all, k_keep = int(by_seed["all"].sum()), int(by_seed["keeps"].sum())
    first = ce[(ce["seed"] == ce["seed"].min()) & (ce["label_smoothing"] == label_smoothing)]
    floor = float(first["curvature_floor"].iloc[0])
    return {
        "ansatz.saturation_mediates": claims.evaluate(
            "ansatz.saturation_mediates",
            evidence=(
                f"Without smoothing, {k_all} of {n} seeds show all three: mean $\\|C_i\\|$ below a tenth of its "
                f"start ({int(by_seed['falls'].sum())} seeds), final sharpness below its peak "
                f"({int(by_seed['drops'].sum())}), final Jacobian at least its value at that peak "
                f"({int(by_seed['stays'].sum())})."
            ),
            preset=preset,
            seeds=n_seeds,
            k=k_all,
            n=n,
        ),
        "ansatz.smoothing_keeps_curvature": claims.evaluate(
            "ansatz.smoothing_keeps_curvature",
            evidence=(
                f"With smoothing {label_smoothing:g} the final mean $\\|C_i\\|$ is above the unsmoothed run's and at "
                f"least half the floor {floor:.3f} in {k_keep} of {n} seeds."
            ),
            preset=preset,
            seeds=n_seeds,
            k=k_keep,
            n=n,
        ),
    }


EXPERIMENT = register(
    NAME,
    AnsatzConfig,
    "Proposition A along GD training and the three mediating factors (rescaling, cross-entropy "
    "saturation, first-layer blind spot), digits MLP",
    chapter="The ansatz and its mediating factors",
    chapter_configs=chapter_configs,
)
