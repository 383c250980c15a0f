"""Direct feedback per position (issue 24): an output ``(N, T, C)`` and taps ``(N, T, d)``
share one ``C × d`` matrix per tap across positions, ``δh_{l,t} = e_t B_lᵀ``, checked against
independent einsum formulas; any sequence length; the flat layout still there."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import biocredit
import biocredit.rules as R
from biocredit.layers.direct import StructureError

V, D1, D2 = 7, 5, 6     # vocabulary (output channels C), the two taps' widths


class TinySequenceModel(nn.Module):
    """(N, T) tokens -> embedding -> tanh(Linear) tap -> tanh(Linear) tap -> Linear: (N, T, V).
    Keeps each tap's input (``retain_grad``) so a test reads the signal it received."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(V, D1)
        self.l1, self.l2, self.head = nn.Linear(D1, D1), nn.Linear(D1, D2), nn.Linear(D2, V)
        self.tap1, self.tap2 = biocredit.Tap(), biocredit.Tap()
        self.kept: list[torch.Tensor] = []

    def forward(self, x):
        self.kept = []
        h = self.embed(x)
        for layer, tap in ((self.l1, self.tap1), (self.l2, self.tap2)):
            h = torch.tanh(layer(h))
            if h.requires_grad:
                h.retain_grad()
            self.kept.append(h)
            h = tap(h)
        return self.head(h)


def converted(rule: str = "dfa", seed: int = 0, **options) -> nn.Module:
    torch.manual_seed(seed)
    return biocredit.convert(TinySequenceModel().double(), R.create(rule, **options))


def batch(T: int, N: int = 3, seed: int = 1):
    g = torch.Generator().manual_seed(seed + T)
    return torch.randint(V, (N, T), generator=g), torch.randint(V, (N, T), generator=g)


def step(net, x, y):
    """One ``loss.backward()`` of the mean token cross-entropy; returns the output."""
    out = net(x)
    F.cross_entropy(out.reshape(-1, V), y.reshape(-1)).backward()
    return out


