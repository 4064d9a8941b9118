r"""Per-sample input-output Jacobians, their norms, and the layer structure behind them.

Notation follows the book's notation page and its chapter *The conjugate matrix*. The network is a composition
of blocks :math:`f = f_L \circ \dots \circ f_1`, with features :math:`x^{(0)} = x` and
:math:`x^{(l)} = f_l(\theta_l, x^{(l-1)}) \in \mathbb R^{n_l}` (flattened), :math:`k = n_L`.

* input-output Jacobian :math:`Jf(x) = \partial f/\partial x \in \mathbb R^{k \times n_0}`
  (:func:`input_jacobians`, :func:`jacobian_norms`, :func:`jacobian_stats`);
* layer Jacobians :math:`Jf_l = \partial f_l / \partial x^{(l-1)} \in \mathbb R^{n_l\times n_{l-1}}`
  and partial products :math:`Jf_{L:l+1} = Jf_L \cdots Jf_{l+1}` (:func:`layer_jacobians`,
  :func:`partial_products`);
* layer parameter derivatives :math:`Df_l = \partial f_l/\partial\theta_l \in \mathbb R^{n_l\times p_l}`
  (:func:`layer_parameter_jacobians`) and the per-sample parameter Jacobian
  :math:`\Phi_i = \partial f/\partial\theta\,(x_i) \in \mathbb R^{k\times P}`
  (:func:`per_sample_parameter_jacobians`), whose layer-:math:`l` block is
  :math:`Jf_{L:l+1}(x_i)\,Df_l(x_i)`;
* (the conjugate matrix :math:`K = AA^\top` of the Gauss-Newton matrix, built from these layer
  quantities, is in :mod:`sharpjac.conjugate`);
* Lipschitz bounds and the local variation :math:`V_B(Jf)` of the Jacobian on a ball
  (:func:`lipschitz_lower_bound`, :func:`lipschitz_upper_bound`, :func:`local_variation`).

Per-sample Jacobians assume that samples do not interact inside the model: every function here
evaluates the model on **one sample at a time** (a batch of size 1, vectorised with
:func:`torch.func.vmap`). A model with batch normalisation in training mode couples the samples
of a batch, so its "per-sample Jacobian" is not defined; such models are rejected with a
``ValueError`` - put the model in evaluation mode (``model.eval()``) yourself before calling.
Nothing here ever changes the train/eval mode, the device or the parameters of a model.

Example:
    >>> import torch
    >>> from torch import nn
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <...>
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
    >>> x = torch.randn(4, 2, 3)
    >>> input_jacobians(model, x).shape
    torch.Size([4, 3, 6])
    >>> jacobian_norms(model, x, "spectral").shape
    torch.Size([4])
    >>> len(split_layers(model))
    2
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, jacrev, jvp, vjp, vmap

from . import validation as V

__all__ = [
    "JacobianStats",
    "input_jacobians",
    "jacobian_norms",
    "jacobian_stats",
    "split_layers",
    "layer_features",
    "layer_jacobians",
    "partial_products",
    "layer_parameter_jacobians",
    "per_sample_parameter_jacobians",
    "lipschitz_lower_bound",
    "lipschitz_upper_bound",
    "local_variation",
    "trainable",
    "check_model",
    "check_batch",
    "probe",
    "block_jacobians",
    "block_param_jacobians",
]

_NORMS = ("spectral", "frobenius")
_METHODS = ("exact", "power", "lanczos")

# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def trainable(module: nn.Module) -> list[tuple[str, Tensor]]:
    """``(name, parameter)`` of every parameter of ``module`` with ``requires_grad``."""
    return [(n, p) for n, p in module.named_parameters() if p.requires_grad]


def check_model(model: nn.Module) -> None:
    """Refuse a non-module, a model without trainable parameters, or batch norm in training mode."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not trainable(model):
        raise ValueError(
            f"model must have at least one trainable parameter; {type(model).__name__} has "
            f"{sum(1 for _ in model.parameters())} parameters, none with requires_grad=True"
        )
    for name, mod in model.named_modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm) and mod.training:
            raise ValueError(
                f"model contains {type(mod).__name__} {name!r} in training mode; batch "
                "normalisation in training mode couples the samples of a batch, so per-sample "
                "Jacobians are undefined. Call model.eval() yourself before computing Jacobians "
                "(sharpjac never changes the train/eval mode)."
            )


def _model_dtype(model: nn.Module) -> torch.dtype:
    return next(iter(model.parameters())).dtype


