"""Lillicrap 2016's baselines: shallow learning and node perturbation (reinforcement).

The expected numbers are computed here from the weights alone, with explicit matrices in
float64: BP by plain autograd on the unconverted model, node perturbation's ``J ξ`` by
carrying the noise forward through the layers by hand.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import biocredit
import biocredit.rules as R
from biocredit.layers import Tap


def tanh_mlp(seed=0):
    """4 -> 5 -> 6 -> 3, tanh, float64; the converter taps it after each Tanh."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 6), nn.Tanh(),
                         nn.Linear(6, 3)).double()


def linear_net(sizes, seed=0):
    """A linear net with a Tap after every hidden layer."""
    torch.manual_seed(seed)
    layers = []
    for n_in, n_out in zip(sizes, sizes[1:]):
        layers += [nn.Linear(n_in, n_out), Tap()]
    return nn.Sequential(*layers[:-1]).double()


def data(n=7, width=4, classes=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, width, generator=g, dtype=torch.float64),
            torch.randint(0, classes, (n,), generator=g))


def convert(model, rule, seed=3, **options):
    return biocredit.convert(model, rule, generator=torch.Generator().manual_seed(seed),
                             **options)


# -- shallow learning ----------------------------------------------------------------------------
def test_shallow_leaves_hidden_layers_alone_and_gives_the_output_layer_bp_gradient():
    model, (x, y) = tanh_mlp(), data()
    net = convert(model, "shallow")
    F.cross_entropy(net(x), y).backward()
    F.cross_entropy(model(x), y).backward()       # BP on the plain model
    for i in (0, 2):
        assert net[i].weight.grad is None and net[i].bias.grad is None
    assert torch.equal(net[4].weight.grad, model[4].weight.grad)
    assert torch.equal(net[4].bias.grad, model[4].bias.grad)
    assert dict(net.named_buffers()) == {}        # no feedback drawn
    before = [net[i].weight.clone() for i in (0, 2)]
    torch.optim.SGD(net.parameters(), lr=0.5).step()
    assert all(torch.equal(net[i].weight, w) for i, w in zip((0, 2), before))


# -- node perturbation ---------------------------------------------------------------------------
def spy_on_noise(rule):
    """Record every noise draw ``[ξ_1, ξ_2, …]`` the rule makes."""
    drawn, draw = [], rule.noise
    rule.noise = lambda *args: drawn.append(draw(*args)) or drawn[-1]
    return drawn


def test_node_perturbation_signal_is_loss_change_times_noise_over_sigma_squared():
    sigma = 0.1
    model, (x, y) = tanh_mlp(), data()
    rule = R.create("node-perturbation", sigma=sigma)
    drawn = spy_on_noise(rule)
    net = convert(model, rule)
    F.cross_entropy(net(x), y).backward()
    (xi1, xi2), = drawn
    # The documented stream: the first backward draws from a generator seeded s + 0.
    s, k = net.perturbation_seed.tolist()
    g = torch.Generator().manual_seed(s)
    assert k == 1
    assert torch.equal(xi1, torch.randn(7, 5, generator=g, dtype=torch.float64) * sigma)
    assert torch.equal(xi2, torch.randn(7, 6, generator=g, dtype=torch.float64) * sigma)

    # Independent reference with explicit matrices.
    w1, b1, w2, b2, w3, b3 = (t.detach() for t in model.parameters())
    h1 = torch.tanh(x @ w1.T + b1)
    h2 = torch.tanh(h1 @ w2.T + b2)
    out = h2 @ w3.T + b3
    e = (torch.softmax(out, 1) - F.one_hot(y, 3)) / len(x)            # ∂loss/∂out
    j_xi = ((xi1 @ w2.T) * (1 - h2 ** 2) + xi2) @ w3.T                  # J ξ
    loss_change = (e * j_xi).sum(1, keepdim=True)                      # ΔL per example
    dh1, dh2 = loss_change * xi1 / sigma ** 2, loss_change * xi2 / sigma ** 2
    da1, da2 = dh1 * (1 - h1 ** 2), dh2 * (1 - h2 ** 2)
    expected = [da1.T @ x, da1.sum(0), da2.T @ h1, da2.sum(0), e.T @ h2, e.sum(0)]
    for p, want in zip(net.parameters(), expected):
        torch.testing.assert_close(p.grad, want, rtol=1e-10, atol=1e-13)

    # ΔL is the first-order loss change: a real perturbed forward pass agrees for small ξ.
    def loss_per_example(d1, d2):
        a = torch.tanh(x @ w1.T + b1) + d1
        o = (torch.tanh(a @ w2.T + b2) + d2) @ w3.T + b3
        return F.cross_entropy(o, y, reduction="none") / len(x)
    t = 1e-4
    measured = (loss_per_example(t * xi1, t * xi2) - loss_per_example(0, 0)) / t
    torch.testing.assert_close(measured, loss_change.squeeze(1), rtol=1e-3, atol=1e-9)


