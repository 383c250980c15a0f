"""The learning rules' gradients against an independent NumPy implementation of docs/algorithms.md.

Every expected gradient here is computed from scratch in NumPy: a forward pass from the net's
weights, hand-written activation derivatives, the output error ``e`` by hand, then the rule's
teaching signal ``δa_l`` per example (column vectors, as in docs/algorithms.md) and
``ΔW_l = Σ_n δa_l h_{l-1}ᵀ``, ``Δb_l = Σ_n δa_l``. Only the weights and the random feedback
matrices are read from the library. All in float64 on the CPU.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import biocredit
import biocredit.losses as L
import biocredit.models as M
import biocredit.rules as R
from biocredit.layers import FeedbackLinear

RTOL, ATOL = 1e-10, 1e-12
BATCH = 8

# (spec, input width, classes): 4-5-5-3, 6-7-5-4-3, and a one-hidden-layer 4-6-3.
NET_1 = ("mlp:1x6:tanh", 4, 3)
NET_2 = ("mlp:5,5:tanh", 4, 3)
NET_3 = ("mlp:7,5,4:tanh", 6, 3)


# -- the independent reference ---------------------------------------------------------------

def act(name: str, a: np.ndarray) -> np.ndarray:
    if name == "tanh":
        return np.tanh(a)
    if name == "logistic":
        return 1.0 / (1.0 + np.exp(-a))
    if name == "relu":
        return np.maximum(a, 0.0)
    if name == "hardtanh":
        return np.clip(a, -1.0, 1.0)
    raise ValueError(name)


def dact(name: str, a: np.ndarray) -> np.ndarray:
    if name == "tanh":
        return 1.0 - np.tanh(a) ** 2
    if name == "logistic":
        s = 1.0 / (1.0 + np.exp(-a))
        return s * (1.0 - s)
    if name == "relu":
        return (a > 0).astype(np.float64)
    if name == "hardtanh":  # docs/algorithms.md (Amit): 1 if |a| <= 1 else 0
        return (np.abs(a) <= 1.0).astype(np.float64)
    raise ValueError(name)


def output_error(loss: str, logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``e = ∂loss/∂a_L`` for the batch-averaged losses: (ŷ − onehot) / N."""
    n, c = logits.shape
    onehot = np.zeros((n, c))
    onehot[np.arange(n), y] = 1.0
    if loss == "ce":
        z = np.exp(logits - logits.max(axis=1, keepdims=True))
        yhat = z / z.sum(axis=1, keepdims=True)
    elif loss == "bce":
        yhat = 1.0 / (1.0 + np.exp(-logits))
    else:
        raise ValueError(loss)
    return (yhat - onehot) / n


def weights(net) -> tuple[list[np.ndarray], list[np.ndarray]]:
    layers = net.weight_layers()
    return ([lay.weight.detach().numpy().copy() for lay in layers],
            [lay.bias.detach().numpy().copy() for lay in layers])


def np_forward(Ws, bs, x: np.ndarray, name: str):
    """Per example (columns): ``hs[n][l] = h_l``, ``as_[n][l-1] = a_l`` (hidden), logits."""
    hs, as_, logits = [], [], []
    for xn in x:
        h, hl, al = xn, [xn], []
        for W, b in zip(Ws[:-1], bs[:-1]):
            a = W @ h + b
            h = act(name, a)
            al.append(a)
            hl.append(h)
        logits.append(Ws[-1] @ h + bs[-1])
        hs.append(hl)
        as_.append(al)
    return hs, as_, np.stack(logits)