def check_batch(model: nn.Module, x: Tensor, name: str = "x") -> None:
    """Validate a batch ``x`` of shape [N, *input_shape] for ``model``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [N, *input_shape], got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(
            f"{name} must have shape [N, *input_shape] with at least 2 dimensions, got shape "
            f"{tuple(x.shape)}; add a batch dimension (x.unsqueeze(0)) for a single sample"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}; need N >= 1 samples")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    dtype = _model_dtype(model)
    if x.dtype != dtype:
        raise TypeError(f"{name} has dtype {x.dtype} but the model's parameters have dtype {dtype}")


def _check_single(model: nn.Module, x_single: Tensor) -> None:
    if not isinstance(x_single, Tensor):
        raise TypeError(f"x_single must be a torch.Tensor of shape input_shape, got {type(x_single).__name__}")
    if x_single.ndim < 1:
        raise ValueError(
            f"x_single must be one sample of shape input_shape (no batch dimension), got shape {tuple(x_single.shape)}"
        )
    check_batch(model, x_single.unsqueeze(0), "x_single")


def _per_sample(fn: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """Wrap a batched function into one of a single sample, output flattened to [k]."""

    def f(xi: Tensor) -> Tensor:
        out = fn(xi.unsqueeze(0))
        if out.shape[0] != 1:
            raise ValueError(
                f"model output on a batch of 1 has shape {tuple(out.shape)}; expected [1, ...] "
                "(the first output dimension must be the batch dimension)"
            )
        return out.reshape(-1)

    return f


def probe(model: nn.Module, x: Tensor, name: str = "x") -> int:
    """Evaluate the model on the first sample of ``x`` ([N, *input_shape]); return its number of outputs k.

    A model that cannot be evaluated on ``x``, or whose output has no batch dimension, is a
    ``ValueError`` naming ``name``.
    """
    try:
        with torch.no_grad():
            out = model(x[:1])
    except RuntimeError as err:  # shape mismatch inside the model
        raise ValueError(
            f"model cannot be evaluated on {name} of shape {tuple(x.shape)} (per-sample input "
            f"shape {tuple(x.shape[1:])}): {err}"
        ) from err
    if out.ndim < 1 or out.shape[0] != 1:
        raise ValueError(
            f"model output on a batch of shape {tuple(x[:1].shape)} has shape {tuple(out.shape)};"
            " expected [1, ...] (batch dimension first)"
        )
    return int(out[0].numel())


def _vmap_error(err: Exception) -> RuntimeError:
    return RuntimeError(
        "torch.func.vmap failed while computing per-sample Jacobians. Per-sample Jacobians "
        "need a model whose samples do not interact and which is deterministic: put the model "
        "in evaluation mode yourself (model.eval(), e.g. for dropout or batch normalisation) "
        f"before calling. Original error: {err}"
    )


def _jacobian_chunks(fn: Callable[[Tensor], Tensor], x: Tensor, chunk_size: int) -> Iterator[Tensor]:
    """Yield per-sample Jacobians [B, k, n] of the batched ``fn`` chunk by chunk."""
    f = _per_sample(fn)
    jac = vmap(jacrev(f))
    for xb in x.split(chunk_size):
        try:
            J = jac(xb)
        except RuntimeError as err:
            raise _vmap_error(err) from err
        yield J.reshape(xb.shape[0], J.shape[1], -1)


# --------------------------------------------------------------------------------------------
# input-output Jacobians and their norms
# --------------------------------------------------------------------------------------------


def input_jacobians(model: nn.Module, x: Tensor, *, chunk_size: int = 256, create_graph: bool = False) -> Tensor:
    r"""Per-sample input-output Jacobians :math:`Jf(x_i)=\partial f/\partial x\,(x_i)`.

    Computed with ``torch.func.vmap(torch.func.jacrev(f_1))`` where ``f_1`` evaluates the model on
    one sample (a batch of 1), in chunks of ``chunk_size`` samples (``k`` reverse passes per
    chunk). Inputs of any shape are flattened: :math:`n_0=\prod` ``x.shape[1:]``, in the
    row-major order of ``x[i].reshape(-1)``; the output is flattened likewise.

    The model must treat samples independently (use ``model.eval()`` for batch normalisation
    and dropout; a ``ValueError`` is raised for batch normalisation in training mode).

    Args:
        model: module mapping [B, *input_shape] to [B, *output_shape] (k = prod(output_shape)).
        x: inputs, shape [N, *input_shape], same dtype as the model.
        chunk_size: samples per vectorised chunk (memory ~ chunk_size * k * n_0).
        create_graph: keep the autograd graph so the result can be differentiated w.r.t. the
            parameters (e.g. for a Jacobian penalty); by default the result is detached.

    Returns:
        Tensor [N, k, n_0].

    Raises:
        ValueError: empty ``x``, ``x`` without a batch dimension, a model without trainable
            parameters or one that cannot be evaluated on ``x``, batch norm in training mode.
    """
    check_model(model)
    check_batch(model, x)
    V.positive_int("chunk_size", chunk_size)
    probe(model, x)
    with torch.set_grad_enabled(create_graph and torch.is_grad_enabled()):
        return torch.cat(list(_jacobian_chunks(model, x, chunk_size)))


def _gram(J: Tensor) -> Tensor:
    """The smaller Gram matrix of J [B, a, b]: J J^T if a <= b else J^T J."""
    return J @ J.mT if J.shape[-2] <= J.shape[-1] else J.mT @ J


def _spectral_from_gram(M: Tensor) -> Tensor:
    # the largest eigenvalue of a PSD Gram matrix has relative accuracy ~ eps, so its square
    # root is the spectral norm to working precision (much cheaper than an SVD of k x n_0).
    return torch.linalg.eigvalsh(M)[..., -1].clamp_min(0).sqrt()


def _frobenius_from_gram(M: Tensor) -> Tensor:
    return M.diagonal(dim1=-2, dim2=-1).sum(-1).clamp_min(0).sqrt()


def _reshape_only(module: nn.Module) -> bool:
    return isinstance(module, (nn.Flatten, nn.Identity))


def _gram_chunks(model: nn.Module, x: Tensor, chunk_size: int, k: int) -> Iterator[Tensor]:
    r"""Yield per-sample Gram matrices :math:`M_i = Jf(x_i)Jf(x_i)^\top` ([B, k, k]) or
    :math:`Jf^\top Jf` ([B, n_0, n_0]) chunk by chunk.

    Fast path: when the model is sequential and starts with reshapes (``Flatten``) followed by
    an ``nn.Linear`` :math:`h = W_1 x + b_1`, then :math:`Jf = J_h W_1` with
    :math:`J_h = \partial f/\partial h \in\mathbb R^{k\times n_1}` and
    :math:`Jf Jf^\top = J_h (W_1W_1^\top) J_h^\top` - the :math:`k\times n_0` Jacobian is never
    formed, which saves the dominant :math:`N k n_1 n_0` cost when :math:`n_0 \gg n_1`.
    """
    linear, rest = _first_linear_split(model, x)
    if linear is not None and linear.in_features > linear.out_features >= k:
        WWt = linear.weight @ linear.weight.mT
        for xb in x.split(chunk_size):
            h = linear(xb.reshape(xb.shape[0], -1))
            for Jh in _jacobian_chunks(rest, h, chunk_size):
                yield Jh @ WWt @ Jh.mT
        return
    for J in _jacobian_chunks(model, x, chunk_size):
        yield _gram(J)


def _first_linear_split(model: nn.Module, x: Tensor) -> tuple[nn.Linear | None, nn.Module | None]:
    """If the model is [Flatten/Identity..., Linear, rest...] acting on flattened samples,
    return (linear, rest), else (None, None)."""
    if isinstance(model, nn.Sequential):
        seq = model
    else:
        seq = getattr(model, "layers", None)
        if not isinstance(seq, nn.Sequential):
            return None, None
        with torch.no_grad():  # trust model(x) == model.layers(x) only if it holds here
            if not torch.equal(model(x[:2]), seq(x[:2])):
                return None, None
    mods = list(seq)
    flat = x.ndim == 2
    for i, m in enumerate(mods):
        if isinstance(m, nn.Linear):
            return (m, nn.Sequential(*mods[i + 1 :])) if flat else (None, None)
        if isinstance(m, nn.Flatten) and m.start_dim == 1 and m.end_dim == -1:
            flat = True
        elif not isinstance(m, nn.Identity):
            return None, None
    return None, None


def jacobian_norms(
    model: nn.Module,
    x: Tensor,
    norm: str = "spectral",
    *,
    chunk_size: int = 256,
    method: str = "exact",
    max_iter: int = 300,
    tol: float = 1e-6,
    seed: int = 0,
    create_graph: bool = False,
) -> Tensor:
    r"""Per-sample norms :math:`\|Jf(x_i)\|` of the input-output Jacobian.

    ``method="exact"`` (default): from the per-sample Gram matrix :math:`M_i=Jf(x_i)Jf(x_i)^\top`
    (the smaller of :math:`JJ^\top`, :math:`J^\top J`), spectral norm
    :math:`\sqrt{\lambda_{\max}(M_i)}` (``eigvalsh``; equal to the largest singular value to
    working precision) and Frobenius norm :math:`\sqrt{\operatorname{tr}M_i}`. For a model that
    starts with ``Flatten``/``Linear`` the Gram matrix is formed as
    :math:`J_h(W_1W_1^\top)J_h^\top` without the :math:`k\times n_0` Jacobian (same value).

    ``method="lanczos"`` / ``method="power"`` (spectral only; for many outputs, e.g. k > 32):
    matrix-free, never materialising :math:`Jf`. Each step applies every sample's
    :math:`Jf^\top Jf` once (a stored forward pass, two vector-Jacobian products: ~3 backward
    passes of the chunk). Both return the top Ritz value / Rayleigh quotient, which never
    exceeds :math:`\sigma_{\max}^2`: the estimates are **lower estimates** of the spectral norm.

    * ``"lanczos"`` (recommended): batched Lanczos with full re-orthogonalisation; stops when
      every sample's Ritz residual :math:`\beta_m|e_m^\top s|\le` ``tol`` :math:`\theta`; the
      Ritz value's error is then :math:`O(\mathrm{tol}^2\theta^2/\mathrm{gap})`. Since
      :math:`\operatorname{rank}Jf^\top Jf\le k`, it terminates (exactly) after at most k+1
      steps, whatever the spectral gap. Memory: one [chunk, n_0] vector per step.
    * ``"power"``: batched power iteration, per-sample stop at relative residual
      :math:`\|Jf^\top Jfv-\lambda v\|\le` ``tol`` :math:`\lambda` (error then
      :math:`O(\mathrm{tol}^2\lambda^2/\mathrm{gap})`). Needs
      :math:`O(\log(1/\mathrm{tol})/\log(\sigma_1^2/\sigma_2^2))` steps: slow when
      :math:`\sigma_2\approx\sigma_1` (common at initialisation, e.g.
      :math:`\sigma_2^2/\sigma_1^2=0.976` on a CIFAR MLP); samples that hit ``max_iter`` return
      their current, less accurate, lower estimate.

    Both are tested against the exact value (relative error < 1e-9 at ``tol=1e-6``).

    Args:
        model: see :func:`input_jacobians`.
        x: inputs [N, *input_shape].
        norm: ``"spectral"`` (operator 2-norm) or ``"frobenius"``.
        chunk_size: samples per vectorised chunk.
        method: ``"exact"``, ``"lanczos"`` or ``"power"``.
        max_iter, tol, seed: controls of the matrix-free methods (ignored by ``"exact"``).
        create_graph: keep the autograd graph (differentiable w.r.t. the parameters).

    Returns:
        Tensor [N] of norms.
    """
    if norm not in _NORMS:
        raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if method != "exact" and norm != "spectral":
        raise ValueError(f"method={method!r} supports norm='spectral' only, got norm={norm!r}")
    check_model(model)
    check_batch(model, x)
    V.positive_int("chunk_size", chunk_size)
    k = probe(model, x)
    with torch.set_grad_enabled(create_graph and torch.is_grad_enabled()):
        if method != "exact":
            solver = _power_spectral if method == "power" else _lanczos_spectral
            return solver(model, x, chunk_size=chunk_size, max_iter=max_iter, tol=tol, seed=seed)
        reduce = _spectral_from_gram if norm == "spectral" else _frobenius_from_gram
        return torch.cat([reduce(M) for M in _gram_chunks(model, x, chunk_size, k)])


def _gauss_newton_matvec(model: nn.Module, xb: Tensor) -> Callable[[Tensor], Tensor]:
    r"""Per-sample :math:`v_i \mapsto Jf(x_i)^\top Jf(x_i) v_i` for a chunk, without forming Jf.

    One forward pass is stored (``vjp``); :math:`u = Jv` is the vjp of the (linear) map
    :math:`u\mapsto J^\top u` ("double vjp", cheaper than forward mode here), then
    :math:`J^\top u` is one more vjp. Samples are independent because the model is evaluated
    per sample under ``vmap``.
    """
    batched = vmap(_per_sample(model))
    out, vjp_fn = vjp(batched, xb)
    u0 = torch.zeros_like(out)

    def matvec(v: Tensor) -> Tensor:
        _, vjp_of_vjp = vjp(lambda u: vjp_fn(u)[0], u0)
        (u,) = vjp_of_vjp(v)  # J_i v_i, [B, k]
        return vjp_fn(u)[0]  # J_i^T J_i v_i, [B, *input_shape]

    return matvec


def _power_spectral(model: nn.Module, x: Tensor, *, chunk_size: int, max_iter: int, tol: float, seed: int) -> Tensor:
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol!r}")
    gen = torch.Generator(device=x.device).manual_seed(seed)
    out = []
    tiny = torch.finfo(x.dtype).tiny
    for xb in x.split(chunk_size):
        B = xb.shape[0]
        v = torch.randn((B, xb[0].numel()), generator=gen, device=x.device, dtype=x.dtype)
        v = v / v.norm(dim=1, keepdim=True)
        try:
            mv = _gauss_newton_matvec(model, xb)
            lam = torch.zeros(B, dtype=x.dtype, device=x.device)
            done = torch.zeros(B, dtype=torch.bool, device=x.device)
            for _ in range(max_iter):
                w = mv(v.reshape(xb.shape)).reshape(B, -1)
                lam_new = (w * v).sum(1)  # Rayleigh quotient (v is unit)
                res = (w - lam_new[:, None] * v).norm(dim=1)
                wn = w.norm(dim=1)
                lam = torch.where(done, lam, lam_new)
                done = done | (res <= tol * lam_new.abs()) | (wn <= tiny)
                if bool(done.all()):
                    break
                v = torch.where(done[:, None], v, w / wn.clamp_min(tiny)[:, None])
        except RuntimeError as err:
            raise _vmap_error(err) from err
        out.append(lam.clamp_min(0).sqrt())
    return torch.cat(out)


def _lanczos_spectral(model: nn.Module, x: Tensor, *, chunk_size: int, max_iter: int, tol: float, seed: int) -> Tensor:
    """Batched Lanczos (full re-orthogonalisation) on each sample's Jf^T Jf."""
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol!r}")
    gen = torch.Generator(device=x.device).manual_seed(seed)
    out = []
    for xb in x.split(chunk_size):
        B, n = xb.shape[0], xb[0].numel()
        q = torch.randn((B, n), generator=gen, device=x.device, dtype=x.dtype)
        Q = [q / q.norm(dim=1, keepdim=True)]
        alphas: list[Tensor] = []
        betas: list[Tensor] = []
        try:
            mv = _gauss_newton_matvec(model, xb)
            for _ in range(min(max_iter, n)):
                w = mv(Q[-1].reshape(xb.shape)).reshape(B, n)
                alphas.append((w * Q[-1]).sum(1))
                Qm = torch.stack(Q, dim=1)  # [B, j+1, n]
                for _ in range(2):  # full re-orthogonalisation
                    w = w - ((Qm @ w[:, :, None]).mT @ Qm)[:, 0]
                beta = w.norm(dim=1)
                T = torch.diag_embed(torch.stack(alphas, 1))
                if betas:
                    off = torch.stack(betas, 1)
                    T = T + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)
                evals, evecs = torch.linalg.eigh(T)
                theta = evals[:, -1]
                scale = theta.abs().clamp_min(torch.finfo(x.dtype).tiny)
                if bool((beta * evecs[:, -1, -1].abs() <= tol * scale).all()):
                    break
                betas.append(beta)
                # exhausted Krylov space (beta ~ 0): continue with a zero vector (adds zero
                # eigenvalues to T, leaves the top one)
                nz = beta > 10 * torch.finfo(x.dtype).eps * scale
                Q.append(torch.where(nz[:, None], w / beta.clamp_min(torch.finfo(x.dtype).tiny)[:, None], 0.0))
        except RuntimeError as err:
            raise _vmap_error(err) from err
        out.append(theta.clamp_min(0).sqrt())
    return torch.cat(out)