def test_node_perturbation_averages_to_the_bp_gradient():
    """3 examples, each repeated 20,000 times: one backward averages 60,000 noise draws."""
    model = linear_net([3, 4, 4, 2])
    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, 3, generator=g, dtype=torch.float64).repeat(20_000, 1)
    target = torch.randn(3, 2, generator=g, dtype=torch.float64).repeat(20_000, 1)
    net = convert(model, "node-perturbation")
    F.mse_loss(net(x), target).backward()
    F.mse_loss(model(x), target).backward()
    for i in (0, 2):        # hidden layers: the Monte-Carlo mean of the estimates
        for name in ("weight", "bias"):
            est, bp = getattr(net[i], name).grad, getattr(model[i], name).grad
            assert (est - bp).norm() < 0.1 * bp.norm(), (i, name)
    torch.testing.assert_close(net[4].weight.grad, model[4].weight.grad, rtol=1e-12, atol=0)
    # A single draw is nowhere near it: the average is what carries the information.
    net1 = convert(model, "node-perturbation")
    F.mse_loss(net1(x[:3]), target[:3]).backward()
    single = F.cosine_similarity(net1[0].weight.grad.flatten(), model[0].weight.grad.flatten(), 0)
    assert single < 0.95


def test_node_perturbation_alone_fits_a_linear_regression():
    """y* = T x through a 10-8-5 linear net whose output layer is frozen: only the hidden
    layer's node-perturbation updates can lower the loss, and they do."""
    g = torch.Generator().manual_seed(0)
    teacher = torch.randn(5, 10, generator=g, dtype=torch.float64) / 10 ** 0.5
    model = linear_net([10, 8, 5])
    model[2].requires_grad_(False)
    net = convert(model, "node-perturbation")
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    losses = []
    for _ in range(300):
        x = torch.randn(32, 10, generator=g, dtype=torch.float64)
        opt.zero_grad()
        loss = F.mse_loss(net(x), x @ teacher.T)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-20:]) / 20 < 0.2 * sum(losses[:20]) / 20


def test_node_perturbation_noise_is_seeded_advances_and_resumes():
    model, (x, y) = tanh_mlp(), data()

    def two_steps(net):
        out = []
        for _ in range(2):
            net.zero_grad()
            F.cross_entropy(net(x), y).backward()
            out.append(net[0].weight.grad.clone())
        return out

    a, b = convert(model, "node-perturbation", 5), convert(model, "node-perturbation", 5)
    first, second = two_steps(a)
    assert all(torch.equal(u, v) for u, v in zip((first, second), two_steps(b)))
    assert not torch.equal(first, second)                 # a fresh draw every backward
    assert a.perturbation_seed[1].item() == 2
    c = convert(model, "node-perturbation", 6, example_input=x)   # its state drawn now
    c.load_state_dict(a.state_dict())                     # a checkpoint resumes the stream
    c.zero_grad()
    F.cross_entropy(c(x), y).backward()
    a.zero_grad()
    F.cross_entropy(a(x), y).backward()
    assert torch.equal(c[0].weight.grad, a[0].weight.grad)


def test_node_perturbation_sigma_cancels_in_the_first_order_estimate():
    model, (x, y) = tanh_mlp(), data()
    grads = []
    for sigma in (1.0, 1e-3):
        net = convert(model, R.create("node-perturbation", sigma=sigma))
        F.cross_entropy(net(x), y).backward()
        grads.append([p.grad for p in net.parameters()])
    for u, v in zip(*grads):
        torch.testing.assert_close(u, v, rtol=1e-9, atol=1e-15)
    with pytest.raises(ValueError, match="sigma"):
        R.create("node-perturbation", sigma=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_node_perturbation_draws_its_noise_on_the_models_device():
    model, (x, y) = tanh_mlp(), data()
    rule = R.create("node-perturbation")
    drawn = spy_on_noise(rule)
    grads = []
    for _ in range(2):
        net = convert(model, rule).cuda()
        F.cross_entropy(net(x.cuda()), y.cuda()).backward()
        grads.append(net[0].weight.grad)
    assert all(t.is_cuda for t in drawn[0])
    assert grads[0].is_cuda and torch.equal(grads[0], grads[1])
