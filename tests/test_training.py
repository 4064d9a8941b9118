"""Training: update rules against hand computations, measurements against dense oracles,
validation, determinism, divergence, and one scientific check (progressive sharpening)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch.func import functional_call

from sharpjac import data
from sharpjac.losses import get_loss
from sharpjac.models import build_model
from sharpjac.training import (
    TrainConfig,
    augment_batch,
    jacobian_penalty,
    lr_at,
    measurement_steps,
    sam_gradient,
    train,
)

DIGITS = dict(
    dataset="digits",
    dataset_options={"n_train": 60, "n_test": 30},
    model="mlp",
    model_options={"widths": [12], "activation": "tanh"},
    device="cpu",
)


def _cfg(**kw):
    base = dict(DIGITS, max_steps=1, sharpness_subset=0, jacobian_subset=0, eval_test=False)
    base.update(kw)
    return TrainConfig(**base)


def _data(c: TrainConfig):
    ds = data.load(c.dataset, seed=c.data_seed, dtype=getattr(torch, c.dtype), **dict(c.dataset_options))
    return ds.x_train, ds.y_train, ds


def _init(c: TrainConfig, ds):
    return build_model(
        c.model, input_shape=ds.input_shape, num_classes=ds.num_classes, seed=c.seed, **dict(c.model_options)
    ).to(getattr(torch, c.dtype))


def _flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _loss_and_grad(model, theta, x, y, loss_fn):
    """Loss and gradient at flat parameters theta (functional, independent of training.py)."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]

    def f(t):
        ps = {n: c.view(s) for n, c, s in zip(names, torch.split(t, sizes), shapes)}
        return loss_fn(functional_call(model, ps, (x,)), y)

    t = theta.detach().clone().requires_grad_(True)
    val = f(t)
    (g,) = torch.autograd.grad(val, t)
    return val.detach(), g, f


# ---------------------------------------------------------------------------------------------
# update rules
# ---------------------------------------------------------------------------------------------


def test_weight_decay_and_momentum_match_closed_form_steps():
    c = _cfg(dtype="float64", lr=0.3, momentum=0.5, weight_decay=0.01, max_steps=2)
    x, y, ds = _data(c)
    m0 = _init(c, ds)
    w0 = _flat(m0)
    loss_fn = get_loss("mse")
    _, g0, _ = _loss_and_grad(m0, w0, x, y, loss_fn)
    b1 = g0 + 0.01 * w0  # coupled L2: gradient of (wd/2)||w||^2 added
    w1 = w0 - 0.3 * b1
    _, g1, _ = _loss_and_grad(m0, w1, x, y, loss_fn)
    b2 = 0.5 * b1 + g1 + 0.01 * w1  # heavy-ball momentum
    w2 = w1 - 0.3 * b2
    res = train(c)
    torch.testing.assert_close(_flat(res.model), w2, rtol=1e-12, atol=1e-13)


def test_sam_gradient_on_a_quadratic_by_hand():
    A = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    w = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)

    def objective():
        val = 0.5 * w @ A @ w
        val.backward()
        return val

    rho = 0.1
    loss, (g_sam,) = sam_gradient(objective, [w], rho)
    g = A @ w.detach()
    eps = rho * g / g.norm()
    torch.testing.assert_close(g_sam, A @ (w.detach() + eps))
    assert loss == pytest.approx(0.5 * float(w.detach() @ A @ w.detach()))
    torch.testing.assert_close(w.detach(), torch.tensor([1.0, -2.0], dtype=torch.float64))  # restored


def test_sam_training_step_matches_hand_computation():
    c = _cfg(dtype="float64", lr=0.2, sam_rho=0.05, weight_decay=0.001, loss="ce")
    x, y, ds = _data(c)
    m0 = _init(c, ds)
    w0 = _flat(m0)
    loss_fn = get_loss("ce")
    _, g, _ = _loss_and_grad(m0, w0, x, y, loss_fn)
    _, g_adv, _ = _loss_and_grad(m0, w0 + 0.05 * g / g.norm(), x, y, loss_fn)
    w1 = w0 - 0.2 * (g_adv + 0.001 * w0)
    torch.testing.assert_close(_flat(train(c).model), w1, rtol=1e-12, atol=1e-13)