@dataclass(frozen=True)
class JacobianStats:
    r"""Maximum and mean of :math:`\|Jf(x_i)\|` over a sample, spectral and Frobenius norm.

    The theory (T2-T4) uses ``spectral_max``; the book reports all four.
    """

    spectral_max: float
    spectral_mean: float
    frobenius_max: float
    frobenius_mean: float

    def as_dict(self) -> dict[str, float]:
        """The four statistics as a plain ``dict`` (for DataFrame rows)."""
        return asdict(self)


def jacobian_stats(model: nn.Module, x: Tensor, *, chunk_size: int = 256) -> JacobianStats:
    r"""All four Jacobian statistics from one Jacobian evaluation per sample.

    Computes the per-sample Gram matrix :math:`M_i = Jf(x_i)Jf(x_i)^\top` once (see
    :func:`jacobian_norms`) and reads both :math:`\|Jf(x_i)\|_2=\sqrt{\lambda_{\max}(M_i)}` and
    :math:`\|Jf(x_i)\|_F=\sqrt{\operatorname{tr}M_i}` from it.

    Args:
        model: see :func:`input_jacobians`.
        x: inputs [N, *input_shape].
        chunk_size: samples per vectorised chunk.

    Returns:
        :class:`JacobianStats` (Python floats).
    """
    check_model(model)
    check_batch(model, x)
    V.positive_int("chunk_size", chunk_size)
    k = probe(model, x)
    spec, frob = [], []
    with torch.no_grad():
        for M in _gram_chunks(model, x, chunk_size, k):
            spec.append(_spectral_from_gram(M))
            frob.append(_frobenius_from_gram(M))
    s, f = torch.cat(spec), torch.cat(frob)
    return JacobianStats(
        spectral_max=float(s.max()),
        spectral_mean=float(s.mean()),
        frobenius_max=float(f.max()),
        frobenius_mean=float(f.mean()),
    )


