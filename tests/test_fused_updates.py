"""Fused feedback updates (issue 25): ``fused=True`` updates every layer's feedback of KP,
URFB and sign symmetry (and KP's weight decay) in one torch.compile'd pass. The eager update
stays the default and the reference: sign symmetry's fused ``B`` is bit-identical to it, KP's
equal to float rounding, brSF's magnitudes another stream of the same distribution."""

import pytest
import torch

import biocredit
import biocredit.models as M
import biocredit.rules as R
from biocredit.rules import fused_updates
from biocredit.rules.layer_feedback import learned_layers


def make_net(rule, dtype=torch.float32, forward_density=1.0):
    """A 16 -> 24 -> 20 -> 5 tanh MLP converted with ``rule`` (the same one every time)."""
    torch.manual_seed(3)
    model = M.create("mlp:24,20:tanh", input_shape=(1, 4, 4), num_classes=5,
                     forward_density=forward_density).to(dtype)
    return biocredit.convert(model, rule, generator=torch.Generator().manual_seed(1))


def train(rule, steps=3, dtype=torch.float32, forward_density=1.0, lr=0.2):
    """``steps`` SGD steps with ``rule.after_step`` on a fixed batch; the trained net."""
    net = make_net(rule, dtype, forward_density)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.5)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(16, 1, 4, 4, generator=g, dtype=dtype)
    y = torch.randint(0, 5, (16,), generator=g)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        rule.after_step(net)
    return net


def bits(t: torch.Tensor) -> torch.Tensor:
    """The tensor's bit patterns (signed zeros and all)."""
    return t.view(torch.int64 if t.dtype == torch.float64 else torch.int32)


# -- the default (eager) path: unchanged, and exact --------------------------------------------

def test_eager_kp_update_is_the_formula_in_float64():
    """Default path: ``B ← ((1 − λ) B + ε W) − ε W_before`` (masked), ``W ← W − λ W_before``,
    ``W_before ← W``, exactly as computed step by step by hand."""
    rule = R.create("kp", decay=0.01, epsilon=0.7, feedback_density=0.5)
    assert rule.options["fused"] is False
    net = make_net(rule, torch.float64)
    layers = learned_layers(net)
    with torch.no_grad():
        for m in layers:
            m.weight.add_(torch.randn_like(m.weight) * 0.1)      # the optimizer's step
    w, b, wb = ([getattr(m, k).clone() for m in layers]
                for k in ("weight", "feedback", "weight_before_step"))
    rule.after_step(net)
    for i, m in enumerate(layers):
        expected_b = (b[i] * (1 - 0.01)).add_(w[i], alpha=0.7).add_(wb[i], alpha=-0.7)
        expected_w = w[i].add(wb[i], alpha=-0.01)
        assert torch.equal(m.feedback, expected_b * m.feedback_mask)
        assert torch.equal(m.weight, expected_w)
        assert torch.equal(m.weight_before_step, expected_w)


def test_the_fused_option_is_a_checked_boolean_and_compile_turns_it_on():
    for name in fused_updates.FUSED_RULES:
        assert R.create(name).options["fused"] is False
        with pytest.raises(ValueError, match="option fused must be true or false"):
            R.create(name, fused="yes")
    on = fused_updates.options_for_compile
    assert on("kp", {"decay": 0.1}, True) == {"decay": 0.1, "fused": True}
    assert on("kp", {"fused": False}, True) == {"fused": False}       # asked for eager
    assert on("usf", {}, False) == {} and on("fa", {}, True) == {}
    assert on("brsf", {}, True) == {"fused": True}
    assert on("brsf", {"fused": False}, True) == {"fused": False}


def test_a_failure_to_compile_is_an_error_not_a_silent_eager_update(monkeypatch):
    def broken(fn, **kwargs):
        def call(*args):
            raise RuntimeError("no C++ compiler")
        return call
    monkeypatch.setattr(fused_updates.torch, "compile", broken)
    rule = R.create("usf", fused=True)
    net = make_net(rule)
    with pytest.raises(RuntimeError, match="usf: fused=True .*no C\\+\\+ compiler.*fused=false"):
        rule.after_step(net)


# -- the fused (compiled) path --------------------------------------------------------------

@pytest.mark.parametrize("name", ["usf", pytest.param("frsf", marks=pytest.mark.slow)])
def test_fused_sign_symmetry_equals_eager_bit_for_bit(name, can_compile):
    """``sign(W) ⊙ m ⊙ mask`` has no rounding: the compiled update is bit-identical, with
    forward and feedback masks (signed zeros included)."""
    options = {"feedback_density": 0.5}
    eager = train(R.create(name, **options), forward_density=0.6)
    fused = train(R.create(name, fused=True, **options), forward_density=0.6)
    for key, value in eager.state_dict().items():
        assert torch.equal(bits(value), bits(fused.state_dict()[key])), key


