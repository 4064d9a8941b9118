r"""Curvature of the training loss as linear operators, and their spectra.

The training loss over a data set of :math:`N` points is

.. math:: \mathcal L(\theta) = \frac1N \sum_{i=1}^N \ell(f(\theta, x_i), y_i),

with :math:`\theta\in\mathbb R^P` the model's trainable parameters, flattened in
``model.parameters()`` order (only those with ``requires_grad``). This module gives

* :class:`HessianOperator` -- :math:`H = \nabla^2_\theta \mathcal L` (``[P, P]``);
* :class:`GaussNewtonOperator` -- :math:`G = \frac1N\sum_i \Phi_i^\top C_i \Phi_i`, with
  :math:`\Phi_i = \partial f(\theta, x_i)/\partial\theta` (``[k, P]``) and
  :math:`C_i = \nabla_z^2 \ell(z, y_i)|_{z=f(\theta,x_i)}` (``[k, k]``);
* :func:`lanczos` -- top-:math:`k` algebraic eigenpairs of any symmetric operator, with full
  re-orthogonalisation, residual-based stopping and warm starts;
* :func:`power_iteration` -- the baseline (PyHessian's recipe), kept for comparison;
* :func:`spectral_density` -- stochastic Lanczos quadrature (Ghorbani, Krishnan & Xiao 2019);
* :func:`trace` -- Hutchinson's estimator with its standard error;
* :func:`sharpness` -- :math:`\lambda_{\max}(H)`, the paper's sharpness.

Operators behave like matrices: ``op @ v`` for ``v`` of shape ``[P]`` or ``[P, m]``, ``op.shape ==
(P, P)``, ``op.dtype`` / ``op.device`` follow the model, ``op.num_matvecs`` counts the products
done so far (a matrix with ``m`` columns counts ``m``). The data set is walked in physical
batches, each weighted by its size, so the product is that of the full-batch mean loss. The
operators never change the model's train/eval mode and never touch ``.grad`` or ``.data``; buffers
(e.g. BatchNorm running statistics) are given to the model as copies, so products leave them
unchanged.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from sharpjac.curvature import HessianOperator, lanczos, sharpness
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    >>> x, y = torch.randn(64, 5, dtype=torch.float64), torch.randn(64, 3, dtype=torch.float64)
    >>> H = HessianOperator(model, nn.functional.mse_loss, (x, y), batch_size=16)
    >>> H.shape
    (75, 75)
    >>> res = lanczos(H, k=2, tol=1e-8)
    >>> bool(res.converged), res.eigenvalues.shape
    (True, torch.Size([2]))
    >>> dense_top = torch.linalg.eigvalsh(H.to_dense())[-1]
    >>> bool(torch.isclose(res.eigenvalues[0], dense_top, rtol=1e-7))
    True
    >>> abs(sharpness(model, nn.functional.mse_loss, (x, y)) - dense_top.item()) < 1e-6
    True
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.linalg.lapack import dstev as _dstev
from torch import nn
from torch.func import functional_call

from . import validation as V

__all__ = [
    "HessianOperator",
    "GaussNewtonOperator",
    "EigenResult",
    "SpectralDensity",
    "TraceEstimate",
    "lanczos",
    "power_iteration",
    "spectral_density",
    "trace",
    "sharpness",
]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------------------------
# Data handling
# --------------------------------------------------------------------------------------------


def _is_pair(obj: Any) -> bool:
    return (
        isinstance(obj, (tuple, list))
        and len(obj) == 2
        and isinstance(obj[0], torch.Tensor)
        and isinstance(obj[1], torch.Tensor)
    )


class _Batches:
    """Re-iterable view of ``data`` as physical batches ``(x_b, y_b)``.

    ``data`` is a pair of tensors ``(x [N, ...], y [N, ...])`` or a re-iterable of such pairs
    (e.g. a ``DataLoader``); a one-shot iterator is materialised into a list once. With
    ``batch_size`` every pair is further split into chunks of at most ``batch_size`` rows.
    """

    def __init__(self, data: Any, batch_size: int | None):
        if batch_size is not None:
            batch_size = V.positive_int("batch_size", batch_size)
        self.batch_size = batch_size
        if _is_pair(data):
            x, y = data
            if x.shape[0] != y.shape[0]:
                raise ValueError(
                    f"data: inputs and targets must have the same number of rows, got x of shape "
                    f"{tuple(x.shape)} and y of shape {tuple(y.shape)}"
                )
            self._source: Any = [(x, y)]
        elif isinstance(data, Iterable) and not isinstance(data, (torch.Tensor, str, bytes)):
            self._source = list(data) if iter(data) is data else data
        else:
            raise TypeError(
                f"data must be a pair of tensors (x [N, ...], y [N, ...]) or an iterable of such "
                f"pairs (e.g. a DataLoader), got {type(data).__name__}"
            )
        self.num_points = sum(int(xb.shape[0]) for xb, _ in self)
        if self.num_points == 0:
            raise ValueError("data is empty: it yields no (x, y) pair with at least one row (N == 0)")

    def __iter__(self):
        for item in self._source:
            if not _is_pair(item):
                raise TypeError(f"data must yield (x, y) pairs of tensors, got an item of type {type(item).__name__}")
            x, y = item
            if x.shape[0] != y.shape[0]:
                raise ValueError(
                    f"data: a batch has x of shape {tuple(x.shape)} but y of shape "
                    f"{tuple(y.shape)} (the first dimensions must agree)"
                )
            n = int(x.shape[0])
            if n == 0:
                continue
            step = n if self.batch_size is None else self.batch_size
            for start in range(0, n, step):
                yield x[start : start + step], y[start : start + step]


# --------------------------------------------------------------------------------------------
# Operators
# --------------------------------------------------------------------------------------------


class _CurvatureOperator:
    """Shared machinery of the curvature operators (not public)."""

    def __init__(self, model: nn.Module, loss_fn: LossFn, data: Any, *, batch_size: int | None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable(outputs, targets), got {type(loss_fn).__name__}")
        self.model = model
        self.loss_fn = loss_fn
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError(
                "model has no trainable parameters (no parameter with requires_grad=True): "
                "the curvature operator would have shape (0, 0)"
            )
        self._names = [n for n, _ in named]
        self._shapes = [p.shape for _, p in named]
        self._numels = [p.numel() for _, p in named]
        dtypes = {p.dtype for _, p in named}
        devices = {p.device for _, p in named}
        if len(dtypes) != 1 or len(devices) != 1:
            raise ValueError(
                f"all trainable parameters must share one dtype and device, got dtypes "
                f"{sorted(map(str, dtypes))} and devices {sorted(map(str, devices))}"
            )
        self.dtype: torch.dtype = dtypes.pop()
        self.device: torch.device = devices.pop()
        self.num_params = sum(self._numels)
        self.shape: tuple[int, int] = (self.num_params, self.num_params)
        self.batches = _Batches(data, batch_size)
        self.num_data = self.batches.num_points
        self.num_matvecs = 0
        self._vectorise = True
        self._out_hint: torch.Tensor | None = None  # see _matvec_into

    _MAX_COLS = 32

    # -- helpers -------------------------------------------------------------------------------

    def _params(self) -> dict[str, torch.Tensor]:
        """Detached leaves sharing storage with the model's trainable parameters."""
        module_params = dict(self.model.named_parameters())
        return {n: module_params[n].detach().requires_grad_(True) for n in self._names}

    def _buffers(self) -> dict[str, torch.Tensor]:
        """Copies of the buffers, so that e.g. BatchNorm statistics are left unchanged."""
        return {n: b.clone() for n, b in self.model.named_buffers()}

    def _split(self, v: torch.Tensor) -> list[torch.Tensor]:
        """``[P]`` -> list of parameter-shaped tensors."""
        return [c.view(s) for c, s in zip(torch.split(v, self._numels), self._shapes)]

    def _split_batched(self, V: torch.Tensor) -> list[torch.Tensor]:
        """``[P, m]`` -> list of ``[m, *param.shape]`` tensors (columns first, for batching)."""
        return [c.T.reshape(V.shape[1], *s) for c, s in zip(torch.split(V, self._numels), self._shapes)]

    def _columns(self, single, batched, V: torch.Tensor) -> torch.Tensor:
        """Apply ``single([P] column) -> [P]`` to every column of ``V`` [P, m], or the vectorised
        ``batched([P, c] chunk) -> [P, c]`` on chunks of at most ``_MAX_COLS`` columns; if the
        vectorised path is not supported by some operation of the model it falls back to the
        loop (once, for the lifetime of the operator)."""
        m = V.shape[1]
        if m == 1:  # no stacking copy
            return single(V[:, 0]).unsqueeze(1)
        if self._vectorise:
            try:
                return torch.cat(
                    [batched(V[:, i : i + self._MAX_COLS]) for i in range(0, m, self._MAX_COLS)],
                    dim=1,
                )
            except RuntimeError:
                self._vectorise = False
        return torch.stack([single(V[:, c]) for c in range(m)], dim=1)

    def _flat_cols(self, parts: Sequence[torch.Tensor], batched: bool) -> torch.Tensor:
        if batched:
            m = parts[0].shape[0]
            return torch.cat([g.reshape(m, -1) for g in parts], dim=1).T
        flat = [g.reshape(-1) for g in parts]
        hint, self._out_hint = self._out_hint, None  # the first single-vector result takes it
        if hint is not None and hint.dtype == flat[0].dtype and hint.device == flat[0].device:
            return torch.cat(flat, out=hint)
        return torch.cat(flat)

    def _matvec_into(self, v: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``self @ v`` for ``v`` [P], written into ``out`` [P] (another tensor than ``v``): the
        per-parameter pieces of the first batch's product are concatenated straight into it (no
        fresh [P] tensor; the eigen-solvers pass the next row of their basis)."""
        self._out_hint = out
        try:
            res = self @ v
        finally:
            self._out_hint = None
        if res.data_ptr() != out.data_ptr() or res.dtype != out.dtype:
            out.copy_(res)
        return out

    def _batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.to(self.device), y.to(self.device)

    def _check_loss(self, loss: torch.Tensor) -> None:
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise ValueError(
                f"loss_fn(outputs, targets) must return a scalar (the mean loss over the batch), got shape {shape}"
            )

    def _check_vector(self, v: Any) -> tuple[torch.Tensor, bool]:
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"v must be a torch.Tensor of shape [P] or [P, m], got {type(v).__name__}")
        P = self.num_params
        if v.ndim not in (1, 2) or v.shape[0] != P:
            raise ValueError(
                f"operator of shape {self.shape} cannot multiply v of shape {tuple(v.shape)}: "
                f"expected [{P}] or [{P}, m]"
            )
        is_vec = v.ndim == 1
        V = v.reshape(P, 1) if is_vec else v
        return V.to(device=self.device, dtype=self.dtype), is_vec

    # -- public --------------------------------------------------------------------------------

    def __matmul__(self, v: torch.Tensor) -> torch.Tensor:
        """Product with ``v`` of shape ``[P]`` or ``[P, m]``; returns the same shape."""
        V, is_vec = self._check_vector(v)
        m = V.shape[1]
        out = None
        if m > 0:
            with torch.enable_grad():
                for x, y in self.batches:
                    x, y = self._batch(x, y)
                    part, weight = self._batch_product(x, y, V), x.shape[0] / self.num_data
                    if out is None:  # a fresh tensor: weighted in place, no zero-filled copy
                        out = part if weight == 1.0 else part.mul_(weight)
                    else:
                        out.add_(part, alpha=weight)
        if out is None:
            out = torch.zeros(self.num_params, m, dtype=self.dtype, device=self.device)
        self.num_matvecs += m
        return out[:, 0] if is_vec else out

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """Alias of ``self @ v``."""
        return self @ v

    def to_dense(self, *, chunk_size: int = 64) -> torch.Tensor:
        """The full ``[P, P]`` matrix, built from ``P`` products (for tests and small models)."""
        P = self.num_params
        cols = []
        for start in range(0, P, chunk_size):
            stop = min(start + chunk_size, P)
            E = torch.zeros(P, stop - start, dtype=self.dtype, device=self.device)
            E[torch.arange(start, stop), torch.arange(stop - start)] = 1
            cols.append(self @ E)
        return torch.cat(cols, dim=1)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(shape={self.shape}, num_data={self.num_data}, "
            f"dtype={self.dtype}, device={self.device}, num_matvecs={self.num_matvecs})"
        )

    def _batch_product(self, x, y, V):  # pragma: no cover - abstract
        raise NotImplementedError


class HessianOperator(_CurvatureOperator):
    r"""The Hessian of the mean training loss, :math:`H = \nabla^2_\theta \mathcal L(\theta)`.

    With physical batches :math:`B_1,\dots,B_J` (sizes :math:`b_j`, :math:`\sum_j b_j = N`) and
    :math:`\mathcal L_{B}` the mean loss over a batch,
    :math:`Hv = \sum_j \frac{b_j}{N} \nabla^2_\theta\mathcal L_{B_j} v`, which equals the
    full-batch Hessian-vector product whatever the batching.

    Args:
        model: the network; its trainable parameters (``requires_grad``), in
            ``model.parameters()`` order, are flattened into :math:`\theta\in\mathbb R^P`.
            Its train/eval mode is used as it is.
        loss_fn: ``loss_fn(outputs, targets) -> scalar``, the mean loss over the batch.
        data: ``(x [N, ...], y [N, ...])`` or a re-iterable of such pairs (a ``DataLoader``).
        batch_size: split every pair into physical batches of at most this many rows.
        method: ``"double_backward"`` (default; :math:`Hv = \nabla_\theta\langle\nabla_\theta
            \mathcal L, v\rangle` by two reverse passes; about 2.2x a gradient on CPU) or
            ``"forward_over_reverse"`` (``torch.func.jvp`` of ``torch.func.grad``; about 3-4x a
            gradient; torch 2.13's forward-mode AD of ``F.mse_loss``'s backward fails -- write
            the loss as ``((z - y) ** 2).mean()`` -- and ``torch.func`` refuses models that update
            buffers in place, e.g. BatchNorm in train mode: both raise a ``RuntimeError`` that
            says so).
        reuse_graph: graph reuse across products (``"double_backward"`` only). ``True``: the
            first product builds, per physical batch, the graph of the forward pass and of the
            first backward :math:`g_B=\nabla_\theta\mathcal L_B` (``create_graph``) and keeps
            it; every product re-runs only the second backward
            :math:`\nabla_\theta\langle g_B, v\rangle` (about 1.2 gradients instead of 2.2).
            ``False``: every product rebuilds the graph and frees it. ``None`` (default): reuse
            when the graph's saved tensors, measured on the first batch and scaled to all
            batches, fit in ``graph_memory``. The kept graph is rebuilt when a parameter is
            modified (its version counter or storage changes) or the train/eval mode changes;
            :meth:`release_graph` frees it.
        graph_memory: memory budget in bytes for ``reuse_graph=None`` (default 1 GiB).

    A matrix ``V [P, m]`` shares one forward and one first backward per batch across its columns
    and multiplies up to 32 columns at once (``is_grads_batched``/``vmap``), so ``op @ V`` costs
    much less than ``m`` separate products. Batches are moved to the parameters' device; their
    dtype is left as given. After a product, ``graph_bytes`` is the measured size of the saved
    tensors of one forward and first backward over all batches (None before), and
    ``graph_reused`` whether the graph is kept.

    Example:
        >>> import torch; from torch import nn
        >>> m = nn.Linear(3, 1, bias=False).double()
        >>> x = torch.randn(10, 3, dtype=torch.float64); y = torch.randn(10, 1, dtype=torch.float64)
        >>> H = HessianOperator(m, nn.functional.mse_loss, (x, y))
        >>> torch.allclose(H.to_dense(), 2 / 10 * x.T @ x)
        True
    """

    _METHODS = ("double_backward", "forward_over_reverse")

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        data: Any,
        *,
        batch_size: int | None = None,
        method: str = "double_backward",
        reuse_graph: bool | None = None,
        graph_memory: int = 2**30,
    ):
        V.one_of("method", method, self._METHODS)
        if reuse_graph not in (None, True, False):
            raise ValueError(f"reuse_graph must be one of (None, True, False), got {reuse_graph!r}")
        self.method = method
        self.reuse_graph = reuse_graph
        self.graph_memory = V.positive_int("graph_memory", graph_memory)
        self.graph_bytes: int | None = None
        self.graph_reused = False
        self._graphs: list | None = None
        self._graph_key: tuple | None = None
        super().__init__(model, loss_fn, data, batch_size=batch_size)

    # -- graph reuse ---------------------------------------------------------------------------

    def release_graph(self) -> None:
        """Free the kept graph (the next product rebuilds it if reuse is on)."""
        self._graphs = None
        self._graph_key = None
        self.graph_reused = False

    def gradient(self) -> torch.Tensor:
        r"""The full-batch gradient :math:`\nabla_\theta\mathcal L=\sum_j\frac{b_j}{N}g_{B_j}`
        (``[P]``, detached), read from the graph that products use: free when the graph is kept
        (as after a product with graph reuse), else one forward and backward pass."""
        if self.method == "double_backward" and self.reuse_graph is not False:
            key = self._state_key()
            if self._graph_key != key:
                self.release_graph()
                self._graphs, self._graph_key = self._build_graphs(), key
                self.graph_reused = self._graphs is not None
            if self._graphs is not None:
                out = torch.zeros(self.num_params, dtype=self.dtype, device=self.device)
                for weight, graph in self._graphs:
                    out.add_(self._flat_cols([g.detach() for g in graph[3]], batched=False), alpha=weight)
                return out
        out = torch.zeros(self.num_params, dtype=self.dtype, device=self.device)
        with torch.enable_grad():
            for x, y in self.batches:
                x, y = self._batch(x, y)
                params = self._params()
                leaves = list(params.values())
                loss = self.loss_fn(functional_call(self.model, {**self._buffers(), **params}, (x,)), y)
                self._check_loss(loss)
                g = torch.autograd.grad(loss.reshape(()), leaves, allow_unused=True, materialize_grads=True)
                out.add_(self._flat_cols(g, batched=False), alpha=x.shape[0] / self.num_data)
        return out

    def _state_key(self) -> tuple:
        params = dict(self.model.named_parameters())
        return (self.model.training,) + tuple((params[n].data_ptr(), params[n]._version) for n in self._names)  # noqa: SLF001 - torch's in-place version counter has no public name

    def __matmul__(self, v: torch.Tensor) -> torch.Tensor:
        if self.method != "double_backward" or self.reuse_graph is False:
            return super().__matmul__(v)
        Vm, is_vec = self._check_vector(v)
        m = Vm.shape[1]
        key = self._state_key()
        if self._graph_key != key:
            self.release_graph()
            self._graphs, self._graph_key = self._build_graphs(), key
            self.graph_reused = self._graphs is not None
        if self._graphs is None:  # over the budget: every product rebuilds (and frees) the graph
            return super().__matmul__(v)
        out = None
        if m > 0:
            for weight, graph in self._graphs:
                if graph[1]:  # else the loss is linear in the parameters: H_B = 0
                    part = self._second_backward(graph, Vm)
                    if out is None and weight == 1.0:  # one batch: the product itself, no copy
                        out = part
                    elif out is None:
                        out = part.mul_(weight)
                    else:
                        out.add_(part, alpha=weight)
        if out is None:
            out = torch.zeros(self.num_params, m, dtype=self.dtype, device=self.device)
        self.num_matvecs += m
        return out[:, 0] if is_vec else out

    def _build_graphs(self) -> list | None:
        """Forward and first backward of every batch, kept: ``[(b/N, graph or None)]``; None
        (nothing kept) when ``reuse_graph is None`` and the measured size exceeds the budget."""
        graphs = []
        num_batches = sum(1 for _ in self.batches)
        with torch.enable_grad():
            for i, (x, y) in enumerate(self.batches):
                x, y = self._batch(x, y)
                if i == 0:
                    seen: dict[tuple, int] = {}

                    def pack(t: torch.Tensor) -> torch.Tensor:
                        seen[(t.data_ptr(), tuple(t.shape), t.dtype)] = t.numel() * t.element_size()
                        return t

                    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                        graph = self._first_backward(x, y)
                    self.graph_bytes = sum(seen.values()) * num_batches
                    if self.reuse_graph is None and self.graph_bytes > self.graph_memory:
                        return None
                else:
                    graph = self._first_backward(x, y)
                graphs.append((x.shape[0] / self.num_data, graph))
        return graphs

    # -- products ------------------------------------------------------------------------------

    def _batch_product(self, x: torch.Tensor, y: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        if self.method == "double_backward":
            graph = self._first_backward(x, y)
            if not graph[1]:  # loss linear in the parameters
                return torch.zeros(self.num_params, V.shape[1], dtype=self.dtype, device=self.device)
            return self._second_backward(graph, V)
        return self._forward_over_reverse(x, y, V)

    def _first_backward(self, x, y):
        r"""Forward pass and :math:`g_B=\nabla_\theta\mathcal L_B` with its graph:
        ``(leaves, used parameter indices, g_B of the used ones, g_B of all)``; no index is used
        when the loss is linear in the parameters (then :math:`H_B=0`)."""
        params = self._params()
        leaves = list(params.values())
        state = {**self._buffers(), **params}
        loss = self.loss_fn(functional_call(self.model, state, (x,)), y)
        self._check_loss(loss)
        grads = torch.autograd.grad(
            loss.reshape(()), leaves, create_graph=True, allow_unused=True, materialize_grads=True
        )
        used = [i for i, g in enumerate(grads) if g.requires_grad]
        return leaves, used, [grads[i] for i in used], grads

    def _second_backward(self, graph, V):
        r""":math:`H_B V = \nabla_\theta\langle g_B, V\rangle` column by column (or batched)
        through a kept graph (retained for further products)."""
        leaves, used, g_used, _ = graph

        # H v = d/dtheta <grad, v>: a vector-Jacobian product of the gradient with v
        def single(v):
            vs = self._split(v)
            hv = torch.autograd.grad(
                g_used,
                leaves,
                [vs[i] for i in used],
                retain_graph=True,
                allow_unused=True,
                materialize_grads=True,
            )
            return self._flat_cols(hv, batched=False)

        def batched(Vc):
            vs = self._split_batched(Vc)
            hv = torch.autograd.grad(
                g_used,
                leaves,
                [vs[i] for i in used],
                retain_graph=True,
                allow_unused=True,
                materialize_grads=True,
                is_grads_batched=True,
            )
            return self._flat_cols(hv, batched=True)

        return self._columns(single, batched, V)

    def _forward_over_reverse(self, x, y, V):
        params = {n: p.detach() for n, p in self._params().items()}
        buffers = self._buffers()

        def loss_of(p):
            loss = self.loss_fn(functional_call(self.model, {**buffers, **p}, (x,)), y)
            self._check_loss(loss)
            return loss.reshape(())

        grad_fn = torch.func.grad(loss_of)

        def hvp(tangent):
            return torch.func.jvp(grad_fn, (params,), (tangent,))[1]

        def single(v):
            hv = hvp(dict(zip(self._names, self._split(v))))
            return self._flat_cols([hv[n] for n in self._names], batched=False)

        def batched(Vc):
            tangents = dict(zip(self._names, self._split_batched(Vc)))
            hv = torch.func.vmap(hvp, randomness="same")(tangents)
            return self._flat_cols([hv[n] for n in self._names], batched=True)

        try:
            return self._columns(single, batched, V)
        except RuntimeError as err:
            if "ZeroTensor" in str(err):
                raise RuntimeError(
                    "method='forward_over_reverse' failed inside torch's forward-mode AD of the "
                    "loss's backward (a torch limitation, e.g. for F.mse_loss); use "
                    "method='double_backward' or write the loss with elementary ops, e.g. "
                    "((outputs - targets) ** 2).mean()"
                ) from err
            if "in-place operation" in str(err):
                raise RuntimeError(
                    "method='forward_over_reverse' (torch.func) cannot run a model that updates "
                    "buffers in place (e.g. BatchNorm in train mode); use "
                    "method='double_backward'"
                ) from err
            raise


class GaussNewtonOperator(_CurvatureOperator):
    r"""The Gauss-Newton matrix :math:`G = \frac1N\sum_i \Phi_i^\top C_i \Phi_i`.

    :math:`\Phi_i = \partial f(\theta, x_i)/\partial\theta` is the per-sample parameter Jacobian
    (``[k, P]``) and :math:`C_i = \nabla^2_z\ell(z, y_i)` the loss curvature in output space
    (``[k, k]``). Computed generically, for any ``loss_fn`` and output shape, per batch:
    :math:`u = \Phi v` by ``torch.func.jvp`` (forward mode), :math:`w = \nabla_z^2\mathcal L_B\,u`
    by double backward through the loss alone (:math:`\nabla^2_z\mathcal L_B` is block diagonal
    with blocks :math:`C_i/b`), then :math:`\Phi^\top w` by one ``vjp`` shared by all columns of
    ``v``; batches are weighted by :math:`b/N`. :math:`G` is positive semi-definite when every
    :math:`C_i` is (convex losses).

    Args:
        model, loss_fn, data, batch_size: as in :class:`HessianOperator`.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, data: Any, *, batch_size: int | None = None):
        super().__init__(model, loss_fn, data, batch_size=batch_size)

    def _batch_product(self, x, y, V):
        params = self._params()
        leaves = list(params.values())
        z = functional_call(self.model, {**self._buffers(), **params}, (x,))
        zt = z.detach().requires_grad_(True)
        loss = self.loss_fn(zt, y)
        self._check_loss(loss)
        gz = torch.autograd.grad(loss.reshape(()), zt, create_graph=True)[0]
        # Phi^T u for a dummy u; differentiating it w.r.t. u in direction v gives Phi v (the
        # forward-mode product by two reverse passes; works for every model, also for modules
        # that update buffers in place, which torch.func's jvp refuses)
        u = torch.zeros_like(z, requires_grad=True)
        phit_u = torch.autograd.grad(z, leaves, u, create_graph=True, allow_unused=True, materialize_grads=True)
        used = [i for i, g in enumerate(phit_u) if g.requires_grad]

        def gn(vs, batched: bool):
            if used:
                jv = torch.autograd.grad(
                    [phit_u[i] for i in used],
                    u,
                    [vs[i] for i in used],
                    retain_graph=True,
                    allow_unused=True,
                    materialize_grads=True,
                    is_grads_batched=batched,
                )[0]
            else:
                jv = torch.zeros((vs[0].shape[0], *z.shape) if batched else z.shape, dtype=z.dtype, device=z.device)
            if gz.requires_grad:
                cjv = torch.autograd.grad(
                    gz,
                    zt,
                    jv,
                    retain_graph=True,
                    allow_unused=True,
                    materialize_grads=True,
                    is_grads_batched=batched,
                )[0]
            else:  # loss linear in the outputs
                cjv = torch.zeros_like(jv)
            out = torch.autograd.grad(
                z,
                leaves,
                cjv,
                retain_graph=True,
                allow_unused=True,
                materialize_grads=True,
                is_grads_batched=batched,
            )
            return self._flat_cols(out, batched=batched)

        return self._columns(lambda v: gn(self._split(v), False), lambda Vc: gn(self._split_batched(Vc), True), V)