# --------------------------------------------------------------------------------------------
# layer structure
# --------------------------------------------------------------------------------------------


def _sequential(model: nn.Module) -> nn.Sequential:
    if isinstance(model, nn.Sequential):
        return model
    layers = getattr(model, "layers", None)
    if isinstance(layers, nn.Sequential):
        return layers
    raise TypeError(
        f"model must be an nn.Sequential or have a `.layers` attribute that is an nn.Sequential; "
        f"got {type(model).__name__} with .layers of type {type(layers).__name__}"
    )


def split_layers(model: nn.Module) -> list[nn.Sequential]:
    r"""Split a sequential model into the paper's blocks :math:`f_1,\dots,f_L`.

    Each block starts at a child module with trainable parameters and absorbs the following
    parameter-free children (activations, pooling, reshapes); leading parameter-free children
    (e.g. ``Flatten``) go into block 1. So ``Sequential(Flatten, Linear, Tanh, Linear, Tanh,
    Linear)`` gives the 3 blocks ``[Flatten, Linear, Tanh]``, ``[Linear, Tanh]``, ``[Linear]``,
    i.e. :math:`f_l(z)=\sigma(W_lz+b_l)`. A child with parameters (a residual block, a nested
    ``Sequential``) is one unit. The blocks share the model's modules (no copies).

    Args:
        model: an ``nn.Sequential``, or a module whose ``.layers`` is an ``nn.Sequential`` and
            whose forward is ``self.layers(x)``.

    Returns:
        list of L ``nn.Sequential`` blocks.

    Raises:
        TypeError: not sequential. ValueError: no trainable parameters.
    """
    seq = _sequential(model)
    blocks: list[list[nn.Module]] = []
    pending: list[nn.Module] = []
    for m in seq:
        if trainable(m):
            blocks.append(pending + [m])
            pending = []
        elif blocks:
            blocks[-1].append(m)
        else:
            pending.append(m)
    if not blocks:
        raise ValueError(
            f"model {type(model).__name__} has no child module with trainable parameters; cannot split it into layers"
        )
    return [nn.Sequential(*b) for b in blocks]