def np_grads(rule: str, Ws, bs, x, y, name: str, loss: str, feedback=None):
    """Expected (dW, db) per weight layer and the logits.

    ``feedback``: FA: list of ``B_{l+1}`` (``n_l × n_{l+1}``) for l = 1..L-1;
    DFA: list of ``B_l`` (``n_l × C``) per hidden layer; IFA: ``[B_1]``.
    """
    hs, as_, logits = np_forward(Ws, bs, x, name)
    e = output_error(loss, logits, y)
    nh = len(Ws) - 1
    dW = [np.zeros_like(W) for W in Ws]
    db = [np.zeros_like(b) for b in bs]
    for n in range(len(x)):
        deltas = [None] * (nh + 1)  # deltas[k] = δa_{k+1}; deltas[nh] = δa_L
        deltas[nh] = e[n]
        fp = [dact(name, a) for a in as_[n]]
        if rule in ("bp", "fa"):
            for k in range(nh - 1, -1, -1):
                back = Ws[k + 1].T if rule == "bp" else feedback[k]
                deltas[k] = (back @ deltas[k + 1]) * fp[k]
        elif rule == "dfa":
            for k in range(nh):
                deltas[k] = (feedback[k] @ e[n]) * fp[k]
        elif rule == "ifa":
            deltas[0] = (feedback[0] @ e[n]) * fp[0]
            for k in range(1, nh):
                deltas[k] = (Ws[k] @ deltas[k - 1]) * fp[k]
        else:
            raise ValueError(rule)
        for k in range(nh + 1):
            dW[k] += np.outer(deltas[k], hs[n][k])
            db[k] += deltas[k]
    return dW, db, logits


# -- helpers ---------------------------------------------------------------------------------

def make_net(spec, n_in, n_out, seed=0, **options):
    torch.manual_seed(seed)
    return M.create(spec, input_shape=(n_in,), num_classes=n_out, **options).double()


