"""Any model, any loop: ``biocredit.convert`` and a plain ``loss.backward()``."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import biocredit
import biocredit.rules as R
from biocredit.layers import FeedbackLayer, FeedbackMultiheadAttention, Tap
from biocredit.metrics.alignment import weight_layers


# -- models a researcher might bring --------------------------------------------------------
class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class TinyResNet(nn.Module):
    def __init__(self, classes=4, taps=False):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.block1 = BasicBlock(4, 4)
        self.block2 = BasicBlock(4, 6, stride=2)
        self.head = nn.Linear(6, classes)
        self.tap1, self.tap2 = (Tap(), Tap()) if taps else (nn.Identity(), nn.Identity())

    def forward(self, x):
        x = self.tap1(self.block1(self.stem(x)))
        x = self.tap2(self.block2(x))
        return self.head(x.mean((2, 3)))


class TinyTransformer(nn.Module):
    def __init__(self, classes=4, d=8):
        super().__init__()
        self.embed = nn.Linear(6, d)
        layer = nn.TransformerEncoderLayer(d, 2, 16, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x)).mean(1))


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 9), nn.Tanh(), nn.Linear(9, 7), nn.Tanh(),
                         nn.Linear(7, 4))


def convnet():
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv1d(3, 3, 1) if False else nn.Identity(), nn.Flatten(),
                         nn.Linear(3 * 3 * 3, 5), nn.Tanh(), nn.Linear(5, 4))


MODELS = {  # name: (builder, input shape, taps for direct rules)
    "mlp": (mlp, (1, 3, 4), None),
    "convnet": (convnet, (1, 6, 6), None),
    "resnet": (lambda: TinyResNet(taps=True), (1, 6, 6), None),
    "transformer": (TinyTransformer, (5, 6), ["encoder.layers.0", "encoder.layers.1"]),
}


def build(name, seed=0):
    torch.manual_seed(seed)
    make, shape, taps = MODELS[name]
    model = make().double()
    g = torch.Generator().manual_seed(seed + 7)
    x = torch.randn(6, *shape, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (6,), generator=g)
    return model, x, y, taps


def autograd_grads(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return {k: p.grad.clone() for k, p in model.named_parameters()}


def tie_feedback(model):
    """``B := W`` in every feedback layer (FA with the forward weights is BP)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, FeedbackMultiheadAttention):
                m.in_proj_feedback.copy_(m.in_proj_weight)
            elif isinstance(m, FeedbackLayer) and m.feedback is not None:
                m.feedback.copy_(m.weight)


# -- correctness against autograd --------------------------------------------------------------
@pytest.mark.parametrize("name", ["resnet", "transformer", "convnet"])
def test_fa_with_feedback_equal_to_the_weights_is_autograd(name):
    model, x, y, _ = build(name)
    converted = biocredit.convert(model, "fa", generator=torch.Generator().manual_seed(1))
    tie_feedback(converted)
    expected = autograd_grads(model, x, y)
    got = autograd_grads(converted, x, y)
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-10, atol=1e-12), key


@pytest.mark.parametrize("name", ["resnet", "transformer"])
def test_random_feedback_changes_the_hidden_gradients_but_not_the_top_layer(name):
    model, x, y, _ = build(name)
    converted = biocredit.convert(model, "fa", generator=torch.Generator().manual_seed(1))
    expected, got = autograd_grads(model, x, y), autograd_grads(converted, x, y)
    assert torch.equal(got["head.weight"], expected["head.weight"])   # e hᵀ: no feedback
    hidden = [k for k in expected if k.endswith("weight") and not k.startswith(("head", "embed"))
              and expected[k].dim() >= 2]
    assert all(not torch.allclose(got[k], expected[k]) for k in hidden)


def test_dfa_one_hidden_layer_with_b_equal_to_w2_transposed_is_bp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    x, y = torch.randn(7, 5, dtype=torch.float64), torch.randint(0, 3, (7,))
    converted = biocredit.convert(model, "dfa", example_input=x)   # draws B now
    with torch.no_grad():
        converted.direct_feedback.copy_(converted[2].weight)   # C × n = W₂ = (B₁)ᵀ
    expected, got = autograd_grads(model, x, y), autograd_grads(converted, x, y)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-12, atol=1e-14)