def layer_features(model: nn.Module, x: Tensor) -> list[Tensor]:
    r"""Features :math:`[x^{(0)},x^{(1)},\dots,x^{(L)}]` of the blocks of :func:`split_layers`.

    Args:
        model: sequential model (see :func:`split_layers`).
        x: inputs [N, *input_shape].

    Returns:
        list of L+1 tensors, ``[N, *shape_l]`` in the shapes the blocks produce
        (:math:`x^{(0)}=x`, :math:`x^{(L)}=f(x)`); follows the ambient grad mode.
    """
    blocks = split_layers(model)
    check_batch(model, x)
    feats = [x]
    for b in blocks:
        try:
            feats.append(b(feats[-1]))
        except RuntimeError as err:
            raise ValueError(f"model cannot be evaluated on x of shape {tuple(x.shape)}: {err}") from err
    return feats


def block_jacobians(blocks: Sequence[nn.Module], feats: Sequence[Tensor]) -> list[Tensor]:
    """Per-sample Jf_l for all samples: list of [N, n_l, n_{l-1}]."""
    out = []
    for b, z in zip(blocks, feats[:-1]):
        try:
            J = vmap(jacrev(_per_sample(b)))(z)
        except RuntimeError as err:
            raise _vmap_error(err) from err
        out.append(J.reshape(z.shape[0], J.shape[1], -1))
    return out


def block_param_jacobians(blocks: Sequence[nn.Module], feats: Sequence[Tensor]) -> list[Tensor]:
    """Per-sample Df_l for all samples: list of [N, n_l, p_l] (parameters() order)."""
    out = []
    for b, z in zip(blocks, feats[:-1]):
        params = dict(trainable(b))

        def g(p: dict[str, Tensor], zi: Tensor, b: nn.Module = b) -> Tensor:
            return functional_call(b, p, (zi.unsqueeze(0),)).reshape(-1)

        try:
            D = vmap(jacrev(g), in_dims=(None, 0))(params, z)
        except RuntimeError as err:
            raise _vmap_error(err) from err
        N = z.shape[0]
        out.append(torch.cat([D[n].reshape(N, D[n].shape[1], -1) for n in params], dim=-1))
    return out


def layer_jacobians(model: nn.Module, x_single: Tensor) -> list[Tensor]:
    r"""Layer Jacobians :math:`Jf_l=\partial f_l/\partial x^{(l-1)}` at one sample.

    Args:
        model: sequential model (see :func:`split_layers`).
        x_single: one sample, shape ``input_shape`` (no batch dimension).

    Returns:
        list of L tensors; entry l-1 is :math:`Jf_l(x^{(l-1)})` of shape
        [n_l, n_{l-1}] (features flattened). Their product
        :math:`Jf_L\cdots Jf_1` is :math:`Jf(x)`.
    """
    check_model(model)
    _check_single(model, x_single)
    with torch.no_grad():
        feats = layer_features(model, x_single.unsqueeze(0))
        return [J[0] for J in block_jacobians(split_layers(model), feats)]


