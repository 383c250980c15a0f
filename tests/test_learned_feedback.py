"""KP, URFB/FRFB, DKP, sign symmetry, Amit's hinge loss, sparse connectivity, feedback kinds."""

import numpy as np
import pytest
import torch

import biocredit
import biocredit.losses as L
import biocredit.models as M
import biocredit.rules as R
from biocredit.conversion import exact_gradients
from biocredit.layers import FeedbackLinear
from biocredit.layers.feedback_init import initial_feedback
from biocredit.metrics import correlation, feedback_alignment
from biocredit.training import RunConfig, run


def make(spec="mlp:6,5:tanh", **options):
    torch.manual_seed(0)
    return M.create(spec, input_shape=(4,), num_classes=3, **options).double()


def data(n=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def feedback_layers(net):
    return [m for m in net.modules() if isinstance(m, FeedbackLinear) and m.feedback is not None]


def bp_grads(net, x, y, loss_fn):
    with exact_gradients(net):
        return torch.autograd.grad(loss_fn(net(x), y), [p for p in net.parameters()
                                                        if p.requires_grad])


def sgd_steps(rule, net, x, y, lr, steps):
    """``steps`` full-batch SGD steps of ``rule`` on ``net`` with the cross-entropy loss."""
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        rule.backward(net, x, y, L.create("ce"))
        opt.step()
        rule.after_step(net)


@pytest.mark.parametrize("name, options", [("kp", {"decay": 0.01}), ("urfb", {})])
def test_kp_and_urfb_started_at_w_transpose_equal_bp_at_every_step(name, options):
    rule = R.create(name, **options)
    net = biocredit.convert(make(), rule)
    for m in feedback_layers(net):
        m.feedback.copy_(m.weight)          # B := Wᵀ (stored in W's layout)
    loss_fn = L.create("ce")
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=0.05)
    for step in range(20):
        x, y = data(seed=step)
        opt.zero_grad()
        rule.backward(net, x, y, loss_fn)
        got = [p.grad.clone() for p in net.parameters() if p.requires_grad]
        for g, ref in zip(got, bp_grads(net, x, y, loss_fn)):
            torch.testing.assert_close(g, ref, rtol=1e-12, atol=1e-14)
        opt.step()
        rule.after_step(net)


@pytest.mark.parametrize("epsilon", [1.0, 0.5])
def test_urfb_feedback_update_is_epsilon_times_the_weight_update(epsilon):
    rule = R.create("urfb", epsilon=epsilon)
    net = biocredit.convert(make(), rule)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.3,
                          momentum=0.9)
    for step in range(5):
        w0 = [m.weight.detach().clone() for m in feedback_layers(net)]
        b0 = [m.feedback.clone() for m in feedback_layers(net)]
        opt.zero_grad()
        rule.backward(net, *data(seed=step), L.create("ce"))
        opt.step()
        rule.after_step(net)
        for m, w, b in zip(feedback_layers(net), w0, b0):
            dw = m.weight.detach() - w
            assert dw.abs().max() > 1e-4
            torch.testing.assert_close(m.feedback - b, epsilon * dw, rtol=1e-12, atol=1e-15)


def test_urfb_with_epsilon_zero_is_fa():
    x, y = data()
    nets = {}
    for name, options in (("urfb", {"epsilon": 0.0}), ("fa", {})):
        rule = R.create(name, **options)
        net = biocredit.convert(make(), rule, generator=torch.Generator().manual_seed(7))
        sgd_steps(rule, net, x, y, lr=0.2, steps=5)
        nets[name] = net
    for (k, a), b in zip(nets["urfb"].state_dict().items(), nets["fa"].state_dict().values()):
        assert torch.equal(a, b), k


def test_kp_feedback_converges_to_the_forward_weights():
    rule = R.create("kp", decay=0.05)
    net = biocredit.convert(make(), rule)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    gap0 = [(m.feedback - m.weight).norm().item() for m in feedback_layers(net)]
    for step in range(60):
        opt.zero_grad()
        rule.backward(net, *data(seed=step), L.create("ce"))
        opt.step()
        rule.after_step(net)
    gap = [(m.feedback - m.weight).norm().item() for m in feedback_layers(net)]
    for g, g0 in zip(gap, gap0):   # the gap shrinks by (1 − λ) each step: 0.95^60 ≈ 0.046
        assert g == pytest.approx(g0 * 0.95 ** 60, rel=1e-6)