@pytest.mark.parametrize("name, options, dtype, rtol", [
    ("urfb", {}, torch.float32, 0.0),                        # ε = 1, no decay: exact
    ("kp", {}, torch.float32, 1e-6),
    pytest.param("kp", {"decay": 0.05, "epsilon": 0.7, "feedback_density": 0.5},
                 torch.float64, 1e-14, marks=pytest.mark.slow),
])
def test_fused_kp_and_urfb_equal_eager_to_float_rounding(name, options, dtype, rtol,
                                                          can_compile):
    """KP's fused update rounds ``W − λ W_before`` (and ``B + εW`` for ``ε ≠ 1``) twice where
    eager's ``add_(alpha=…)`` may fuse the multiply-add: equal to a few ulp (``rtol``
    relative to the tensor's largest value); URFB (``ε = 1``, no decay) bit for bit."""
    eager = train(R.create(name, **options), dtype=dtype)
    fused = train(R.create(name, fused=True, **options), dtype=dtype)
    for key, value in eager.state_dict().items():
        other = fused.state_dict()[key]
        if rtol == 0.0:
            assert torch.equal(bits(value), bits(other)), key
        else:
            scale = value.abs().max().item()
            assert (value - other).abs().max().item() <= rtol * scale, key
    for m in learned_layers(fused):         # W_before is the weight after the update
        assert torch.equal(m.weight_before_step, m.weight)


def lowbias(x: int) -> int:
    """Wellons' lowbias32 on an unsigned 32-bit integer, in Python's integers."""
    m = 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & m
    x ^= x >> 15
    x = (x * 0x846CA68B) & m
    return x ^ (x >> 16)


def lowbias_uniform(index: int, k1: int, k2: int) -> float:
    """The hash :func:`~biocredit.rules.fused_updates.counter_uniform` documents, in
    Python's unbounded integers reduced mod 2³² (an independent statement of it)."""
    m = 0xFFFFFFFF
    x = lowbias((index * 0x9E3779B1 + k1) & m)
    x = lowbias(x ^ (k2 & m))
    return (x >> 8) / 2 ** 24


def test_counter_uniform_is_the_documented_hash_eager_and_compiled(can_compile):
    """The int32 tensor arithmetic (wrapping multiplies, masked shifts) gives the hash in
    plain integers, element for element, in eager torch and in the compiled kernel."""
    like = torch.empty(37, 29)
    keys = torch.tensor([-1_234_567_891, 2_000_000_011], dtype=torch.int32)
    expected = torch.tensor([lowbias_uniform(i, -1_234_567_891, 2_000_000_011)
                             for i in range(like.numel())]).view(like.shape)
    assert torch.equal(fused_updates.counter_uniform(like, keys), expected)
    compiled = torch.compile(fused_updates.counter_uniform, fullgraph=True, dynamic=False)
    assert torch.equal(compiled(like, keys), expected)
    for dtype in (torch.float16, torch.bfloat16, torch.float64):   # (2²⁴ overflows float16)
        u = fused_updates.counter_uniform(like.to(dtype), keys)
        assert u.dtype == dtype and torch.equal(u, expected.to(dtype))


def test_fused_brsf_draws_uniform_magnitudes_with_the_weights_signs(can_compile):
    """brSF's fused update draws ``U(0, s)`` in its kernel: another stream than eager's
    ``uniform_``, the same distribution (bounds, mean, variance), ``sign(B) = sign(W)``, a
    fresh draw every step uncorrelated with the last, and the same draws again from the
    same global seed."""
    rule = R.create("brsf", fused=True)
    net = make_net(rule)
    layers = learned_layers(net)
    torch.manual_seed(11)
    rule.after_step(net)
    first = [m.feedback.clone() for m in layers]
    rule.after_step(net)
    for m, before in zip(layers, first):
        s = rule.spread(m)
        magnitude = m.feedback.abs()
        assert torch.equal(torch.sign(m.feedback), torch.sign(m.weight))
        assert magnitude.max().item() <= s and magnitude.min().item() >= 0.0
        u = (magnitude.double() / s).flatten()
        n = u.numel()
        assert abs(u.mean().item() - 0.5) < 5 * (1 / 12) ** 0.5 / n ** 0.5
        assert abs(u.var().item() - 1 / 12) < 5 * (1 / 180) ** 0.5 / n ** 0.5
        previous = (before.abs().double() / s).flatten()
        correlation = torch.corrcoef(torch.stack([u, previous]))[0, 1].item()
        assert abs(correlation) < 5 / n ** 0.5                 # a fresh draw every step
    torch.manual_seed(11)
    rule.after_step(net)
    assert all(torch.equal(m.feedback, f) for m, f in zip(layers, first))


def test_fused_update_compiles_once_per_model(can_compile):
    """The compiled function is cached per model: later steps neither recompile nor make
    a new function; another model gets its own."""
    from torch._dynamo.utils import counters
    rule = R.create("kp", fused=True)
    net = make_net(rule)
    rule.after_step(net)
    kernels = dict(fused_updates._COMPILED[net])
    graphs = counters["stats"]["unique_graphs"]
    for _ in range(3):
        rule.after_step(net)
    assert counters["stats"]["unique_graphs"] == graphs
    assert fused_updates._COMPILED[net] == kernels and len(kernels) == 1