def partial_products(jacobians: Sequence[Tensor]) -> list[Tensor]:
    r"""Partial products :math:`Jf_{L:l+1}=Jf_L\cdots Jf_{l+1}` for :math:`l=0,\dots,L`.

    Args:
        jacobians: the layer Jacobians ``[Jf_1, ..., Jf_L]`` (shapes [n_l, n_{l-1}]), e.g. from
            :func:`layer_jacobians`.

    Returns:
        list of L+1 tensors; entry l is :math:`Jf_{L:l+1}` of shape [n_L, n_l]: entry 0 is the
        input-output Jacobian :math:`Jf`, entry L the identity :math:`I_{n_L}`.
    """
    if not isinstance(jacobians, Sequence) or not jacobians:
        raise ValueError("jacobians must be a non-empty sequence of [n_l, n_{l-1}] matrices")
    for l, J in enumerate(jacobians):
        if not isinstance(J, Tensor) or J.ndim != 2:
            raise ValueError(f"jacobians[{l}] must be a 2-d tensor [n_l, n_(l-1)], got {getattr(J, 'shape', J)!r}")
        if l > 0 and jacobians[l].shape[1] != jacobians[l - 1].shape[0]:
            raise ValueError(
                f"jacobians[{l}] has shape {tuple(J.shape)} but jacobians[{l - 1}] has shape "
                f"{tuple(jacobians[l - 1].shape)}; need jacobians[l].shape[1] == jacobians[l-1].shape[0]"
            )
    last = jacobians[-1]
    P = [torch.eye(last.shape[0], dtype=last.dtype, device=last.device)]
    for J in reversed(jacobians):
        P.append(P[-1] @ J)
    return P[::-1]


def layer_parameter_jacobians(model: nn.Module, x_single: Tensor) -> list[Tensor]:
    r"""Layer parameter derivatives :math:`Df_l=\partial f_l/\partial\theta_l` at one sample.

    Block l's output is differentiated w.r.t. its own trainable parameters, flattened and
    concatenated in ``block.parameters()`` order, at the sample's feature :math:`x^{(l-1)}`. For a
    dense block :math:`f_l(z)=\sigma(W_lz+b_l)`:
    :math:`Df_l = D_l\,[\,I\otimes z^\top \mid I\,]` and
    :math:`Df_l(x_i)Df_l(x_j)^\top=(\langle x^{(l-1)}_i,x^{(l-1)}_j\rangle+1)D_l(x_i)D_l(x_j)`.

    Args:
        model: sequential model (see :func:`split_layers`).
        x_single: one sample, shape ``input_shape`` (no batch dimension).

    Returns:
        list of L tensors of shape [n_l, p_l].
    """
    check_model(model)
    _check_single(model, x_single)
    with torch.no_grad():
        feats = layer_features(model, x_single.unsqueeze(0))
        return [D[0] for D in block_param_jacobians(split_layers(model), feats)]


def per_sample_parameter_jacobians(model: nn.Module, x: Tensor, *, chunk_size: int = 64) -> Tensor:
    r"""Per-sample parameter Jacobians :math:`\Phi_i=\partial f/\partial\theta\,(x_i)`.

    ``torch.func.jacrev`` over the trainable parameters via ``functional_call``, vectorised over
    samples. Columns follow ``model.parameters()`` order (trainable ones), each parameter
    flattened row-major - the same order as ``torch.cat([p.reshape(-1) for p in params])``. So
    the Gauss-Newton matrix is :math:`G=\frac1N\sum_i\Phi_i^\top C_i\Phi_i`. Memory is
    :math:`N k P`: for small models (tests, notebooks) only.

    Args:
        model: any module (treating samples independently).
        x: inputs [N, *input_shape].
        chunk_size: samples per vectorised chunk.

    Returns:
        Tensor [N, k, P].
    """
    check_model(model)
    check_batch(model, x)
    V.positive_int("chunk_size", chunk_size)
    probe(model, x)
    params = dict(trainable(model))

    def g(p: dict[str, Tensor], xi: Tensor) -> Tensor:
        return functional_call(model, p, (xi.unsqueeze(0),)).reshape(-1)

    jac = vmap(jacrev(g), in_dims=(None, 0))
    out = []
    with torch.no_grad():
        for xb in x.split(chunk_size):
            try:
                D = jac(params, xb)
            except RuntimeError as err:
                raise _vmap_error(err) from err
            B = xb.shape[0]
            out.append(torch.cat([D[n].reshape(B, D[n].shape[1], -1) for n in params], dim=-1))
    return torch.cat(out)


# --------------------------------------------------------------------------------------------
# Lipschitz constants and local variation
# --------------------------------------------------------------------------------------------


def lipschitz_lower_bound(model: nn.Module, x: Tensor, *, chunk_size: int = 256) -> float:
    r"""Data lower bound :math:`\max_i\|Jf(x_i)\|_2` on the Lipschitz constant of f.

    Any Lipschitz constant of f on a neighbourhood of the sample (in particular the global one)
    is at least the spectral norm of the Jacobian at each sample point (paper T2, converse).

    Args:
        model, x, chunk_size: see :func:`jacobian_norms`.

    Returns:
        float.
    """
    return float(jacobian_norms(model, x, "spectral", chunk_size=chunk_size).max())


_ACTIVATION_LIP: dict[type, Callable[[nn.Module], float]] = {
    nn.Tanh: lambda m: 1.0,
    nn.ReLU: lambda m: 1.0,
    nn.Identity: lambda m: 1.0,
    nn.Flatten: lambda m: 1.0,
    nn.Unflatten: lambda m: 1.0,
    nn.ELU: lambda m: max(1.0, float(m.alpha)),
    nn.LeakyReLU: lambda m: max(1.0, abs(float(m.negative_slope))),
    nn.Sigmoid: lambda m: 0.25,
    nn.Softplus: lambda m: 1.0,
    nn.GELU: lambda m: 1.1289,  # max of d/dz z*Phi(z) = 1.12880...; rounded up
    nn.SiLU: lambda m: 1.0998,  # max of d/dz z*sigmoid(z) = 1.09984...; rounded up
    nn.Dropout: lambda m: 1.0 / (1.0 - m.p) if m.training and m.p < 1 else 1.0,
}


def _leaves(module: nn.Module) -> Iterator[nn.Module]:
    if isinstance(module, nn.Sequential):
        for m in module:
            yield from _leaves(m)
    else:
        yield module


