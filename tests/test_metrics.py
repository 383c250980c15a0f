"""Diagnostics against independent NumPy computations, and their logging in run folders.

Every expected value is computed from scratch in NumPy (float64): angles, correlations and
norms of flat arrays; the saturation criteria on the pre-activations; the back-propagation
gradient of a tanh MLP with softmax cross-entropy from its weights.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import biocredit
import biocredit.losses as L
import biocredit.models as M
import biocredit.rules as R
from biocredit.cli import main
from biocredit.metrics import (angle_deg, block_activation, correlation, gradient_norms,
                               norm_ratio, probe_metrics, saturated_fraction, update_alignment)
from biocredit.models.mlp import SaturatedLinear
from biocredit.training import RunConfig, train_epoch


def np_angle(a, b) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    cos = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


# -- angles, correlation, norms ---------------------------------------------------------------

def test_angle_matches_numpy_on_random_matrices():
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = rng.normal(size=(7, 5)), rng.normal(size=(7, 5))
        assert angle_deg(t(a), t(b)) == pytest.approx(np_angle(a, b), abs=1e-9)


def test_angle_is_0_90_and_180_degrees_where_it_must_be():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 6))
    # arccos near ±1 resolves angles to about √ε rad ≈ 1e-6°
    assert angle_deg(t(a), t(3.5 * a)) == pytest.approx(0.0, abs=1e-5)
    assert angle_deg(t(a), t(-a)) == pytest.approx(180.0, abs=1e-5)
    r = rng.normal(size=(4, 6))
    orthogonal = r - (r.ravel() @ a.ravel()) / (a.ravel() @ a.ravel()) * a
    assert np_angle(a, orthogonal) == pytest.approx(90.0, abs=1e-9)
    assert angle_deg(t(a), t(orthogonal)) == pytest.approx(90.0, abs=1e-9)
    assert angle_deg(t([1.0, 0.0, 2.0]), t([0.0, 3.0, 0.0])) == 90.0
    assert math.isnan(angle_deg(t(a), t(np.zeros_like(a))))


def test_correlation_and_norm_ratio_match_numpy():
    rng = np.random.default_rng(2)
    w, b = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    mixed = 0.7 * w + 0.3 * b
    assert correlation(t(w), t(mixed)) == pytest.approx(np.corrcoef(w.ravel(), mixed.ravel())[0, 1],
                                                        abs=1e-12)
    assert correlation(t(w), t(w)) == pytest.approx(1.0, abs=1e-12)
    assert correlation(t(w), t(-2 * w)) == pytest.approx(-1.0, abs=1e-12)
    assert math.isnan(correlation(t(w), t(np.ones_like(w))))
    assert norm_ratio(t(b), t(w)) == pytest.approx(np.linalg.norm(b) / np.linalg.norm(w),
                                                   rel=1e-12)


def test_gradient_norms_match_numpy_and_mark_missing_gradients():
    rng = np.random.default_rng(3)
    grads = [rng.normal(size=(5, 4)), rng.normal(size=(3, 5)), np.zeros((2, 3))]
    norms = gradient_norms([t(g) for g in grads] + [None])
    assert norms[:3] == pytest.approx([np.sqrt((g ** 2).sum()) for g in grads], rel=1e-12)
    assert norms[2] == 0.0 and math.isnan(norms[3])
    assert gradient_norms([t(grads[0]).float()])[0] == pytest.approx(np.linalg.norm(grads[0]),
                                                                     rel=1e-6)


# -- saturation ----------------------------------------------------------------------------------

def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


SATURATION_CASES = [
    (nn.Tanh(), lambda a: np.abs(np.tanh(a)) > 0.99),
    (nn.Sigmoid(), lambda a: (sigmoid(a) < 0.01) | (sigmoid(a) > 0.99)),
    (SaturatedLinear(), lambda a: np.abs(a) > 1.0),
    (nn.Hardtanh(-0.5, 2.0), lambda a: (a < -0.5) | (a > 2.0)),
]


@pytest.mark.parametrize("activation, saturated", SATURATION_CASES,
                         ids=["tanh", "logistic", "saturated-linear", "hardtanh"])
def test_saturated_fraction_matches_numpy(activation, saturated):
    a = np.random.default_rng(4).normal(scale=4.0, size=(64, 30))
    a[0, :4] = [1.0, -1.0, 2.0, -0.5]  # boundaries: not saturated (|a| <= 1 etc.)
    expected = saturated(a).mean()
    assert 0.05 < expected < 0.95
    assert saturated_fraction(t(a), activation) == pytest.approx(expected, abs=1e-15)
    assert saturated_fraction(t(a).float(), activation) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("activation", [c[0] for c in SATURATION_CASES],
                         ids=["tanh", "logistic", "saturated-linear", "hardtanh"])
def test_saturated_fraction_is_0_near_zero_and_1_far_out(activation):
    assert saturated_fraction(torch.zeros(8, 5), activation) == 0.0
    assert saturated_fraction(torch.full((8, 5), 20.0), activation) == 1.0
    assert saturated_fraction(torch.full((8, 5), -20.0), activation) == 1.0


@pytest.mark.parametrize("activation", [nn.ReLU(), nn.Identity(), None])
def test_unbounded_activations_have_no_saturation(activation):
    assert saturated_fraction(torch.full((4, 3), 50.0), activation) is None


@pytest.mark.parametrize("name, kind", [("tanh", nn.Tanh), ("logistic", nn.Sigmoid),
                                        ("hardtanh", SaturatedLinear), ("relu", nn.ReLU)])
def test_block_activation_finds_each_blocks_activation(name, kind):
    net = M.create(f"mlp:2x5:{name}", input_shape=(1, 2, 3), num_classes=3, dropout_hidden=0.3)
    assert [type(block_activation(b)) for b in net.blocks] == [kind, kind]
    assert block_activation(net.head) is None


# -- the probe batch: angle, gradient norm and saturation together ------------------------------

def numpy_bp(net, x, y):
    """Pre-activations and BP weight gradients of a tanh MLP with mean softmax cross-entropy,
    from the weights alone."""
    layers = net.weight_layers()
    W = [m.weight.detach().numpy() for m in layers]
    b = [m.bias.detach().numpy() for m in layers]
    h = [x.reshape(len(x), -1).numpy()]
    pre = []
    for l in range(len(W) - 1):
        pre.append(h[-1] @ W[l].T + b[l])
        h.append(np.tanh(pre[-1]))
    logits = h[-1] @ W[-1].T + b[-1]
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    delta = (p - np.eye(W[-1].shape[0])[y.numpy()]) / len(x)
    grads = [None] * len(W)
    for l in range(len(W) - 1, -1, -1):
        grads[l] = delta.T @ h[l]
        if l > 0:
            delta = (delta @ W[l]) * (1.0 - h[l] ** 2)
    return pre, grads


def test_probe_metrics_for_bp_match_numpy(small_mlp, batch):
    x, y = batch
    with torch.no_grad():
        small_mlp.blocks[0].layer.weight.mul_(6.0)  # push some units into saturation
    rule = R.create("bp")
    net = biocredit.convert(small_mlp, rule)
    net.train()
    m = probe_metrics(net, x, y, L.create("ce"))
    pre, grads = numpy_bp(net, x, y)
    assert m["angle_deg"] == pytest.approx([0.0, 0.0], abs=1e-5)
    assert m["grad_norm"] == pytest.approx([np.linalg.norm(g) for g in grads], rel=1e-10)
    expected = [(np.abs(np.tanh(a)) > 0.99).mean() for a in pre]
    assert expected[0] > 0
    assert m["saturation"] == pytest.approx(expected, abs=1e-15)
    assert net.training and all(p.grad is None for p in net.parameters())


def test_probe_angles_are_0_with_tied_and_180_with_negated_feedback(small_mlp, batch):
    x, y = batch
    rule = R.create("fa")
    net = biocredit.convert(small_mlp, rule)
    loss_fn = L.create("ce")
    _, grads = numpy_bp(net, x, y)
    for sign, angle in ((1.0, 0.0), (-1.0, 180.0)):
        net.head.layer.set_feedback(sign * net.head.layer.weight.detach())
        net.blocks[1].layer.set_feedback(net.blocks[1].layer.weight.detach())
        m = probe_metrics(net, x, y, loss_fn)
        assert m["angle_deg"] == pytest.approx([angle, angle], abs=1e-5)
        assert m["grad_norm"] == pytest.approx([np.linalg.norm(g) for g in grads], rel=1e-10)


def test_probe_angle_is_90_degrees_for_orthogonal_feedback():
    """One example, Amit's saturated linearity inside its linear range (f' = 1): the hidden
    gradient is ``(e B) xᵀ`` for the rule and ``(e W₂) xᵀ`` for BP, so a feedback matrix with
    ``e B ⊥ e W₂`` gives exactly 90°."""
    torch.manual_seed(3)
    model = M.create("mlp:1x5:hardtanh", input_shape=(6,), num_classes=4).double()
    with torch.no_grad():
        for layer in model.weight_layers():
            layer.weight.mul_(0.1)
    rule = R.create("fa")
    net = biocredit.convert(model, rule)
    x = torch.randn(1, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([2])
    W1, b1 = (p.detach().numpy() for p in (net.blocks[0].layer.weight, net.blocks[0].layer.bias))
    W2, b2 = (p.detach().numpy() for p in (net.head.layer.weight, net.head.layer.bias))
    a1 = x.numpy() @ W1.T + b1
    assert np.abs(a1).max() < 1
    logits = a1 @ W2.T + b2
    e = (np.exp(logits) / np.exp(logits).sum() - np.eye(4)[2]).ravel()
    g = e @ W2
    r = np.random.default_rng(0).normal(size=g.shape)
    g_perp = r - (r @ g) / (g @ g) * g
    feedback = W2 + np.outer(e, g_perp - g) / (e @ e)  # e B = g_perp
    net.head.layer.set_feedback(t(feedback))
    m = probe_metrics(net, x, y, L.create("ce"))
    assert m["angle_deg"] == pytest.approx([90.0], abs=1e-6)
    assert m["saturation"] == [0.0]


@pytest.mark.parametrize("name", ["dfa", "ifa", "kp"])
def test_probe_angles_equal_update_alignment(name, small_mlp, batch):
    x, y = batch
    rule = R.create(name)
    net = biocredit.convert(small_mlp, rule)
    loss_fn = L.create("ce")
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        rule.backward(net, x, y, loss_fn)
        opt.step()
        rule.after_step(net)
    grads = [p.grad.clone() for p in net.parameters()]
    m = probe_metrics(net, x, y, loss_fn)
    assert m["angle_deg"] == update_alignment(net, x, y, loss_fn)
    assert all(0.0 < a < 180.0 for a in m["angle_deg"])
    assert all(torch.equal(p.grad, g) for p, g in zip(net.parameters(), grads))


# -- logging: the step hook, steps.jsonl, the per-epoch keys -----------------------------------

def test_train_epoch_calls_on_step_with_the_running_mean_loss():
    torch.manual_seed(0)
    net = biocredit.convert(M.create("mlp:1x8:tanh", input_shape=(5,), num_classes=3),
                            R.create("dfa"))
    rule, loss_fn = R.create("dfa"), L.create("ce")
    g = torch.Generator().manual_seed(7)
    x, y = torch.randn(10, 5, generator=g), torch.randint(0, 3, (10,), generator=g)
    before = copy.deepcopy(net)
    calls = []
    mean = train_epoch(net, rule, x, y, loss_fn, torch.optim.SGD(net.parameters(), lr=0.1), 4,
                       torch.Generator().manual_seed(3),
                       on_step=lambda step, loss: calls.append((step, loss())))
    assert [s for s, _ in calls] == [1, 2, 3]
    first = torch.randperm(10, generator=torch.Generator().manual_seed(3))[:4]
    with torch.no_grad():
        assert calls[0][1] == pytest.approx(loss_fn(before(x[first]), y[first]).item(), rel=1e-6)
    assert calls[-1][1] == pytest.approx(mean, rel=1e-12)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_train_logs_gradient_norms_saturation_and_steps(tmp_path):
    out = tmp_path / "run"
    code = main(["train", "--rule", "fa", "--model", "mlp:2x16:tanh", "--data", "digits",
                 "--epochs", "2", "--batch-size", "128", "--log-every-steps", "4", "--quiet",
                 "--out", str(out)])
    assert code == 0
    assert json.loads((out / "config.json").read_text())["log_every_steps"] == 4
    for row in read_jsonl(out / "metrics.jsonl"):
        assert len(row["angle_deg"]) == 2
        assert len(row["grad_norm"]) == 3 and all(g > 0 for g in row["grad_norm"])
        assert len(row["saturation"]) == 2 and all(0 <= s <= 1 for s in row["saturation"])
    steps = read_jsonl(out / "steps.jsonl")  # 1437 training examples: 12 steps per epoch
    assert [r["step"] for r in steps] == [4, 8, 12, 16, 20, 24]
    assert [r["epoch"] for r in steps] == [1, 1, 1, 2, 2, 2]
    for r in steps:
        assert math.isfinite(r["train_loss"]) and len(r["angle_deg"]) == 2
        assert all(0 < a < 180 for a in r["angle_deg"])
        assert len(r["grad_norm"]) == 3 and len(r["saturation"]) == 2


def test_relu_runs_log_no_saturation_and_no_steps_by_default(tmp_path):
    out = tmp_path / "relu"
    assert main(["train", "--rule", "bp", "--model", "mlp:1x16:relu", "--data", "digits",
                 "--epochs", "1", "--batch-size", "256", "--quiet", "--out", str(out)]) == 0
    (row,) = read_jsonl(out / "metrics.jsonl")
    assert row["saturation"] == [None] and len(row["grad_norm"]) == 2
    assert not (out / "steps.jsonl").exists()


def test_negative_log_every_steps_is_rejected():
    with pytest.raises(ValueError, match="log_every_steps"):
        RunConfig(log_every_steps=-1).validate()
