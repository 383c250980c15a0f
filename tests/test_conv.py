"""Convolutional, locally connected and residual layers and models, for every rule."""

import numpy as np
import pytest
import torch
from torch import nn

import biocredit
import biocredit.losses as L
import biocredit.models as M
import biocredit.rules as R
from biocredit.layers import FeedbackConv2d, LocallyConnected2d


def tap_shapes(model):
    """Per-example shapes of the points where a direct rule's signals enter ``model``."""
    return biocredit.convert(model, "dfa").biocredit_conversion.engine.shapes


def grads(out_fn, tensors, g):
    return torch.autograd.grad(out_fn(), tensors, g)


@pytest.mark.parametrize("stride, padding, bias", [(1, 0, True), (2, 1, False), (1, 2, True)])
def test_conv_and_untied_with_b_equal_w_are_bp_bit_for_bit(stride, padding, bias):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, stride=stride, padding=padding, bias=bias).double()
    x = torch.randn(5, 3, 9, 9, dtype=torch.float64, requires_grad=True)
    g = torch.randn_like(conv(x))
    params = lambda m: [x, m.weight] + ([m.bias] if bias else [])  # noqa: E731
    ref = grads(lambda: conv(x), params(conv), g)
    fb = FeedbackConv2d.from_layer(conv, conv.weight.detach().clone())
    for a, b in zip(ref, grads(lambda: fb(x), params(fb), g)):
        assert torch.equal(a, b)
    untied = LocallyConnected2d.from_conv(conv, (9, 9))
    with_feedback = LocallyConnected2d.from_layer(untied, untied.weight.detach().clone())
    plain = grads(lambda: untied(x), params(untied), g)
    for a, b in zip(plain, grads(lambda: with_feedback(x), params(with_feedback), g)):
        assert torch.equal(a, b)


def test_untied_layer_with_one_kernel_everywhere_is_the_conv():
    torch.manual_seed(1)
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1).double()
    untied = LocallyConnected2d.from_conv(conv, (7, 7))
    x = torch.randn(4, 2, 7, 7, dtype=torch.float64)
    torch.testing.assert_close(untied(x), conv(x), rtol=1e-12, atol=1e-12)
    g = torch.randn_like(conv(x))
    (gw_conv,) = torch.autograd.grad(conv(x), conv.weight, g)
    (gw_untied,) = torch.autograd.grad(untied(x), untied.weight, g)
    torch.testing.assert_close(gw_untied.sum(0).reshape(conv.weight.shape), gw_conv,
                               rtol=1e-12, atol=1e-12)
    assert untied.weight.shape == (16, 3, 18)   # 4x4 locations, own weights each


