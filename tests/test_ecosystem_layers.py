"""Issue 24 item 4: every weight layer of the common libraries converts (transformers'
``Conv1D``, subclasses of ``nn.Linear``/``nn.Conv*d`` computing the parent's forward), the
others are refused by class name, embeddings are reported, and tied weights stay tied."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import biocredit
from biocredit.layers import LocallyConnected2d, FeedbackConv2d, FeedbackLinear, FeedbackTransposedLinear
from biocredit.rules.layer_feedback import fan_out
from hf_helpers import adam_losses


class Conv1D(nn.Module):
    """A copy of transformers' ``Conv1D``: weight ``nx × nf``, ``x @ W + b``."""

    def __init__(self, nf, nx):
        super().__init__()
        self.nf, self.nx = nf, nx
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.3)
        self.bias = nn.Parameter(torch.randn(nf) * 0.1)

    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        return torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight).view(size_out)


class CallsParent(nn.Linear):
    """A subclass whose forward is the parent's computation (like timm's ``Linear``)."""

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


class Doubles(nn.Linear):
    def forward(self, x):
        return 2 * super().forward(x)


class SameConv(nn.Conv2d):
    def forward(self, x):
        return self._conv_forward(x, self.weight, self.bias)


class TwoTaps(nn.Module):
    """A lookup table whose matrix the output layer uses again (a tied language model)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 6)
        self.mix = Conv1D(6, 6)
        self.head = nn.Linear(6, 10, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, tokens):
        return self.head(torch.tanh(self.mix(self.embed(tokens))))


def test_conv1d_gets_feedback_in_its_own_layout_and_keeps_its_parameters():
    torch.manual_seed(0)
    model = nn.Sequential(Conv1D(5, 4), nn.Tanh(), Conv1D(3, 5))
    net = biocredit.convert(model, "fa", generator=torch.Generator().manual_seed(1))
    layer = net[2]
    assert isinstance(layer, FeedbackTransposedLinear) and layer.feedback.shape == (5, 3)
    assert fan_out(layer) == fan_out(model[2]) == 3              # the outputs, nf
    assert {k: v.shape for k, v in biocredit.plain_state_dict(net).items()} == \
        {k: v.shape for k, v in model.state_dict().items()}
    x = torch.randn(7, 4, requires_grad=True)
    h = torch.tanh(net[0](x)).detach().requires_grad_()
    g = torch.randn(7, 3)
    torch.testing.assert_close(net[2](h), model[2](h), rtol=0, atol=0)
    net[2](h).backward(g)
    torch.testing.assert_close(h.grad, g @ layer.feedback.t())      # B in W's nx × nf layout
    torch.testing.assert_close(layer.weight.grad, h.t() @ g)
    torch.testing.assert_close(layer.bias.grad, g.sum(0))


def test_usf_scales_conv1d_by_its_outputs():
    torch.manual_seed(0)
    net = biocredit.convert(nn.Sequential(Conv1D(9, 4), nn.Tanh(), Conv1D(16, 9)), "usf")
    assert net[2].feedback.abs().unique().item() == pytest.approx(1 / math.sqrt(16))


def test_subclasses_computing_the_parents_forward_convert_and_others_are_named():
    torch.manual_seed(0)
    model = nn.Sequential(SameConv(1, 2, 3), nn.Flatten(), CallsParent(8, 5), nn.Tanh(),
                          CallsParent(5, 3))
    net = biocredit.convert(model, "fa")
    assert net.biocredit_conversion.feedback == ["0", "2", "4"]
    assert isinstance(net[0], FeedbackConv2d) and isinstance(net[4], FeedbackLinear)
    x = torch.randn(3, 1, 4, 4)
    torch.testing.assert_close(net(x), model(x), rtol=0, atol=0)

    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), Doubles(5, 3))
    with pytest.raises(ValueError, match=r"2 \(.*Doubles: a subclass of nn\.Linear whose "
                                         r"forward is not nn\.Linear's computation\)"):
        biocredit.convert(model, "fa")
    net = biocredit.convert(model, "fa", unsupported="bp")
    assert type(net[2]) is Doubles and net.biocredit_conversion.tied[0].startswith("2 (")


def test_a_tied_pair_shares_one_parameter_with_one_feedback_per_use_and_bp_is_exact():
    torch.manual_seed(0)
    model = TwoTaps()
    for rule in ("fa", "kp", "usf"):
        net = biocredit.convert(model, rule)
        assert net.head.weight is net.embed.weight
        assert sum(p.numel() for p in net.parameters()) == \
            sum(p.numel() for p in model.parameters())
        conversion = net.biocredit_conversion
        assert conversion.embeddings == ["embed"]
        assert conversion.shared == ["embed.weight = head.weight"]
        assert "embeddings, kept as they are (1): embed" in str(conversion)
        tokens = torch.randint(0, 10, (4, 5))
        model.zero_grad()
        F.cross_entropy(model(tokens).flatten(0, 1), tokens.flatten()).backward()
        with biocredit.exact_gradients(net):
            F.cross_entropy(net(tokens).flatten(0, 1), tokens.flatten()).backward()
        for name, p in model.named_parameters():
            torch.testing.assert_close(net.get_parameter(name).grad, p.grad, msg=name)


def test_kp_decays_a_tied_weight_once():
    torch.manual_seed(0)
    net = biocredit.convert(nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 4)), "kp",
                            skip=())
    net[2].weight = net[0].weight
    for m in (net[0], net[2]):
        m.weight_before_step.copy_(m.weight)
    before = net[0].weight.detach().clone()
    biocredit.after_step(net)
    decay = net.biocredit_conversion.rule.options["decay"]
    torch.testing.assert_close(net[0].weight.detach(), before * (1 - decay))


def gpt2():
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=64,
                                     n_positions=32, bos_token_id=0, eos_token_id=0,
                                     resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(config), transformers.GPT2LMHeadModel


def test_gpt2_converts_with_fa_keeps_its_tie_and_trains():
    model, _ = gpt2()
    net = biocredit.convert(model, "fa")
    assert net.lm_head.weight is net.transformer.wte.weight
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in model.parameters())
    assert len(net.biocredit_conversion.feedback) == 9         # 8 Conv1D and lm_head
    tokens = torch.randint(0, 64, (8, 16), generator=torch.Generator().manual_seed(1))
    losses = adam_losses(net, 4, 1e-2, input_ids=tokens, labels=tokens)
    assert min(losses[1:]) < losses[0] - 0.05, losses
    assert net.lm_head.weight is net.transformer.wte.weight


@pytest.mark.parametrize("rule", ["fa", "kp", "usf"])
def test_gpt2_exact_gradients_are_bp_and_the_plain_state_dict_gives_the_same_logits(rule):
    model, GPT2 = gpt2()
    net = biocredit.convert(model, rule)
    tokens = torch.randint(0, 64, (4, 16), generator=torch.Generator().manual_seed(1))
    model(input_ids=tokens, labels=tokens).loss.backward()
    with biocredit.exact_gradients(net):
        net(input_ids=tokens, labels=tokens).loss.backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(net.get_parameter(name).grad, p.grad, msg=name)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    biocredit.hook_optimizer(net, optimizer)
    optimizer.step()                              # numbers the plain model does not have
    plain = GPT2(model.config)
    plain.load_state_dict(biocredit.plain_state_dict(net))
    assert plain.lm_head.weight is plain.transformer.wte.weight
    torch.testing.assert_close(plain(input_ids=tokens).logits, net(input_ids=tokens).logits,
                               rtol=0, atol=0)


# -- issue 24 item 6: the feedback's scale ------------------------------------------------------
LAYERS = {
    "linear": (lambda: nn.Linear(48, 32), (64, 48)),
    "conv1d": (lambda: nn.Conv1d(16, 24, 3, padding=1), (8, 16, 20)),
    "conv2d": (lambda: nn.Conv2d(16, 24, 3, padding=1), (8, 16, 10, 10)),
    "grouped conv2d": (lambda: nn.Conv2d(32, 32, 3, padding=1, groups=8), (8, 32, 10, 10)),
    "depthwise conv2d": (lambda: nn.Conv2d(64, 64, 3, padding=1, groups=64), (8, 64, 10, 10)),
    "transformers Conv1D": (lambda: Conv1D(32, 48), (64, 48)),
    "untied (LocallyConnected2d)": (lambda: LocallyConnected2d(16, 24, 3, 10, padding=1),
                                    (8, 16, 10, 10)),
}


def converted_layer(kind, rule, **options):
    """``LAYERS[kind]`` at its default init, converted with ``rule``, and an input for it."""
    make, shape = LAYERS[kind]
    torch.manual_seed(0)
    layer = make()
    if isinstance(layer, Conv1D):          # transformers' init: N(0, 0.02) is not 1/√fan
        nn.init.kaiming_uniform_(layer.weight.t(), a=math.sqrt(5))
    net = biocredit.convert(nn.Sequential(layer), biocredit.rules.create(rule, **options),
                            generator=torch.Generator().manual_seed(1))
    return net, torch.randn(shape, generator=torch.Generator().manual_seed(3))


def backward_gain(net, x, exact):
    """``‖δx‖ / ‖δa‖`` for a random output error ``δa``."""
    x = x.clone().requires_grad_()
    out = net(x)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
    if exact:
        with biocredit.exact_gradients(net):
            net(x).backward(g)
    else:
        out.backward(g)
    return (x.grad.norm() / g.norm()).item()


@pytest.mark.parametrize("kind", list(LAYERS))
def test_fa_backward_gain_at_initialisation_is_within_a_factor_2_of_bp(kind):
    """Issue 24: a depthwise convolution's FA gain was 0.067 against BP's 0.53 (fan-out
    without ``groups``); an untied layer's 2.4x BP's (fan-out ``C_out``, not ``C_out·k²``)."""
    net, x = converted_layer(kind, "fa")
    fa, bp = backward_gain(net, x, exact=False), backward_gain(net, x, exact=True)
    assert 0.5 < fa / bp < 2, (fa, bp)


# the backward gain ‖Bᵀδ‖/‖δ‖ each sign rule's default scale gives, whatever the layer kind:
# n_{l+1} = fan_out errors summed, each with E[B²] = s² (usf) or s²/3 (|R| ~ U(0, s)), s = 1/√n
SIGN_GAINS = {"usf": 1.0, "brsf": 1 / math.sqrt(3), "frsf": 1 / math.sqrt(3)}


@pytest.mark.parametrize("rule", list(SIGN_GAINS))
@pytest.mark.parametrize("kind", list(LAYERS))
def test_sign_rules_scale_every_layer_kind_alike_and_brsf_keeps_it_after_a_step(kind, rule):
    """Issue 24: usf/brsf scaled a convolution by ``1/√C_out`` (gain 2.75 against 0.53), and
    brSF's conv gain jumped from 0.53 to 1.59 after the first step."""
    net, x = converted_layer(kind, rule)
    gain = backward_gain(net, x, exact=False)
    assert 0.6 < gain / SIGN_GAINS[rule] < 1.5, gain
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3)
    biocredit.hook_optimizer(net, optimizer)
    net(x).square().mean().backward()
    optimizer.step()
    assert 0.8 < backward_gain(net, x, exact=False) / gain < 1.25


