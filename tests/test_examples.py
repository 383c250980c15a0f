"""The scripts in examples/ run, learn, and really use the rule they name.

Each example is imported by path and its ``main([...])`` run on a reduced budget (a few
seconds each on 2 CPU cores when the machine is otherwise idle).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import biocredit

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str):
    path = EXAMPLES / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"examples_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def resnet():
    return load_example("resnet_fa")


@pytest.fixture(scope="module")
def transformer():
    return load_example("transformer_dfa")


@pytest.fixture(scope="module")
def batch():
    data = biocredit.data.load("digits", normalize="standardize")
    return data.train_x[:32], data.train_y[:32]


def gradients(model, x, y) -> dict[str, torch.Tensor]:
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return F.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()


def feedback_of(model) -> dict[str, torch.Tensor]:
    return {n: b.clone() for n, b in model.named_buffers() if n.endswith("feedback")}


# -- ResNet ------------------------------------------------------------------------------------

def test_resnet_fa_learns_digits(resnet):
    # Measured with the default seed: 3.1% test error after 4 epochs (15 epochs: 1.11% on an AMD EPYC, 3.06% on an Intel Xeon);
    # seeds 1-4 gave 2.8-3.9%. The issue asks for <= 10%.
    result = resnet.main(["--epochs", "4", "--quiet"])
    assert result["test_error"] <= 0.10
    conversion = biocredit.conversion_of(result["model"])
    assert conversion.rule.name == "fa"
    assert "stem.0" in conversion.feedback and "head" in conversion.feedback
    assert "blocks.1.shortcut.0" in conversion.feedback      # the 1x1 projection too
    assert not conversion.tied


def test_resnet_fa_gradients_are_not_bp(resnet, batch):
    torch.manual_seed(0)
    model = biocredit.convert(resnet.ResNet(), "fa")
    before = feedback_of(model)
    fa = gradients(model, *batch)
    with biocredit.exact_gradients(model):
        bp = gradients(model, *batch)
    # Measured: cosines -0.03 (stem) and 0.05 (first block) at initialisation.
    assert cosine(fa["stem.0.weight"], bp["stem.0.weight"]) < 0.9
    assert cosine(fa["blocks.0.conv1.weight"], bp["blocks.0.conv1.weight"]) < 0.9
    # The head's own gradient needs no feedback: it is BP's.
    torch.testing.assert_close(fa["head.weight"], bp["head.weight"])
    for name, b in feedback_of(model).items():          # FA's feedback is fixed
        assert torch.equal(b, before[name])


@pytest.mark.parametrize("rule", ["kp", "usf"])
def test_resnet_learned_feedback_rules_run(resnet, rule):
    result = resnet.main(["--rule", rule, "--epochs", "1", "--limit", "64", "--quiet"])
    assert math.isfinite(result["history"][0]["train_loss"])
    assert 0.0 <= result["test_error"] <= 1.0
    feedback = feedback_of(result["model"])
    assert len(feedback) == 10
    assert all(torch.isfinite(b).all() for b in feedback.values())


def two_steps(model, batch, explicit: bool = False):
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    if not explicit:
        biocredit.hook_optimizer(model, opt)
    for _ in range(2):
        opt.zero_grad()
        F.cross_entropy(model(batch[0]), batch[1]).backward()
        opt.step()
        if explicit:
            biocredit.after_step(model)


def test_resnet_kp_feedback_follows_the_weights(resnet, batch):
    decay = 0.05
    torch.manual_seed(0)
    model = biocredit.convert(resnet.ResNet(), biocredit.rules.create("kp", decay=decay))
    layers = {n: m for n, m in model.named_modules() if hasattr(m, "feedback")}
    gap = {n: (m.feedback - m.weight).detach().clone() for n, m in layers.items()}
    before = feedback_of(model)
    two_steps(model, batch)
    for name, m in layers.items():
        assert torch.isfinite(m.feedback).all()
        assert not torch.equal(m.feedback, before[f"{name}.feedback"])
        # KP: B - W shrinks by (1 - decay) per step, whatever the optimizer did.
        torch.testing.assert_close(m.feedback - m.weight.detach(), (1 - decay) ** 2 * gap[name])


def test_resnet_after_step_equals_hook_optimizer(resnet, batch):
    models = []
    for explicit in (False, True):
        torch.manual_seed(0)
        model = biocredit.convert(resnet.ResNet(), "kp")
        two_steps(model, batch, explicit=explicit)
        models.append(model)
    hooked, explicit = (feedback_of(m) for m in models)
    assert hooked.keys() == explicit.keys()
    for name in hooked:
        torch.testing.assert_close(hooked[name], explicit[name])


def test_resnet_usf_feedback_is_sign_of_weights(resnet, batch):
    torch.manual_seed(0)
    model = biocredit.convert(resnet.ResNet(), "usf")
    before = feedback_of(model)
    two_steps(model, batch)
    flipped = 0
    for name, m in model.named_modules():
        if hasattr(m, "feedback"):
            # uSF: B = sign(W) / sqrt(fan-out), recomputed after every step; the fan-out of
            # a (groups=1) convolution is C_out·k², of a linear layer its out features.
            fan_out = m.weight.numel() // m.weight.shape[1]
            expected = torch.sign(m.weight.detach()) / math.sqrt(fan_out)
            torch.testing.assert_close(m.feedback, expected)
            flipped += (m.feedback != before[f"{name}.feedback"]).sum().item()
    assert flipped > 0          # some weights changed sign, and their feedback followed


def test_state_dicts_round_trip(resnet):
    plain = resnet.ResNet()
    model = biocredit.convert(plain, "fa")
    model.load_state_dict(plain.state_dict())                 # strict: feedback keys kept
    resnet.ResNet().load_state_dict(biocredit.plain_state_dict(model))
    with pytest.raises(RuntimeError, match="Unexpected key"):
        resnet.ResNet().load_state_dict(model.state_dict())   # feedback is not plain state


# -- Transformer -------------------------------------------------------------------------------

def test_transformer_dfa_learns_digits(transformer):
    # Measured with the default seed: 6.7% test error after 6 epochs (seed 1: 8.3%; 15
    # epochs: 2.50% on an AMD EPYC, 2.78% on an Intel Xeon). Chance is 90%; the threshold leaves a wide margin for other machines.
    result = transformer.main(["--epochs", "6", "--quiet"])
    assert result["test_error"] <= 0.25
    conversion = biocredit.conversion_of(result["model"])
    assert conversion.taps == ["after encoder.layers.0", "after encoder.layers.1"]


def test_transformer_dfa_gradients_are_not_bp(transformer, batch):
    torch.manual_seed(0)
    model = transformer.convert(transformer.DigitTransformer(), "dfa")
    dfa = gradients(model, *batch)
    with biocredit.exact_gradients(model):
        bp = gradients(model, *batch)
    # If the taps did nothing these would be BP's gradients (cosine 1). Measured at
    # initialisation: about 0.0 for the first layer's weights.
    for name in ("encoder.layers.0.linear1.weight", "encoder.layers.0.self_attn.in_proj_weight",
                 "embed.weight"):
        assert cosine(dfa[name], bp[name]) < 0.99, name
    # Above the last tap the output error itself arrives: BP's gradient.
    torch.testing.assert_close(dfa["head.weight"], bp["head.weight"])


def test_transformer_dkp_learns_its_feedback(transformer):
    result = transformer.main(["--rule", "dkp", "--epochs", "1", "--limit", "64", "--quiet"])
    model = result["model"]
    torch.manual_seed(0)      # main's seed: the same model and the same initial feedback
    fresh = transformer.convert(transformer.DigitTransformer(), "dkp")
    fresh(torch.zeros(1, 1, 8, 8))                            # draws the direct feedback
    assert model.direct_feedback.shape == fresh.direct_feedback.shape == (10, 2 * 8 * 64)
    assert torch.isfinite(model.direct_feedback).all()
    assert not torch.equal(model.direct_feedback, fresh.direct_feedback)


def test_transformer_bp_baseline_runs(transformer):
    result = transformer.main(["--rule", "bp", "--epochs", "1", "--limit", "64", "--quiet"])
    assert math.isfinite(result["history"][0]["train_loss"])
