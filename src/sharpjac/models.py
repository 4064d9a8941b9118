r"""Small, seeded models whose layers are visible to :mod:`sharpjac.jacobians`.

Every model is an :class:`torch.nn.Sequential` (``MLP``, ``SmallCNN``) or exposes a
``.layers`` attribute that is one (``ResNet18``), so that
:func:`sharpjac.jacobians.split_layers` can cut it into the blocks
:math:`f = f_L\circ\dots\circ f_1` used by the paper's conjugate-matrix argument.

Initialisation
--------------
``init="default"`` (the default everywhere) is PyTorch's own initialisation of
``nn.Linear``/``nn.Conv2d``: weights and biases
:math:`\sim\mathcal U(-1/\sqrt{\text{fan\_in}},\,1/\sqrt{\text{fan\_in}})`
(``kaiming_uniform_(a=sqrt(5))``), i.e. weight variance :math:`1/(3\,\text{fan\_in})`.
``init="lecun"`` draws weights from :math:`\mathcal N(0, 1/\text{fan\_in})` and
``init="he"`` from :math:`\mathcal N(0, 2/\text{fan\_in})`, both with zero biases.
Batch-norm layers start at scale 1, shift 0.

Seeding
-------
Every constructor takes ``seed=``; parameters are drawn inside
:func:`torch.random.fork_rng` after ``torch.manual_seed(seed)``, so building a model never
disturbs the caller's global random stream and the same seed always gives the same weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from . import validation as V

__all__ = ["MLP", "SmallCNN", "ResNet18", "build_model", "has_batch_norm", "MODEL_NAMES", "ACTIVATIONS", "INITS"]

ACTIVATIONS = ("tanh", "relu", "elu", "gelu", "identity")
INITS = ("default", "lecun", "he")
MODEL_NAMES = ("mlp", "linear", "small_cnn", "resnet18")


def _activation(name: str) -> nn.Module:
    if name == "tanh":
        return nn.Tanh()
    if name == "relu":
        return nn.ReLU()
    if name == "elu":
        return nn.ELU()
    if name == "gelu":
        return nn.GELU()
    if name == "identity":
        return nn.Identity()
    raise ValueError(f"activation={name!r} is not supported; accepted values: {ACTIVATIONS}")


def _check_seed(seed) -> int:
    return V.integer("seed", seed)


def _apply_init(module: nn.Module, init: str) -> None:
    """Re-initialise Linear/Conv layers of ``module`` in place (called inside ``fork_rng``)."""
    V.one_of("init", init, INITS)
    if init == "default":
        return  # constructors already used PyTorch's default
    gain = 1.0 if init == "lecun" else 2.0
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            fan_in = m.weight[0].numel()
            with torch.no_grad():
                m.weight.normal_(0.0, math.sqrt(gain / fan_in))
                if m.bias is not None:
                    m.bias.zero_()


def _input_dim(input_dim, input_shape) -> int:
    if input_dim is None and input_shape is None:
        raise ValueError("MLP needs input_dim (int) or input_shape (tuple of ints); got neither")
    if input_shape is not None:
        shape = tuple(int(s) for s in input_shape)
        if not shape or any(s <= 0 for s in shape):
            raise ValueError(f"input_shape must be a non-empty tuple of positive ints, got {input_shape!r}")
        dim = math.prod(shape)
        if input_dim is not None and int(input_dim) != dim:
            raise ValueError(f"input_dim={input_dim} disagrees with input_shape={shape} (product {dim})")
        return dim
    if int(input_dim) <= 0:
        raise ValueError(f"input_dim must be a positive int, got {input_dim!r}")
    return int(input_dim)


class MLP(nn.Sequential):
    r"""Fully connected network ``Flatten, Linear, act, ..., Linear``.

    :math:`f(x) = W_L\,\sigma(\dots\sigma(W_1 x + b_1)\dots) + b_L`; inputs of any shape
    ``[N, *input_shape]`` are flattened to ``[N, n_0]``; outputs are ``[N, num_classes]``.

    Args:
        input_dim: :math:`n_0` (or give ``input_shape``).
        widths: hidden widths; ``()`` gives a linear model.
        num_classes: number of outputs :math:`k`.
        activation: one of ``"tanh", "relu", "elu", "gelu", "identity"``.
        bias: whether the Linear layers have biases.
        seed: initialisation seed (global RNG untouched).
        input_shape: alternative to ``input_dim``.
        init: ``"default"`` (PyTorch), ``"lecun"`` or ``"he"`` (see module docstring).

    Example:
        >>> MLP(input_shape=(1, 28, 28), widths=(64, 64), num_classes=10)(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        input_dim: int | None = None,
        widths: Sequence[int] = (),
        num_classes: int = 10,
        activation: str = "tanh",
        bias: bool = True,
        seed: int = 0,
        *,
        input_shape: Sequence[int] | None = None,
        init: str = "default",
    ):
        n0 = _input_dim(input_dim, input_shape)
        # int() would truncate a width of 1.5 to 1 while the configuration says 1.5: refuse it
        widths = tuple(V.positive_int(f"widths[{i}]", w) for i, w in enumerate(widths))
        if int(num_classes) <= 0:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        _activation(activation)  # validate early
        _check_seed(seed)
        if init not in INITS:
            raise ValueError(f"init={init!r} is not supported; accepted values: {INITS}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            mods: list[nn.Module] = [nn.Flatten()]
            prev = n0
            for w in widths:
                mods += [nn.Linear(prev, w, bias=bias), _activation(activation)]
                prev = w
            mods.append(nn.Linear(prev, int(num_classes), bias=bias))
            super().__init__(*mods)
            _apply_init(self, init)
        self.input_dim = n0
        self.widths = widths
        self.num_classes = int(num_classes)
        self.activation = activation


class SmallCNN(nn.Sequential):
    r"""Small convolutional network.

    For each entry ``c`` of ``channels``: ``Conv2d(3x3, padding 1) [-> BatchNorm2d] -> act ->
    MaxPool2d(2)``; then ``AdaptiveAvgPool2d(pool) -> Flatten -> Linear(c_last*pool^2, k)``.
    Input ``[N, in_channels, H, W]`` (any H, W >= 2**len(channels)), output ``[N, k]``.

    Args:
        in_channels: input channels (1 for MNIST, 3 for CIFAR).
        num_classes: outputs :math:`k`.
        channels: conv widths.
        batch_norm: insert BatchNorm2d after each conv (measure such a model in eval mode).
        seed: initialisation seed.
        activation: non-linearity (default ``"relu"``).
        pool: spatial size kept before the linear head.
        init: ``"default"``, ``"lecun"`` or ``"he"``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        channels: Sequence[int] = (16, 32),
        batch_norm: bool = False,
        seed: int = 0,
        *,
        activation: str = "relu",
        pool: int = 2,
        init: str = "default",
    ):
        channels = tuple(V.positive_int(f"channels[{i}]", c) for i, c in enumerate(channels))
        if not channels:
            raise ValueError(f"channels={channels!r} is invalid; accepted: a non-empty tuple of positive ints")
        if int(in_channels) <= 0:
            raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
        if int(num_classes) <= 0:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        _activation(activation)
        _check_seed(seed)
        if init not in INITS:
            raise ValueError(f"init={init!r} is not supported; accepted values: {INITS}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            mods: list[nn.Module] = []
            prev = int(in_channels)
            for c in channels:
                mods.append(nn.Conv2d(prev, c, 3, padding=1))
                if batch_norm:
                    mods.append(nn.BatchNorm2d(c))
                mods += [_activation(activation), nn.MaxPool2d(2)]
                prev = c
            mods += [nn.AdaptiveAvgPool2d(pool), nn.Flatten(), nn.Linear(prev * pool * pool, int(num_classes))]
            super().__init__(*mods)
            _apply_init(self, init)
        self.num_classes = int(num_classes)


class _BasicBlock(nn.Module):
    """ResNet basic block: conv-bn-relu-conv-bn + shortcut, then relu."""

    def __init__(self, cin: int, cout: int, stride: int, batch_norm: bool):
        super().__init__()
        norm = (lambda c: nn.BatchNorm2d(c)) if batch_norm else (lambda c: nn.Identity())
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=not batch_norm)
        self.bn1 = norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=not batch_norm)
        self.bn2 = norm(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=not batch_norm), norm(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    r"""ResNet-18, CIFAR variant (3x3 stem, no max-pool), He et al. 2016.

    ``self.layers = Sequential(stem, block_1, ..., block_8, head)`` where ``stem`` is
    conv3x3-BN-ReLU, each block a :class:`_BasicBlock` (stages of widths
    ``64, 128, 256, 512`` times ``width``, strides 1, 2, 2, 2) and ``head`` is
    ``AdaptiveAvgPool2d(1) -> Flatten -> Linear``. ``forward(x) = self.layers(x)``;
    block-level layer Jacobians come from :func:`sharpjac.jacobians.split_layers`.

    Args:
        num_classes: outputs :math:`k`.
        width: channel multiplier (``0.25`` gives 16-32-64-128 channels).
        seed: initialisation seed.
        in_channels: input channels.
        batch_norm: use BatchNorm2d (default True; measure such a model in eval mode).
        init: ``"default"``, ``"lecun"`` or ``"he"``.
    """

    def __init__(
        self,
        num_classes: int = 10,
        width: float = 1.0,
        seed: int = 0,
        *,
        in_channels: int = 3,
        batch_norm: bool = True,
        init: str = "default",
    ):
        super().__init__()
        if not width > 0:
            raise ValueError(f"width must be a positive multiplier, got {width!r}")
        if int(num_classes) <= 0:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        _check_seed(seed)
        if init not in INITS:
            raise ValueError(f"init={init!r} is not supported; accepted values: {INITS}")
        widths = [max(1, int(round(c * width))) for c in (64, 128, 256, 512)]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            stem = nn.Sequential(
                nn.Conv2d(int(in_channels), widths[0], 3, padding=1, bias=not batch_norm),
                nn.BatchNorm2d(widths[0]) if batch_norm else nn.Identity(),
                nn.ReLU(),
            )
            blocks: list[nn.Module] = []
            cin = widths[0]
            for i, c in enumerate(widths):
                for j in range(2):
                    stride = 2 if (i > 0 and j == 0) else 1
                    blocks.append(_BasicBlock(cin, c, stride, batch_norm))
                    cin = c
            head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, int(num_classes)))
            self.layers = nn.Sequential(stem, *blocks, head)
            _apply_init(self, init)
        self.num_classes = int(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def build_model(
    name: str,
    *,
    input_shape: Sequence[int],
    num_classes: int,
    seed: int = 0,
    **kw,
) -> nn.Module:
    """Build a model by name.

    Args:
        name: ``"mlp"`` (kw: widths, activation, bias, init), ``"linear"`` (an MLP with no hidden
            layer), ``"small_cnn"`` (kw: channels, batch_norm, activation, pool, init) or
            ``"resnet18"`` (kw: width, batch_norm, init).
        input_shape: shape of one input, e.g. ``(1, 28, 28)``.
        num_classes: number of outputs.
        seed: initialisation seed.

    Returns:
        The model (float32; cast with ``.to(dtype)``).
    """
    input_shape = tuple(int(s) for s in input_shape)
    if name == "mlp":
        return MLP(input_shape=input_shape, num_classes=num_classes, seed=seed, **kw)
    if name == "linear":
        if "widths" in kw and tuple(kw["widths"]):
            raise ValueError(f"model 'linear' takes no hidden widths, got widths={kw['widths']!r}")
        kw.pop("widths", None)
        return MLP(input_shape=input_shape, widths=(), num_classes=num_classes, seed=seed, **kw)
    if name in ("small_cnn", "cnn"):
        if len(input_shape) != 3:
            raise ValueError(f"model 'small_cnn' needs input_shape (C, H, W), got {input_shape!r}")
        return SmallCNN(in_channels=input_shape[0], num_classes=num_classes, seed=seed, **kw)
    if name == "resnet18":
        if len(input_shape) != 3:
            raise ValueError(f"model 'resnet18' needs input_shape (C, H, W), got {input_shape!r}")
        return ResNet18(num_classes=num_classes, seed=seed, in_channels=input_shape[0], **kw)
    raise ValueError(f"model={name!r} is not supported; accepted values: {MODEL_NAMES}")


def has_batch_norm(model: nn.Module) -> bool:
    """True if ``model`` contains a batch-norm layer (its outputs then depend on train/eval mode)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())  # noqa: SLF001 - torch's base of every batch norm has no public name