def test_label_smoothing_step_matches_hand_computation():
    c = _cfg(dtype="float64", lr=0.5, loss="ce", label_smoothing=0.2)
    x, y, ds = _data(c)
    m0 = _init(c, ds)
    w0 = _flat(m0)

    def smoothed_ce(z, yy):
        t = torch.nn.functional.one_hot(yy, z.shape[1]).double() * 0.8 + 0.2 / z.shape[1]
        return -(t * torch.log_softmax(z, 1)).sum(1).mean()

    _, g, _ = _loss_and_grad(m0, w0, x, y, smoothed_ce)
    torch.testing.assert_close(_flat(train(c).model), w0 - 0.5 * g, rtol=1e-12, atol=1e-13)


def test_minibatch_sgd_uses_seeded_epoch_permutation():
    c = _cfg(dtype="float64", optimizer="sgd", batch_size=25, lr=0.1, max_steps=3)
    res = train(c)
    assert res.steps == 3
    assert res.frame["epoch"].tolist() == [0.0, 1.0]  # 3 batches of 25, 25, 10 = one epoch
    other = train(c.replace(seed=1))
    assert not torch.equal(_flat(res.model), _flat(other.model))


def test_jacobian_penalty_is_unbiased_for_the_frobenius_norm():
    torch.manual_seed(0)
    model = build_model("mlp", input_shape=(5,), num_classes=4, seed=0, widths=(7,)).double()
    x = torch.randn(6, 5, dtype=torch.float64)
    J = torch.func.vmap(torch.func.jacrev(lambda xi: model(xi[None])[0]))(x)  # [6, 4, 5]
    exact = J.pow(2).sum((1, 2)).mean()
    est = jacobian_penalty(model, x, seed=0, projections=4000)
    assert float(est.detach()) == pytest.approx(float(exact.detach()), rel=0.04)
    # differentiable in the parameters (create_graph=True)
    (gw,) = torch.autograd.grad(jacobian_penalty(model, x, seed=1), model[1].weight)
    assert torch.isfinite(gw).all() and gw.abs().sum() > 0
    # one output: v = +-1 and the estimate is exact
    m1 = build_model("mlp", input_shape=(5,), num_classes=1, seed=0, widths=(7,)).double()
    J1 = torch.func.vmap(torch.func.jacrev(lambda xi: m1(xi[None])[0]))(x)
    torch.testing.assert_close(jacobian_penalty(m1, x, seed=3), J1.pow(2).sum((1, 2)).mean())


def test_jacobian_penalty_enters_the_step():
    c0 = _cfg(dtype="float64", lr=0.5)
    c1 = c0.replace(jacobian_penalty=0.1)
    assert not torch.equal(_flat(train(c0).model), _flat(train(c1).model))


def test_augmentation_shifts_and_crops_flips():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 1, 10, 10, generator=g)
    out = augment_batch(x, seed=5)
    assert torch.equal(out, augment_batch(x, seed=5)) and not torch.equal(out, augment_batch(x, seed=6))
    xp = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(16):  # each image is a zero-filled shift by at most 2 pixels
        assert any(torch.equal(out[i], xp[i, :, a : a + 10, b : b + 10]) for a in range(5) for b in range(5))
    x3 = torch.rand(16, 3, 8, 8, generator=g)
    out3 = augment_batch(x3, seed=1)
    xp3 = torch.nn.functional.pad(x3, (4, 4, 4, 4))
    flips = 0
    for i in range(16):
        crops = [xp3[i, :, a : a + 8, b : b + 8] for a in range(9) for b in range(9)]
        plain = any(torch.equal(out3[i], cr) for cr in crops)
        flipped = any(torch.equal(out3[i], cr.flip(-1)) for cr in crops)
        assert plain or flipped
        flips += flipped and not plain
    assert 0 < flips < 16


# ---------------------------------------------------------------------------------------------
# schedules and validation
# ---------------------------------------------------------------------------------------------