def test_dkp_feedback_gradient_is_e_h_transpose():
    net0 = make("mlp:6,5:tanh")
    rule = R.create("dkp", feedback_optimizer="sgd")
    net = biocredit.convert(net0, rule)
    x, y = data()
    rule.backward(net, x, y, L.create("ce"))
    # Independent NumPy forward and error.
    h, hs = x.numpy(), []
    for block in net.blocks:
        w, b = block.layer.weight.detach().numpy(), block.layer.bias.detach().numpy()
        h = np.tanh(h @ w.T + b)
        hs.append(h)
    a = h @ net.head.layer.weight.detach().numpy().T + net.head.layer.bias.detach().numpy()
    p = np.exp(a - a.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    e = (p - np.eye(3)[y.numpy()]) / len(x)
    expected = np.concatenate([e.T @ h_l for h_l in hs], axis=1)   # C × (n_1 + n_2)
    np.testing.assert_allclose(net.direct_feedback.grad.numpy(), expected, rtol=1e-12)
    # The update uses its own optimizer: plain SGD with feedback_lr and decay.
    b0 = net.direct_feedback.clone()
    rule.after_step(net)
    lr, decay = rule.options["feedback_lr"], rule.options["feedback_decay"]
    np.testing.assert_allclose(net.direct_feedback.numpy(),
                               b0.numpy() - lr * (expected + decay * b0.numpy()), rtol=1e-12)
    assert net.direct_feedback.grad is None


def test_dkp_feedback_gradient_comes_from_loss_backward_only():
    """``e hᵀ`` reaches ``direct_feedback.grad`` through autograd: ``torch.autograd.grad``
    of the input (an adversarial example's gradient) adds nothing to it, two
    ``backward()`` calls add up, and the buffer itself never requires grad."""
    net = biocredit.convert(make("mlp:6,5:tanh"), R.create("dkp"))
    x, y = data()
    x.requires_grad_()
    biocredit.set_targets(net, y)
    torch.autograd.grad(L.create("ce")(net(x), y), x)
    assert net.direct_feedback.grad is None
    for _ in range(2):
        biocredit.set_targets(net, y)
        L.create("ce")(net(x.detach()), y).backward()
        if _ == 0:
            once = net.direct_feedback.grad.clone()
    torch.testing.assert_close(net.direct_feedback.grad, 2 * once, rtol=1e-12, atol=0)
    assert not net.direct_feedback.requires_grad and net.direct_feedback.is_leaf


def test_a_copied_dkp_model_gets_its_own_feedback_gradient():
    """A deep copy (an EMA model, a trainer's clone) and an unpickled copy hand ``e hᵀ`` to
    their own ``direct_feedback``, never to the original's."""
    import copy
    import io
    net = biocredit.convert(make("mlp:6,5:tanh"), R.create("dkp"))
    x, y = data()
    L.create("ce")(net(x), y).backward()
    expected, net.direct_feedback.grad = net.direct_feedback.grad, None
    saved = io.BytesIO()
    torch.save(net, saved)
    saved.seek(0)
    for twin in (copy.deepcopy(net), torch.load(saved, weights_only=False)):
        L.create("ce")(twin(x), y).backward()
        assert net.direct_feedback.grad is None
        torch.testing.assert_close(twin.direct_feedback.grad, expected, rtol=0, atol=0)


def test_dkp_feedback_learning_rate_decays_each_epoch():
    """The trainer calls after_epoch once per epoch; DKP multiplies B's learning rate by
    feedback_lr_decay there (a step schedule) and leaves the forward optimizer alone."""
    from biocredit.training import train_epoch
    rule = R.create("dkp", feedback_lr=0.01, feedback_lr_decay=0.5)
    net = biocredit.convert(make("mlp:6,5:tanh"), rule)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    x, y = data()
    for _ in range(3):
        train_epoch(net, rule, x, y, L.create("ce"), opt, 4, torch.Generator().manual_seed(0))
    from biocredit.rules.dkp import feedback_optimizer
    assert feedback_optimizer(net).param_groups[0]["lr"] == pytest.approx(0.01 / 8)
    assert opt.param_groups[0]["lr"] == 0.1


def test_dkp_aligns_its_feedback_with_a_readout():
    """Learned direct feedback ends closer to BP than DFA's fixed one (same everything)."""
    angles = {}
    x, y = data(n=64, seed=3)
    for name, options in (("dfa", {}), ("dkp", {"feedback_lr": 0.5})):
        rule = R.create(name, **options)
        net = biocredit.convert(make("mlp:16,16:tanh"), rule,
                                generator=torch.Generator().manual_seed(2))
        sgd_steps(rule, net, x, y, lr=0.1, steps=200)
        from biocredit.metrics import update_alignment
        angles[name] = np.mean(update_alignment(net, x, y, L.create("ce")))
    assert angles["dkp"] < angles["dfa"]


@pytest.mark.parametrize("name", ["usf", "brsf", "frsf"])
def test_sign_symmetric_feedback_has_exactly_the_signs_of_w(name):
    rule = R.create(name)
    net = biocredit.convert(make(), rule)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.5)
    history = []
    for step in range(3):
        for m in feedback_layers(net):
            assert torch.equal(torch.sign(m.feedback), torch.sign(m.weight.detach()))
            assert (m.feedback != 0).all()
        history.append([m.feedback.abs().clone() for m in feedback_layers(net)])
        opt.zero_grad()
        rule.backward(net, *data(seed=step), L.create("ce"))
        opt.step()
        rule.after_step(net)
    same = all(torch.equal(a, b) for a, b in zip(history[0], history[1]))
    assert same == (name in ("usf", "frsf"))   # brSF redraws magnitudes, frSF keeps them