def batch(n_in, n_out, seed=1, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(BATCH, n_in, generator=g, dtype=torch.float64) * scale
    y = torch.randint(0, n_out, (BATCH,), generator=g)
    return x, y


class Step(NamedTuple):
    loss: torch.Tensor
    logits: torch.Tensor


def run_rule(rule, net, x, y, loss="ce", seed=1):
    """``net`` converted for ``rule`` after one plain ``loss.backward()``, and that step's
    loss and logits (detached)."""
    trained = biocredit.convert(net, rule, generator=torch.Generator().manual_seed(seed))
    biocredit.set_targets(trained, y)
    logits = trained(x)
    value = L.create(loss)(logits, y)
    value.backward()
    return trained, Step(value.detach(), logits.detach())


def assert_grads(trained, dW, db):
    layers = trained.weight_layers()
    assert len(layers) == len(dW)
    for i, lay in enumerate(layers):
        np.testing.assert_allclose(lay.weight.grad.numpy(), dW[i], rtol=RTOL, atol=ATOL,
                                   err_msg=f"weight of layer {i + 1}")
        np.testing.assert_allclose(lay.bias.grad.numpy(), db[i], rtol=RTOL, atol=ATOL,
                                   err_msg=f"bias of layer {i + 1}")


def activation_of(spec: str) -> str:
    return spec.split(":")[2]


def fa_feedback(trained) -> list[np.ndarray]:
    """``B_{l+1}`` (shape of ``W_{l+1}ᵀ``) for l = 1..L-1, from the layers' buffers
    (stored in the weight's layout, so transposed here)."""
    layers = trained.weight_layers()[1:]
    fbs = [lay.feedback.numpy().T.copy() for lay in layers]
    for lay, fb in zip(layers, fbs):
        assert fb.shape == tuple(lay.weight.T.shape)
    return fbs


def dfa_feedback(trained) -> list[np.ndarray]:
    """``B_l`` (``n_l × C``) for each hidden block, sliced from the ``C × Σ n_l`` matrix."""
    matrix = trained.direct_feedback.numpy()
    widths = [blk.layer.weight.shape[0] for blk in trained.blocks]
    out, start = [], 0
    for w in widths:
        if start == matrix.shape[1]:          # IFA: only the first block has direct feedback
            break
        out.append(matrix[:, start:start + w].T.copy())
        start += w
    assert start == matrix.shape[1]
    return out


# -- BP ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("through_feedback", [False, True])
@pytest.mark.parametrize("loss", ["ce", "bce"])
@pytest.mark.parametrize("activation", ["tanh", "logistic", "relu", "hardtanh"])
@pytest.mark.parametrize("shape", [NET_2, NET_3], ids=["4-5-5-3", "6-7-5-4-3"])
def test_bp_matches_numpy(shape, activation, loss, through_feedback):
    spec, n_in, n_out = shape
    spec = spec.rsplit(":", 1)[0] + ":" + activation
    net = make_net(spec, n_in, n_out)
    # Larger inputs so that ReLU and hardtanh units sit on both sides of their kinks.
    x, y = batch(n_in, n_out, scale=3.0 if activation == "hardtanh" else 1.0)
    Ws, bs = weights(net)
    dW, db, logits = np_grads("bp", Ws, bs, x.numpy(), y.numpy(), activation, loss)
    if activation in ("relu", "hardtanh"):  # the test must exercise both branches of f'
        _, as_, _ = np_forward(Ws, bs, x.numpy(), activation)
        fp = np.concatenate([dact(activation, a) for per in as_ for a in per])
        assert 0 < fp.sum() < fp.size
    trained, result = run_rule(R.create("bp", through_feedback=through_feedback), net, x, y, loss)
    np.testing.assert_allclose(result.logits.numpy(), logits, rtol=RTOL, atol=ATOL)
    assert_grads(trained, dW, db)


def test_bp_loss_values_match_numpy():
    spec, n_in, n_out = NET_2
    net = make_net(spec, n_in, n_out)
    x, y = batch(n_in, n_out)
    Ws, bs = weights(net)
    _, _, a = np_forward(Ws, bs, x.numpy(), "tanh")
    onehot = np.eye(n_out)[y.numpy()]
    ce = np.mean(np.log(np.exp(a).sum(1)) - a[np.arange(BATCH), y.numpy()])
    p = 1 / (1 + np.exp(-a))
    bce = -(onehot * np.log(p) + (1 - onehot) * np.log(1 - p)).sum() / BATCH
    for name, expected in (("ce", ce), ("bce", bce)):
        _, result = run_rule(R.create("bp"), net, x, y, name)
        np.testing.assert_allclose(result.loss.item(), expected, rtol=1e-12)


def test_bp_through_feedback_is_bit_exact_autograd():
    """docs/algorithms.md: BP through the rule machinery equals plain autograd, bit for bit."""
    spec, n_in, n_out = NET_3
    net = make_net(spec, n_in, n_out)
    x, y = batch(n_in, n_out)
    mods = []
    for lay in net.weight_layers():
        lin = nn.Linear(lay.in_features, lay.out_features).double()
        with torch.no_grad():
            lin.weight.copy_(lay.weight)
            lin.bias.copy_(lay.bias)
        mods += [lin, nn.Tanh()]
    plain = nn.Sequential(*mods[:-1])
    F.cross_entropy(plain(x), y).backward()
    ref = [m for m in plain if isinstance(m, nn.Linear)]
    for through in (True, False):
        trained, _ = run_rule(R.create("bp", through_feedback=through), net, x, y)
        if through:
            assert all(isinstance(lay, FeedbackLinear) for lay in trained.weight_layers()[1:])
        for lay, r in zip(trained.weight_layers(), ref):
            assert torch.equal(lay.weight.grad, r.weight.grad)
            assert torch.equal(lay.bias.grad, r.bias.grad)


# -- FA ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("loss", ["ce", "bce"])
@pytest.mark.parametrize("shape", [NET_1, NET_2, NET_3], ids=["4-6-3", "4-5-5-3", "6-7-5-4-3"])
def test_fa_matches_numpy(shape, loss):
    spec, n_in, n_out = shape
    net = make_net(spec, n_in, n_out)
    x, y = batch(n_in, n_out)
    trained, result = run_rule(R.create("fa"), net, x, y, loss)
    B = fa_feedback(trained)
    Ws, bs = weights(trained)
    # The feedback really is random, not the forward weights.
    for b, W in zip(B, Ws[1:]):
        assert not np.allclose(b, W.T)
    dW, db, logits = np_grads("fa", Ws, bs, x.numpy(), y.numpy(), "tanh", loss, B)
    np.testing.assert_allclose(result.logits.numpy(), logits, rtol=RTOL, atol=ATOL)
    assert_grads(trained, dW, db)
    # ... and differs from BP's in every hidden layer (so the check above has teeth).
    dWbp, _, _ = np_grads("bp", Ws, bs, x.numpy(), y.numpy(), "tanh", loss)
    for k in range(len(Ws) - 1):
        assert not np.allclose(dW[k], dWbp[k])


@pytest.mark.parametrize("activation", ["relu", "logistic"])
def test_fa_other_activations(activation):
    spec, n_in, n_out = NET_3
    net = make_net(spec.replace("tanh", activation), n_in, n_out)
    x, y = batch(n_in, n_out)
    trained, _ = run_rule(R.create("fa"), net, x, y, "bce")
    Ws, bs = weights(trained)
    dW, db, _ = np_grads("fa", Ws, bs, x.numpy(), y.numpy(), activation, "bce",
                         fa_feedback(trained))
    assert_grads(trained, dW, db)


def test_fa_feedback_range():
    """B_{l+1} ~ U(±1/√n_{l+1}) (n_{l+1}: the width the error comes from), as fa.py says."""
    torch.manual_seed(0)
    net = M.create("mlp:400,20:tanh", input_shape=(4,), num_classes=10).double()
    trained = biocredit.convert(net, R.create("fa"), generator=torch.Generator().manual_seed(3))
    for lay in trained.weight_layers()[1:]:
        bound = lay.weight.shape[0] ** -0.5
        fb = lay.feedback
        assert fb.abs().max() <= bound
        assert fb.abs().max() > 0.95 * bound
        assert abs(fb.mean().item()) < 0.1 * bound


@pytest.mark.parametrize("shape", [NET_1, NET_2, NET_3], ids=["4-6-3", "4-5-5-3", "6-7-5-4-3"])
def test_fa_with_feedback_tied_to_weights_equals_bp(shape):
    spec, n_in, n_out = shape
    net = make_net(spec, n_in, n_out)
    x, y = batch(n_in, n_out)
    fa = R.create("fa")
    trained = biocredit.convert(net, fa, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for lay in trained.weight_layers()[1:]:
            lay.feedback.copy_(lay.weight)
    fa.backward(trained, x, y, L.create("ce"))
    bp_net, _ = run_rule(R.create("bp"), net, x, y)
    for a, b in zip(trained.weight_layers(), bp_net.weight_layers()):
        assert torch.equal(a.weight.grad, b.weight.grad)
        assert torch.equal(a.bias.grad, b.bias.grad)


def test_fa_sgd_leaves_feedback_fixed_and_uses_it():
    spec, n_in, n_out = NET_3
    net = make_net(spec, n_in, n_out)
    fa = R.create("fa")
    trained = biocredit.convert(net, fa, generator=torch.Generator().manual_seed(1))
    layers = trained.weight_layers()[1:]
    names = {n for n, _ in trained.named_parameters()}
    assert not any("feedback" in n for n in names)
    assert all(f"{p}.feedback" in trained.state_dict()
               for p in ("blocks.1.layer", "blocks.2.layer", "head.layer"))
    before = [lay.feedback.clone() for lay in layers]
    w_before = [lay.weight.detach().clone() for lay in trained.weight_layers()]
    opt = torch.optim.SGD(trained.parameters(), lr=0.5)
    loss = L.create("ce")
    for step in range(5):
        x, y = batch(n_in, n_out, seed=10 + step)
        opt.zero_grad()
        fa.backward(trained, x, y, loss)
        opt.step()
        fa.after_step(trained)
    for lay, b in zip(layers, before):
        assert torch.equal(lay.feedback, b)
        assert lay.feedback.grad is None
        assert not lay.feedback.requires_grad
    for lay, w in zip(trained.weight_layers(), w_before):
        assert not torch.allclose(lay.weight, w)
    # After training, the gradient still follows the (unchanged) random feedback, not W.
    x, y = batch(n_in, n_out, seed=99)
    opt.zero_grad(set_to_none=True)
    fa.backward(trained, x, y, loss)
    Ws, bs = weights(trained)
    dW, db, _ = np_grads("fa", Ws, bs, x.numpy(), y.numpy(), "tanh", "ce",
                         [b.numpy().T for b in before])
    assert_grads(trained, dW, db)


# -- DFA ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("loss", ["ce", "bce"])
@pytest.mark.parametrize("shape", [NET_1, NET_2, NET_3], ids=["4-6-3", "4-5-5-3", "6-7-5-4-3"])
def test_dfa_matches_numpy(shape, loss):
    spec, n_in, n_out = shape
    net = make_net(spec, n_in, n_out)
    x, y = batch(n_in, n_out)
    trained, result = run_rule(R.create("dfa"), net, x, y, loss)
    matrix = trained.direct_feedback
    widths = [blk.layer.weight.shape[0] for blk in trained.blocks]
    assert tuple(matrix.shape) == (n_out, sum(widths))
    assert matrix.abs().max() <= n_out ** -0.5
    B = dfa_feedback(trained)
    Ws, bs = weights(trained)
    dW, db, logits = np_grads("dfa", Ws, bs, x.numpy(), y.numpy(), "tanh", loss, B)
    np.testing.assert_allclose(result.logits.numpy(), logits, rtol=RTOL, atol=ATOL)
    assert_grads(trained, dW, db)
    # Every block has its own columns: equal-width blocks must not share feedback.
    if len(B) > 1 and B[0].shape == B[1].shape:
        assert not np.allclose(B[0], B[1])


def test_dfa_relu():
    spec, n_in, n_out = NET_3
    net = make_net(spec.replace("tanh", "relu"), n_in, n_out)
    x, y = batch(n_in, n_out)
    trained, _ = run_rule(R.create("dfa"), net, x, y, "bce")
    Ws, bs = weights(trained)
    dW, db, _ = np_grads("dfa", Ws, bs, x.numpy(), y.numpy(), "relu", "bce",
                         dfa_feedback(trained))
    assert_grads(trained, dW, db)


def test_dfa_one_hidden_layer_with_b1_equal_w2t_is_bp():
    """B_1 = W_2ᵀ (n_1 × C). The matrix is C × n_1 = B_1ᵀ, i.e. exactly W_2's layout."""
    spec, n_in, n_out = NET_1
    net = make_net(spec, n_in, n_out)
    x, y = batch(n_in, n_out)
    dfa = R.create("dfa")
    trained = biocredit.convert(net, dfa, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        trained.direct_feedback.copy_(trained.head.layer.weight)
    dfa.backward(trained, x, y, L.create("ce"))
    bp_net, _ = run_rule(R.create("bp"), net, x, y)
    for a, b in zip(trained.weight_layers(), bp_net.weight_layers()):
        # Same mm (e @ W_2) on both paths, so equal bit for bit in float64 on the CPU.
        assert torch.equal(a.weight.grad, b.weight.grad)
        assert torch.equal(a.bias.grad, b.bias.grad)
    # The transposed layout would be wrong (and is not even the right shape unless n_1 = C).
    assert trained.direct_feedback.shape == trained.head.layer.weight.shape


# -- IFA ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("loss", ["ce", "bce"])
@pytest.mark.parametrize("shape", [NET_1, NET_2, NET_3], ids=["4-6-3", "4-5-5-3", "6-7-5-4-3"])
def test_ifa_matches_numpy(shape, loss):
    spec, n_in, n_out = shape
    net = make_net(spec, n_in, n_out)
    x, y = batch(n_in, n_out)
    trained, result = run_rule(R.create("ifa"), net, x, y, loss)
    n1 = trained.blocks[0].layer.weight.shape[0]
    assert tuple(trained.direct_feedback.shape) == (n_out, n1)
    B = dfa_feedback(trained)
    assert len(B) == 1
    Ws, bs = weights(trained)
    dW, db, logits = np_grads("ifa", Ws, bs, x.numpy(), y.numpy(), "tanh", loss, B)
    np.testing.assert_allclose(result.logits.numpy(), logits, rtol=RTOL, atol=ATOL)
    assert_grads(trained, dW, db)
    # With more than one hidden layer IFA is not DFA with the same first block.
    if len(Ws) > 2:
        widths = [w.shape[0] for w in Ws[:-1]]
        rng = np.random.default_rng(0)
        Bd = [B[0]] + [rng.uniform(-1, 1, (w, n_out)) for w in widths[1:]]
        dWd, _, _ = np_grads("dfa", Ws, bs, x.numpy(), y.numpy(), "tanh", loss, Bd)
        np.testing.assert_allclose(dW[0], dWd[0], rtol=RTOL, atol=ATOL)
        assert not np.allclose(dW[1], dWd[1])


# -- zero initialisation -------------------------------------------------------------------------

def test_zero_init_dfa_learns_first_layer_bp_does_not():
    spec, n_in, n_out = NET_3
    net = make_net(spec, n_in, n_out, init="zero")
    assert all(torch.count_nonzero(p) == 0 for p in net.parameters())
    x, y = batch(n_in, n_out)
    Ws, bs = weights(net)

    bp_net, _ = run_rule(R.create("bp"), net, x, y)
    w0 = bp_net.blocks[0].layer.weight.grad
    assert torch.count_nonzero(w0) == 0
    assert all(torch.count_nonzero(lay.weight.grad) == 0 and torch.count_nonzero(lay.bias.grad) == 0
               for lay in bp_net.weight_layers()[:-1])
    assert torch.count_nonzero(bp_net.head.layer.bias.grad) > 0  # only the output bias learns

    dfa_net, _ = run_rule(R.create("dfa"), net, x, y)
    assert torch.count_nonzero(dfa_net.blocks[0].layer.weight.grad) == w0.numel()
    dW, db, _ = np_grads("dfa", Ws, bs, x.numpy(), y.numpy(), "tanh", "ce",
                         dfa_feedback(dfa_net))
    assert_grads(dfa_net, dW, db)
    # f'(0) = 1 for tanh: δa_1 = B_1 e exactly, so ΔW_1 = B_1 (Σ_n e_n x_nᵀ).
    e = output_error("ce", np.zeros((BATCH, n_out)), y.numpy())
    np.testing.assert_allclose(dW[0], dfa_feedback(dfa_net)[0] @ (e.T @ x.numpy()),
                               rtol=RTOL, atol=ATOL)


def test_zero_init_fa_first_layer_still_gets_a_signal():
    """Contrary to an early restatement of the papers ("FA and BP pass no signal from zero weights"),
    FA's hidden signal goes through the random B, not through W, so from zero weights its
    first layer does get a non-zero update (Nøkland trains FA from zero init too)."""
    spec, n_in, n_out = NET_3
    net = make_net(spec, n_in, n_out, init="zero")
    x, y = batch(n_in, n_out)
    fa_net, _ = run_rule(R.create("fa"), net, x, y)
    assert torch.count_nonzero(fa_net.blocks[0].layer.weight.grad) > 0
    Ws, bs = weights(net)
    dW, db, _ = np_grads("fa", Ws, bs, x.numpy(), y.numpy(), "tanh", "ce", fa_feedback(fa_net))
    assert_grads(fa_net, dW, db)


# -- a convention the docs and torch disagree on ---------------------------------------------------

def test_hardtanh_derivative_at_the_boundary():
    net = make_net("mlp:1x3:hardtanh", 2, 2, init="zero")
    with torch.no_grad():
        net.blocks[0].layer.bias.copy_(torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64))
        net.head.layer.weight.copy_(torch.tensor([[0.3, -0.2, 0.7], [-0.4, 0.5, 0.1]],
                                                 dtype=torch.float64))
    x = torch.ones(BATCH, 2, dtype=torch.float64)
    y = torch.zeros(BATCH, dtype=torch.long)
    trained, _ = run_rule(R.create("bp"), net, x, y)
    Ws, bs = weights(net)
    _, db, _ = np_grads("bp", Ws, bs, x.numpy(), y.numpy(), "hardtanh", "ce")
    assert np.all(db[0] != 0)  # the boundary units do get a signal under the documented rule
    np.testing.assert_allclose(trained.blocks[0].layer.bias.grad.numpy(), db[0],
                               rtol=RTOL, atol=ATOL)


def test_ifa_skips_input_gradients_it_does_not_use_and_its_signals_stay_the_same():
    """After one training forward shows that every layer between taps is a linear layer on
    the previous tap's output, IFA's taps stop asking for input gradients (products nobody
    uses); the weight gradients are the same as with them. With dropout between a tap and
    the next layer, the signal goes the general way, input gradients and all."""
    from biocredit.layers import engine_of
    for dropout, skips in ((0.0, True), (0.3, False)):
        torch.manual_seed(0)
        rule = R.create("ifa")
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Tanh(), nn.Dropout(dropout),
                              nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 10))
        if not dropout:
            del model[3]                                # a tap feeds the next layer itself
        x = torch.randn(8, 1, 8, 8)
        net = biocredit.convert(model, rule, generator=torch.Generator().manual_seed(1),
                           example_input=x[:1])
        y = torch.randint(0, 10, (8,))
        grads = []
        for _ in range(2):
            net.zero_grad()
            torch.manual_seed(3)                        # the same dropout masks
            F.cross_entropy(net(x), y).backward()
            grads.append([p.grad.clone() for p in net.parameters()])
        assert any(engine_of(net)._input_grad) is not skips
        for a, b in zip(*grads):
            assert torch.equal(a, b)