def test_dfa_hidden_gradients_see_the_layers_above_only_through_the_output_error():
    """With ``∂loss/∂output`` constant, a weight above a tap cannot change any gradient below
    it under DFA (no error crosses a forward weight between taps); under BP it does."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(),
                          nn.Linear(8, 3)).double()
    x = torch.randn(7, 5, dtype=torch.float64)
    c = torch.randn(7, 3, dtype=torch.float64)

    def below_grads(net):
        net.zero_grad()
        (net(x) * c).sum().backward()
        return [p.grad.clone() for p in net[0].parameters()]

    dfa = biocredit.convert(model, "dfa")       # B is drawn at the first forward pass
    before = below_grads(dfa)
    with torch.no_grad():
        dfa[2].weight.add_(torch.randn_like(dfa[2].weight))      # above the first tap
    after = below_grads(dfa)
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    bp_before = below_grads(model)
    with torch.no_grad():
        model[2].weight.add_(torch.randn_like(model[2].weight))
    assert not all(torch.equal(a, b) for a, b in zip(bp_before, below_grads(model)))


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
def test_dfa_computes_no_input_gradient_for_a_layer_above_a_tap():
    """DFA's layers above a tap get a detached input: their backward skips ``Wᵀδ``."""
    torch.manual_seed(0)
    model = mlp().double()
    dfa = biocredit.convert(model, "dfa")
    seen = []
    dfa[3].register_full_backward_hook(lambda m, gin, gout: seen.append(gin[0]))
    F.cross_entropy(dfa(torch.randn(2, 1, 3, 4, dtype=torch.float64)),
                    torch.tensor([0, 1])).backward()
    assert seen == [None]


# -- every rule, every kind of model, a plain loop ---------------------------------------------
@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("rule_name", R.available())
def test_every_rule_trains_every_model_in_a_plain_loop(rule_name, model_name):
    model, x, y, taps = build(model_name)
    rule = R.create(rule_name)
    options = {"generator": torch.Generator().manual_seed(3)}
    if rule.direct and taps:
        options["taps"] = taps
    if model_name == "transformer" and rule.learns_feedback:
        options["unsupported"] = "bp"
    if rule_name in ("ifa", "general") and model_name in ("resnet", "transformer", "convnet"):
        options["example_input"] = x
    try:
        converted = biocredit.convert(model, rule, **options)
    except ValueError as err:       # a rule not defined for this graph says so in one line
        assert rule_name in ("ifa", "general") and "\n" not in str(err)
        return
    opt = torch.optim.SGD(converted.parameters(), lr=0.05)
    biocredit.hook_optimizer(converted, opt)
    if rule_name == "ifa" and model_name == "transformer":   # no double backward of attention
        with pytest.raises(ValueError, match="IFA carries its signal forward"):
            F.cross_entropy(converted(x), y).backward()
        return
    if rule_name == "node-perturbation" and model_name == "transformer":   # nor here
        with pytest.raises(ValueError, match="node perturbation carries its noise forward"):
            F.cross_entropy(converted(x), y).backward()
        return
    output_layer = set(weight_layers(converted)[-1].parameters())
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = F.cross_entropy(converted(x), y)
        loss.backward()
        for key, p in converted.named_parameters():
            if rule_name == "shallow" and p not in output_layer:
                assert p.grad is None, key      # only the layers above the last tap learn
                continue
            assert p.grad is not None and torch.isfinite(p.grad).all(), key
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert any(p.grad.abs().sum() > 0 for p in converted.parameters() if p.grad is not None)
    if model_name == "transformer" and rule.learns_feedback:
        assert any("self_attn" in t for t in converted.biocredit_conversion.tied)