def test_lr_schedules_and_measurement_schedule():
    c = _cfg(lr=0.4, lr_schedule="cosine", lr_min=0.1, max_steps=100)
    assert lr_at(c, 0, 100) == pytest.approx(0.4)
    assert lr_at(c, 50, 100) == pytest.approx(0.25)
    assert lr_at(c, 100, 100) == pytest.approx(0.1)
    s = _cfg(lr=1.0, lr_schedule="step", lr_step_every=10, lr_step_gamma=0.5, max_steps=100)
    assert [lr_at(s, t, 100) for t in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    m = _cfg(max_steps=1000, measure_num=4)
    assert sorted(measurement_steps(m, 1000, 10)) == [0, 1, 10, 100, 1000]
    e = _cfg(max_steps=50, measure_every_epochs=2, measure_every=7)
    assert sorted(measurement_steps(e, 50, 10)) == [0, 7, 14, 20, 21, 28, 35, 40, 42, 49, 50]


@pytest.mark.parametrize(
    "kw, pattern",
    [
        (dict(optimizer="adam"), r"optimizer='adam'.*one of \('gd', 'sgd'\)"),
        (dict(lr=-0.1), r"lr=-0.1.*> 0"),
        (dict(loss="hinge"), r"loss='hinge'.*\('mse', 'ce'\)"),
        (dict(lr_schedule="linear"), r"lr_schedule='linear'.*constant"),
        (dict(dataset="imagenet"), r"dataset='imagenet'.*mnist5k"),
        (dict(batch_size=10), r"batch_size=10.*optimizer='gd'"),
        (dict(momentum=1.0), r"momentum=1.0.*\[0, 1\)"),
        (dict(max_steps=None), r"max_steps=None and max_epochs=None"),
        (dict(label_smoothing=1.5), r"label_smoothing=1.5"),
        (dict(model="vgg"), r"model='vgg'.*mlp"),
        (dict(dtype="float16"), r"dtype='float16'.*float32"),
        (dict(sam_rho=-1.0), r"sam_rho=-1.0"),
        (dict(seed=2**32), r"seed=4294967296.*\[0, 2\*\*32\)"),
        (dict(seed=-1), r"seed=-1.*\[0, 2\*\*32\)"),
        (dict(threads=0), r"threads=0.*int >= 1"),
        (dict(divergence_factor=1.0), r"divergence_factor=1.0.*> 1"),
        (dict(trainable_layers=[]), r"trainable_layers=\(\).*non-empty"),
        (dict(trainable_layers=[1.5]), r"trainable_layers=\[1.5\].*list of ints"),
        (dict(snapshot_steps=[-1]), r"snapshot_steps=\(-1,\).*>= 0"),
        (dict(device="tpu"), r"device='tpu'"),
    ],
)
def test_config_validation_names_field_and_accepted_values(kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        _cfg(**kw)


def test_errors_that_need_the_data_stop_before_training():
    # a mini-batch larger than the training set would silently become full batch
    with pytest.raises(ValueError, match=r"batch_size=1000 exceeds the 60 training samples.*\[1, 60\]"):
        train(_cfg(optimizer="sgd", batch_size=1000))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"device='cuda' is not available on this machine.*available: cpu"):
            train(_cfg(device="cuda"))
    with pytest.raises(ValueError, match=r"trainable_layers=\[5\].*2 layers"):
        train(_cfg(trainable_layers=[5]))


def test_augment_needs_images():
    c = TrainConfig(dataset="manifold", model="mlp", max_steps=1, augment=True, device="cpu")
    with pytest.raises(ValueError, match="augment"):
        train(c)


# ---------------------------------------------------------------------------------------------
# measurements against dense oracles
# ---------------------------------------------------------------------------------------------


def test_measurements_match_dense_oracles():
    c = TrainConfig(
        dataset="digits",
        dataset_options={"n_train": 40, "n_test": 20},
        model="mlp",
        model_options={"widths": [6], "activation": "tanh"},
        loss="ce",
        label_smoothing=0.1,
        dtype="float64",
        device="cpu",
        max_steps=1,
        sharpness_subset=None,
        jacobian_subset=15,
        lanczos_tol=1e-10,
        lanczos_max_iter=200,
        measure_gn=True,
    )
    x, y, ds = _data(c)
    model = _init(c, ds)
    w0 = _flat(model)
    loss_fn = get_loss("ce", label_smoothing=0.1)
    row = train(c).frame.iloc[0]
    val, g, f = _loss_and_grad(model, w0, x, y, loss_fn)
    H = torch.func.hessian(f)(w0)
    assert row["sharpness"] == pytest.approx(torch.linalg.eigvalsh(H)[-1].item(), rel=1e-7)
    assert row["train_loss"] == pytest.approx(val.item(), rel=1e-12)
    assert row["grad_norm"] == pytest.approx(g.norm().item(), rel=1e-10)
    assert row["param_norm"] == pytest.approx(w0.norm().item(), rel=1e-12)
    assert row["first_layer_norm"] == pytest.approx(torch.linalg.matrix_norm(model[1].weight, 2).item(), rel=1e-10)
    with torch.no_grad():
        z = model(x)
    p = torch.softmax(z, 1)
    C = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    assert row["curvature_norm"] == pytest.approx(torch.linalg.eigvalsh(C)[:, -1].mean().item(), rel=1e-10)
    assert row["train_acc"] == pytest.approx((z.argmax(1) == y).double().mean().item())
    # Gauss-Newton: (1/N) sum_i Phi_i^T C_i Phi_i from dense per-sample parameter Jacobians
    names = [n for n, _ in model.named_parameters()]
    sizes = [p_.numel() for p_ in model.parameters()]
    shapes = [p_.shape for p_ in model.parameters()]

    def out(t):
        return functional_call(model, {n: c_.view(s) for n, c_, s in zip(names, torch.split(t, sizes), shapes)}, (x,))

    Phi = torch.func.jacrev(out)(w0)  # [N, k, P]
    G = torch.einsum("nkp,nkl,nlq->pq", Phi, C, Phi) / x.shape[0]
    assert row["gn_sharpness"] == pytest.approx(torch.linalg.eigvalsh(G)[-1].item(), rel=1e-7)
    # Jacobian statistics on the fixed subset (which points: check the max is attained on the train set)
    J = torch.func.vmap(torch.func.jacrev(lambda xi: model(xi[None])[0]))(x)
    spec = torch.linalg.matrix_norm(J.flatten(2), 2)
    assert spec.min().item() - 1e-12 <= row["jac_spectral_mean"] <= row["jac_spectral_max"] <= spec.max().item() + 1e-12
    feats = torch.tanh(model[1](model[0](x))).norm(dim=1)
    assert feats.min().item() - 1e-12 <= row["feature_norm"] <= feats.max().item() + 1e-12


def test_batch_norm_model_is_measured_in_eval_mode_and_mode_restored():
    c = TrainConfig(
        dataset="digits",
        dataset_options={"n_train": 40, "n_test": 20},
        model="small_cnn",
        model_options={"channels": [4], "batch_norm": True},
        loss="ce",
        dtype="float64",
        device="cpu",
        max_steps=1,
        sharpness_subset=20,
        jacobian_subset=5,
        lanczos_max_iter=5,
    )
    x, y, ds = _data(c)
    model = _init(c, ds).eval()
    with torch.no_grad():
        ref = get_loss("ce")(model(x), y).item()
    res = train(c)
    assert res.frame["train_loss"].iloc[0] == pytest.approx(ref, rel=1e-12)
    assert res.model.training  # back in training mode after the measurements
    assert np.isfinite(res.frame["jac_spectral_max"]).all()


# ---------------------------------------------------------------------------------------------
# determinism, divergence, stopping
# ---------------------------------------------------------------------------------------------


def test_same_seed_same_record_bitwise():
    c = TrainConfig(
        **dict(DIGITS, dataset_options={"n_train": 80, "n_test": 40}),
        loss="ce",
        optimizer="sgd",
        batch_size=16,
        momentum=0.9,
        lr=0.05,
        augment=True,
        jacobian_penalty=0.01,
        sam_rho=0.02,
        max_epochs=2,
        measure_every=3,
        sharpness_subset=30,
        jacobian_subset=10,
        lanczos_max_iter=8,
    )
    a, b = train(c).frame, train(c).frame
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert len(a) == 5 and a["step"].tolist() == [0, 3, 6, 9, 10]
    d = train(c.replace(seed=1)).frame
    assert not a["train_loss"].equals(d["train_loss"])


def test_divergence_stops_and_keeps_the_record():
    c = _cfg(lr=500.0, max_steps=200, measure_every=1, sharpness_subset=20, lanczos_max_iter=3)
    with pytest.warns(RuntimeWarning, match="diverged"):
        res = train(c)
    assert res.diverged and res.status == "diverged" and res.steps < 200
    df = res.frame
    assert len(df) >= 1 and df["diverged"].all() and df.attrs["diverged"]
    assert "step" in res.message and df.attrs["diverged_at_step"] is not None


def test_divergence_is_declared_at_a_stated_multiple_of_the_initial_loss():
    # a loss that stays finite but explodes (1.8e25 was once recorded as "completed")
    c = _cfg(lr=5.0, max_steps=8, measure_every=1)
    free = train(c.replace(divergence_factor=1e300, divergence_baseline_factor=1e300))
    initial = free.frame["train_loss"].iloc[0]
    assert free.status == "completed" and free.frame["train_loss"].max() > 1e6 * initial  # finite, exploded
    with pytest.warns(RuntimeWarning, match="diverged"):
        res = train(c.replace(divergence_factor=100.0, divergence_baseline_factor=1e300))
    assert res.status == "diverged" and "limit 100x" in res.message
    first_over = int((free.frame["train_loss"] > 100.0 * initial).to_numpy().argmax())
    # stopped at the first measured loss above 100x the initial one, or earlier on a mini-batch loss
    assert res.frame["step"].iloc[-1] <= free.frame["step"].iloc[first_over]


def test_threads_are_configuration_not_machine_state():
    from sharpjac.runs import config_key

    c = _cfg(max_steps=5, measure_every=1, sharpness_subset=30, jacobian_subset=10)
    # different thread counts are different runs ...
    assert config_key(c) != config_key(c.replace(threads=2))
    # ... and one run gives the same bits whatever the caller's thread count
    torch.set_num_threads(2)
    try:
        a = train(c).frame
        assert torch.get_num_threads() == 2  # restored
    finally:
        torch.set_num_threads(1)
    b = train(c).frame
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_trainable_layers_restrict_the_optimiser_not_the_hessian():
    c = _cfg(dtype="float64", max_steps=3, measure_every=1, trainable_layers=[2], sharpness_subset=None)
    res = train(c)
    from sharpjac.training import initial_model

    init = initial_model(c).state_dict()
    final = res.model.state_dict()
    assert torch.equal(final["1.weight"], init["1.weight"])  # layer 1 frozen: bit-identical
    assert not torch.equal(final["3.weight"], init["3.weight"])
    # the measured sharpness is the full Hessian's: compare with a dense float64 Hessian of all parameters
    from torch.func import functional_call, hessian

    model = res.model
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]
    x, y, _ = _data(c)
    loss_fn = get_loss("mse")

    def f(t):
        ps = {n: q.view(sh) for n, q, sh in zip(names, torch.split(t, sizes), shapes)}
        return loss_fn(functional_call(model, ps, (x,)), y)

    H = hessian(f)(_flat(model))
    top = float(torch.linalg.eigvalsh(H)[-1])
    # Lanczos stops at relative residual lanczos_tol=1e-3; its Ritz value is then within ~tol^2 * |lambda|
    assert res.frame["sharpness"].iloc[-1] == pytest.approx(top, rel=1e-4)