@pytest.mark.parametrize("between", ["", "pool-dropout"])
@pytest.mark.parametrize("padding_mode", ["zeros", "reflect"])
def test_ifa_forward_signal_through_a_conv_is_the_jacobian_vector_product(padding_mode, between,
                                                                          monkeypatch):
    """``W_l δa_{l-1}`` computed as the layer's own convolution or matmul without bias on
    the tangent carried through the steps between (zero padding, max-pooling, dropout,
    flatten: the fast path) equals the Jacobian-vector product of the recorded graph (the
    general path), at the first step and at the second (when the taps that feed a layer
    directly no longer record a graph)."""
    from biocredit.rules import ifa
    torch.manual_seed(0)
    steps = [nn.ZeroPad2d(1), nn.MaxPool2d(3, 2), nn.Dropout(0.3)] if between else []
    size = 4 if between else 8
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.Tanh(), *steps,
                          nn.Conv2d(3, 4, 3, stride=2, padding=1, padding_mode=padding_mode),
                          nn.Tanh(), nn.MaxPool2d(2) if between else nn.Identity(),
                          nn.Flatten(), nn.Linear(4 * (size // 2) ** 2 // (4 if between else 1), 8),
                          nn.Tanh(), nn.Linear(8, 5)).double()
    x, y = torch.randn(6, 1, 8, 8, dtype=torch.float64), torch.randint(0, 5, (6,))
    grads = {}
    for path in ("fast", "general"):
        if path == "general":
            monkeypatch.setattr(ifa, "reshaped_input", lambda record: None)
            monkeypatch.setattr(ifa, "chain_jvp", lambda *args: None)
            monkeypatch.setattr(ifa, "weight_times", lambda record, tangent: ifa.forward_jvp(
                record.preactivation, record.input, tangent))
        net = biocredit.convert(model, R.create("ifa"), generator=torch.Generator().manual_seed(1))
        grads[path] = []
        for seed in (3, 4):
            net.zero_grad()
            torch.manual_seed(seed)                     # the same dropout masks
            F.cross_entropy(net(x), y).backward()
            grads[path] += [p.grad.clone() for p in net.parameters()]
    for fast, general in zip(grads["fast"], grads["general"]):
        torch.testing.assert_close(fast, general, rtol=1e-10, atol=1e-13)
    assert all(g.abs().sum() > 0 for g in grads["fast"][:4])     # the conv layers learn


def test_ifa_takes_each_tap_back_to_its_layer_once_and_batch_norm_learns_the_same(monkeypatch):
    """IFA's ``δa_l`` enters at ``a_l`` with the batch-norm parameters' gradients beside it,
    so the backward of batch norm and the activation runs once per step, not again in
    ``loss.backward()``; the gradients are bit for bit those of injecting at the
    activation."""
    from torch.profiler import ProfilerActivity, profile
    from biocredit.rules import ifa
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Tanh(),
                          nn.Flatten(), nn.Linear(4 * 3 * 3, 6), nn.Tanh(), nn.Linear(6, 3))
    x, y = torch.randn(5, 2, 8, 8), torch.randint(0, 3, (5,))
    grads, norm_backwards = {}, {}
    for path in ("once", "twice"):
        if path == "twice":
            monkeypatch.setattr(ifa, "parameters_between", lambda output, input: None)
        net = biocredit.convert(model, R.create("ifa"), generator=torch.Generator().manual_seed(1))
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            F.cross_entropy(net(x), y).backward()
        grads[path] = [p.grad for p in net.parameters()]
        norm_backwards[path] = sum(e.count for e in prof.key_averages()
                                   if e.key == "aten::native_batch_norm_backward")
    assert norm_backwards == {"once": 2, "twice": 4}
    for once, twice in zip(grads["once"], grads["twice"]):
        assert torch.equal(once, twice)
    assert all(g.abs().sum() > 0 for g in grads["once"])