def _linear_op_norm(
    op: Callable[[Tensor], Tensor],
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device,
    *,
    max_iter: int,
    tol: float,
    seed: int,
) -> float:
    r"""Spectral norm :math:`\sqrt{\lambda_{\max}(A^\top A)}` of a linear map A (on [1, *shape]).

    Lanczos with full re-orthogonalisation on :math:`A^\top A` (the transpose through autograd,
    ``vjp``), stopped when the Ritz residual :math:`\beta_m|e_m^\top s|` of the top Ritz pair is
    at most ``tol`` times the Ritz value. (Plain power iteration stalls when the top two singular
    values of a convolution are close.) The Ritz value is a lower estimate of
    :math:`\lambda_{\max}`; at convergence it is accurate to ~``tol`` relative or better.
    """
    n = math.prod(shape)
    gen = torch.Generator(device=device).manual_seed(seed)

    def matvec(v: Tensor) -> Tensor:
        with torch.enable_grad():
            u, vjp_fn = vjp(op, v.reshape(1, *shape))
            return vjp_fn(u)[0].reshape(-1).detach()

    q = torch.randn(n, generator=gen, dtype=dtype, device=device)
    Q = [q / q.norm()]
    alphas: list[float] = []
    betas: list[float] = []
    theta = 0.0
    for _ in range(min(max_iter, n)):
        w = matvec(Q[-1])
        alphas.append(float(w @ Q[-1]))
        Qm = torch.stack(Q)
        for _ in range(2):  # full re-orthogonalisation, twice is enough
            w = w - Qm.mT @ (Qm @ w)
        beta = float(w.norm())
        T = torch.diag(torch.tensor(alphas, dtype=torch.float64))
        if betas:
            off = torch.tensor(betas, dtype=torch.float64)
            T = T + torch.diag(off, 1) + torch.diag(off, -1)
        evals, evecs = torch.linalg.eigh(T)
        theta = float(evals[-1])
        if theta <= 0.0 and beta == 0.0:
            return 0.0
        if beta * abs(float(evecs[-1, -1])) <= tol * abs(theta) or beta <= 1e-300:
            break
        betas.append(beta)
        Q.append(w / beta)
    return math.sqrt(max(theta, 0.0))


def lipschitz_upper_bound(
    model: nn.Module,
    *,
    input_shape: Sequence[int] | None = None,
    max_iter: int = 200,
    tol: float = 1e-10,
    seed: int = 0,
) -> float:
    r"""Upper bound on the (global, Euclidean) Lipschitz constant of a sequential model.

    :math:`\operatorname{Lip}(f)\le\prod_m\operatorname{Lip}(m)` over the leaf modules m of the
    (nested) ``nn.Sequential``: ``Linear``: :math:`\|W\|_2` (exact, from ``matrix_norm``);
    ``Conv2d``: the spectral norm of the convolution as a linear operator on inputs of the
    module's input shape (needs ``input_shape``), by Lanczos on :math:`A^\top A` (the transpose
    through autograd) stopped at relative Ritz residual ``tol`` - a converged estimate (from
    below) accurate to ~``tol``, tested against the SVD of the dense convolution matrix;
    BatchNorm (eval mode): :math:`\max_c|\gamma_c|/\sqrt{v_c+\epsilon}`;
    activations: Tanh, ReLU, Identity, Flatten, Softplus 1, ELU :math:`\max(1,\alpha)`,
    LeakyReLU :math:`\max(1,|a|)`, Sigmoid 1/4, GELU 1.1289, SiLU 1.0998; AvgPool2d via
    Lanczos; non-overlapping MaxPool2d 1. Biases do not matter.

    Args:
        model: sequential model (``nn.Sequential`` or with ``.layers``).
        input_shape: per-sample input shape; required when the model has a ``Conv2d`` or pooling.
        max_iter, tol, seed: Lanczos controls for convolution/pooling.

    Returns:
        float, the product bound.

    Raises:
        NotImplementedError: a module type without a known Lipschitz constant (named).
    """
    seq = _sequential(model)
    p0 = next(iter(model.parameters()), None)
    if p0 is None:
        raise ValueError(f"model {type(model).__name__} has no parameters")
    dtype, device = p0.dtype, p0.device
    shape = tuple(int(s) for s in input_shape) if input_shape is not None else None
    bound = 1.0
    for m in _leaves(seq):
        needs_shape = isinstance(m, (nn.Conv2d, nn.AvgPool2d, nn.MaxPool2d))
        if needs_shape and shape is None:
            raise ValueError(f"input_shape is required for a model with {type(m).__name__}; got input_shape=None")
        if isinstance(m, nn.Linear):
            c = float(torch.linalg.matrix_norm(m.weight.detach(), ord=2))
        elif isinstance(m, nn.Conv2d):
            w = m.weight.detach()

            def op(z: Tensor, m: nn.Conv2d = m, w: Tensor = w) -> Tensor:
                if m.padding_mode != "zeros":
                    raise NotImplementedError(f"Conv2d with padding_mode={m.padding_mode!r}")
                return F.conv2d(z, w, None, m.stride, m.padding, m.dilation, m.groups)

            c = _linear_op_norm(op, shape, dtype, device, max_iter=max_iter, tol=tol, seed=seed)
        elif isinstance(m, nn.AvgPool2d):
            c = _linear_op_norm(m, shape, dtype, device, max_iter=max_iter, tol=tol, seed=seed)
        elif isinstance(m, nn.MaxPool2d):
            ks = nn.modules.utils._pair(m.kernel_size)
            st = nn.modules.utils._pair(m.stride if m.stride is not None else m.kernel_size)
            dl = nn.modules.utils._pair(m.dilation)
            if any(d * (kk - 1) + 1 > s for kk, s, d in zip(ks, st, dl)):
                raise NotImplementedError(f"overlapping MaxPool2d {m} (stride < kernel size)")
            c = 1.0
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            if m.training or m.running_var is None:
                raise NotImplementedError(f"{type(m).__name__} in training mode / without running stats")
            g = m.weight.detach() if m.weight is not None else torch.ones_like(m.running_var)
            c = float((g.abs() / (m.running_var + m.eps).sqrt()).max())
        elif type(m) in _ACTIVATION_LIP:
            c = _ACTIVATION_LIP[type(m)](m)
        else:
            raise NotImplementedError(
                f"lipschitz_upper_bound: no Lipschitz constant for module {type(m).__name__} "
                "(supported: Linear, Conv2d, BatchNorm (eval), AvgPool2d, non-overlapping "
                "MaxPool2d, " + ", ".join(t.__name__ for t in _ACTIVATION_LIP) + ")"
            )
        bound *= c
        if shape is not None:
            with torch.no_grad():
                shape = tuple(m(torch.zeros((1, *shape), dtype=dtype, device=device)).shape[1:])
    return bound


