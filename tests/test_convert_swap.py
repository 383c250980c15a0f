"""A faithful swap: a converted layer keeps the hooks registered on it, and a layer whose
weight is computed (a parametrization) is refused by name or left on BP, never silently
stripped of its parametrization."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations, parametrize

import biocredit
from biocredit.layers import FeedbackLinear


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))


def test_forward_hooks_and_pre_hooks_move_to_the_feedback_layer():
    model = mlp()
    calls = []
    model[2].register_forward_pre_hook(lambda m, args: (2 * args[0],))
    model[2].register_forward_pre_hook(
        lambda m, args, kwargs: calls.append(("pre kwargs", type(m))), with_kwargs=True)
    model[2].register_forward_hook(lambda m, args, out: out + 1)
    model[2].register_forward_hook(
        lambda m, args, kwargs, out: calls.append(("post kwargs", type(m))), with_kwargs=True)
    model[2].register_forward_hook(lambda m, args, out: calls.append(("always", type(m))),
                                   always_call=True)
    x = torch.randn(5, 4)
    expected = model(x)                   # the hooks double the input and add one
    calls.clear()

    net = biocredit.convert(model, "fa", generator=torch.Generator().manual_seed(1))
    assert isinstance(net[2], FeedbackLinear)
    torch.testing.assert_close(net(x), expected, rtol=0, atol=0)
    assert calls == [("pre kwargs", FeedbackLinear), ("post kwargs", FeedbackLinear),
                     ("always", FeedbackLinear)]
    assert dict(net[2]._forward_hooks_always_called) == dict(model[2]._forward_hooks_always_called)


def test_a_hook_that_always_runs_still_runs_when_the_forward_fails():
    model = mlp()
    ran = []
    model[0].register_forward_hook(lambda m, args, out: ran.append(True), always_call=True)
    net = biocredit.convert(model, "fa")
    with pytest.raises(RuntimeError):
        net(torch.randn(2, 5))            # wrong width
    assert ran == [True]


def test_backward_and_state_dict_hooks_move_too():
    model = mlp()
    seen = []
    model[2].register_full_backward_hook(lambda m, gin, gout: seen.append(type(m)))
    model[0].register_state_dict_post_hook(
        lambda m, state, prefix, meta: state.__setitem__(prefix + "note", torch.ones(1)))
    net = biocredit.convert(model, "fa")
    F.cross_entropy(net(torch.randn(3, 4)), torch.tensor([0, 1, 2])).backward()
    assert seen == [FeedbackLinear]
    assert "0.note" in net.state_dict()


def weight_norm_mlp() -> nn.Sequential:
    model = mlp()
    parametrizations.weight_norm(model[2])
    return model


def test_a_parametrized_weight_is_refused_naming_the_layer_and_the_fixes():
    model = weight_norm_mlp()
    with pytest.raises(ValueError, match=r"fa cannot keep the computed weights of 2 \(a "
                       r"parametrization of weight.*remove_parametrizations.*unsupported='bp'"):
        biocredit.convert(model, "fa")
    assert parametrize.is_parametrized(model[2])     # the user's model untouched


def test_a_weight_set_by_a_hook_is_refused_too():
    model = mlp()
    torch.nn.utils.spectral_norm(model[0])          # weight_orig, and a hook sets weight
    with pytest.raises(ValueError, match=r"computed weights of 0 \(a weight computed by a hook"):
        biocredit.convert(model, "kp")


def test_a_model_torch_cannot_copy_is_refused_saying_why():
    model = mlp()
    with pytest.warns(FutureWarning):
        torch.nn.utils.weight_norm(model[0])        # the old one: a computed weight attribute
    with pytest.raises(ValueError, match="cannot be copied.*remove_weight_norm"):
        biocredit.convert(model, "dfa")


@pytest.mark.parametrize("options", [{"unsupported": "bp"}, {"exclude": ["2"]}])
def test_a_parametrized_layer_left_on_bp_keeps_its_parametrization_and_learns(options):
    model = weight_norm_mlp()
    net = biocredit.convert(model, "fa", **options)
    assert parametrize.is_parametrized(net[2])
    assert isinstance(net[0], FeedbackLinear)
    assert any(entry.startswith("2") for entry in net.biocredit_conversion.tied)
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    torch.testing.assert_close(net(x), model(x), rtol=0, atol=0)
    F.cross_entropy(net(x), y).backward()
    for name, p in net[2].named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert set(biocredit.plain_state_dict(net)) == set(model.state_dict())


def test_direct_rules_leave_a_parametrized_layer_as_it_is():
    model = weight_norm_mlp()
    net = biocredit.convert(model, "dfa", example_input=torch.randn(1, 4))
    assert parametrize.is_parametrized(net[2])
    F.cross_entropy(net(torch.randn(5, 4)), torch.tensor([0, 1, 2, 0, 1])).backward()
    assert net[2].parametrizations.weight.original1.grad is not None