# -- state and bookkeeping ---------------------------------------------------------------------
@pytest.mark.parametrize("rule_name", ["fa", "kp", "dfa", "dkp", "frsf"])
def test_state_dict_round_trips_between_plain_and_converted(rule_name):
    model, x, y, _ = build("resnet")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    converted = biocredit.convert(model, rule_name, example_input=x)
    for key, value in model.state_dict().items():           # the argument is untouched
        assert torch.equal(value, before[key]), key
    assert all(type(m) in (nn.Conv2d, nn.Linear) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear)))
    # plain -> converted, strict: the feedback is kept, every weight is loaded
    other, *_ = build("resnet", seed=5)
    feedback = {k: v.clone() for k, v in converted.state_dict().items()
                if k not in model.state_dict()}
    assert feedback, "the converted model carries its feedback in the state_dict"
    converted.load_state_dict(other.state_dict())
    for key, value in other.state_dict().items():
        assert torch.equal(converted.state_dict()[key], value), key
    for key, value in feedback.items():
        if rule_name == "frsf" and key.endswith(".feedback"):   # sign(W_new) ⊙ kept magnitude
            weight = converted.state_dict()[key[:-len("feedback")] + "weight"]
            assert torch.equal(converted.state_dict()[key],
                               torch.sign(weight) * feedback[key + "_magnitude"]), key
        else:
            assert torch.equal(converted.state_dict()[key], value), key
    # converted -> plain, strict
    plain, *_ = build("resnet", seed=9)
    plain.load_state_dict(biocredit.plain_state_dict(converted))
    for key, value in plain.state_dict().items():
        assert torch.equal(converted.state_dict()[key], value), key


def test_exclude_keeps_layers_on_bp_and_is_reported():
    model, x, y, _ = build("resnet")
    converted = biocredit.convert(model, "fa", exclude=["block2.*"])
    conversion = converted.biocredit_conversion
    assert "block2.conv1" in conversion.tied and "block1.conv1" in conversion.feedback
    assert type(converted.block2.conv1) is nn.Conv2d


def test_kp_through_the_optimizer_hook_equals_the_explicit_call():
    runs = []
    for hooked in (True, False):
        model, x, y, _ = build("mlp")
        net = biocredit.convert(model, "kp", generator=torch.Generator().manual_seed(2))
        opt = torch.optim.Adam(net.parameters(), lr=0.01)
        if hooked:
            biocredit.hook_optimizer(net, opt)
        for _ in range(4):
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
            if not hooked:
                biocredit.after_step(net)
        runs.append({k: v.clone() for k, v in net.state_dict().items()})
    for key in runs[0]:
        assert torch.equal(runs[0][key], runs[1][key]), key
    assert any(k.endswith("feedback") for k in runs[0])


def test_dkp_keeps_learning_its_feedback_after_the_model_moves():
    model, x, y, _ = build("mlp")
    net = biocredit.convert(model, "dkp", example_input=x)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    biocredit.hook_optimizer(net, opt)

    def step():
        opt.zero_grad()
        F.cross_entropy(net(x.to(net.direct_feedback.dtype)), y).backward()
        opt.step()

    step()
    net.float()
    b = net.direct_feedback.clone()
    step()
    assert net.direct_feedback.dtype == torch.float32
    assert not torch.equal(net.direct_feedback, b)