def test_dfa_in_the_first_layer_only_is_bp_above_it():
    """Nøkland's 3x50 experiment: ``select_taps(net, ["blocks.0"])`` keeps one tap, so
    δa_1 = (B_1 e) ⊙ f'(a_1) and every layer above gets BP's δa_l = (W_{l+1}ᵀ δa_{l+1}) ⊙ f'(a_l)."""
    spec, n_in, n_out = NET_3
    net = make_net(spec, n_in, n_out)
    M.select_taps(net, ["blocks.0"])
    x, y = batch(n_in, n_out)
    trained, result = run_rule(R.create("dfa"), net, x, y, "ce")
    B1 = trained.direct_feedback.numpy().T           # n_1 × C: the one tap's columns only
    Ws, bs = weights(trained)
    assert B1.shape == (Ws[0].shape[0], n_out)
    hs, as_, logits = np_forward(Ws, bs, x.numpy(), "tanh")
    e = output_error("ce", logits, y.numpy())
    dW = [np.zeros_like(W) for W in Ws]
    db = [np.zeros_like(b) for b in bs]
    for n in range(len(x)):
        deltas = [None] * len(Ws)
        deltas[-1] = e[n]
        for k in range(len(Ws) - 2, 0, -1):
            deltas[k] = (Ws[k + 1].T @ deltas[k + 1]) * dact("tanh", as_[n][k])
        deltas[0] = (B1 @ e[n]) * dact("tanh", as_[n][0])
        for k in range(len(Ws)):
            dW[k] += np.outer(deltas[k], hs[n][k])
            db[k] += deltas[k]
    assert_grads(trained, dW, db)


def test_select_taps_names_the_taps_when_none_match():
    net = make_net(NET_3[0], NET_3[1], NET_3[2])
    with pytest.raises(ValueError, match="its taps: blocks.0, blocks.1, blocks.2"):
        M.select_taps(net, ["blocks.9"])