def test_regression_targets_train_with_mean_squared_error():
    c = TrainConfig(
        dataset="manifold",
        dataset_options={"d": 1, "n": 4, "n_train": 40, "n_test": 10, "task": "regression", "num_outputs": 2},
        model="mlp",
        model_options={"widths": [8], "activation": "tanh"},
        loss="mse",
        lr=0.1,
        max_steps=4,
        measure_every=1,
        dtype="float64",
        device="cpu",
        snapshot_steps=[0, 2],
    )
    res = train(c)
    ds = data.load("manifold", dtype=torch.float64, **dict(c.dataset_options))
    with torch.no_grad():
        expected = float(((res.model(ds.x_train) - ds.y_train) ** 2).mean())  # mean over samples and outputs
    assert res.frame["train_loss"].iloc[-1] == pytest.approx(expected, rel=1e-12)
    assert res.frame["train_acc"].isna().all() and (res.frame["curvature_norm"] == 1.0).all()  # C = (2/m) I, m=2
    assert sorted(res.snapshots) == [0, 2, 4]
    with pytest.raises(ValueError, match="regression"):
        train(c.replace(loss="ce"))


def test_target_train_accuracy_stops_early():
    c = _cfg(loss="ce", lr=0.5, max_steps=500, measure_every=5, target_train_acc=0.9)
    res = train(c)
    assert res.status == "target_reached" and res.steps < 500
    assert res.frame["train_acc"].iloc[-1] >= 0.9 and (res.frame["train_acc"].iloc[:-1] < 0.9).all()