def output_error(out: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """``e = (softmax(a) − onehot(y)) / (N·T)``, by NumPy."""
    a = out.detach().numpy()
    p = np.exp(a - a.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return (p - np.eye(V)[y.numpy()]) / y.numel()


@pytest.mark.parametrize("T", [4, 9])
def test_dfa_signal_is_each_positions_error_times_the_shared_matrix(T):
    net = converted()
    x, y = batch(T)
    out = step(net, x, y)
    e = output_error(out, y)                                    # N × T × C
    Bt = net.direct_feedback.numpy()                            # C × (d1 + d2): [B_1ᵀ | B_2ᵀ]
    assert Bt.shape == (V, D1 + D2)
    for h, block in zip(net.kept, np.split(Bt, [D1], axis=1)):
        expected = np.einsum("ntc,cd->ntd", e, block)           # δh_{l,t} = e_t B_lᵀ
        np.testing.assert_allclose(h.grad.numpy(), expected, rtol=1e-10, atol=1e-15)
    # and autograd turns it into the local gradient: ΔW_1 = Σ_{n,t} (δh ⊙ f') xᵀ
    h1, x1 = net.kept[0].detach().numpy(), net.embed(x).detach().numpy()
    delta = np.einsum("ntc,cd->ntd", e, Bt[:, :D1]) * (1 - h1 ** 2)
    np.testing.assert_allclose(net.l1.weight.grad.numpy(),
                               np.einsum("ntd,nti->di", delta, x1), rtol=1e-10)


def test_a_positions_signal_comes_from_its_own_error_only():
    net = converted()
    x, y = batch(6)
    out = net(x)
    grad = torch.zeros_like(out)
    grad[:, 2] = torch.randn(3, V, dtype=out.dtype)            # an error at position 2 only
    out.backward(grad)
    for h in net.kept:
        others = torch.cat([h.grad[:, :2], h.grad[:, 3:]], dim=1)
        assert torch.count_nonzero(others) == 0 and torch.count_nonzero(h.grad[:, 2]) > 0


def test_dkp_feedback_gradient_sums_e_h_transpose_over_positions():
    net = converted("dkp", feedback_optimizer="sgd")
    x, y = batch(5)
    out = step(net, x, y)
    e = output_error(out, y)
    expected = np.concatenate([np.einsum("ntc,ntd->cd", e, h.detach().numpy())
                               for h in net.kept], axis=1)     # Σ_{n,t} e_{n,t} h_{l,n,t}ᵀ
    np.testing.assert_allclose(net.direct_feedback.grad.numpy(), expected, rtol=1e-10)
    b0 = net.direct_feedback.clone()
    rule = biocredit.conversion_of(net).rule
    rule.after_step(net)                                       # its own SGD step on B
    lr, decay = rule.options["feedback_lr"], rule.options["feedback_decay"]
    np.testing.assert_allclose(net.direct_feedback.numpy(),
                               b0.numpy() - lr * (expected + decay * b0.numpy()), rtol=1e-10)


def test_general_rule_mixes_each_positions_own_signals():
    net = converted("general", strategy="s1")      # δh_1 = mean(B_1 e, B̃_1 δa_2); δh_2 = B_2 e
    x, y = batch(4)
    out = step(net, x, y)
    e = output_error(out, y)
    Bt = net.direct_feedback.numpy()
    above = net.neighbour_feedback_above_0.numpy()             # d_2 × d_1
    assert above.shape == (D2, D1)
    h1, h2 = (h.detach().numpy() for h in net.kept)
    u2 = np.einsum("ntc,cd->ntd", e, Bt[:, D1:])
    delta2 = u2 * (1 - h2 ** 2)
    u1 = (np.einsum("ntc,cd->ntd", e, Bt[:, :D1]) + np.einsum("ntk,kd->ntd", delta2, above)) / 2
    delta1 = u1 * (1 - h1 ** 2)
    # (the rule differentiates the tap's graph itself, so read the weights' gradients, not
    # the retained h.grad, which that extra call also fills)
    x1 = net.embed(x).detach().numpy()
    np.testing.assert_allclose(net.l2.weight.grad.numpy(),
                               np.einsum("ntk,ntd->kd", delta2, h1), rtol=1e-10)
    np.testing.assert_allclose(net.l1.weight.grad.numpy(),
                               np.einsum("ntd,nti->di", delta1, x1), rtol=1e-10)


def test_dfa_auxiliary_errors_per_position():
    net = converted(aux_errors=True)
    x, y = batch(4)
    biocredit.set_targets(net, y)
    step(net, x, y)
    Bt = net.direct_feedback.numpy()
    for h, block in zip(net.kept, np.split(Bt, [D1], axis=1)):
        a = np.einsum("ntd,cd->ntc", h.detach().numpy(), block)   # a_x,l = B_lᵀ h_l per position
        p = np.exp(a - a.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        e_l = (p - np.eye(V)[y.numpy()]) / y.numel()
        np.testing.assert_allclose(h.grad.numpy(), np.einsum("ntc,cd->ntd", e_l, block),
                                   rtol=1e-10, atol=1e-15)


def test_ifa_enters_the_first_tap_per_position():
    net = converted("ifa")
    x, y = batch(5)
    out = step(net, x, y)
    e = output_error(out, y)
    B1t = net.direct_feedback.numpy()
    assert B1t.shape == (V, D1)                                  # B_1 only, per position
    # δa_1 = (B_1 e_t) ⊙ f'(a_1), and it reaches W_1 as Σ δa_1 xᵀ
    h1, x1 = net.kept[0].detach().numpy(), net.embed(x).detach().numpy()
    delta1 = np.einsum("ntc,cd->ntd", e, B1t) * (1 - h1 ** 2)
    np.testing.assert_allclose(net.l1.weight.grad.numpy(),
                               np.einsum("ntd,nti->di", delta1, x1), rtol=1e-10)
    # δa_2 = (W_2 δa_1) ⊙ f'(a_2), position by position
    h2 = net.kept[1].detach().numpy()
    delta2 = np.einsum("ntd,kd->ntk", delta1, net.l2.weight.detach().numpy()) * (1 - h2 ** 2)
    np.testing.assert_allclose(net.l2.weight.grad.numpy(),
                               np.einsum("ntk,ntd->kd", delta2, h1), rtol=1e-10)


@pytest.mark.parametrize("rule", ["dfa", "dkp", "ifa", "general"])
def test_one_converted_model_trains_at_two_sequence_lengths(rule):
    net = converted(rule)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    biocredit.hook_optimizer(net, opt)
    shapes = set()
    for T in (4, 11, 4, 7):
        opt.zero_grad()
        x, y = batch(T)
        step(net, x, y)
        opt.step()
        shapes.add(tuple(net.direct_feedback.shape))
        grads = [p.grad for p in net.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert len(shapes) == 1


def test_feedback_memory_does_not_depend_on_the_sequence_length():
    sizes = {}
    for layout in ("position", "flat"):
        for T in (8, 64):
            torch.manual_seed(0)
            net = biocredit.convert(TinySequenceModel(), R.create("dfa", layout=layout),
                                    example_input=torch.zeros(1, T, dtype=torch.long))
            sizes[layout, T] = net.direct_feedback.numel()
    assert sizes["position", 8] == sizes["position", 64] == V * (D1 + D2)
    assert sizes["flat", 64] == 64 * 64 * V * (D1 + D2)          # T·C × T·Σd


def test_flat_layout_projects_the_whole_sequence_and_fixes_its_length():
    net = converted(layout="flat")
    x, y = batch(4)
    out = step(net, x, y)
    e = output_error(out, y).reshape(3, -1)                     # N × T·C
    Bt = net.direct_feedback.numpy()
    assert Bt.shape == (4 * V, 4 * (D1 + D2))
    expected = (e @ Bt[:, :4 * D1]).reshape(3, 4, D1)           # every position's error mixed
    np.testing.assert_allclose(net.kept[0].grad.numpy(), expected, rtol=1e-10, atol=1e-15)
    with pytest.raises(StructureError, match="layout='position'"):
        step(net, *batch(5))


def test_layout_is_decided_by_the_shapes_and_can_be_forced():
    # A 2-D output stays flat (the classic layout); layout='position' there says what it needs.
    mlp = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    net = biocredit.convert(mlp, "dfa", example_input=torch.zeros(2, 4))
    assert net.biocredit_conversion.engine.positions == 0
    with pytest.raises(ValueError, match=r"needs an output \(N, \*positions, C\)"):
        biocredit.convert(mlp, R.create("dfa", layout="position"),
                          example_input=torch.zeros(2, 4))
    assert converted().biocredit_conversion.engine.positions is None   # not drawn yet
    net = converted()
    net(batch(3)[0])
    assert net.biocredit_conversion.engine.positions == 1
    assert net.biocredit_conversion.engine.shapes == [(D1,), (D2,)]
    with pytest.raises(ValueError, match="option layout must be one of auto"):
        R.create("dkp", layout="rows")


def test_taps_that_stop_sharing_the_outputs_positions_are_refused():
    class Pooled(TinySequenceModel):
        def forward(self, x):
            out = super().forward(x)
            return out if x.shape[1] < 8 else out[:, ::2]      # fewer output positions
    torch.manual_seed(0)
    net = biocredit.convert(Pooled(), "dfa")
    step(net, *batch(4))
    with pytest.raises(StructureError, match="leading dims differ"):
        net(batch(8)[0])


def test_state_dict_round_trip_keeps_the_per_position_feedback():
    net = converted("dkp")
    step(net, *batch(4))
    biocredit.conversion_of(net).rule.after_step(net)
    other = converted("dkp", seed=5)
    other(batch(6)[0])                                         # drawn, at another length
    assert not torch.equal(other.direct_feedback, net.direct_feedback)
    other.load_state_dict(net.state_dict())
    torch.testing.assert_close(other.direct_feedback, net.direct_feedback, rtol=0, atol=0)
    for model in (net, other):
        model.zero_grad()
        step(model, *batch(9))
    for (name, p), q in zip(net.named_parameters(), other.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=0, msg=name)