# --------------------------------------------------------------------------------------------
# Generic operator access for the eigen-solvers
# --------------------------------------------------------------------------------------------


class _MatVec:
    """Wraps anything with ``.shape`` and ``@`` (a curvature operator, a torch tensor, a numpy
    array, a scipy ``LinearOperator``) as a counted ``[P] -> [P]`` / ``[P, m] -> [P, m]`` map."""

    def __init__(self, op: Any, name: str = "op"):
        shape = getattr(op, "shape", None)
        if shape is None or not hasattr(op, "__matmul__"):
            raise TypeError(f"{name} must support `{name} @ v` and have a `.shape`, got {type(op).__name__}")
        shape = tuple(int(s) for s in shape)
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ValueError(f"{name} must be square with shape (P, P), got shape {shape}")
        self.op = op
        self.dim = shape[0]
        self.count = 0
        op_dtype = getattr(op, "dtype", None)
        self.torch_native = isinstance(op, (torch.Tensor, _CurvatureOperator)) or isinstance(op_dtype, torch.dtype)
        if self.torch_native:
            self.dtype = op_dtype if op_dtype is not None else torch.float64
            self.device = getattr(op, "device", torch.device("cpu"))
        else:
            self.dtype = torch.float64
            self.device = torch.device("cpu")
        if not self.dtype.is_floating_point:
            self.dtype = torch.float64

    def __call__(self, V: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The product, as a tensor the caller owns (the solvers update it in place); with
        ``out`` ([P], for ``V`` [P]) written into ``out``, which is returned."""
        if out is not None:
            if isinstance(self.op, _CurvatureOperator) and self.op.dtype == out.dtype:
                self.count += 1
                return self.op._matvec_into(V, out)  # noqa: SLF001 - the solvers' own fast path
            return out.copy_(self(V))
        self.count += 1 if V.ndim == 1 else V.shape[1]
        if self.torch_native:
            out = self.op @ V.to(dtype=getattr(self.op, "dtype", V.dtype))
            out = torch.as_tensor(out)
            owned = isinstance(self.op, (torch.Tensor, _CurvatureOperator)) or out.dtype != self.dtype
            out = out.to(dtype=self.dtype, device=self.device)
            return out if owned else out.clone()
        out = self.op @ V.detach().cpu().numpy()
        return torch.tensor(np.asarray(out), dtype=self.dtype).reshape(V.shape)


def _start_vector(P: int, v0: torch.Tensor | None, seed: int, dtype, device, name="v0") -> torch.Tensor:
    if v0 is None:
        g = torch.Generator(device="cpu").manual_seed(seed)
        v = torch.randn(P, generator=g, dtype=torch.float64).to(dtype=dtype, device=device)
    else:
        if not isinstance(v0, torch.Tensor):
            v0 = torch.as_tensor(np.asarray(v0))
        if v0.ndim == 2 and v0.shape[1] == 1:
            v0 = v0[:, 0]
        if v0.shape != (P,):
            raise ValueError(f"{name} must have shape [{P}] (the operator's dimension), got {tuple(v0.shape)}")
        v = v0.detach().to(dtype=dtype, device=device).clone()
    norm = float(torch.linalg.vector_norm(v))
    if not math.isfinite(norm) or norm == 0:
        raise ValueError(f"{name} must be a finite non-zero vector, got norm {norm}")
    return v.div_(norm)  # v is this call's own tensor


def _tridiag_eig(alpha: Sequence[float], beta: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of the symmetric tridiagonal matrix with diagonal ``alpha`` [m] and
    off-diagonal ``beta`` [m-1]; eigenvalues ascending, eigenvectors as columns [m, m].

    LAPACK's ``dstev`` called directly (what ``scipy.linalg.eigh_tridiagonal`` calls, without its
    argument checks: this runs at every Lanczos step); ``eigh`` of the dense matrix if it fails."""
    d = np.array(alpha, dtype=np.float64)
    e = np.array(beta, dtype=np.float64)
    if len(d) > 1:
        vals, vecs, info = _dstev(d, e, compute_v=1)
        if info == 0:
            return vals, vecs
    T = np.diag(d) + np.diag(e, 1) + np.diag(e, -1)  # pragma: no cover - LAPACK failure fallback
    return np.linalg.eigh(T)


def _project_out(w: torch.Tensor, Q: torch.Tensor, norms2: torch.Tensor) -> torch.Tensor:
    """One classical Gram-Schmidt pass against the orthogonal **rows** of ``Q`` [j, P] (contiguous
    rows: one matrix-vector product each way) with squared norms ``norms2`` [j], in place on ``w``
    [P]: :math:`w\\leftarrow w-Q^\\top c`, :math:`c=(Qw)/\\text{norms2}`; returns ``c`` [j] (the
    coefficients of the rows as stored)."""
    c = torch.mv(Q, w).div_(norms2)
    w.addmv_(Q.T, c, alpha=-1.0)
    return c


class _Workspace:
    """Reusable CPU buffers ``[rows, P]`` for the Lanczos basis and scratch vectors.

    Fresh CPU memory is paid page by page on first touch (one fault per 4 KiB page): for the
    rows of a Lanczos basis of a large model that costs as much as the re-orthogonalisation
    itself, at every call. Buffers handed back are kept, up to ``max_bytes`` in all, and reused
    by later calls with the same ``P``, dtype and device (tracking along training calls the
    solver on the same model again and again). CUDA memory is not pooled (torch's caching
    allocator already reuses it). Thread-safe; a buffer is owned by one call at a time.
    """

    max_bytes = 256 * 2**20

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: list[torch.Tensor] = []

    def take(self, rows: int, P: int, dtype: torch.dtype, device) -> torch.Tensor:
        device = torch.device(device)
        if device.type == "cpu":
            with self._lock:
                fits = [
                    i for i, t in enumerate(self._free) if t.dtype == dtype and t.shape[1] == P and t.shape[0] >= rows
                ]
                if fits:
                    best = min(fits, key=lambda i: self._free[i].shape[0])
                    return self._free.pop(best)
        return torch.empty(max(1, rows), P, dtype=dtype, device=device)

    def give(self, *bufs: torch.Tensor | None) -> None:
        with self._lock:
            for t in bufs:
                if t is not None and t.device.type == "cpu" and t.numel() * t.element_size() <= self.max_bytes:
                    self._free.append(t)
            kept, total = [], 0
            for t in reversed(self._free):  # newest first
                nb = t.numel() * t.element_size()
                if total + nb <= self.max_bytes:
                    kept.append(t)
                    total += nb
            self._free = kept[::-1]

    def clear(self) -> None:
        with self._lock:
            self._free = []


_WORKSPACE = _Workspace()


class _Rows:
    """Growing stack of vectors stored contiguously, row-major ``[capacity, P]``, with amortised
    O(1) appends (the Lanczos basis), in a buffer of :data:`_WORKSPACE`."""

    def __init__(self, P: int, capacity: int, dtype, device):
        self.buf = _WORKSPACE.take(max(1, capacity), P, dtype, device)
        self.size = 0

    def next_row(self) -> torch.Tensor:
        """The (uninitialised) row ``size``, grown if needed; :meth:`append` or ``size += 1`` it."""
        if self.size == self.buf.shape[0]:
            new = _WORKSPACE.take(2 * self.size, self.buf.shape[1], self.buf.dtype, self.buf.device)
            new[: self.size] = self.buf[: self.size]
            _WORKSPACE.give(self.buf)
            self.buf = new
        return self.buf[self.size]

    def append(self, q: torch.Tensor) -> None:
        self.next_row().copy_(q)
        self.size += 1

    @property
    def rows(self) -> torch.Tensor:
        return self.buf[: self.size]

    def release(self) -> None:
        _WORKSPACE.give(self.buf)
        self.buf = None


def _basis_dtype(dtype: torch.dtype) -> torch.dtype:
    """The basis is stored in the operator's dtype when that is float32 or float64 (the vectors
    the operator multiplies are then exactly the stored ones), else in float32."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _breakdown_threshold(dtype: torch.dtype, scale: float) -> float:
    return 100.0 * torch.finfo(dtype).eps * max(scale, torch.finfo(dtype).tiny)


def _rounding_floor(dtype: torch.dtype, m: int, scale: float) -> float:
    r"""Residual that rounding in ``dtype`` alone can produce after ``m`` steps:
    :math:`(2+5\sqrt m)\,\varepsilon\,\|T_m\|`. The products :math:`Au_j` of the returned vectors
    are combined from the Lanczos relation :math:`AQ_m=Q_{m+1}H_m` (see :func:`_ritz`); each
    step's update of the product into the next basis vector rounds by at most about
    :math:`4\varepsilon\|T_m\|` (two scaled subtractions, the re-orthogonalisation, and the
    products of the rounded basis vectors), which over the :math:`m` steps, weighted by the Ritz vector
    (:math:`\|s\|_1\le\sqrt m`), is the :math:`4\sqrt m` part; the combination and the rounding
    of the returned unit vector are the rest."""
    return (2.0 + 5.0 * math.sqrt(m)) * torch.finfo(dtype).eps * scale


def _temple(vals: np.ndarray, widths: np.ndarray, k: int, floor: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Error bounds ``[k]`` and gaps ``[k]`` (NaN where not resolved) of the top-``k`` Ritz values.

    ``vals`` [n] are Ritz values in descending order, ``widths`` [n] bounds on their residuals.
    For the ``j``-th, the gap estimate is
    :math:`\delta_j=\min_{i=j\pm1}\bigl(|\theta_j-\theta_i|-r_i\bigr)-2\,\mathrm{floor}` over its
    neighbours (for :math:`j=1` only the one below: nothing lies above :math:`\lambda_1`). It is
    *resolved* when :math:`\delta_j>r_j` (the intervals :math:`[\theta_i-r_i,\theta_i+r_i]` are
    disjoint) and the neighbour below exists (``n > j``); then the bound is Kato-Temple's
    :math:`r_j^2/\delta_j+\mathrm{floor}`, else Bauer-Fike's :math:`r_j` (the fallback).
    """
    n = len(vals)
    bounds = np.array(widths[:k], dtype=np.float64)
    gaps = np.full(k, np.nan)
    for j in range(k):
        if j + 1 >= n:  # nothing known below: the gap is not resolved
            continue
        cand = [abs(vals[j] - vals[j + 1]) - widths[j + 1]]
        if j > 0:
            cand.append(abs(vals[j - 1] - vals[j]) - widths[j - 1])
        gap = min(cand) - 2.0 * floor
        if gap > widths[j]:
            gaps[j] = gap
            bounds[j] = min(widths[j], widths[j] ** 2 / gap + floor)
    return bounds, gaps


#: entries per block of :func:`_rayleigh` (256 KiB of float32: the block's float64 copies stay in
#: a core's L2 cache)
_BLOCK = 65536


def _rayleigh(
    Ut: torch.Tensor, AUt: torch.Tensor, norms: np.ndarray, shift: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    r"""Float64 Rayleigh quotients ``[k]`` and residual norms ``[k]`` of the rows ``Ut`` [k, P]
    divided in place by ``norms`` [k] (the returned unit vectors), given the products ``AUt``
    [k, P] of the undivided rows.

    Block by block of :data:`_BLOCK` entries (each block is divided, then read while in cache),
    :math:`u_j` and :math:`e_j=Au_j-\sigma_ju_j` (with
    the shift :math:`\sigma_j=` ``shift[j]``, the tridiagonal Ritz value) are formed in float64
    and three sums accumulate in float64: :math:`u^\top u`, :math:`e^\top u`, :math:`e^\top e`.
    Then :math:`\theta=\sigma+e^\top u/u^\top u` and
    :math:`\|Au-\theta u\|^2/u^\top u=(e^\top e-(e^\top u)^2/u^\top u)/u^\top u` (exact
    identities); the shift keeps the cancellation to :math:`\varepsilon_{64}\|e\|^2`, far below
    the residual itself."""
    k, P = Ut.shape
    f64 = torch.float64
    block = min(_BLOCK, P)
    # (scratch from the pool: fresh CPU memory costs a page fault per 4 KiB, see _Workspace)
    pair = _WORKSPACE.take(2, block, f64, Ut.device)
    uu, eu, ee = np.zeros(k), np.zeros(k), np.zeros(k)
    try:
        for lo in range(0, P, block):
            hi = min(P, lo + block)
            u64, e64 = pair[0, : hi - lo], pair[1, : hi - lo]
            for j in range(k):
                u64.copy_(Ut[j, lo:hi].div_(float(norms[j])))
                e64.copy_(AUt[j, lo:hi]).div_(float(norms[j])).sub_(u64, alpha=float(shift[j]))
                uu[j] += float(torch.dot(u64, u64))
                eu[j] += float(torch.dot(e64, u64))
                ee[j] += float(torch.dot(e64, e64))
    finally:
        _WORKSPACE.give(pair)
    rq = shift + eu / uu
    residual = np.sqrt(np.maximum(ee - eu**2 / uu, 0.0) / uu)
    return rq, residual


def _ritz(
    alpha, beta, basis: _Rows, scales: list, hess: list, k: int, dtype: torch.dtype, scale: float, lost: float = 0.0
):
    """Top-``k`` Ritz pairs and their bounds, as a dict.

    ``theta`` [k] float64 numpy: the float64 Rayleigh quotients :math:`u_j^\\top(Au_j)` of the
    returned unit vectors, with :math:`Au_j` combined from the Lanczos relation
    :math:`AQ_m=Q_{m+1}H_m` that the run recorded (``hess``: column ``i`` holds every coefficient
    by which the product :math:`Aq_i` was reduced to the next basis vector: :math:`\\alpha_i`,
    :math:`\\beta_{i-1}`, the re-orthogonalisation's and :math:`\\beta_i`; the last one refers
    to the unit basis vectors; row ``i`` of the basis is stored as ``scales[i]`` times
    :math:`q_i`), so :math:`Au_j=Q_{m+1}H_ms_j/\\|Q_ms_j\\|`: no extra product and no stored
    product, and one pass over the basis gives both :math:`u_j` and :math:`Au_j`. ``U`` [P, k]
    in the basis dtype. ``estimate`` [k] the free residual :math:`|\\beta_m s_{m,j}|`;
    ``residual`` [k] the explicit residual :math:`\\|Au_j-\\theta_ju_j\\|` plus
    :func:`_rounding_floor` (which covers the rounding of the recurrence's updates that the
    relation leaves out) plus ``lost`` (the norms dropped at invariant subspaces), so that it
    bounds the true residual of the returned vector in ``dtype``; ``bound`` [k] and ``gap``
    [k] from :func:`_temple` (the neighbour below the ``k``-th is the next tridiagonal Ritz
    value, its width the free estimate plus the floor plus the largest tridiagonal-vs-Rayleigh
    drift seen).
    """
    m = len(alpha)
    theta, s = _tridiag_eig(alpha, beta[:-1])
    order = np.argsort(theta)[::-1]
    top = order[:k]
    floor = _rounding_floor(dtype, m, scale)
    est_all = np.abs(beta[-1] * s[-1, order])
    vals, widths = theta[order].copy(), est_all + floor
    H = np.zeros((m + 1, m))
    for i, col in enumerate(hess[:m]):
        H[: len(col), i] = col
    coef = np.zeros((2 * k, m + 1))
    coef[:k, :m] = s[:, top].T  # U = S Q_m
    coef[k:] = (H @ s[:, top]).T  # A U = Q_{m+1} H_m S
    coef /= np.asarray(scales[: m + 1], dtype=np.float64)  # on the rows as stored (row m: the last vector)
    rows = basis.buf[: m + 1]
    UA = torch.as_tensor(coef, dtype=rows.dtype, device=rows.device) @ rows  # [2k, P], one pass
    Ut, AUt = UA[:k], UA[k:]
    nrm = np.array([float(torch.linalg.vector_norm(Ut[j])) for j in range(k)])  # ||Q s_j|| != 1
    rq, explicit = _rayleigh(Ut, AUt, nrm, vals[:k])  # (divides Ut by nrm)
    drift = float(np.max(np.abs(rq - vals[:k])))
    vals[:k] = rq
    widths = widths + drift
    widths[:k] = explicit + floor + lost
    bound, gap = _temple(vals, widths, k, floor)
    desc = np.argsort(-rq, kind="stable")  # nearly equal Rayleigh quotients may swap
    return dict(
        theta=rq[desc],
        U=Ut[torch.as_tensor(desc.copy(), device=Ut.device)].T.contiguous() if k > 1 else Ut.T,
        estimate=est_all[:k][desc],
        residual=widths[:k][desc],
        bound=bound[desc],
        gap=gap[desc],
    )


_STOPS = ("residual", "eigenvalue")


def _lanczos_run(  # noqa: C901 - one Lanczos iteration with its reorthogonalisation and stopping tests reads best whole
    mv: _MatVec,
    q: torch.Tensor,
    num_steps: int,
    *,
    k: int = 1,
    tol: float | None = None,
    stop: str = "residual",
    restart_seed: int | None = None,
):
    """Lanczos with (selective or full) re-orthogonalisation from the unit vector ``q``.

    The basis is kept as contiguous rows ``[m, P]`` in :func:`_basis_dtype` (the operator's
    float32/float64), so the operator multiplies exactly the stored vectors. Row :math:`i` is
    stored as :math:`r_i=c_iq_i` with a known scale ``scales[i]`` (the unit :math:`q_i` is never
    formed). Each product :math:`w=Ar_j=c_jAq_j` is written straight into the next row of the
    basis (:meth:`_CurvatureOperator._matvec_into`: no fresh tensor, and no product is kept) and
    reduced there in place, in modified Gram-Schmidt order, in three passes over ``P`` numbers
    besides the norm: :math:`w\\leftarrow r_{j-1}+(\\sigma/c_j)w=\\sigma(Aq_j-\\beta_{j-1}q_{j-1})`
    with :math:`\\sigma=-c_{j-1}/\\beta_{j-1}` (the subtraction and the division by the last norm in
    one pass), :math:`\\alpha_j=r_j^\\top w/(c_j\\sigma)` (a BLAS dot),
    :math:`w\\leftarrow w-(\\alpha_j\\sigma/c_j)r_j`; its norm gives :math:`\\beta_j` and the new
    row's scale :math:`c_{j+1}=\\sigma\\beta_j=-c_{j-1}\\beta_j/\\beta_{j-1}` (a ratio of
    neighbouring norms; a row whose scale leaves :math:`[10^{-6},10^6]` is divided once). The
    re-orthogonalisation (one classical Gram-Schmidt pass as a matrix-vector product on the
    contiguous basis, a second one only when the first removed more than half of the norm:
    "twice is enough") runs in the basis dtype. ``beta[j]`` couples steps j and j+1; the last
    entry is the residual norm of the final step. With ``tol`` every coefficient of the
    reduction is recorded (the Hessenberg matrix :math:`H_m` of :math:`AQ_m=Q_{m+1}H_m`, for the
    float64 Rayleigh quotients and explicit residuals of :func:`_ritz`); at every step the free
    estimates (``stop="residual"``: :math:`|\\beta_m s_{m,j}|`; ``"eigenvalue"``: the
    :func:`_temple` bound built from them) are compared with ``tol * |theta_j|``, and only when
    they pass is :func:`_ritz` computed and its explicit test applied (on a step that
    re-orthogonalises, first with the norm ``n0`` before the pass, so that the last step's pass
    is skipped); the run also stops once the free estimates reach the rounding floor (more
    steps cannot lower the residual). On an invariant subspace (beta ~ 0) it stops when enough
    Ritz pairs are available, else (``restart_seed``) continues with a random vector orthogonal
    to the basis (the tridiagonal matrix decouples; the dropped residual's norm is added to the
    reported residuals). Buffers come from (and go back to) :data:`_WORKSPACE`.

    Returns ``(alpha, beta, ritz, converged)`` with ``ritz`` the last :func:`_ritz` dict (None
    without ``tol``).
    """
    P = mv.dim
    f64 = torch.float64
    bd = _basis_dtype(mv.dtype)
    dev = q.device
    cap = min(num_steps + 1, P) if tol is None else min(32, P)
    basis = _Rows(P, cap + 1, bd, dev)
    hess: list | None = [] if tol is not None else None
    alpha: list[float] = []
    beta: list[float] = []
    scale = 0.0
    lost = 0.0
    scales = [1.0]  # basis row i is stored as scales[i] * q_i (never divided: see the docstring)
    converged = False
    ritz = None
    rng = None
    selective = tol is not None and k == 1
    semi = math.sqrt(torch.finfo(mv.dtype).eps)
    reorthogonalised = False

    def accept(rz) -> bool:
        crit = rz["bound"] if stop == "eigenvalue" else rz["residual"]
        return bool(np.all(crit <= tol * np.abs(rz["theta"])))

    def check(theta, s, m, scale, broke):
        """The stopping test of step ``m`` (``beta[-1]`` its last coupling, ``hess[-1]`` its
        column): the free estimates first, :func:`_ritz`'s explicit test only when they pass;
        returns ``(stop, ritz or None, converged, free estimates passed)``."""
        order = np.argsort(theta)[::-1]
        est = np.abs(beta[-1] * s[-1, order])
        floor = _rounding_floor(mv.dtype, m, scale)
        crit = _temple(theta[order], est + floor, k, floor)[0] if stop == "eigenvalue" else est[:k]
        at_floor = bool(np.all(est[:k] <= floor))
        if not (broke or m == P or at_floor or np.all(crit <= tol * np.abs(theta[order[:k]]))):
            return False, None, False, False
        rz = _ritz(alpha, beta, basis, scales, hess, k, mv.dtype, scale, lost)
        conv = broke or m == P or accept(rz)
        if conv or broke or m == P or at_floor:
            return True, rz, conv, True
        return False, None, False, True

    try:
        basis.append(q)
        for j in range(num_steps):
            row = basis.next_row()  # may move the buffer: read the basis after this
            rj, cj = basis.rows[j], scales[j]
            mv(rj, out=row)  # A r_j = c_j A q_j, written into the next row
            col = np.zeros(j + 2) if hess is not None else None
            if j > 0 and beta[-1] != 0.0:
                # row <- r_{j-1} + gamma row = sigma (A q_j - beta_{j-1} q_{j-1}): the subtraction
                # and the rescaling in one pass (sigma = -c_{j-1} / beta_{j-1})
                sigma = -scales[j - 1] / beta[-1]
                torch.add(basis.rows[j - 1], row, alpha=sigma / cj, out=row)
                if col is not None:
                    col[j - 1] = beta[-1]
            else:
                sigma = cj
            # alpha by a BLAS dot (float32: ~1e-7 of ||w||; the returned eigenvalues are float64
            # Rayleigh quotients of the returned vectors, so this only steers the run)
            a = float(torch.dot(rj, row)) / (cj * sigma)
            row.add_(rj, alpha=-a * sigma / cj)  # row = sigma (A q_j - beta q_{j-1} - alpha q_j)
            if col is not None:
                col[j] = a
            n0 = float(torch.linalg.vector_norm(row)) / abs(sigma)
            alpha.append(a)
            m = j + 1
            theta = s = None
            if tol is not None and (selective or m >= k):
                theta, s = _tridiag_eig(alpha, beta)
            if selective:
                # Paige: the new vector's component along the Ritz vector y_i is about
                # eps ||A|| / |beta s_{m,i}|; re-orthogonalise once that may exceed sqrt(eps)
                worst = float(np.min(np.abs(n0 * s[-1, :])))
                reorth = reorthogonalised or worst <= semi * max(scale, abs(a) + n0)
            else:
                reorth = True
            passed = False
            if reorth and tol is not None and m >= k and m < P:
                # the stopping test before the re-orthogonalisation, with the residual n0 of the
                # three-term recurrence (A Q_m = Q_m T_m + r e_m^T holds with r before the pass,
                # and n0 >= the norm after it): the last vector of a run is never used, so
                # its (whole-basis) pass is saved when the run stops here
                sc = max(scale, abs(a) + n0 + (beta[-1] if beta else 0.0))
                beta.append(n0)
                col[j + 1] = n0
                hess.append(col)
                scales.append(sigma * n0)  # row m as it stands: sigma n0 q_{m+1}
                done, ritz, conv, passed = check(theta, s, m, sc, broke=False)
                if done:
                    converged = conv
                    break
                beta.pop()
                hess.pop()
                scales.pop()
            if reorth:
                # full re-orthogonalisation against the stored rows r_i = c_i q_i, one
                # matrix-vector product each way on the contiguous basis
                Q = basis.rows
                norms2 = torch.as_tensor(scales, dtype=Q.dtype, device=Q.device) ** 2
                h = _project_out(row, Q, norms2)
                b = float(torch.linalg.vector_norm(row)) / abs(sigma)
                if b < 0.5 * n0:
                    h = h + _project_out(row, Q, norms2)
                    b = float(torch.linalg.vector_norm(row)) / abs(sigma)
                if col is not None:  # the projection on q_i, per unit of A q_j
                    col[: j + 1] += h.to(f64).cpu().numpy() * np.asarray(scales, dtype=np.float64) / sigma
            else:
                b = n0
            reorthogonalised = reorth and not reorthogonalised  # the next vector too (pairs)
            beta.append(b)
            if hess is not None:
                col[j + 1] = b
                hess.append(col)
            scales.append(sigma * b)  # row m = sigma b q_{m+1}
            scale = max(scale, abs(a) + b + (beta[-2] if len(beta) > 1 else 0.0))
            broke = b <= _breakdown_threshold(mv.dtype, scale)
            if tol is not None and m >= k and (not passed or broke or m == P):
                # (not again when the estimates with n0 passed and the explicit test failed)
                done, ritz, conv, _ = check(theta, s, m, scale, broke=broke)
                if done:
                    converged = conv
                    break
            if m == P:
                converged = True
                break
            if broke:
                if restart_seed is None:  # exact quadrature already: stop
                    break
                # restart with a random vector orthogonal to the current basis; the relation
                # A q_j = ... + b q_{j+1} loses the (tiny) b row: its norm is added to the residuals
                if rng is None:
                    rng = torch.Generator(device="cpu").manual_seed(10_000 + (restart_seed or 0))
                Q = basis.rows
                norms2 = torch.as_tensor(scales[:m], dtype=Q.dtype, device=Q.device) ** 2
                for _ in range(5):
                    r = torch.randn(P, generator=rng, dtype=f64).to(device=dev, dtype=bd)
                    _project_out(r, Q, norms2)  # twice is enough
                    _project_out(r, Q, norms2)
                    nr = float(torch.linalg.vector_norm(r, dtype=f64))
                    if nr > 1e-3:
                        break
                lost += b
                beta[-1] = 0.0
                if hess is not None:
                    col[j + 1] = 0.0
                row.copy_(r).div_(nr)
                scales[-1] = 1.0
                basis.size += 1
                continue
            c = scales[-1]
            if not 1e-6 <= abs(c) <= 1e6:  # keep the stored rows' scale near one (rarely needed)
                row.div_(c)
                scales[-1] = 1.0
            basis.size += 1
        if tol is not None and ritz is None:
            ritz = _ritz(alpha, beta, basis, scales, hess, k, mv.dtype, scale, lost)
            converged = converged and accept(ritz)
    finally:
        basis.release()
    return alpha, beta, ritz, converged


@dataclass(frozen=True)
class EigenResult:
    """Eigenpairs from an iterative solver.

    Attributes:
        eigenvalues: ``[k]``, descending.
        eigenvectors: ``[P, k]``, orthonormal columns, in the operator's dtype/device.
        residuals: ``[k]``, :math:`\\|A u_j - \\lambda_j u_j\\|` (for :func:`lanczos` a bound:
            the explicit residual from the recorded Lanczos relation plus the rounding floor
            :math:`(2+5\\sqrt m)\\,\\varepsilon\\,\\|T_m\\|` of the operator's dtype).
        num_matvecs: operator products this call made.
        converged: whether the stopping rule was met (for :func:`lanczos`: the reported residuals,
            or with ``stop="eigenvalue"`` the error bounds, are at most ``tol`` times the
            eigenvalues) before ``max_iter``.
        error_bounds: ``[k]``, a bound on :math:`|\\lambda_j-\\theta_j|`, the distance from each
            returned value to the eigenvalue it approximates: for :func:`lanczos` the
            Kato-Temple bound :math:`r_j^2/\\delta_j` (plus the rounding floor) where the gap
            :math:`\\delta_j` is resolved, else the residual (Bauer-Fike); for
            :func:`power_iteration` the residual. None where not computed.
        gaps: ``[k]``, the gap estimates :math:`\\delta_j` behind ``error_bounds`` (NaN where the
            gap is not resolved and the bound is the residual); None where not computed.
    """

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor
    residuals: torch.Tensor
    num_matvecs: int
    converged: bool
    error_bounds: torch.Tensor | None = None
    gaps: torch.Tensor | None = None


def lanczos(
    op: Any,
    k: int = 1,
    *,
    max_iter: int = 100,
    tol: float = 1e-6,
    v0: torch.Tensor | None = None,
    seed: int = 0,
    stop: str = "residual",
) -> EigenResult:
    r"""Top-``k`` algebraic eigenpairs of a symmetric operator by Lanczos.

    Builds the Krylov basis :math:`Q_m=[q_1,\dots,q_m]` of :math:`\mathcal K_m(A, v_0)`, kept
    (semi-)orthogonal by classical Gram-Schmidt against the whole basis (a second pass when the
    first removed more than half of the norm), so that
    :math:`AQ_m = Q_mT_m + \beta_m q_{m+1}e_m^\top` with tridiagonal :math:`T_m`. Ritz pairs
    :math:`(\theta_j, Q_m s_j)` come from LAPACK's ``dstev`` on :math:`T_m`; their
    residual norms are :math:`\|Au_j-\theta_ju_j\| = |\beta_m s_{m,j}|` at no extra product. It
    stops once the top ``k`` satisfy :math:`|\beta_m s_{m,j}|\le \mathrm{tol}\,|\theta_j|` and
    their explicit residuals confirm it. The explicit residual is
    :math:`\|Q_{m+1}H_ms_j-\theta_jQ_ms_j\|` (over :math:`\|Q_ms_j\|`) plus the rounding floor
    :math:`(2+5\sqrt m)\,\varepsilon\,\|T_m\|` of the operator's dtype, where
    :math:`AQ_m=Q_{m+1}H_m` is the relation the run recorded: every coefficient by which each
    product was reduced to the next basis vector (:math:`\alpha`, :math:`\beta` and the
    re-orthogonalisation's), exact but for the rounding of those updates, which the floor
    covers. These bounds are the reported ``residuals``: they hold for the returned unit
    vectors whatever the basis' orthogonality, and need no stored product (each product is
    written into the next basis row and reduced there). The returned eigenvalues are the
    float64 Rayleigh quotients :math:`\theta_j=u_j^\top(Au_j)` of the returned unit vectors,
    with :math:`Au_j=Q_{m+1}H_ms_j/\|Q_ms_j\|` (no extra product; one pass over the basis
    forms :math:`u_j` and :math:`Au_j`): in float32 they are accurate to a few roundings of
    :math:`\|A\|`, not to that of the tridiagonal matrix (~1e-5 after semi-orthogonal steps).

    Error bound (``error_bounds``, and the test of ``stop="eigenvalue"``). By Bauer-Fike some
    eigenvalue lies within :math:`r_j` of :math:`\theta_j`. Kato-Temple: if :math:`\lambda_j` is
    the only eigenvalue in :math:`(\theta_j-\delta_j,\theta_j+\delta_j)`, then
    :math:`|\lambda_j-\theta_j|\le r_j^2/\delta_j`. The gap is estimated from the neighbouring
    Ritz values, :math:`\delta_j=\min_{i=j\pm1}(|\theta_j-\theta_i|-r_i)` (for the top one only
    :math:`\theta_1-\theta_2-r_2`: nothing lies above :math:`\lambda_1`), with :math:`r_i` the
    explicit residual for returned pairs and the free estimate for the next one, each widened by
    the rounding floor. The bound :math:`r_j^2/\delta_j` (plus the floor) is used only when the
    gap is resolved, :math:`\delta_j>r_j` (the Bauer-Fike intervals are disjoint); else
    (clustered or near-degenerate eigenvalues, or too few steps for a neighbour below) the bound
    falls back to :math:`r_j`. Validity: the estimate assumes that the Krylov space has seen
    every eigenvalue above :math:`\theta_{j+1}+r_{j+1}` (no eigenvalue lies unnoticed between the
    Ritz intervals), which holds for a random start unless the start vector is nearly
    orthogonal to an eigenvector; the fallback :math:`r_j` needs no assumption. A cluster of
    eigenvalues that the Krylov space has not split (narrower than its residuals, or an exactly
    multiple eigenvalue, of which one vector sees a single copy) acts as one eigenvalue: the bound
    then holds for the distance to the cluster's hull, as the tests check. With
    ``stop="eigenvalue"`` the run stops once :math:`\text{bound}_j\le\mathrm{tol}\,|\theta_j|`:
    the eigenvalue to ``tol`` at about half the steps' worth of the residual test (the error
    converges like the square of the residual).

    Re-orthogonalisation: for ``k > 1`` at every step. For ``k = 1`` (sharpness) selectively:
    by Paige's theorem the new vector's component along a Ritz vector :math:`y_i` is about
    :math:`\varepsilon\|A\|/|\beta_m s_{m,i}|`, so the Gram-Schmidt pass (a read of the whole
    basis, twice) runs only once some Ritz residual estimate falls below
    :math:`\sqrt\varepsilon\,\|T_m\|` (and then for two consecutive vectors), which keeps the
    basis semi-orthogonal (:math:`|q_i^\top q_j|\lesssim\sqrt\varepsilon`), enough for
    :math:`T_m` to be accurate to working precision (Simon 1984). A step that needs the pass
    first runs the stopping test with the recurrence's residual norm before the pass (an upper
    bound on the norm after it): when the run stops there, the new vector is never used and its
    pass is skipped.

    Precision: the basis is stored as contiguous rows ``[m, P]`` in the operator's dtype
    (float32 or float64; float32 for other dtypes), so the operator multiplies exactly the
    stored vectors (row :math:`i` is :math:`c_iq_i` with a known scale :math:`c_i`: the
    division of each new vector by its norm is folded into the next step's first update);
    :math:`\alpha`, :math:`\beta` and the Gram-Schmidt coefficients are BLAS dot products in
    the basis dtype (float32: about :math:`10^{-7}` relative), which only steer the run: the
    returned eigenvalues are the float64 Rayleigh quotients above. A ``tol`` below what the
    operator's dtype allows (about :math:`10^{-6}` relative in float32) stops the run once the free
    estimate reaches the rounding floor, with ``converged=False`` and an honest residual. CPU
    buffers are reused across calls (a pool of at most 256 MiB), since first-touch page faults of a
    fresh basis cost as much as the re-orthogonalisation.

    Warm start: pass the previous top eigenvector as ``v0`` when tracking along training. An
    invariant subspace (:math:`\beta\approx0`) ends the run when it holds ``k`` Ritz pairs (they
    are then exact), otherwise the run continues from a random vector orthogonal to it. As with
    any Krylov method, eigenvectors orthogonal to the start vector cannot be found: a random
    start (``v0=None``) avoids this with probability one.

    Args:
        op: anything with ``.shape == (P, P)`` and ``op @ v`` for ``v`` ``[P]`` (a curvature
            operator, a symmetric torch tensor, a numpy array, a scipy ``LinearOperator``).
        k: number of eigenpairs, ``1 <= k <= P``.
        max_iter: maximum number of products (Krylov dimension), clipped to ``P``.
        tol: relative tolerance on the residual (``stop="residual"``) or on the eigenvalue's
            error bound (``stop="eigenvalue"``).
        v0: start vector ``[P]``; default a standard normal vector drawn with ``seed``.
        seed: seed of the start vector (and of restarts after an invariant subspace).
        stop: ``"residual"`` (default; residuals ``<= tol * |theta|``, which also bounds the
            eigenvalues' relative error by ``tol``) or ``"eigenvalue"`` (error bounds ``<= tol *
            |theta|``: fewer products when only the eigenvalues are needed).

    Returns:
        :class:`EigenResult`, eigenvalues descending, with residuals and error bounds.
    """
    mv = _MatVec(op)
    P = mv.dim
    k = V.positive_int("k", k)
    if k > P:
        raise ValueError(f"k={k} exceeds the operator's dimension: op has shape {(P, P)}, so k <= {P}")
    max_iter = V.positive_int("max_iter", max_iter, minimum=k)
    V.positive("tol", tol)
    V.one_of("stop", stop, _STOPS)
    q = _start_vector(P, v0, seed, _basis_dtype(mv.dtype), mv.device)
    _, _, ritz, converged = _lanczos_run(mv, q, min(max_iter, P), k=k, tol=tol, stop=stop, restart_seed=seed)

    def out(a):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=mv.dtype, device=mv.device)

    return EigenResult(
        eigenvalues=out(ritz["theta"]),
        eigenvectors=ritz["U"].to(mv.dtype),
        residuals=out(ritz["residual"]),
        num_matvecs=mv.count,
        converged=bool(converged),
        error_bounds=out(ritz["bound"]),
        gaps=out(ritz["gap"]),
    )


def power_iteration(
    op: Any,
    *,
    max_iter: int = 100,
    tol: float = 1e-3,
    v0: torch.Tensor | None = None,
    seed: int = 0,
) -> EigenResult:
    r"""Dominant eigenpair by power iteration -- the **baseline**, PyHessian's recipe.

    :math:`v \leftarrow Av/\|Av\|`, Rayleigh quotient :math:`\theta = v^\top Av`, stopped when
    :math:`|\theta_t-\theta_{t-1}|\le\mathrm{tol}\,|\theta_{t-1}|`.

    Pitfalls (why :func:`lanczos` is the default): (1) the error after :math:`t` steps shrinks
    like :math:`(\lambda_2/\lambda_1)^{2t}` -- with the nearly equal outliers of network Hessians
    (:math:`\lambda_2/\lambda_1\approx0.9`) the Rayleigh quotient creeps up slowly, so a small
    *relative change* is reached while the value is still far off (0.5% off at ``tol=1e-3`` is
    typical): a converged-looking wrong answer; (2) it finds the eigenvalue of largest
    *magnitude*, not the largest algebraic one, and fails when a negative eigenvalue dominates.
    ``residuals`` reports the true :math:`\|Av-\theta v\|`, which exposes (1).

    Args:
        op: as in :func:`lanczos`.
        max_iter: maximum number of products.
        tol: relative change of the Rayleigh quotient that stops the iteration.
        v0: start vector ``[P]``; default standard normal drawn with ``seed``.
        seed: seed of the start vector.

    Returns:
        :class:`EigenResult` with ``k = 1``.
    """
    mv = _MatVec(op)
    P = mv.dim
    max_iter = V.positive_int("max_iter", max_iter)
    v = _start_vector(P, v0, seed, mv.dtype, mv.device)
    theta_old = None
    converged = False
    theta = 0.0
    res = float("nan")
    for _ in range(max_iter):
        w = mv(v)
        theta = float(v @ w)
        res = float(torch.linalg.vector_norm(w - theta * v))
        if theta_old is not None and abs(theta - theta_old) <= tol * abs(theta_old):
            converged = True
            break
        nw = torch.linalg.vector_norm(w)
        if nw == 0:
            converged = True
            break
        v = w / nw
        theta_old = theta
    return EigenResult(
        eigenvalues=torch.tensor([theta], dtype=mv.dtype, device=mv.device),
        eigenvectors=v.reshape(P, 1),
        residuals=torch.tensor([res], dtype=mv.dtype, device=mv.device),
        num_matvecs=mv.count,
        converged=converged,
        error_bounds=torch.tensor([res], dtype=mv.dtype, device=mv.device),
    )


# --------------------------------------------------------------------------------------------
# Spectral density and trace
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpectralDensity:
    r"""Stochastic Lanczos quadrature estimate of the spectral density.

    Attributes:
        nodes: ``[num_runs, m]`` Gauss quadrature nodes (Ritz values) of each run.
        weights: ``[num_runs, m]`` their weights (squared first components of the Ritz vectors;
            each row sums to one; zero for padding when a run hit an invariant subspace).
        grid: ``[G]`` evaluation points.
        density: ``[G]`` :math:`\hat\phi(t)=\frac1R\sum_r\sum_j w_{rj}\,g_\sigma(t-\theta_{rj})`,
            normalised to integrate to one on ``grid`` (trapezoidal rule).
        sigma: width of the Gaussian kernel :math:`g_\sigma`.
        num_matvecs: products used.
    """

    nodes: torch.Tensor
    weights: torch.Tensor
    grid: torch.Tensor
    density: torch.Tensor
    sigma: float
    num_matvecs: int

    def moment(self, p: int) -> float:
        r"""Quadrature moment :math:`\frac1R\sum_{r,j} w_{rj}\theta_{rj}^p`, an unbiased estimate
        of :math:`\mathrm{tr}(A^p)/P` (exact Gauss quadrature for :math:`p\le 2m-1`)."""
        return float((self.weights * self.nodes**p).sum(dim=1).mean())


def _rademacher(shape, generator: torch.Generator, dtype, device) -> torch.Tensor:
    r = torch.randint(0, 2, shape, generator=generator, dtype=torch.int64)
    return (2 * r - 1).to(dtype=dtype, device=device)


def spectral_density(
    op: Any,
    *,
    num_iter: int = 80,
    num_runs: int = 10,
    seed: int = 0,
    grid: torch.Tensor | None = None,
    sigma: float | None = None,
    grid_size: int = 1000,
) -> SpectralDensity:
    r"""Spectral density by stochastic Lanczos quadrature (Ghorbani, Krishnan & Xiao 2019).

    For :math:`R` Rademacher vectors :math:`v_r/\sqrt P`, ``num_iter`` Lanczos steps (full
    re-orthogonalisation) give :math:`T^{(r)}=S\,\mathrm{diag}(\theta)S^\top`
    (LAPACK's ``dstev``), and
    :math:`v^\top f(A)v\approx\sum_j s_{1j}^2 f(\theta_j)` (Gauss quadrature). Averaging over runs
    estimates :math:`\frac1P\mathrm{tr} f(A)`; with :math:`f=g_\sigma(t-\cdot)` this is the
    Gaussian-smoothed density :math:`\frac1P\sum_i g_\sigma(t-\lambda_i)`.

    Args:
        op: as in :func:`lanczos`.
        num_iter: Lanczos steps per run (clipped to ``P``).
        num_runs: number of random start vectors :math:`R`.
        seed: seed of the Rademacher vectors.
        grid: evaluation points ``[G]``; default ``grid_size`` points spanning the nodes with a
            margin of ``5 sigma``.
        sigma: kernel width; default 1% of the span of the nodes (at least ``1e-12``).
        grid_size: number of default grid points.

    Returns:
        :class:`SpectralDensity`.
    """
    mv = _MatVec(op)
    P = mv.dim
    num_iter = V.positive_int("num_iter", num_iter)
    num_runs = V.positive_int("num_runs", num_runs)
    m = min(num_iter, P)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    nodes = np.zeros((num_runs, m))
    weights = np.zeros((num_runs, m))
    for r in range(num_runs):
        v = _rademacher((P,), gen, torch.float64, mv.device)
        q = v / torch.linalg.vector_norm(v)
        alpha, beta, _, _ = _lanczos_run(mv, q, m, tol=None, restart_seed=None)
        theta, s = _tridiag_eig(alpha, beta[:-1])
        mr = len(theta)
        nodes[r, :mr] = theta
        nodes[r, mr:] = theta[-1]
        weights[r, :mr] = s[0, :] ** 2
    span = float(nodes.max() - nodes.min())
    if sigma is None:
        sigma = max(0.01 * span, 1e-12 * max(1.0, float(np.abs(nodes).max())))
    sigma = V.positive("sigma", sigma)
    if grid is None:
        g = np.linspace(nodes.min() - 5 * sigma, nodes.max() + 5 * sigma, grid_size)
    else:
        g = np.asarray(torch.as_tensor(grid).detach().cpu(), dtype=np.float64).reshape(-1)
        if g.size < 2:
            raise ValueError(f"grid must have at least 2 points, got shape {tuple(g.shape)}")
    kern = np.exp(-0.5 * ((g[:, None, None] - nodes[None]) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    dens = (kern * weights[None]).sum(axis=2).mean(axis=1)
    area = np.trapezoid(dens, g) if hasattr(np, "trapezoid") else np.trapz(dens, g)
    if area > 0:
        dens = dens / area
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    return SpectralDensity(
        nodes=as_t(nodes),
        weights=as_t(weights),
        grid=as_t(g),
        density=as_t(dens),
        sigma=float(sigma),
        num_matvecs=mv.count,
    )


@dataclass(frozen=True)
class TraceEstimate:
    r"""Hutchinson trace estimate.

    Attributes:
        estimate: :math:`\frac1n\sum_s z_s^\top A z_s`.
        stderr: standard error of the mean, :math:`\mathrm{sd}(z^\top Az)/\sqrt n` (``nan`` for
            ``n = 1``).
        num_matvecs: products used (``n``).

    Unpacks as ``estimate, stderr = trace(op)``.
    """

    estimate: float
    stderr: float
    num_matvecs: int

    def __iter__(self):
        return iter((self.estimate, self.stderr))

    def __float__(self) -> float:
        return self.estimate


def trace(op: Any, *, num_samples: int = 100, seed: int = 0, chunk_size: int = 1) -> TraceEstimate:
    r"""Hutchinson's trace estimator with Rademacher probes.

    :math:`\mathrm{tr}(A)\approx\frac1n\sum_{s=1}^n z_s^\top Az_s`,
    :math:`z_s\in\{\pm1\}^P`; unbiased, with variance per probe
    :math:`2(\|A\|_F^2-\sum_i A_{ii}^2)`. Probes are multiplied ``chunk_size`` at a time
    (``op @ Z`` with ``Z [P, chunk]``); the probes are drawn one after the other, so the
    estimate does not depend on ``chunk_size``. Default 1, by measurement
    (``benchmarks/curvature.py`` section v', one thread on a loaded 2-core CPU, two runs, per
    probe in gradients of the same loss): with the kept graph of :class:`HessianOperator`
    chunk 1 costs 2.3-2.9 on the MLP and 1.1-1.5 on the CNN, chunk 16 4.5-4.6 and 2.1-2.6;
    with the graph rebuilt chunk 1 costs 2.1-3.6 and 2.1-2.3, chunk 16 3.7-5.1 and 2.0-4.0.

    Args:
        op: as in :func:`lanczos`.
        num_samples: number of probes ``n``.
        seed: seed of the probes.
        chunk_size: probes per product call.

    Returns:
        :class:`TraceEstimate` (``estimate, stderr = trace(op)``).
    """
    mv = _MatVec(op)
    num_samples = V.positive_int("num_samples", num_samples)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    vals = []
    done = 0
    while done < num_samples:
        c = min(chunk_size, num_samples - done)
        Z = _rademacher((c, mv.dim), gen, mv.dtype, mv.device).T.contiguous()
        vals.append((Z * mv(Z)).sum(dim=0).double().cpu())
        done += c
    v = torch.cat(vals)
    se = float(v.std(unbiased=True) / math.sqrt(len(v))) if len(v) > 1 else float("nan")
    return TraceEstimate(estimate=float(v.mean()), stderr=se, num_matvecs=mv.count)


def sharpness(
    model: nn.Module,
    loss_fn: LossFn,
    data: Any,
    *,
    batch_size: int | None = None,
    method: str = "double_backward",
    tol: float = 1e-6,
    max_iter: int = 100,
    v0: torch.Tensor | None = None,
    seed: int = 0,
) -> float:
    r"""Sharpness :math:`\lambda_{\max}(\nabla^2_\theta\mathcal L)`, by :func:`lanczos` on a
    :class:`HessianOperator` (arguments as there), stopped on the eigenvalue's error bound
    (``stop="eigenvalue"``: relative error at most ``tol`` where the gap is resolved)."""
    op = HessianOperator(model, loss_fn, data, batch_size=batch_size, method=method)
    return float(lanczos(op, 1, max_iter=max_iter, tol=tol, v0=v0, seed=seed, stop="eigenvalue").eigenvalues[0])
