r"""``manifold``: data generated on a low-dimensional set :math:`S=g([0,1]^d)\subset\mathbb R^n`
with known Lipschitz bounds for the generator :math:`g` and the target :math:`f^*` (the setting of
the book's chapters *T1* to *T4*).
"""

from __future__ import annotations

import math
import types
from typing import Any

import torch
from torch import nn

from .. import validation as V
from ._common import Dataset, _label_noise, _noise_extras, _torch_generator

_PREACT_SCALE = 3.0  # std of A1's entries times sqrt(d): pre-activations vary O(1) over the cube
_BIAS_SCALE = 0.5  # std of the hidden bias around the value that centres the cube's centre
_REFERENCE_POINTS = 4096  # latent points used to fix the default target's frequency
_BALANCE_STEPS = 300  # iterations that tune the class offsets to balance the classes


class ManifoldGenerator(nn.Module):
    r"""The fixed smooth map :math:`g:\mathbb R^d\to\mathbb R^n` of the ``manifold`` data set.

    .. math:: g(z) = A_2\tanh(A_1 z + b_1) + b_2,\qquad
              \mathrm{Lip}(g)\le L_g := \|A_2\|_2\,\|A_1\|_2

    (``tanh`` is 1-Lipschitz), with ``A_1`` ``[h, d]``, ``A_2`` ``[n, h]``. ``A_2`` is scaled so
    that :math:`L_g` equals the requested ``lipschitz``; ``b_2`` puts :math:`g(\tfrac12\mathbf 1)`
    at the origin. Weights are float64 buffers (not parameters); :meth:`forward` computes in
    float64 and returns the input's dtype, so autograd works through it for float64 inputs.

    Attributes:
        lipschitz_bound: :math:`L_g=\|A_2\|_2\|A_1\|_2` as a Python float.
    """

    def __init__(self, a1: torch.Tensor, b1: torch.Tensor, a2: torch.Tensor, b2: torch.Tensor):
        super().__init__()
        self.register_buffer("a1", a1)
        self.register_buffer("b1", b1)
        self.register_buffer("a2", a2)
        self.register_buffer("b2", b2)
        self.lipschitz_bound = float(torch.linalg.matrix_norm(a2, ord=2) * torch.linalg.matrix_norm(a1, ord=2))

    @property
    def d(self) -> int:
        """Latent (intrinsic) dimension."""
        return int(self.a1.shape[1])

    @property
    def n(self) -> int:
        """Ambient dimension."""
        return int(self.a2.shape[0])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Map latents ``[M, d]`` to points ``[M, n]`` of the support (dtype of ``z``)."""
        if z.ndim != 2 or z.shape[1] != self.d:
            raise ValueError(f"z has shape {tuple(z.shape)}; expected [M, {self.d}]")
        z64 = z.to(torch.float64)
        return (torch.tanh(z64 @ self.a1.T + self.b1) @ self.a2.T + self.b2).to(z.dtype)


def _make_generator(d: int, n: int, hidden: int, lipschitz: float, generator_seed: int) -> ManifoldGenerator:
    gen = _torch_generator(generator_seed, "manifold_generator")
    f64 = torch.float64
    a1 = torch.randn(hidden, d, generator=gen, dtype=f64) * (_PREACT_SCALE / math.sqrt(d))
    b1 = -0.5 * a1.sum(dim=1) + _BIAS_SCALE * torch.randn(hidden, generator=gen, dtype=f64)
    a2 = torch.randn(n, hidden, generator=gen, dtype=f64) / math.sqrt(hidden)
    raw = torch.linalg.matrix_norm(a2, ord=2) * torch.linalg.matrix_norm(a1, ord=2)
    a2 = a2 * (lipschitz / raw)
    centre = torch.full((1, d), 0.5, dtype=f64)
    b2 = -(torch.tanh(centre @ a1.T + b1) @ a2.T)[0]
    return ManifoldGenerator(a1, b1, a2, b2)


def _make_target(
    g: ManifoldGenerator, m: int, target_lipschitz: float | None, generator_seed: int, balance: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Weights ``W`` [m, n], phases ``c`` [m] and offsets ``t`` [m] of
    :math:`f^*(x)=\sin(Wx+c)+t`.

    Each row of ``W`` is a random direction inside the span of the top-``d`` principal axes of
    the support (so the target varies along :math:`S`, not across it); by default each row is
    scaled so that :math:`w_j^\top x` sweeps exactly one period :math:`2\pi` over a fixed reference
    sample of :math:`S`; with ``target_lipschitz`` the whole matrix is rescaled so that
    :math:`\|W\|_2` equals it. With ``balance`` (classification) the constant offsets ``t`` are
    tuned on the reference sample (a few hundred steps of ``t -= 0.2 (share - 1/m)``) so that
    the classes ``argmax_c f^*_c`` have about equal shares; otherwise ``t = 0``. Offsets do not
    change the Lipschitz constant.
    """
    gen = _torch_generator(generator_seed, "manifold_target")
    f64 = torch.float64
    z_ref = torch.rand(_REFERENCE_POINTS, g.d, generator=gen, dtype=f64)
    x_ref = g(z_ref)
    centred = x_ref - x_ref.mean(dim=0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    axes = vh[: g.d]  # [d, n], orthonormal rows
    coef = torch.randn(m, g.d, generator=gen, dtype=f64)
    w = coef @ axes
    w = w / torch.linalg.vector_norm(w, dim=1, keepdim=True)
    proj = x_ref @ w.T  # [R, m]
    spread = proj.max(dim=0).values - proj.min(dim=0).values
    w = w * (2 * math.pi / spread)[:, None]
    if target_lipschitz is not None:
        w = w * (target_lipschitz / torch.linalg.matrix_norm(w, ord=2))
    phase = 2 * math.pi * torch.rand(m, generator=gen, dtype=f64)
    offset = torch.zeros(m, dtype=f64)
    if balance:
        scores = torch.sin(x_ref @ w.T + phase)
        for _ in range(_BALANCE_STEPS):
            share = torch.bincount(torch.argmax(scores + offset, dim=1), minlength=m) / len(scores)
            offset = offset - 0.2 * (share.to(f64) - 1.0 / m)
    return w, phase, offset


def _load_manifold(name: str, seed: int, *, given: set[str], **opts: Any) -> Dataset:
    r"""``manifold``: points :math:`x=g(z)\in\mathbb R^n`, :math:`z\sim\mathrm{Unif}[0,1]^d`.

    The generator :math:`g` (see :class:`ManifoldGenerator`) and the target
    :math:`f^*(x)=\sin(Wx+c)+t\in\mathbb R^m` are fixed by ``generator_seed`` (not by ``seed``); the
    latents of the train and test points and the label noise are drawn from ``seed``.

    - ``task="regression"``: ``y = f^*(x)`` as float ``[N, num_outputs]`` (default 1 output);
      ``target_noise`` :math:`\sigma\ge0` adds i.i.d. :math:`\mathcal N(0,\sigma^2)` noise to the
      **training** targets only (the test targets stay :math:`f^*(x)`);
    - ``task="classification"`` (default): ``y = argmax_c f^*_c(x)`` with ``m = num_classes``
      (default 2) scores; ``label_noise`` flips that fraction of training labels (exactly).

    Lipschitz constants (Euclidean norms): :math:`\mathrm{Lip}(g)\le L_g=\|A_2\|_2\|A_1\|_2`
    which equals ``lipschitz`` (``extras["lipschitz"]`` holds the computed product), and
    :math:`\mathrm{Lip}(f^*)\le L^*=\|W\|_2` on all of :math:`\mathbb R^n` (equality for one
    output, since :math:`|\cos|` reaches 1) in ``extras["target_lipschitz"]``. The target is a
    function of :math:`x` directly, so :math:`L^*` needs no co-Lipschitz bound for :math:`g`.

    The inputs are **not** standardised: rescaling would change :math:`L_g` and :math:`L^*`. Use
    ``lipschitz`` to set the scale of the support instead.

    Options: ``n_train`` (1000), ``n_test`` (1000), ``d`` (2), ``n`` (16), ``hidden`` (32, the width
    :math:`h` of :math:`g`), ``lipschitz`` (1.0), ``generator_seed`` (0), ``task``,
    ``num_classes`` (classification, default 2), ``num_outputs`` (regression, default 1),
    ``target_lipschitz`` (default: one period of each score across the support), ``label_noise``
    (classification, default 0.0), ``target_noise`` (regression, default 0.0), ``dtype``.

    extras: ``generator`` (the :class:`ManifoldGenerator`, latents ``[M, d]`` -> ``[M, n]``),
    ``latent_train`` / ``latent_test`` (``[N, d]`` in the data dtype; ``x == generator(latent)``),
    ``lipschitz`` (:math:`L_g`), ``d``, ``n``, ``task``, ``sample_support(m, *, seed,
    return_latent=False)`` (fresh points of :math:`S`, from a stream independent of the
    training latents), ``target_fn`` (:math:`x\mapsto\sin(Wx+c)+t`, ``[M, n] -> [M, m]``),
    ``target_weight`` ``W``, ``target_phase`` ``c``, ``target_offset`` ``t`` (class-balancing
    constants for classification, zero for regression), ``target_lipschitz`` (:math:`L^*`); for
    classification also ``label_fn`` (``x -> argmax``), ``label_noise``, ``noisy_mask``,
    ``y_train_clean``, ``class_counts``; for regression ``target_noise`` and ``y_train_clean``
    (:math:`f^*` at the training inputs).
    """
    d = V.integer("d", opts["d"], minimum=1)
    n = V.integer("n", opts["n"], minimum=1)
    hidden = V.integer("hidden", opts["hidden"], minimum=1)
    lipschitz = V.positive("lipschitz", opts["lipschitz"])
    generator_seed = V.integer("generator_seed", opts["generator_seed"], minimum=0)
    n_train = V.integer("n_train", opts["n_train"], minimum=1)
    n_test = V.integer("n_test", opts["n_test"], minimum=1)
    task = V.one_of("task", opts["task"], ("classification", "regression"))
    if task == "classification":
        for bad in ("num_outputs",):
            if bad in given:
                raise ValueError(
                    f"option {bad!r} applies to task='regression' only; use num_classes for classification"
                )
        if "target_noise" in given:
            raise ValueError(
                "option 'target_noise' applies to task='regression' only; use label_noise for classification"
            )
        num_classes = V.integer("num_classes", 2 if opts["num_classes"] is None else opts["num_classes"], minimum=2)
        noise = V.fraction("label_noise", 0.0 if opts["label_noise"] is None else opts["label_noise"])
        m = num_classes
    else:
        for bad in ("num_classes", "label_noise"):
            if bad in given:
                raise ValueError(
                    f"option {bad!r} applies to task='classification' only; use num_outputs for regression"
                )
        m = V.integer("num_outputs", 1 if opts["num_outputs"] is None else opts["num_outputs"], minimum=1)
        num_classes, noise = 0, 0.0
    target_noise = 0.0 if opts["target_noise"] is None else V.non_negative("target_noise", opts["target_noise"])
    target_lipschitz = opts["target_lipschitz"]
    if target_lipschitz is not None:
        target_lipschitz = V.positive("target_lipschitz", target_lipschitz)
    dtype = opts["dtype"]

    g = _make_generator(d, n, hidden, lipschitz, generator_seed)
    w, phase, offset = _make_target(g, m, target_lipschitz, generator_seed, balance=task == "classification")
    l_star = float(torch.linalg.matrix_norm(w, ord=2))

    def target_fn(x: torch.Tensor) -> torch.Tensor:
        """f*(x) = sin(W x + c) + t: ``[M, n] -> [M, m]`` (float64 inside, x's dtype out)."""
        return (torch.sin(x.to(torch.float64) @ w.T + phase) + offset).to(x.dtype)

    def label_fn(x: torch.Tensor) -> torch.Tensor:
        """Class ids argmax_c f*_c(x): ``[M, n] -> int64 [M]``."""
        return torch.argmax(torch.sin(x.to(torch.float64) @ w.T + phase) + offset, dim=1)

    def sample_support(m_points: int, *, seed: int, return_latent: bool = False):
        """``m_points`` fresh points of S = g([0,1]^d): ``[m, n]`` (and latents ``[m, d]``)."""
        m_points = V.positive_int("m", m_points)
        seed = V.non_negative_int("seed", seed)
        z = torch.rand(m_points, d, generator=_torch_generator(seed, "manifold_support"), dtype=torch.float64).to(dtype)
        x = g(z)
        return (x, z) if return_latent else x

    gen = _torch_generator(seed, "manifold_latent")
    z_train = torch.rand(n_train, d, generator=gen, dtype=torch.float64).to(dtype)
    z_test = torch.rand(n_test, d, generator=gen, dtype=torch.float64).to(dtype)
    x_train, x_test = g(z_train), g(z_test)
    extras: dict[str, Any] = {
        "generator": g,
        "latent_train": z_train,
        "latent_test": z_test,
        "lipschitz": g.lipschitz_bound,
        "d": d,
        "n": n,
        "task": task,
        "sample_support": sample_support,
        "target_fn": target_fn,
        "target_weight": w,
        "target_phase": phase,
        "target_offset": offset,
        "target_lipschitz": l_star,
    }
    if task == "classification":
        y_clean = label_fn(x_train)
        y_train, mask = _label_noise(y_clean, num_classes, noise, seed)
        y_test = label_fn(x_test)
        extras.update(_noise_extras(y_clean, mask, noise))
        extras["label_fn"] = label_fn
        extras["class_counts"] = torch.bincount(y_clean, minlength=num_classes)
        what = f"{num_classes}-class labels argmax sin(Wx+c)+t"
    else:
        y_clean, y_test = target_fn(x_train), target_fn(x_test)
        y_train = y_clean
        if target_noise > 0:
            eps = torch.randn(y_clean.shape, generator=_torch_generator(seed, "target_noise"), dtype=torch.float64)
            y_train = (y_clean.to(torch.float64) + target_noise * eps).to(y_clean.dtype)
        extras.update({"target_noise": target_noise, "y_train_clean": y_clean})
        what = f"regression target sin(Wx+c) with {m} output(s)" + (
            f", Gaussian noise of std {target_noise:g} on the training targets" if target_noise else ""
        )
    desc = (
        f"manifold: {n_train} train / {n_test} test points on g([0,1]^{d}) in R^{n} "
        f"(L_g={g.lipschitz_bound:.3g}, generator_seed={generator_seed}), {what}, "
        f"L*={l_star:.3g}" + (f", {noise:.0%} train label noise" if noise else "")
    )
    return Dataset(name, x_train, y_train, x_test, y_test, num_classes, (n,), desc, types.MappingProxyType(extras))
