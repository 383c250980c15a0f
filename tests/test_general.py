"""The general feedback rule, auxiliary errors and the autoencoder loss (Flam-Shepherd)."""

import numpy as np
import pytest
import torch

import biocredit
import biocredit.losses as L
import biocredit.models as M
import biocredit.rules as R
from biocredit.conversion import exact_gradients

N, D, H1, H2, C = 7, 5, 6, 4, 3


def make(depth=2):
    torch.manual_seed(0)
    spec = "mlp:6,4:tanh" if depth == 2 else "mlp:6,5,4:tanh"
    return M.create(spec, input_shape=(D,), num_classes=C).double()


def data(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, D, generator=g, dtype=torch.float64), torch.randint(0, C, (N,), generator=g)


def run(name, net0, x, y, seed=3, setup=None, **options):
    rule = R.create(name, **options)
    net = biocredit.convert(net0, rule, generator=torch.Generator().manual_seed(seed))
    if setup:
        setup(net)
    rule.backward(net, x, y, L.create("ce"))
    return net, {k: p.grad.clone() for k, p in net.named_parameters()}


def assert_grads_equal(a, b, rtol=1e-12):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=rtol, atol=1e-14)


@pytest.mark.parametrize("depth", [2, 3])
def test_only_direct_sources_is_dfa(depth):
    x, y = data()
    sources = ";".join(["direct"] * depth)
    _, general = run("general", make(depth), x, y, sources=sources)
    _, dfa = run("dfa", make(depth), x, y)
    assert_grads_equal(general, dfa)


def test_only_from_above_with_tied_matrices_is_bp():
    x, y = data()

    def tie(net):
        net.neighbour_feedback_above_0.copy_(net.blocks[1].layer.weight.detach())
        net.neighbour_feedback_above_1.copy_(net.head.layer.weight.detach())

    net, general = run("general", make(), x, y, sources="above;above", setup=tie)
    params = [p for p in net.parameters()]
    with exact_gradients(net):
        bp = torch.autograd.grad(L.create("ce")(net(x), y), params)
    for (k, g), ref in zip(general.items(), bp):
        torch.testing.assert_close(g, ref, rtol=1e-12, atol=1e-14)


def numpy_forward(net, x):
    w1, b1 = (t.detach().numpy() for t in (net.blocks[0].layer.weight, net.blocks[0].layer.bias))
    w2, b2 = (t.detach().numpy() for t in (net.blocks[1].layer.weight, net.blocks[1].layer.bias))
    w3, b3 = (t.detach().numpy() for t in (net.head.layer.weight, net.head.layer.bias))
    h1 = np.tanh(x @ w1.T + b1)
    h2 = np.tanh(h1 @ w2.T + b2)
    a3 = h2 @ w3.T + b3
    return h1, h2, a3