# ---------------------------------------------------------------------------------------------
# science: progressive sharpening to the edge of stability
# ---------------------------------------------------------------------------------------------


def test_full_batch_gd_mse_sharpens_progressively_to_two_over_lr():
    lr = 0.2
    c = TrainConfig(
        dataset="mnist5k",
        dataset_options={"n_train": 300, "n_test": 100},
        model="mlp",
        model_options={"widths": [100, 100], "activation": "tanh"},
        loss="mse",
        optimizer="gd",
        lr=lr,
        max_steps=600,
        measure_every=20,
        sharpness_subset=None,
        jacobian_subset=0,
        eval_test=False,
        device="cpu",
    )
    df = train(c).frame
    s = df["sharpness"].to_numpy()
    limit = 2 / lr
    assert s[0] < 0.8 * limit, "must start well below the stability limit"
    reached = np.flatnonzero(s >= 0.9 * limit)
    assert len(reached) > 0, f"sharpness never reached 90% of 2/lr={limit}: max {s.max():.3f}"
    first = reached[0]
    assert df["step"].iloc[first] > 100, "the rise is progressive, not immediate"
    after = s[first:]
    assert len(after) >= 10
    assert np.all(np.abs(after / limit - 1) < 0.25), after  # hovers at the edge of stability
    assert abs(np.median(after) / limit - 1) < 0.1
    assert df["train_loss"].iloc[-1] < df["train_loss"].iloc[0] / 10