def test_conv_feedback_sends_the_error_through_the_feedback_kernel():
    torch.manual_seed(2)
    conv = nn.Conv2d(2, 3, 3, padding=1).double()
    feedback = torch.randn_like(conv.weight)
    layer = FeedbackConv2d.from_layer(conv, feedback)
    x = torch.randn(2, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    (gx,) = torch.autograd.grad(layer(x), x, g)
    expected = torch.nn.functional.conv_transpose2d(g, feedback, padding=1)
    torch.testing.assert_close(gx, expected, rtol=1e-12, atol=1e-12)


SMALL_MODELS = [m for m in M.available() if m not in ("mlp", "gpt") and   # gpt: test_text_lm
                (not m.endswith("untied") or m == "amit-simpnet-untied")]


# The general rule needs element-wise steps after each layer, IFA blocks without a SUM; on
# the other models they refuse with a clear error (test_..._say_why_not).
CONV_RULES = [r for r in R.available() if r != "general"]
RESIDUAL_MODELS = ("amit-deepernet", "amit-deepnet-s")


@pytest.mark.parametrize("model", SMALL_MODELS)
@pytest.mark.parametrize("rule", CONV_RULES)
def test_every_rule_trains_every_conv_model(model, rule):
    torch.manual_seed(0)
    net0 = M.create(model, (1, 28, 28), 10)
    r = R.create(rule)
    if rule == "ifa" and model.removesuffix("-untied") in RESIDUAL_MODELS:
        with pytest.raises(ValueError, match="residual"):
            biocredit.convert(net0, r)
        return
    net = biocredit.convert(net0, r, generator=torch.Generator().manual_seed(1))
    x, y = torch.randn(3, 1, 28, 28), torch.randint(0, 10, (3,))
    r.backward(net, x, y, L.create("ce"))
    for name, p in net.named_parameters():
        if rule == "shallow" and not name.startswith("head."):
            assert p.grad is None, name     # only the layers above the last tap learn
        elif p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    for name, b in net.named_buffers():
        assert b.grad is None or rule == "dkp", name
    r.after_step(net)
    for name, b in net.named_buffers():
        assert b.grad is None, name


@pytest.mark.slow
@pytest.mark.parametrize("model", [m for m in M.available() if m.endswith("untied")])
@pytest.mark.parametrize("rule", ["bp", "fa", "urfb", "dfa"])
def test_untied_models_for_rules(model, rule):
    test_every_rule_trains_every_conv_model(model, rule)


def test_general_rule_on_a_pooling_model_says_why_not():
    with pytest.raises(ValueError, match="element-wise"):
        biocredit.convert(M.create("lenet", (1, 28, 28), 10), R.create("general"))


def lenet_step(rule_name, seed, **model_options):
    """One backward of ``rule_name`` on a float64 lenet for 1×12×12 inputs, 4 classes."""
    torch.manual_seed(seed)
    net0 = M.create("lenet", (1, 12, 12), 4, **model_options).double()
    rule = R.create(rule_name)
    net = biocredit.convert(net0, rule, generator=torch.Generator().manual_seed(seed + 1))
    x, y = torch.randn(5, 1, 12, 12, dtype=torch.float64), torch.randint(0, 4, (5,))
    rule.backward(net, x, y, L.create("ce"))
    return net, x, y


def test_ifa_through_a_conv_net_matches_the_formula():
    """IFA on lenet: δa_1 = ∂h_1/∂a_1ᵀ (B_1 e) through the pooling; then forward,
    t_l = P_{l-1} δa_{l-1} (the max-pool's Jacobian: the chosen units), δa_l = (W_l t_l) ⊙
    f'(a_l), and ∇W_l = δa_l ⋆ h_{l-1} — written out here without the rule's machinery."""
    net, x, y = lenet_step("ifa", seed=5)
    F = torch.nn.functional
    conv1, conv2 = net.blocks[0].layer, net.blocks[1].layer
    fc1 = net.blocks[2].layer
    with torch.no_grad():
        a1 = F.conv2d(x, conv1.weight, conv1.bias, padding=2)
        h1, idx1 = F.max_pool2d(torch.tanh(a1), 2, return_indices=True)
        a2 = F.conv2d(h1, conv2.weight, conv2.bias, padding=2)
        h2, idx2 = F.max_pool2d(torch.tanh(a2), 2, return_indices=True)
        logits = net.head(net.blocks[3](net.blocks[2](h2)))
    e = (torch.softmax(logits, 1) - F.one_hot(y, 4)) / len(x)
    u1 = (e @ net.direct_feedback).reshape(h1.shape)       # B_1 e at the pooled output
    # Max-unpooling is the pool's transpose: δa_1 = unpool(B_1 e) ⊙ f'(a_1).
    delta1 = F.max_unpool2d(u1, idx1, 2, output_size=a1.shape[2:]) * (1 - torch.tanh(a1) ** 2)

    def pooled(delta, idx):      # the pool's Jacobian applied to delta: the chosen units
        return delta.flatten(2).gather(2, idx.flatten(2)).reshape(idx.shape)

    delta2 = F.conv2d(pooled(delta1, idx1), conv2.weight, padding=2) * (1 - torch.tanh(a2) ** 2)
    expected = torch.nn.grad.conv2d_weight(h1, conv2.weight.shape, delta2, padding=2)
    torch.testing.assert_close(conv2.weight.grad, expected, rtol=1e-9, atol=1e-12)
    a3 = h2.flatten(1) @ fc1.weight.T + fc1.bias
    delta3 = (pooled(delta2, idx2).flatten(1) @ fc1.weight.T) * (1 - torch.tanh(a3) ** 2)
    torch.testing.assert_close(fc1.weight.grad, delta3.T @ h2.flatten(1), rtol=1e-9, atol=1e-12)


def test_dfa_hidden_update_of_a_conv_net_matches_an_independent_computation():
    """Block l's kernel gradient is that of the block-local function with the injected
    signal e B_lᵀ at its (pooled) output, computed here with autograd on a re-built copy."""
    net, x, y = lenet_step("dfa", seed=3)
    # Independent: forward by hand, e by formula, then each block separately.
    conv1, conv2 = net.blocks[0].layer, net.blocks[1].layer
    fc1, fc2, out = net.blocks[2].layer, net.blocks[3].layer, net.head.layer
    F = torch.nn.functional
    h1 = F.max_pool2d(torch.tanh(F.conv2d(x, conv1.weight, conv1.bias, padding=2)), 2)
    h2 = F.max_pool2d(torch.tanh(F.conv2d(h1, conv2.weight, conv2.bias, padding=2)), 2)
    h3 = torch.tanh(h2.flatten(1) @ fc1.weight.T + fc1.bias)
    h4 = torch.tanh(h3 @ fc2.weight.T + fc2.bias)
    logits = h4 @ out.weight.T + out.bias
    e = (torch.softmax(logits, 1) - F.one_hot(y, 4)) / len(x)
    b = net.direct_feedback
    sizes = [h1[0].numel(), h2[0].numel(), h3.shape[1], h4.shape[1]]
    signals = (e @ b).split(sizes, dim=1)
    w = conv2.weight.detach().requires_grad_()
    local = F.max_pool2d(torch.tanh(F.conv2d(h1.detach(), w, conv2.bias, padding=2)), 2)
    (expected,) = torch.autograd.grad(local, w, signals[1].reshape(local.shape))
    torch.testing.assert_close(conv2.weight.grad, expected, rtol=1e-10, atol=1e-12)
    # The fully connected hidden layer: the closed form δa = (B e) ⊙ f'(a), ΔW = δa hᵀ.
    delta = signals[3] * (1 - h4 ** 2)
    np.testing.assert_allclose(fc2.weight.grad.numpy(), (delta.T @ h3).detach().numpy(),
                               rtol=1e-10)


def test_injection_before_pooling_uses_the_activation():
    """With ``inject_at="activation"`` block l receives e B_lᵀ at its activation (before the
    pooling): B_l has one column per activation unit and the kernel gradient is that of the
    unpooled block-local function."""
    net, x, y = lenet_step("dfa", seed=3, inject_at="activation")
    assert net.biocredit_conversion.engine.shapes == [(6, 12, 12), (16, 6, 6), (120,), (84,)]
    F = torch.nn.functional
    conv1, conv2 = net.blocks[0].layer, net.blocks[1].layer
    h1 = F.max_pool2d(torch.tanh(F.conv2d(x, conv1.weight, conv1.bias, padding=2)), 2)
    logits = net.head(net.blocks[3](net.blocks[2](net.blocks[1](h1)))).detach()
    e = (torch.softmax(logits, 1) - F.one_hot(y, 4)) / len(x)
    signals = (e @ net.direct_feedback).split([6 * 144, 16 * 36, 120, 84], dim=1)
    w = conv2.weight.detach().requires_grad_()
    local = torch.tanh(F.conv2d(h1.detach(), w, conv2.bias, padding=2))   # no pooling
    (expected,) = torch.autograd.grad(local, w, signals[1].reshape(local.shape))
    torch.testing.assert_close(conv2.weight.grad, expected, rtol=1e-10, atol=1e-12)


def test_dkp_convnet_is_the_authors_net_and_injects_before_pooling():
    net = M.create("dkp-convnet", (3, 32, 32), 10)
    assert net.inject_at == "activation"
    assert tap_shapes(net) == [(32, 30, 30), (32, 28, 28), (128,)]
    assert net.blocks[2].layer.in_features == 32 * 14 * 14
    assert [type(m) for m in net.blocks[1].post] == [nn.BatchNorm2d, nn.ReLU]
    assert tap_shapes(M.create("dkp-convnet", (1, 28, 28), 10, inject_at="output")) == \
        [(32, 26, 26), (32, 12, 12), (128,)]
    with pytest.raises(ValueError, match="activation"):
        M.create("lenet", (1, 28, 28), 10, inject_at="pool")


def test_amit_sum_adds_the_two_previous_layers():
    net = M.create("amit-deepernet", (3, 32, 32), 10).eval()
    x = torch.randn(2, 3, 32, 32)
    h1 = net.blocks[0](x)
    a2 = net.blocks[1].post(net.blocks[1].layer(h1))
    torch.testing.assert_close(net.blocks[1](x=h1), a2 + h1)


def test_amit_maxpool_pads_with_zeros_and_dropout_convention():
    net = M.create("amit-simpnet", (1, 28, 28), 10)
    after = net.blocks[0].after
    assert isinstance(after[0], nn.ZeroPad2d) and after[1].kernel_size == 3 and after[1].stride == 2
    assert after[2].p == 0.8          # "drop .8" drops 80% of the units
    assert tap_shapes(net) == [(32, 14, 14), (500,)]


def test_models_command_lists_parameter_counts(capsys):
    from biocredit.cli import main
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "lenet" in out and "107,786" in out   # lenet on 1x28x28


@pytest.mark.parametrize("model, shape, graphs", [
    ("lenet", (1, 28, 28), (False, False, False, False)),
    ("dkp-convnet", (3, 32, 32), (False, True, False))])
def test_ifa_taps_record_a_graph_only_where_pooling_lies_before_the_next_layer(model, shape,
                                                                                graphs):
    """After the first step, an IFA tap's output requires grad only where the next weight
    layer takes something else than that output (or its flatten): in dkp-convnet the
    max-pool between the second tap and the fully connected layer, whose indices carry the
    forward signal. Elsewhere no layer computes an input gradient nobody uses."""
    from biocredit.layers import engine_of
    net = biocredit.convert(M.create(model, shape, 10), R.create("ifa"),
                                  generator=torch.Generator().manual_seed(1),
                                  example_input=torch.zeros(1, *shape))
    x, y = torch.randn(4, *shape), torch.randint(0, 10, (4,))
    for _ in range(2):
        net.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
    assert engine_of(net)._input_grad == graphs
    assert all(p.grad.abs().sum() > 0 for p in net.parameters())