# -- bad input ---------------------------------------------------------------------------------
def test_an_unsupported_weight_layer_is_named():
    class Bilinear(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Bilinear(3, 3, 2)

        def forward(self, x):
            return self.inner(x, x)

    with pytest.raises(ValueError, match=r"inner \(Bilinear\).*unsupported='bp'"):
        biocredit.convert(Bilinear(), "fa")
    converted = biocredit.convert(Bilinear(), "fa", unsupported="bp")
    assert converted.biocredit_conversion.tied == ["inner (Bilinear)"]


def test_a_direct_rule_without_taps_says_how_to_add_them():
    model, *_ = build("resnet")
    plain = TinyResNet()          # the same net without Tap modules
    with pytest.raises(ValueError, match=r"biocredit\.Tap\(\).*taps="):
        biocredit.convert(plain, "dfa")
    assert biocredit.convert(model, "dfa").biocredit_conversion.taps == ["tap1", "tap2"]


def test_unknown_names_are_errors():
    model, *_ = build("mlp")
    with pytest.raises(ValueError, match="exclude='nope' matches no module"):
        biocredit.convert(model, "fa", exclude=["nope"])
    with pytest.raises(ValueError, match="taps='nope' matches no module"):
        biocredit.convert(model, "dfa", taps=["nope"])
    with pytest.raises(ValueError, match="unknown rule 'fax'"):
        biocredit.convert(model, "fax")
    with pytest.raises(ValueError, match="taps are for direct rules"):
        biocredit.convert(model, "fa", taps=["1"])
    with pytest.raises(ValueError, match="already converted"):
        biocredit.convert(biocredit.convert(model, "fa"), "fa")


def test_auxiliary_errors_without_labels_say_how_to_give_them():
    model, x, y, _ = build("mlp")
    net = biocredit.convert(model, R.create("dfa", aux_errors=True))
    with pytest.raises(ValueError, match="set_targets"):
        F.cross_entropy(net(x), y).backward()
    biocredit.set_targets(net, y)
    F.cross_entropy(net(x), y).backward()
    assert net[1].weight.grad is not None


def test_taps_are_inert_in_eval_and_without_grad():
    model, x, y, _ = build("mlp")
    net = biocredit.convert(model, "dfa")
    with torch.no_grad():
        torch.testing.assert_close(net(x), model(x), rtol=0, atol=0)
    assert net.biocredit_conversion.taps == ["after 2", "after 4"]


# -- the weight-transport audit ---------------------------------------------------------------
def test_transport_report_finds_what_the_error_crosses():
    model, x, y, _ = build("resnet")
    bp = biocredit.transport_report(model, x)
    assert bp.free == ["head.weight", "head.bias"]       # only the top layer under BP
    assert "block2.conv2.weight" in bp.crossed["block1.conv1.weight"]
    fa = biocredit.transport_report(biocredit.convert(model, "fa"), x)
    # FA: no forward weight is crossed any more, only batch norm's scales
    scales = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    for name, via in fa.crossed.items():
        assert set(via) <= scales, name
    assert "block2.bn2.weight" in fa.crossed["block2.conv2.weight"]
    assert fa.crossed["block2.bn1.bias"] == ["block2.bn2.weight"]
    excluded = biocredit.transport_report(biocredit.convert(model, "fa", exclude=["head"]), x)
    assert "head.weight" in excluded.crossed["block2.conv2.weight"]


def test_transport_report_of_an_mlp_under_every_rule():
    torch.manual_seed(0)
    net = biocredit.models.create("mlp:2x6:tanh", (1, 2, 2), 3)
    for name in R.available():
        report = biocredit.transport_report(biocredit.convert(net, R.create(name)))
        if name == "shallow":   # by definition no signal reaches the hidden layers
            assert report.unreached == [f"blocks.{i}.layer.{k}" for i in (0, 1)
                                        for k in ("weight", "bias")]
            assert report.free == ["head.layer.weight", "head.layer.bias"]
            continue
        assert not report.unreached, name
        if name == "bp":
            assert report.free == ["head.layer.weight", "head.layer.bias"]
        else:
            assert len(report.free) == len(report.crossed) == 6, name
        assert bool(report.rule_note) == (name in ("usf", "brsf", "frsf")), name


def test_a_dkp_checkpoint_resumes_its_feedback_optimizer():
    """Two models trained alike stay alike after one is restored from a checkpoint of the
    other; without the feedback optimizer's moments in the state_dict they would part."""
    model, x, y, _ = build("mlp")

    def steps(net, opt, n):
        for _ in range(n):
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()

    a = biocredit.convert(model, R.create("dkp", feedback_lr_decay=0.5), example_input=x)
    opt_a = torch.optim.SGD(a.parameters(), lr=0.1)
    biocredit.hook_optimizer(a, opt_a)
    steps(a, opt_a, 3)
    biocredit.after_epoch(a)
    state = a.state_dict()
    assert {"direct_feedback_optimizer.exp_avg", "direct_feedback_optimizer.lr"} <= set(state)
    b = biocredit.convert(model, "dkp", example_input=x)
    b.load_state_dict(state)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.1)
    biocredit.hook_optimizer(b, opt_b)
    steps(a, opt_a, 2)
    steps(b, opt_b, 2)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key


def test_a_deep_copy_of_a_converted_model_is_independent():
    import copy
    model, x, y, taps = build("transformer")
    a = biocredit.convert(model, "dfa", taps=taps, example_input=x)
    b = copy.deepcopy(a)
    assert biocredit.layers.engine_of(b).root is b
    with torch.no_grad():
        b.direct_feedback.mul_(2)
    expected = autograd_grads(a, x, y)
    got = autograd_grads(b, x, y)
    assert torch.equal(got["head.weight"], expected["head.weight"])
    # every signal below the first tap is linear in B: doubling B doubles them exactly
    assert torch.equal(got["embed.weight"], 2 * expected["embed.weight"])
    assert a.encoder.layers[0].self_attn.in_proj_weight.grad is not None