def test_a_caller_hook_adds_columns_and_end_values_without_changing_the_run():
    """``train(config, hooks=[...])``: the hook's column is on every measured row and equals an
    independent recomputation from the kept networks; its ``on_end`` values land in ``end``; the
    record's own columns are those of the same run without the hook (bit for bit)."""
    from sharpjac.hooks import TrainHook

    class SquaredNorm(TrainHook):
        name = "squared_norm"

        def on_measure(self, run, row):
            row["squared_norm"] = float(sum((p.detach().double() ** 2).sum() for p in run.model.parameters()))

        def on_end(self, run):
            return {"step": run.step}

    c = _cfg(max_steps=4, measure_every=2, snapshot_steps=(0, 2, 4))
    plain = train(c)
    hooked = train(c, hooks=[SquaredNorm()])
    pd.testing.assert_frame_equal(hooked.frame.drop(columns="squared_norm"), plain.frame)
    assert hooked.end["squared_norm"] == {"step": 4}
    assert list(hooked.frame["step"]) == [0, 2, 4]
    for step, value in zip(hooked.frame["step"], hooked.frame["squared_norm"]):
        expected = sum(
            float((t.double() ** 2).sum()) for k, t in hooked.snapshots[step].items() if "weight" in k or "bias" in k
        )
        assert value == pytest.approx(expected, rel=1e-12)