def softmax_error(a, y):
    p = np.exp(a - a.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return (p - np.eye(a.shape[1])[y]) / len(a)


@pytest.mark.parametrize("strategy", ["s1", "s2", "s3"])
def test_strategies_match_the_table(strategy):
    x, y = data()
    net, grads = run("general", make(), x, y, strategy=strategy)
    xn, yn = x.numpy(), y.numpy()
    h1, h2, a3 = numpy_forward(net, xn)
    e = softmax_error(a3, yn)
    Bt = net.direct_feedback.numpy()          # C × (n1 + n2): [B_1ᵀ | B_2ᵀ]
    d1, d2 = e @ Bt[:, :H1], e @ Bt[:, H1:]          # B_l e, row per example
    f1, f2 = 1 - h1 ** 2, 1 - h2 ** 2
    if strategy == "s1":     # δa2 = B2e ⊙ f'; δa1 = mean(B1e, B̃1 δa2) ⊙ f'
        da2 = d2 * f2
        da1 = (d1 + da2 @ net.neighbour_feedback_above_0.numpy()) / 2 * f1
    elif strategy == "s2":   # δa1 = B1e ⊙ f'; δa2 = mean(B2e, B̄2 δa1) ⊙ f'
        da1 = d1 * f1
        da2 = (d2 + da1 @ net.neighbour_feedback_below_1.numpy()) / 2 * f2
    else:                    # δã = DFA signals; each layer: mean(direct, neighbour's δã)
        t1, t2 = d1 * f1, d2 * f2
        da1 = (d1 + t2 @ net.neighbour_feedback_above_0.numpy()) / 2 * f1
        da2 = (d2 + t1 @ net.neighbour_feedback_below_1.numpy()) / 2 * f2
    np.testing.assert_allclose(grads["blocks.0.layer.weight"].numpy(), da1.T @ xn, rtol=1e-10)
    np.testing.assert_allclose(grads["blocks.1.layer.weight"].numpy(), da2.T @ h1, rtol=1e-10)
    np.testing.assert_allclose(grads["blocks.1.layer.bias"].numpy(), da2.sum(0), rtol=1e-10)
    np.testing.assert_allclose(grads["head.layer.weight"].numpy(), e.T @ h2, rtol=1e-10)


def test_weighted_mean_of_sources():
    x, y = data()
    net, grads = run("general", make(), x, y, strategy="s1", weights={"direct": 3.0})
    h1, h2, a3 = numpy_forward(net, x.numpy())
    e = softmax_error(a3, y.numpy())
    Bt = net.direct_feedback.numpy()
    da2 = e @ Bt[:, H1:] * (1 - h2 ** 2)
    da1 = (3 * e @ Bt[:, :H1] + da2 @ net.neighbour_feedback_above_0.numpy()) / 4 * (1 - h1 ** 2)
    np.testing.assert_allclose(grads["blocks.0.layer.weight"].numpy(), da1.T @ x.numpy(),
                               rtol=1e-10)


def test_cyclic_sources_are_refused():
    x, y = data()
    with pytest.raises(ValueError, match="cycle"):
        run("general", make(), x, y, sources="direct+above;direct+below")


def test_bad_sources_are_refused_clearly():
    with pytest.raises(ValueError, match="no layer below"):
        biocredit.convert(make(), R.create("general", sources="below;direct"))
    with pytest.raises(ValueError, match="2 hidden layers"):
        biocredit.convert(make(), R.create("general", sources="direct"))
    with pytest.raises(ValueError, match="s1, s2, s3"):
        biocredit.convert(make(), R.create("general", strategy="s9"))


@pytest.mark.parametrize("name", ["dfa", "general"])
def test_auxiliary_errors_match_the_formula(name):
    x, y = data()
    options = {"aux_errors": True} if name == "dfa" else {"aux_errors": True, "sources":
                                                          "direct;direct"}
    net, grads = run(name, make(), x, y, **options)
    h1, h2, a3 = numpy_forward(net, x.numpy())
    Bt = net.direct_feedback.numpy()
    for h, h_in, cols, key in ((h1, x.numpy(), slice(0, H1), "blocks.0"),
                               (h2, h1, slice(H1, H1 + H2), "blocks.1")):
        b = Bt[:, cols]                                 # B_lᵀ, C × n_l
        e_l = softmax_error(h @ b.T, y.numpy())         # auxiliary logits a_x,l = B_lᵀ h_l
        delta = (e_l @ b) * (1 - h ** 2)
        np.testing.assert_allclose(grads[f"{key}.layer.weight"].numpy(), delta.T @ h_in,
                                   rtol=1e-10)


@pytest.mark.parametrize("name, options", [("dfa", {"aux_errors": True}),
                                           ("general", {"aux_errors": True, "strategy": "s2"})])
def test_with_auxiliary_errors_a_layer_update_ignores_the_layers_above(name, options):
    x, y = data()
    _, before = run(name, make(), x, y, **options)

    def perturb(net):
        with torch.no_grad():
            for p in [*net.blocks[1].parameters(), *net.head.parameters()]:
                p.add_(torch.randn_like(p))

    _, after = run(name, make(), x, y, setup=perturb, **options)
    for key in ("blocks.0.layer.weight", "blocks.0.layer.bias"):
        assert torch.equal(before[key], after[key])
    assert not torch.equal(before["blocks.1.layer.weight"], after["blocks.1.layer.weight"])
    # Without auxiliary errors the first layer does depend on the layers above (through e).
    _, plain_before = run("dfa", make(), x, y)
    _, plain_after = run("dfa", make(), x, y, setup=perturb)
    assert not torch.equal(plain_before["blocks.0.layer.weight"],
                           plain_after["blocks.0.layer.weight"])


def test_reconstruction_loss_output_error_is_the_formula():
    logits = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    target = torch.rand(4, 6, dtype=torch.float64)
    loss_fn = L.create("reconstruction")
    (e,) = torch.autograd.grad(loss_fn(logits, target), logits)
    yhat = torch.sigmoid(logits.detach())
    torch.testing.assert_close(e, (yhat - target) * yhat * (1 - yhat) / 4, rtol=1e-12,
                               atol=1e-15)
    assert loss_fn.errors(logits, target).item() == pytest.approx(
        ((yhat - target) ** 2).mean(1).sum().item())


@pytest.mark.parametrize("name", ["bp", "dfa", "general"])
def test_a_tiny_autoencoder_learns(name):
    from biocredit.data import load
    from biocredit.training.loop import evaluate
    data_ = load("digits")
    x = data_.train_x.flatten(1)
    torch.manual_seed(0)
    model = M.create("mlp:2x32:tanh", (64,), 64)
    rule = R.create(name)
    net = biocredit.convert(model, rule, generator=torch.Generator().manual_seed(1))
    loss_fn = L.create("reconstruction")
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=3e-3)
    start = evaluate(net, x, x, loss_fn)[1]
    for epoch in range(5):
        for i in range(0, len(x), 64):
            opt.zero_grad()
            rule.backward(net, x[i:i + 64], x[i:i + 64], loss_fn)
            opt.step()
    end = evaluate(net, x, x, loss_fn)[1]
    assert end < 0.7 * start