def test_hinge_loss_and_its_output_error_match_the_formula():
    logits = torch.tensor([[1.5, -0.5, 0.2], [0.3, -2.0, 0.9], [-1.2, 0.4, 1.0]],
                          dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 2, 1])
    factor = 0.5
    loss = L.create("hinge", off_class_factor=factor)(logits, y)
    a, c, mu = logits.detach().numpy(), y.numpy(), factor / 2
    expected_loss, expected_e = 0.0, np.zeros_like(a)
    for n in range(3):
        for i in range(3):
            if i == c[n]:
                expected_loss += max(0.0, 1 - a[n, i])
                expected_e[n, i] = -1.0 if a[n, i] < 1 else 0.0
            else:
                expected_loss += mu * max(0.0, 1 + a[n, i])
                expected_e[n, i] = mu if a[n, i] > -1 else 0.0
    assert loss.item() == pytest.approx(expected_loss / 3, rel=1e-12)
    (e,) = torch.autograd.grad(loss, logits)
    np.testing.assert_allclose(e.numpy(), expected_e / 3, rtol=1e-12)


@pytest.mark.parametrize("name", ["bp", "fa", "kp", "urfb", "dfa", "dkp", "usf"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd-momentum"])
def test_masked_weights_stay_zero_for_every_optimizer(name, optimizer):
    net0 = make("mlp:12,10:hardtanh", forward_density=0.5)
    options = {} if name == "bp" else {"feedback_density": 0.5}
    rule = R.create(name, **options)
    net = biocredit.convert(net0, rule)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = (torch.optim.Adam(params, lr=0.05, weight_decay=0.01) if optimizer == "adam"
           else torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=0.01))
    layers = [b.layer for b in [*net.blocks, net.head]]
    masks = [m.weight_mask.clone() for m in layers]
    fb_masks = [m.feedback_mask.clone() for m in feedback_layers(net)
                if m.feedback_mask is not None]
    w0 = [m.weight.detach().clone() for m in layers]
    for step in range(50):
        opt.zero_grad()
        rule.backward(net, *data(seed=step), L.create("hinge"))
        opt.step()
        rule.after_step(net)
    for m, mask, w in zip(layers, masks, w0):
        assert 0.3 < mask.mean() < 0.7
        assert (m.weight[mask == 0] == 0).all()                      # exactly zero
        assert not torch.equal(m.weight[mask == 1], w[mask == 1])   # the rest learned
    for m, mask in zip([m for m in feedback_layers(net) if m.feedback_mask is not None],
                       fb_masks):
        assert (m.feedback[mask == 0] == 0).all()
    if name in ("dfa", "dkp"):
        fb, mask = net.direct_feedback, net.direct_feedback_mask
        assert (fb[mask == 0] == 0).all() and 0.3 < mask.mean() < 0.7


def test_forward_and_feedback_masks_are_independent():
    net = biocredit.convert(make("mlp:40,40:tanh", forward_density=0.5),
                            R.create("fa", feedback_density=0.5))
    layer = net.blocks[1].layer
    agree = (layer.weight_mask == layer.feedback_mask).double().mean().item()
    assert 0.4 < agree < 0.6


@pytest.mark.parametrize("kind, check", [
    ("identity", lambda b: torch.equal(b, torch.eye(5, 7, dtype=torch.float64))),
    ("b2", lambda b: torch.equal(b, torch.eye(5, 7, dtype=torch.float64))),
    ("b1", lambda b: (b - 1).abs().max() < 0.06 and (b - 1).std() > 0.005),
    ("b5", lambda b: (b - 1).abs().max() <= 0.01),
    ("b4", lambda b: set(b.unique().tolist()) <= {0.0, 1.0}),
    ("b7", lambda b: b.abs().max() < 0.06 and 0.005 < b.std() < 0.02),
    ("orthogonal", lambda b: torch.allclose(b @ b.T, torch.eye(5, dtype=torch.float64))),
    ("gaussian", lambda b: 0.25 < b.std() < 0.6),   # N(0, 1/5)
    ("uniform", lambda b: b.abs().max() <= 5 ** -0.5),
])
def test_feedback_init_kinds(kind, check):
    b = initial_feedback(kind, (5, 7), 5, generator=torch.Generator().manual_seed(0),
                         dtype=torch.float64)
    assert b.shape == (5, 7) and check(b)


def test_unknown_feedback_init_lists_the_kinds():
    with pytest.raises(ValueError, match="identity"):
        biocredit.convert(make(), R.create("fa", feedback_init="eye"))


def test_wb_metrics_against_numpy():
    net = biocredit.convert(make(), R.create("fa"))
    m = feedback_layers(net)[0]
    w, b = m.weight.detach().numpy().ravel(), m.feedback.numpy().ravel()
    metrics = feedback_alignment(net)
    assert metrics["wb_correlation"][0] == pytest.approx(np.corrcoef(w, b)[0, 1], rel=1e-10)
    cos = w @ b / np.linalg.norm(w) / np.linalg.norm(b)
    assert metrics["wb_angle_deg"][0] == pytest.approx(np.degrees(np.arccos(cos)), rel=1e-10)
    assert metrics["feedback_norm_ratio"][0] == pytest.approx(
        np.linalg.norm(b) / np.linalg.norm(w), rel=1e-10)
    assert correlation(torch.tensor([1.0, 2, 3]), torch.tensor([2.0, 4, 6])) == pytest.approx(1)
    assert correlation(torch.tensor([1.0, 2, 3]), torch.tensor([3.0, 2, 1])) == pytest.approx(-1)


def test_urfb_aligns_w_and_b_more_than_frfb(tmp_path):
    """Amit's observation on a seeded small run (digits, saturated units, hinge, plain SGD)."""
    final = {}
    for name in ("urfb", "frfb"):
        config = RunConfig(rule=name, model="mlp:2x64:hardtanh", data="digits", loss="hinge",
                           optimizer="sgd", lr=0.1, epochs=10, seed=0)
        run(config, tmp_path / name)
        last = (tmp_path / name / "metrics.jsonl").read_text().splitlines()[-1]
        import json
        final[name] = json.loads(last)
    for u, f in zip(final["urfb"]["wb_correlation"], final["frfb"]["wb_correlation"]):
        assert u > f
    assert final["urfb"]["test_error"] <= final["frfb"]["test_error"]