@pytest.mark.parametrize("rule", ["fa", "kp", "usf", "brsf", "frsf"])
def test_feedback_like_weight_draws_each_b_at_its_own_weights_std(rule):
    """Issue 24 item 6: weights at N(0, 0.02) (transformers' init) get feedback of std 0.02."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(256, 128), nn.Tanh(), nn.Linear(128, 64))
    stds = []
    for layer, std in zip((net[0], net[2]), (0.02, 0.1)):
        nn.init.normal_(layer.weight, std=std)
        stds.append(layer.weight.std().item())
    net = biocredit.convert(net, biocredit.rules.create(rule, feedback_like_weight=True),
                            generator=torch.Generator().manual_seed(1))
    for layer, std in zip((net[0], net[2]), stds):
        assert abs(layer.feedback.std().item() / std - 1) < 0.05, (layer, std)
        if rule != "fa" and rule != "kp":
            assert torch.equal(layer.feedback.sign(), layer.weight.sign())
    x = torch.randn(32, 256)
    fa, bp = backward_gain(net, x, exact=False), backward_gain(net, x, exact=True)
    assert 0.5 < fa / bp < 2, (fa, bp)


def test_feedback_like_weight_is_for_the_layer_rules_and_random_kinds_only():
    with pytest.raises(ValueError, match="has no option feedback_like_weight"):
        biocredit.rules.create("dfa", feedback_like_weight=True)
    with pytest.raises(ValueError, match="feedback_like_weight draws uniform or gaussian"):
        biocredit.convert(nn.Sequential(nn.Linear(4, 3)),
                          biocredit.rules.create("fa", feedback_like_weight=True,
                                                 feedback_init="b1"))
