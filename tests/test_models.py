"""Models: shapes, layer structure visible to jacobians.split_layers, seeded init, init scales."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sharpjac import jacobians
from sharpjac.models import MLP, ResNet18, SmallCNN, build_model, has_batch_norm


def _params(m):
    return torch.cat([p.detach().flatten() for p in m.parameters()])


def test_mlp_structure_and_shapes():
    m = MLP(input_shape=(1, 28, 28), widths=(32, 16), num_classes=10, activation="relu")
    assert isinstance(m, nn.Sequential)
    kinds = [type(x).__name__ for x in m]
    assert kinds == ["Flatten", "Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert m(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    assert m[1].in_features == 784 and m[-1].out_features == 10
    blocks = jacobians.split_layers(m)
    assert len(blocks) == 3  # one per Linear


def test_linear_model_and_no_bias():
    m = build_model("linear", input_shape=(5,), num_classes=3, seed=0, bias=False)
    assert [type(x).__name__ for x in m] == ["Flatten", "Linear"]
    assert m[1].bias is None


@pytest.mark.parametrize(
    "make",
    [
        lambda s: MLP(input_dim=6, widths=(8,), num_classes=3, seed=s),
        lambda s: SmallCNN(in_channels=1, num_classes=4, channels=(4, 8), seed=s),
        lambda s: ResNet18(num_classes=5, width=0.125, seed=s),
    ],
)
def test_seeded_init_is_reproducible_and_leaves_global_rng_alone(make):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, b, c = make(0), make(0), make(1)
    assert torch.equal(torch.get_rng_state(), before), "building a model must not advance the global RNG"
    assert torch.equal(_params(a), _params(b))
    assert not torch.equal(_params(a), _params(c))


def test_default_init_matches_pytorch_bounds_and_lecun_he_variances():
    fan_in = 400
    d = MLP(input_dim=fan_in, widths=(300,), num_classes=2, seed=0)
    w = d[1].weight
    bound = 1 / math.sqrt(fan_in)
    assert w.abs().max() <= bound and w.abs().max() > 0.99 * bound
    assert w.var().item() == pytest.approx(1 / (3 * fan_in), rel=0.05)
    for init, gain in (("lecun", 1.0), ("he", 2.0)):
        m = MLP(input_dim=fan_in, widths=(300,), num_classes=2, seed=0, init=init)
        assert m[1].weight.var().item() == pytest.approx(gain / fan_in, rel=0.05)
        assert torch.count_nonzero(m[1].bias) == 0


def test_small_cnn_and_batch_norm_flag():
    m = SmallCNN(in_channels=3, num_classes=10, channels=(4, 8), batch_norm=True)
    assert isinstance(m, nn.Sequential) and has_batch_norm(m)
    assert m(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert not has_batch_norm(SmallCNN(in_channels=1, num_classes=10))


def test_resnet18_layers_and_blocks():
    m = ResNet18(num_classes=10, width=0.125, seed=0)
    assert isinstance(m.layers, nn.Sequential) and len(m.layers) == 10  # stem, 8 blocks, head
    x = torch.randn(2, 3, 32, 32)
    m.eval()
    assert torch.equal(m(x), m.layers(x))
    assert m(x).shape == (2, 10)
    convs = [x for x in m.modules() if isinstance(x, nn.Conv2d)]
    assert len(convs) == 1 + 16 + 3  # stem, 2 per block, 3 projection shortcuts
    assert len(jacobians.split_layers(m)) == 10
    widths = [b.conv2.out_channels for b in list(m.layers)[1:9]]
    assert widths == [8, 8, 16, 16, 32, 32, 64, 64]


def test_build_model_validation_messages():
    with pytest.raises(ValueError, match="model='vgg'.*accepted"):
        build_model("vgg", input_shape=(1, 8, 8), num_classes=10)
    with pytest.raises(ValueError, match="activation='sigmoidal'.*accepted"):
        MLP(input_dim=3, widths=(4,), activation="sigmoidal")
    with pytest.raises(ValueError, match="input_shape"):
        build_model("small_cnn", input_shape=(64,), num_classes=10)
    with pytest.raises(ValueError, match="init='xavier'"):
        MLP(input_dim=3, init="xavier")
    with pytest.raises(TypeError, match="seed"):
        MLP(input_dim=3, seed=1.5)


def test_fractional_widths_are_refused_not_truncated():
    # int(1.5) == 1 would train width 1 while the configuration records 1.5
    with pytest.raises(ValueError, match=r"widths\[1\]=1.5 \(float\) is invalid"):
        build_model("mlp", input_shape=(4,), num_classes=2, widths=[3, 1.5])
    with pytest.raises(ValueError, match=r"channels\[0\]=2.5"):
        build_model("small_cnn", input_shape=(1, 8, 8), num_classes=2, channels=[2.5])
