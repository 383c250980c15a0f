"""Contract tests every registered rule must pass (parametrized over ``rules.available()``)."""

import pytest
import torch

import biocredit
import biocredit.losses as L
import biocredit.rules as R

RULES = R.available()
# Rules with no feedback matrices: BP (fast path) uses the forward weights, shallow learning
# sends the hidden layers nothing, node perturbation teaches them with noise and a reward.
NO_FEEDBACK = ("bp", "shallow", "node-perturbation")


def converted(name, net, seed=1, **options):
    return biocredit.convert(net, R.create(name, **options),
                             generator=torch.Generator().manual_seed(seed))


def grads(net):
    return {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", RULES)
def test_every_trainable_parameter_gets_a_finite_gradient(name, small_mlp, batch):
    net = converted(name, small_mlp)
    R.create(name).backward(net, *batch, L.create("ce"))
    for key, p in net.named_parameters():
        if name == "shallow" and not key.startswith("head."):
            assert p.grad is None, key    # by definition: the hidden layers get no signal
            continue
        assert p.grad is not None, f"{name}: {key} got no gradient"
        assert torch.isfinite(p.grad).all(), key
        assert p.grad.abs().sum() > 0, f"{name}: {key} got an all-zero gradient"


@pytest.mark.parametrize("name", RULES)
def test_feedback_state_is_buffers_without_gradients(name, small_mlp, batch):
    """Feedback never gets an autograd gradient; a rule that learns it (DKP) may hand it one
    for its own optimizer, which it clears in ``after_step``."""
    net = converted(name, small_mlp)
    rule = R.create(name)
    rule.backward(net, *batch, L.create("ce"))
    rule.after_step(net)
    params = {k for k, _ in net.named_parameters()}
    for key, buf in net.named_buffers():
        assert key not in params
        assert buf.grad is None and not buf.requires_grad, key
    # Feedback rules hold feedback; BP (fast path), shallow and node perturbation hold none.
    has_feedback = any(v.feedback is not None for v in biocredit.layer_views(net))
    assert has_feedback == (name not in NO_FEEDBACK)


@pytest.mark.parametrize("name", RULES)
def test_state_dict_round_trips_the_feedback(name, small_mlp, batch):
    a = converted(name, small_mlp, seed=1)
    b = converted(name, small_mlp, seed=2)
    b.load_state_dict(a.state_dict())
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    rule = R.create(name)
    rule.backward(a, *batch, L.create("ce"))
    rule.backward(b, *batch, L.create("ce"))
    for key, g in grads(a).items():
        assert torch.equal(g, grads(b)[key]), key


@pytest.mark.parametrize("name", RULES)
def test_a_state_dict_taken_mid_training_resumes_the_rule_exactly(name, small_mlp, batch):
    """All of a rule's state is in ``state_dict`` (learned feedback, DKP's feedback optimizer
    and schedule, node perturbation's noise stream): a model loaded from it mid-training
    goes on exactly as the one it was saved from."""
    def step(net):
        torch.manual_seed(3)      # brSF's magnitudes: torch's stream, kept by the run
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)    # (stateless)
        biocredit.hook_optimizer(net, optimizer)
        optimizer.zero_grad()
        R.create(name).backward(net, *batch, L.create("ce"))
        optimizer.step()

    a = converted(name, small_mlp, seed=1)
    for _ in range(2):
        step(a)
    biocredit.after_epoch(a)
    b = converted(name, small_mlp, seed=2)
    b.load_state_dict(a.state_dict())
    step(a)
    step(b)
    assert a.state_dict().keys() == b.state_dict().keys()
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key


@pytest.mark.parametrize("name", RULES)
def test_same_seed_same_result_and_different_seed_different_feedback(name, small_mlp, batch):
    runs = []
    for seed in (3, 3, 4):
        net = converted(name, small_mlp, seed=seed)
        R.create(name).backward(net, *batch, L.create("ce"))
        runs.append(grads(net))
    for key in runs[0]:
        assert torch.equal(runs[0][key], runs[1][key]), key
    # usf's feedback is sign(W) times a constant; shallow draws nothing at all
    if name not in ("bp", "usf", "shallow"):
        assert any(not torch.equal(runs[0][k], runs[2][k]) for k in runs[0])


@pytest.mark.parametrize("name", RULES)
def test_convert_never_mutates_the_callers_model(name, small_mlp, batch):
    before = {k: v.clone() for k, v in small_mlp.state_dict().items()}
    types = [type(m) for m in small_mlp.modules()]
    net = converted(name, small_mlp)
    R.create(name).backward(net, *batch, L.create("ce"))
    torch.optim.SGD(net.parameters(), lr=0.5).step()
    assert [type(m) for m in small_mlp.modules()] == types
    for key, value in small_mlp.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert all(p.grad is None for p in small_mlp.parameters())


@pytest.mark.parametrize("name", RULES)
def test_rule_trains_with_any_optimizer(name, small_mlp, batch):
    """Forty Adam steps fit one small batch: the gradients point downhill. Shallow learning
    fits it with the output layer alone, on fixed random features: more slowly."""
    net = converted(name, small_mlp)
    rule, loss_fn = R.create(name), L.create("ce")
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    first = None
    for _ in range(40):
        opt.zero_grad()
        loss = rule.backward(net, *batch, loss_fn)
        opt.step()
        rule.after_step(net)
        first = loss.item() if first is None else first
    assert loss.item() < (0.5 if name == "shallow" else 0.1) * first


def test_unknown_rule_lists_the_valid_ones():
    with pytest.raises(ValueError) as err:
        R.create("backprop")
    for name in RULES:
        assert name in str(err.value)


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(ValueError, match="feedback_scale"):
        R.create("fa", scale=2)


def test_a_direct_rule_on_a_model_without_taps_says_how_to_add_them():
    with pytest.raises(ValueError, match=r"biocredit.Tap\(\).*taps="):
        biocredit.convert(torch.nn.Linear(3, 2), R.create("dfa"))


def test_layer_views_show_weight_feedback_and_gradient(small_mlp, batch):
    net = converted("dfa", small_mlp)
    R.create("dfa").backward(net, *batch, L.create("ce"))
    views = biocredit.layer_views(net)
    assert [v.name for v in views] == ["blocks.0.layer", "blocks.1.layer", "head.layer"]
    assert [tuple(v.feedback.shape) for v in views[:2]] == [(4, 9), (4, 7)]
    assert views[2].feedback is None
    assert all(v.grad is views_w.weight.grad for v, views_w in zip(views, views))
    fa = converted("fa", small_mlp)
    shapes = [None if v.feedback is None else tuple(v.feedback.shape)
              for v in biocredit.layer_views(fa)]
    assert shapes == [None, (7, 9), (4, 7)]
