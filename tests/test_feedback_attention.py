"""FeedbackConv1d and FeedbackMultiheadAttention: BP when tied, the feedback's signal when not."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from biocredit.layers import FeedbackLinear, exact_gradients
from biocredit.layers.feedback_attention import FeedbackMultiheadAttention
from biocredit.layers.feedback_conv import FeedbackConv1d, FeedbackConv2d

DT = torch.float64
TOL = dict(rtol=1e-10, atol=1e-12)


def assert_all_close(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, **TOL)


# --- FeedbackConv1d -----------------------------------------------------------------------

CONV1D_SETTINGS = [  # stride, padding, dilation, groups, bias, padding_mode
    (1, 0, 1, 1, True, "zeros"),
    (2, 1, 1, 1, False, "zeros"),
    (1, 2, 2, 2, True, "zeros"),
    (3, 3, 1, 4, True, "zeros"),
    (1, "same", 1, 1, True, "zeros"),     # kernel 4: total padding 3, asymmetric
    (1, "same", 2, 2, True, "zeros"),     # total 6: symmetric
    (2, "valid", 1, 1, True, "zeros"),
    (1, 2, 1, 1, True, "reflect"),
    (2, 1, 2, 2, False, "replicate"),
    (1, 3, 1, 1, True, "circular"),
    (1, "same", 1, 2, True, "circular"),
]


def _conv1d(stride, padding, dilation, groups, bias, padding_mode):
    return nn.Conv1d(4, 8, 4, stride=stride, padding=padding, dilation=dilation, groups=groups,
                     bias=bias, padding_mode=padding_mode, dtype=DT)


def _explicit_padding(conv, x):
    """``x`` padded as ``conv`` pads it, and the numeric padding left for the convolution."""
    if conv.padding_mode == "zeros" and not isinstance(conv.padding, str):
        return x, conv.padding
    mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
    return F.pad(x, conv._reversed_padding_repeated_twice, mode=mode), 0


@pytest.mark.filterwarnings("ignore:Using padding='same'")   # nn.Conv1d's, not ours
@pytest.mark.parametrize("setting", CONV1D_SETTINGS)
def test_conv1d_tied_is_bp_and_feedback_sends_the_error_through_its_kernel(setting):
    stride, _, dilation, groups = setting[:4]
    conv = _conv1d(*setting)
    x = torch.randn(3, 4, 13, dtype=DT, requires_grad=True)
    out = conv(x)
    g = torch.randn_like(out)
    params = lambda m: [x, m.weight] + ([m.bias] if m.bias is not None else [])  # noqa: E731
    bp = torch.autograd.grad(out, params(conv), g)
    tied = FeedbackConv1d.from_layer(conv, conv.weight.detach().clone())
    out_tied = tied(x)
    torch.testing.assert_close(out_tied, out, **TOL)
    assert_all_close(torch.autograd.grad(out_tied, params(tied), g), bp)

    feedback = torch.randn_like(conv.weight)
    layer = FeedbackConv1d.from_layer(conv, feedback)
    gx, gw = torch.autograd.grad(layer(x), [x, layer.weight], g)
    # independently: the transposed convolution with B at the padded input, then the
    # padding's adjoint (plain autograd through F.pad)
    padded, padding = _explicit_padding(conv, x)
    g_padded = torch.nn.grad.conv1d_input(padded.shape, feedback, g, stride, padding,
                                          dilation, groups)
    (expected_gx,) = torch.autograd.grad(padded, x, g_padded)
    torch.testing.assert_close(gx, expected_gx, **TOL)
    torch.testing.assert_close(gw, bp[1], **TOL)          # the weight gradient is BP's
    assert not torch.allclose(gx, bp[0])


def test_conv1d_from_layer_keeps_everything_and_the_feedback_is_a_buffer():
    conv = nn.Conv1d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2, bias=True,
                     padding_mode="reflect", dtype=DT)
    conv.bias.requires_grad_(False)
    feedback = torch.randn_like(conv.weight)
    layer = FeedbackConv1d.from_layer(conv, feedback)
    for name in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
                 "groups", "padding_mode"):
        assert getattr(layer, name) == getattr(conv, name), name
    assert layer.weight.dtype == DT and torch.equal(layer.weight, conv.weight)
    assert torch.equal(layer.bias, conv.bias) and not layer.bias.requires_grad
    assert torch.equal(layer.feedback, feedback) and not layer.feedback.requires_grad
    assert "feedback" in dict(layer.named_buffers())
    x = torch.randn(4, 9, dtype=DT)                       # unbatched, as nn.Conv1d takes it
    torch.testing.assert_close(layer(x), conv(x), **TOL)
    fresh = FeedbackConv1d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2,
                           padding_mode="reflect", dtype=DT)
    fresh.register_buffer("feedback", torch.zeros_like(feedback))
    fresh.load_state_dict(layer.state_dict())
    assert torch.equal(fresh.feedback, feedback)
    with pytest.raises(ValueError, match="shape"):
        FeedbackConv1d.from_layer(conv, torch.randn(6, 4, 3, dtype=DT))


@pytest.mark.parametrize("padding, padding_mode", [("same", "zeros"), (1, "reflect"),
                                                   ("valid", "circular"), (2, "replicate")])
def test_conv2d_takes_string_padding_and_padding_modes(padding, padding_mode):
    conv = nn.Conv2d(2, 3, (3, 4), padding=padding, padding_mode=padding_mode, dtype=DT)
    layer = FeedbackConv2d.from_layer(conv, conv.weight.detach().clone())
    x = torch.randn(2, 2, 7, 8, dtype=DT, requires_grad=True)
    torch.testing.assert_close(layer(x), conv(x), **TOL)
    g = torch.randn_like(conv(x))
    assert_all_close(torch.autograd.grad(layer(x), [x, layer.weight, layer.bias], g),
                     torch.autograd.grad(conv(x), [x, conv.weight, conv.bias], g))


# --- FeedbackMultiheadAttention: tied feedback is nn.MultiheadAttention -------------------

E, HEADS, KDIM, VDIM = 8, 2, 5, 6
L, S, N = 4, 5, 3


def _mha(cross_dims=False, **kwargs):
    dims = dict(kdim=KDIM, vdim=VDIM) if cross_dims else {}
    mha = nn.MultiheadAttention(E, HEADS, dtype=DT, **dims, **kwargs)
    with torch.no_grad():                 # non-zero biases, so their gradients mean something
        for p in mha.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return mha


def _inputs(attention, kind, batch_first):
    """(query, key, value): one tensor three times ('self'), or distinct ones."""
    def make(length, dim):
        shape = (N, length, dim) if batch_first else (length, N, dim)
        return torch.randn(*shape, dtype=DT, requires_grad=True)
    if kind == "self":
        x = make(L, E)
        return x, x, x
    return make(L, E), make(S, attention.kdim), make(S, attention.vdim)


def _masks(name, tgt, src):
    padding = torch.zeros(N, src, dtype=torch.bool)
    padding[0, -1] = padding[2, 1] = True
    causal = torch.ones(tgt, src, dtype=torch.bool).triu(1)
    scattered = torch.rand(N * HEADS, tgt, src) > 0.7
    scattered[:, :, 2] = False            # no row masked everywhere (that would give NaN)
    return {
        "none": {},
        "padding": {"key_padding_mask": padding},
        "float": {"attn_mask": torch.randn(tgt, src, dtype=DT),
                  "key_padding_mask": padding.to(DT) * -1e4},
        "bool-3d": {"attn_mask": scattered,
                    "key_padding_mask": padding},
        "causal": {"attn_mask": causal, "is_causal": True},
        "causal-padding": {"attn_mask": causal, "is_causal": True, "key_padding_mask": padding},
    }[name]


def _check_same(plain, converted, inputs, **kwargs):
    out, weights = plain(*inputs, **kwargs)
    out2, weights2 = converted(*inputs, **kwargs)
    torch.testing.assert_close(out2, out, **TOL)
    if weights is None:
        assert weights2 is None
    else:
        torch.testing.assert_close(weights2, weights, **TOL)
    leaves = list({id(t): t for t in inputs}.values())
    g = torch.randn_like(out)
    names = [n for n, _ in plain.named_parameters()]
    assert names == [n for n, _ in converted.named_parameters()]
    assert_all_close(torch.autograd.grad(out2, leaves + list(converted.parameters()), g),
                     torch.autograd.grad(out, leaves + list(plain.parameters()), g))


ATTENTION_CASES = [("self", False, m) for m in ("none", "float", "causal", "causal-padding")] \
    + [("self", True, m) for m in ("padding", "bool-3d", "causal")] \
    + [("cross-same-dims", True, m) for m in ("none", "bool-3d", "float")] \
    + [("cross-kdim-vdim", False, m) for m in ("padding", "bool-3d", "float")] \
    + [("cross-kdim-vdim", True, m) for m in ("none", "padding")]


@pytest.mark.parametrize("kind, batch_first, masks", ATTENTION_CASES)
def test_tied_attention_is_nn_multihead_attention(kind, batch_first, masks):
    plain = _mha(cross_dims=kind == "cross-kdim-vdim", batch_first=batch_first)
    converted = FeedbackMultiheadAttention.from_module(plain)
    inputs = _inputs(plain, kind, batch_first)
    for need_weights in (False, True):     # the SDPA kernel, and the explicit softmax
        _check_same(plain, converted, inputs, need_weights=need_weights,
                    **_masks(masks, L, L if kind == "self" else S))


@pytest.mark.parametrize("options", [dict(add_bias_kv=True), dict(add_zero_attn=True),
                                     dict(add_bias_kv=True, add_zero_attn=True, bias=False)])
@pytest.mark.parametrize("need_weights, average", [(False, True), (True, True), (True, False)])
def test_tied_attention_with_bias_kv_zero_attn_and_per_head_weights(options, need_weights,
                                                                     average):
    plain = _mha(cross_dims=True, **options)
    converted = FeedbackMultiheadAttention.from_module(plain)
    _check_same(plain, converted, _inputs(plain, "cross", False), need_weights=need_weights,
                average_attn_weights=average, **_masks("padding", L, S))


def test_unbatched_inputs_and_dropout_match_in_training():
    plain = _mha()
    x = torch.randn(L, E, dtype=DT, requires_grad=True)
    _check_same(plain, FeedbackMultiheadAttention.from_module(plain), (x, x, x),
                need_weights=True, key_padding_mask=torch.tensor([False, False, False, True]))
    plain = _mha(dropout=0.3)
    converted = FeedbackMultiheadAttention.from_module(plain)
    for need_weights in (False, True):
        x = torch.randn(L, N, E, dtype=DT, requires_grad=True)
        torch.manual_seed(7)
        out, _ = plain(x, x, x, need_weights=need_weights)
        torch.manual_seed(7)
        out2, _ = converted(x, x, x, need_weights=need_weights)
        torch.testing.assert_close(out2, out, **TOL)


def test_is_causal_without_a_mask_applies_the_causal_mask():
    plain = _mha()
    converted = FeedbackMultiheadAttention.from_module(plain)
    x = torch.randn(L, N, E, dtype=DT)
    causal = torch.ones(L, L, dtype=torch.bool).triu(1)
    for need_weights in (False, True):
        expected, _ = plain(x, x, x, attn_mask=causal, need_weights=need_weights)
        out, _ = converted(x, x, x, is_causal=True, need_weights=need_weights)
        torch.testing.assert_close(out, expected, **TOL)


@pytest.mark.parametrize("cross_dims", [False, True])
def test_conversion_keeps_names_values_and_state_dict(cross_dims):
    plain = _mha(cross_dims=cross_dims, add_bias_kv=True, batch_first=True)
    plain.bias_k.requires_grad_(False)
    plain.eval()
    in_feedback = [torch.randn_like(w) for w in
                   ([plain.q_proj_weight, plain.k_proj_weight, plain.v_proj_weight] if cross_dims
                    else plain.in_proj_weight.chunk(3))]
    out_feedback = torch.randn_like(plain.out_proj.weight)
    converted = FeedbackMultiheadAttention.from_module(plain, in_feedback, out_feedback)
    assert not converted.training and converted.batch_first and not converted.bias_k.requires_grad
    assert isinstance(converted.out_proj, FeedbackLinear)
    assert torch.equal(converted.out_proj.feedback, out_feedback)
    buffers = dict(converted.named_buffers())
    if cross_dims:
        assert set(buffers) == {"q_proj_feedback", "k_proj_feedback", "v_proj_feedback",
                                "out_proj.feedback"}
        for name, b in zip("qkv", in_feedback):
            assert torch.equal(buffers[f"{name}_proj_feedback"], b)
    else:
        assert set(buffers) == {"in_proj_feedback", "out_proj.feedback"}
        assert torch.equal(buffers["in_proj_feedback"], torch.cat(in_feedback))
    # a plain checkpoint restores every parameter; only the feedback buffers are missing
    torch.manual_seed(123)
    restored = FeedbackMultiheadAttention.from_module(
        nn.MultiheadAttention(E, HEADS, add_bias_kv=True, dtype=DT,
                              **(dict(kdim=KDIM, vdim=VDIM) if cross_dims else {})),
        in_feedback, out_feedback)
    result = restored.load_state_dict(plain.state_dict(), strict=False)
    assert set(result.missing_keys) == set(buffers) and not result.unexpected_keys
    assert set(dict(restored.named_parameters())) == set(dict(plain.named_parameters()))
    for name, p in plain.named_parameters():
        assert torch.equal(dict(restored.named_parameters())[name], p), name
    # and the converted module's own checkpoint round-trips its feedback
    fresh = FeedbackMultiheadAttention.from_module(
        nn.MultiheadAttention(E, HEADS, add_bias_kv=True, dtype=DT,
                              **(dict(kdim=KDIM, vdim=VDIM) if cross_dims else {})),
        [torch.zeros_like(b) for b in in_feedback], torch.zeros_like(out_feedback))
    fresh.load_state_dict(converted.state_dict())
    for name, b in converted.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], b), name
    with pytest.raises(ValueError, match="shape"):
        converted.set_in_feedback([torch.randn(E, E + 1, dtype=DT)] * 3)


# --- random feedback: the error reaching the inputs goes through the feedback -------------

def _heads_attention(q, k, v, mask):
    """softmax(q kᵀ/√d + mask) v per head, batch first; ``mask`` True = may not attend."""
    n, tgt, _ = q.shape
    d = E // HEADS

    def split(t):
        return t.reshape(n, t.shape[1], HEADS, d).transpose(1, 2)
    scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(d)
    weights = scores.masked_fill(mask, float("-inf")).softmax(-1)
    return (weights @ split(v)).transpose(1, 2).reshape(n, tgt, E)


@pytest.mark.parametrize("kind", ["self", "cross-kdim-vdim"])
@pytest.mark.parametrize("need_weights", [False, True])
def test_random_feedback_input_errors_and_bp_parameter_gradients(kind, need_weights):
    plain = _mha(cross_dims=kind != "self", batch_first=True)
    weights = ([plain.q_proj_weight, plain.k_proj_weight, plain.v_proj_weight]
               if kind != "self" else list(plain.in_proj_weight.chunk(3)))
    in_feedback = [torch.randn_like(w) for w in weights]
    out_feedback = torch.randn_like(plain.out_proj.weight)
    attention = FeedbackMultiheadAttention.from_module(plain, in_feedback, out_feedback)
    xq, xk, xv = _inputs(plain, "self" if kind == "self" else "cross", True)
    src = xk.shape[1]
    padding = torch.zeros(N, src, dtype=torch.bool)
    padding[1, -2:] = True
    out, _ = attention(xq, xk, xv, key_padding_mask=padding, need_weights=need_weights)
    g = torch.randn_like(out)
    leaves = list({id(t): t for t in (xq, xk, xv)}.values())
    params = dict(attention.named_parameters())
    got = torch.autograd.grad(out, leaves + list(params.values()), g)
    got_inputs, got_params = got[:len(leaves)], dict(zip(params, got[len(leaves):]))

    # independent computation: projections by hand, the attention core by plain autograd
    biases = plain.in_proj_bias.detach().chunk(3)
    q, k, v = (x.detach() @ w.detach().T + b for x, w, b in zip((xq, xk, xv), weights, biases))
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    attended = _heads_attention(q, k, v, padding[:, None, None, :])
    expected_out = attended @ plain.out_proj.weight.T + plain.out_proj.bias
    torch.testing.assert_close(out, expected_out, **TOL)
    error_attended = g @ out_feedback                   # through out_proj's feedback
    gq, gk, gv = torch.autograd.grad(attended, (q, k, v), error_attended)
    error_inputs = [e @ b for e, b in zip((gq, gk, gv), in_feedback)]
    if kind == "self":
        assert_all_close(got_inputs, [sum(error_inputs)])
    else:
        assert_all_close(got_inputs, error_inputs)
    # parameter gradients: BP's given the errors that reach each projection
    outer = [e.reshape(-1, E).T @ x.detach().reshape(-1, x.shape[-1])
             for e, x in zip((gq, gk, gv), (xq, xk, xv))]
    if kind == "self":
        torch.testing.assert_close(got_params["in_proj_weight"], torch.cat(outer), **TOL)
    else:
        for name, expected in zip("qkv", outer):
            torch.testing.assert_close(got_params[f"{name}_proj_weight"], expected, **TOL)
    torch.testing.assert_close(got_params["in_proj_bias"],
                               torch.cat([e.sum((0, 1)) for e in (gq, gk, gv)]), **TOL)
    torch.testing.assert_close(got_params["out_proj.weight"],
                               g.reshape(-1, E).T @ attended.detach().reshape(-1, E), **TOL)
    torch.testing.assert_close(got_params["out_proj.bias"], g.sum((0, 1)), **TOL)
    # and none of it is BP's input error
    bp_out, _ = plain(xq, xk, xv, key_padding_mask=padding, need_weights=need_weights)
    bp_inputs = torch.autograd.grad(bp_out, leaves, g)
    assert not torch.allclose(got_inputs[0], bp_inputs[0])


def test_exact_switch_and_exact_gradients_give_bp():
    plain = _mha(cross_dims=True)
    attention = FeedbackMultiheadAttention.from_module(
        plain, [torch.randn_like(w) for w in
                (plain.q_proj_weight, plain.k_proj_weight, plain.v_proj_weight)],
        torch.randn_like(plain.out_proj.weight))
    assert attention.exact is False
    inputs = _inputs(plain, "cross", False)
    attention.exact = True
    assert attention.out_proj.exact
    _check_same(plain, attention, inputs, need_weights=False)
    attention.exact = False
    with exact_gradients(attention):
        assert attention.exact
        _check_same(plain, attention, inputs, need_weights=True)
    assert attention.exact is False and attention.out_proj.exact is False
    out, _ = attention(*inputs)
    out.sum().backward()
    for name, p in attention.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    for name, b in attention.named_buffers():
        assert b.grad is None and not b.requires_grad, name


# --- inside nn.TransformerEncoderLayer ----------------------------------------------------

def _converted_encoder_layer(layer, in_feedback=None):
    new = copy.deepcopy(layer)
    new.self_attn = FeedbackMultiheadAttention.from_module(layer.self_attn, in_feedback)
    new.linear1 = FeedbackLinear.from_layer(layer.linear1, None)
    new.linear2 = FeedbackLinear.from_layer(layer.linear2, None)
    return new


@pytest.mark.parametrize("batch_first, norm_first", [(True, False), (False, True)])
def test_transformer_encoder_layer_with_converted_attention(batch_first, norm_first):
    layer = nn.TransformerEncoderLayer(E, HEADS, dim_feedforward=16, dropout=0.0,
                                       batch_first=batch_first, norm_first=norm_first, dtype=DT)
    converted = _converted_encoder_layer(layer)
    shape = (N, L, E) if batch_first else (L, N, E)
    x = torch.randn(*shape, dtype=DT, requires_grad=True)
    padding = torch.zeros(N, L, dtype=torch.bool)
    padding[0, -1] = True
    causal = nn.Transformer.generate_square_subsequent_mask(L, dtype=DT)
    for kwargs in ({}, dict(src_key_padding_mask=padding),
                   dict(src_mask=causal, is_causal=True)):
        out = layer(x, **kwargs)
        out2 = converted(x, **kwargs)
        torch.testing.assert_close(out2, out, **TOL)
        g = torch.randn_like(out)
        assert_all_close(torch.autograd.grad(out2, [x, *converted.parameters()], g),
                         torch.autograd.grad(out, [x, *layer.parameters()], g))
    # eval: under no_grad PyTorch's fused fast path reads the same weights; with gradients
    # the converted attention's own forward runs; all agree
    layer.eval()
    converted.eval()
    with torch.no_grad():
        expected = layer(x, src_key_padding_mask=padding)
        fast = converted(x, src_key_padding_mask=padding)
    slow = converted(x, src_key_padding_mask=padding)
    keep = ~padding if batch_first else ~padding.T
    torch.testing.assert_close(fast[keep], expected[keep], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(slow[keep], expected[keep], rtol=1e-9, atol=1e-9)


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")
def test_transformer_encoder_with_feedback_trains_and_runs_in_eval():
    layer = nn.TransformerEncoderLayer(E, HEADS, dim_feedforward=16, dropout=0.0,
                                       batch_first=True, dtype=DT)
    in_feedback = torch.randn_like(layer.self_attn.in_proj_weight)
    converted = _converted_encoder_layer(layer, in_feedback)
    x = torch.randn(N, L, E, dtype=DT, requires_grad=True)
    g = torch.randn(N, L, E, dtype=DT)
    (gx,) = torch.autograd.grad(converted(x), x, g)
    (bp_gx,) = torch.autograd.grad(layer(x), x, g)
    assert torch.isfinite(gx).all() and not torch.allclose(gx, bp_gx)
    with exact_gradients(converted):
        (exact_gx,) = torch.autograd.grad(converted(x), x, g)
    torch.testing.assert_close(exact_gx, bp_gx, **TOL)
    encoder = nn.TransformerEncoder(converted, num_layers=2, enable_nested_tensor=True)
    reference = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=True)
    encoder.eval()
    reference.eval()
    padding = torch.zeros(N, L, dtype=torch.bool)
    padding[1, -2:] = True
    with torch.no_grad():
        out = encoder(x, src_key_padding_mask=padding)
        expected = reference(x, src_key_padding_mask=padding)
    torch.testing.assert_close(out[~padding], expected[~padding], rtol=1e-9, atol=1e-9)