@pytest.mark.parametrize("rule_name", ["usf", "brsf", "frsf", "kp"])
def test_feedback_derived_from_the_weights_follows_a_load(rule_name):
    model, x, y, _ = build("mlp")
    net = biocredit.convert(model, rule_name)
    other, *_ = build("mlp", seed=4)
    net.load_state_dict(other.state_dict())
    for m in biocredit.layers.feedback_layers(net):
        if rule_name == "kp":
            assert torch.equal(m.weight_before_step, m.weight)
        else:
            assert torch.equal(torch.sign(m.feedback), torch.sign(m.weight))


def test_positional_embeddings_are_not_weight_matrices_and_exclude_covers_unknown_layers():
    class WithPosition(nn.Module):
        def __init__(self):
            super().__init__()
            self.position = nn.Parameter(torch.zeros(1, 5, 6))
            self.mix = nn.Parameter(torch.randn(6, 6))       # used as x @ mix: a matrix
            self.head = nn.Linear(6, 4)

        def forward(self, x):
            return self.head(((x + self.position) @ self.mix).mean(1))

    with pytest.raises(ValueError, match=r"\(the model itself\) \(WithPosition\)"):
        biocredit.convert(WithPosition(), "fa")
    net = biocredit.convert(WithPosition(), "fa", exclude=[""])
    assert net.biocredit_conversion.tied == ["(the model itself) (WithPosition)"]
    assert biocredit.convert(mlp(), "dfa").biocredit_conversion.tied == []   # nothing replaced


def test_a_forward_that_raised_leaves_the_next_one_a_direct_rule_step():
    model, x, y, _ = build("mlp")
    def convert():
        return biocredit.convert(model, "dfa", example_input=x,
                                 generator=torch.Generator().manual_seed(1))

    net = convert()
    with pytest.raises(RuntimeError):
        net(x[:, :, :2])                    # the wrong shape: fails after the first tap
    expected = autograd_grads(convert(), x, y)
    got = autograd_grads(net, x, y)
    for key in expected:
        assert torch.equal(got[key], expected[key]), key


def test_in_place_activations_are_refused_where_a_rule_needs_the_layer_output():
    """IFA and the general rule differentiate from the layer output ``a_l``; an in-place
    activation overwrites it, which gave silently wrong IFA gradients. They refuse such a
    model at conversion, saying what to change; DFA, which needs only the tap, trains it to
    the same gradients as with ``inplace=False``."""
    def model(inplace):
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(inplace=inplace),
                             nn.Linear(12, 12), nn.ReLU(inplace=inplace), nn.Linear(12, 3))
    x, y = torch.randn(7, 1, 4, 4), torch.randint(0, 3, (7,))
    for name in ("ifa", "general"):
        with pytest.raises(ValueError, match=f"{name} needs each weight layer's output.*"
                                             "inplace=False"):
            biocredit.convert(model(True), R.create(name),
                              generator=torch.Generator().manual_seed(1), example_input=x[:1])
    grads = {}
    for inplace in (False, True):
        net = biocredit.convert(model(inplace), R.create("dfa"),
                                generator=torch.Generator().manual_seed(1), example_input=x[:1])
        F.cross_entropy(net(x), y).backward()
        grads[inplace] = [p.grad for p in net.parameters()]
    for a, b in zip(grads[False], grads[True]):
        assert torch.equal(a, b)