def local_variation(
    model: nn.Module,
    x: Tensor,
    radius: float,
    *,
    num_samples: int = 32,
    ascent_steps: int = 5,
    step_size: float | None = None,
    seed: int = 0,
    chunk_size: int = 256,
) -> Tensor:
    r"""Estimate :math:`\sup_{x'\in B(x_i,r)}\|Jf(x')-Jf(x_i)\|_2` for every sample.

    Search: ``num_samples`` points uniform in the Euclidean ball :math:`B(x_i, r)` (flattened
    input space), then ``ascent_steps`` steps of normalised projected gradient ascent on
    :math:`\phi(x')=\|Jf(x')-Jf(x_i)\|_2` from the best one, with step ``step_size`` (default
    r/2). The gradient uses the top singular pair (u, v) of the difference:
    :math:`\nabla\phi(x')=\nabla_{x'}\,u^\top Jf(x')v` (a forward-over-reverse second derivative;
    zero for piecewise-linear networks, where only the sampling acts).

    The result is the largest value found, hence a **lower estimate** of the supremum. The
    paper's :math:`V_B(Jf)=\sup_{x,x'\in B}\|Jf(x)-Jf(x')\|` satisfies
    :math:`\phi^*\le V_B\le2\phi^*` with :math:`\phi^*` the centred supremum estimated here.

    Args:
        model: see :func:`input_jacobians` (twice differentiable for the ascent to help).
        x: centres [N, *input_shape].
        radius: r >= 0.
        num_samples: random points per centre (>= 1).
        ascent_steps: gradient ascent steps (>= 0).
        step_size: ascent step length (default ``radius / 2``).
        seed: seed of the random points.
        chunk_size: Jacobians per vectorised chunk (centres are processed
            ``max(1, chunk_size // num_samples)`` at a time).

    Returns:
        Tensor [N] (detached).
    """
    check_model(model)
    check_batch(model, x)
    V.positive_int("chunk_size", chunk_size)
    k = probe(model, x)
    if not isinstance(radius, (int, float)) or isinstance(radius, bool) or not radius >= 0 or math.isinf(radius):
        raise ValueError(f"radius must be a finite number >= 0, got {radius!r}")
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be an int >= 1, got {num_samples!r}")
    if not isinstance(ascent_steps, int) or ascent_steps < 0:
        raise ValueError(f"ascent_steps must be an int >= 0, got {ascent_steps!r}")
    eta = radius / 2 if step_size is None else float(step_size)
    if not eta >= 0:
        raise ValueError(f"step_size must be >= 0, got {step_size!r}")
    shape = tuple(x.shape[1:])
    n0 = math.prod(shape)
    N = x.shape[0]
    gen = torch.Generator(device=x.device).manual_seed(seed)
    f = _per_sample(model)

    def jac(z: Tensor) -> Tensor:  # [M, n0] -> [M, k, n0]
        return torch.cat(list(_jacobian_chunks(model, z.reshape(-1, *shape), chunk_size)))

    def grad_fn(z: Tensor, u: Tensor, v: Tensor) -> Tensor:  # d/dz u^T Jf(z) v
        def h(zz: Tensor) -> Tensor:
            return (u * jvp(f, (zz.reshape(shape),), (v.reshape(shape),))[1]).sum()

        return torch.func.grad(h)(z)

    batched_grad = vmap(grad_fn)
    out = []
    cb = max(1, chunk_size // num_samples)
    with torch.no_grad():
        for start in range(0, N, cb):
            xc = x[start : start + cb].reshape(-1, n0)
            B = xc.shape[0]
            J0 = jac(xc)  # [B, k, n0]
            d = torch.randn((B, num_samples, n0), generator=gen, dtype=x.dtype, device=x.device)
            d = d / d.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
            rad = radius * torch.rand((B, num_samples, 1), generator=gen, dtype=x.dtype, device=x.device) ** (1.0 / n0)
            pts = xc[:, None, :] + rad * d
            Jp = jac(pts.reshape(-1, n0)).reshape(B, num_samples, k, n0)
            vals = torch.linalg.matrix_norm(Jp - J0[:, None], ord=2)  # [B, S]
            best, idx = vals.max(dim=1)
            cur = pts[torch.arange(B), idx]
            for _ in range(ascent_steps):
                if eta == 0 or radius == 0:
                    break
                D = jac(cur) - J0
                U, _, Vh = torch.linalg.svd(D, full_matrices=False)
                g = batched_grad(cur, U[:, :, 0], Vh[:, 0, :])
                gn = g.norm(dim=1, keepdim=True)
                if bool((gn == 0).all()):
                    break
                step = torch.where(gn > 0, g / gn.clamp_min(torch.finfo(x.dtype).tiny), torch.zeros_like(g))
                cand = cur + eta * step
                off = cand - xc
                on = off.norm(dim=1, keepdim=True)
                cand = xc + off * (radius / on.clamp_min(torch.finfo(x.dtype).tiny)).clamp(max=1.0)
                val = torch.linalg.matrix_norm(jac(cand) - J0, ord=2)
                best = torch.maximum(best, val)
                cur = cand
            out.append(best)
    return torch.cat(out)