# -- issue 27: no silent garbage from convert ---------------------------------------------------
def lenet_sequential():
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5, padding=2), nn.Tanh(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(784, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(),
                         nn.Linear(84, 10))


def test_ifa_on_a_plain_sequential_lenet_with_taps_after_pooling_is_the_jvp_formula():
    """Issue 27 item 11: IFA crashed ("shape '[128, 6, 14, 14]' is invalid") on a plain
    nn.Sequential LeNet tapped after each pooling. The activation modules now tell where the
    activation before the pooling is. The gradients are those of IFA written out with
    torch.func: δa_1 = (∂h_1/∂a_1)ᵀ (B_1 e); δa_l = J_l δa_{l-1} ⊙ f'(a_l), J_l the forward
    Jacobian (torch.func.jvp) from the activation below through the pooling to a_l."""
    torch.manual_seed(0)
    plain = lenet_sequential().double()
    net = biocredit.convert(plain, "ifa", taps=["2", "5", "8", "10"],
                            generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 1, 28, 28, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (3,), generator=g)
    F.cross_entropy(net(x), y).backward()

    L, pool, jvp = plain, nn.MaxPool2d(2), torch.func.jvp
    with torch.no_grad():
        a1 = L[0](x)
        z1 = torch.tanh(a1)
        a2 = L[3](pool(z1))
        z2 = torch.tanh(a2)
        a3 = L[7](pool(z2).flatten(1))
        z3 = torch.tanh(a3)
        a4 = L[9](z3)
        z4 = torch.tanh(a4)
        e = (torch.softmax(L[11](z4), 1) - F.one_hot(y, 10)) / len(x)
        u1 = (e @ net.direct_feedback).reshape(3, 6, 14, 14)
        _, back = torch.func.vjp(lambda a: pool(torch.tanh(a)), a1)
        (d1,) = back(u1)
        d2 = jvp(lambda z: L[3](pool(z)), (z1,), (d1,))[1] * (1 - z2 ** 2)
        d3 = jvp(lambda z: L[7](pool(z).flatten(1)), (z2,), (d2,))[1] * (1 - z3 ** 2)
        d4 = jvp(L[9], (z3,), (d3,))[1] * (1 - z4 ** 2)
    L.zero_grad()
    surrogate = (L[0](x) * d1).sum() + (L[3](pool(z1)) * d2).sum() + \
        (L[7](pool(z2).flatten(1)) * d3).sum() + (L[9](z3) * d4).sum() + (L[11](z4) * e).sum()
    surrogate.backward()
    for name, p in L.named_parameters():
        torch.testing.assert_close(net.get_parameter(name).grad, p.grad, rtol=1e-9,
                                   atol=1e-12, msg=name)


def test_ifa_refuses_a_tap_after_pooling_without_an_activation_module_to_name():
    class FunctionalTanh(nn.Module):
        def forward(self, x):
            return torch.tanh(x)

    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), FunctionalTanh(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(8, 5), nn.Tanh(), nn.Linear(5, 3))
    with pytest.raises(ValueError, match=r"activation=z"):
        biocredit.convert(model, "ifa", taps=["2", "5"], example_input=torch.randn(1, 1, 4, 4))


@pytest.mark.parametrize("rule", ["fa", "kp", "dfa"])
def test_a_model_on_the_meta_device_is_refused_naming_the_fix(rule):
    """Issue 27 item 3: after to_empty() and reset_parameters() FA's and KP's feedback held
    uninitialised memory (|B| up to 1e37). Conversion of a meta model is refused, saying to
    materialise it first; converting the materialised model draws proper feedback."""
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))
    with pytest.raises(ValueError, match=r"meta device.*to_empty.*reset_parameters"):
        biocredit.convert(model, rule)
    model = model.to_empty(device="cpu")
    for m in model:
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    net = biocredit.convert(model, rule, example_input=torch.randn(1, 8))
    for b in net.buffers():
        assert torch.isfinite(b).all() and b.abs().max() < 10


def test_a_tap_after_the_output_layer_is_refused():
    """Issue 27 item 6: convert(m, "dfa", taps=["2"]) with "2" the last Linear gave the head a
    random projection of the error (gradient norm 0.154 against BP's 0.270), silently."""
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))
    with pytest.raises(ValueError, match="'2' is the last module.*hidden layers only"):
        biocredit.convert(model, "dfa", taps=["2"])

    class Head(nn.Module):            # not a Sequential: found at the first training forward
        def __init__(self):
            super().__init__()
            self.body, self.head = nn.Sequential(nn.Linear(8, 16), nn.Tanh()), nn.Linear(16, 3)

        def forward(self, x):
            return torch.log_softmax(self.head(self.body(x)), 1)

    for rule in ("dfa", "ifa", "dkp"):
        net = biocredit.convert(Head(), rule, taps=["body.1", "head"])
        with pytest.raises(ValueError, match="no layer with weights lies between the last tap"):
            net(torch.randn(4, 8))
    net = biocredit.convert(Head(), "dfa", taps=["body.1"])     # the right taps train
    net(torch.randn(4, 8)).sum().backward()
    assert net.head.weight.grad is not None


def test_a_frozen_head_or_a_tied_output_matrix_is_not_taken_for_a_missing_output_layer():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.act = nn.Linear(3, 8), nn.Tanh()

        def forward(self, x):
            return self.act(self.embed(x)) @ self.embed.weight     # the output uses W again

    net = biocredit.convert(Tied(), "dfa", taps=["act"])
    net(torch.randn(4, 3)).sum().backward()
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))
    model[2].requires_grad_(False)
    net = biocredit.convert(model, "dfa")
    net(torch.randn(4, 8)).sum().backward()
    assert net[0].weight.grad is not None


def test_convert_refuses_what_is_not_a_model_or_a_rule_with_a_type_error():
    """Issue 27 item 12: convert(m, None) and convert("hello", "fa") raised AttributeError."""
    with pytest.raises(TypeError, match="a rule: a name"):
        biocredit.convert(mlp(), None)
    with pytest.raises(TypeError, match="torch.nn.Module.*got str"):
        biocredit.convert("hello", "fa")


@pytest.mark.parametrize("rule", ["bp", "fa", "dfa", "ifa"])
def test_a_model_without_a_weight_layer_is_refused(rule):
    """Issue 27 item 12: a model with no weight layer converted to nothing, silently."""
    for model in (nn.Sequential(nn.ReLU(), nn.Tanh()), nn.Sequential(nn.LayerNorm(4), nn.Tanh())):
        with pytest.raises(ValueError, match=f"no weight layer.*nothing for {rule} to train"):
            biocredit.convert(model, rule)


@pytest.mark.parametrize("rule", ["kp", "urfb"])
def test_a_learned_feedback_rule_with_every_layer_excluded_trains_as_bp(rule):
    """Found by the widened fuzz test (issue 27): KP and URFB with exclude=["*"] crashed in
    their feedback step ("Tensor list must have at least one tensor")."""
    model, x, y, _ = build("mlp")
    net = biocredit.convert(model, rule, exclude=["*"])
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    biocredit.hook_optimizer(net, opt)
    expected = autograd_grads(model, x, y)
    got = autograd_grads(net, x, y)
    opt.step()
    net.load_state_dict(net.state_dict())
    for key in expected:
        torch.testing.assert_close(got[key], expected[key]), key


def func_grad_and_backward(net, x, y):
    """``torch.func.grad`` of a functional call of ``net`` on ``(x, y)`` (the labels set,
    as auxiliary errors need), and the same loss's ``backward()``, by parameter name."""
    from torch.func import functional_call, grad
    buffers = dict(net.named_buffers())

    def loss(params):
        biocredit.set_targets(net, y)
        return nn.functional.cross_entropy(functional_call(net, (params, buffers), (x,)), y)
    functional = grad(loss)({k: v.detach() for k, v in net.named_parameters()})
    loss(dict(net.named_parameters())).backward()
    return functional, {name: p.grad for name, p in net.named_parameters()}


@pytest.mark.parametrize("rule", ["fa", "usf", "kp"])
def test_torch_func_grad_through_a_converted_model_is_its_backward(rule):
    """torch.func's transforms take the feedback layers (their Functions define
    ``setup_context``): ``grad`` of a functional call equals ``loss.backward()``."""
    torch.manual_seed(0)
    net = biocredit.convert(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Tanh(), nn.Flatten(),
                                          nn.Linear(4 * 6 * 6, 3)), rule)
    x, y = torch.randn(5, 1, 8, 8), torch.randint(0, 3, (5,))
    functional, backward = func_grad_and_backward(net, x, y)
    for name, g in backward.items():
        torch.testing.assert_close(functional[name], g, rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("rule", ["dfa", "dkp", "general"])
def test_torch_func_grad_through_a_direct_rule_is_its_backward(rule):
    """The direct rules' join defines ``setup_context`` too: ``grad`` of a functional call
    of a model with taps equals ``loss.backward()``'s parameter gradients. DKP refuses:
    its feedback learns from ``loss.backward()`` only, so torch.func would train DFA."""
    torch.manual_seed(0)
    net = biocredit.convert(nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.Tanh(),
                                          nn.Linear(12, 10), nn.Tanh(), nn.Linear(10, 3)),
                            rule, taps=[nn.Tanh], example_input=torch.randn(1, 4, 4))
    x, y = torch.randn(6, 4, 4), torch.randint(0, 3, (6,))
    if rule == "dkp":
        with pytest.raises(ValueError, match="dkp: a torch.func transform .* use dfa"):
            func_grad_and_backward(net, x, y)
        return
    functional, backward = func_grad_and_backward(net, x, y)
    for name, g in backward.items():
        torch.testing.assert_close(functional[name], g, rtol=0, atol=0, msg=name)
