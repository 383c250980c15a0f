"""Direct rules on models as the ecosystem returns them (ModelOutput, dict, tuple, (B,),
loss inside forward), and trainers' wrappers and callbacks (issue 24, items 3 and 5)."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import biocredit
from hf_helpers import adam_losses

TAPS = ["bert.encoder.layer.0", "bert.encoder.layer.1"]


def tiny_bert():
    transformers = pytest.importorskip("transformers")
    warnings.filterwarnings("ignore")
    config = transformers.BertConfig(
        num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64,
        vocab_size=64, max_position_embeddings=32, num_labels=3, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    tokens = torch.randint(0, 64, (8, 12), generator=torch.Generator().manual_seed(1))
    return transformers.BertForSequenceClassification(config), tokens, tokens[:, 0] % 3


def grads(net):
    return {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}


def rule_and_bp(net, **batch):
    net.zero_grad()
    net(**batch).loss.backward()
    ours = grads(net)
    net.zero_grad()
    with biocredit.exact_gradients(net):
        net(**batch).loss.backward()
    return ours, grads(net)


@pytest.mark.parametrize("example", [False, True])
def test_bert_dfa_through_labels(example):
    model, x, y = tiny_bert()
    net = biocredit.convert(model, "dfa", taps=TAPS,
                            example_input={"input_ids": x} if example else None)
    ours, bp = rule_and_bp(net, input_ids=x, labels=y)
    assert biocredit.conversion_of(net).engine.point == "classifier"
    assert torch.equal(ours["classifier.weight"], bp["classifier.weight"])
    hidden = "bert.encoder.layer.0.attention.self.query.weight"
    cos = torch.nn.functional.cosine_similarity(ours[hidden].flatten(), bp[hidden].flatten(), 0)
    assert ours[hidden].abs().sum() > 0 and cos < 0.99
    if example:
        return
    losses = adam_losses(net, 5, 1e-2, input_ids=x, labels=y)
    assert losses[-1] < losses[0]


def test_bert_named_module_and_field_agree():
    model, x, y = tiny_bert()
    auto = biocredit.convert(model, "dfa", taps=TAPS, generator=torch.Generator().manual_seed(3))
    named = biocredit.convert(model, "dfa", taps=TAPS, output_module="classifier",
                              output="logits", generator=torch.Generator().manual_seed(3))
    a, _ = rule_and_bp(auto, input_ids=x, labels=y)
    b, _ = rule_and_bp(named, input_ids=x, labels=y)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_gpt2_dfa_per_position_through_labels():
    transformers = pytest.importorskip("transformers")
    warnings.filterwarnings("ignore")
    config = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=64,
                                     n_positions=32, resid_pdrop=0.0, embd_pdrop=0.0,
                                     attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    x = torch.randint(0, 64, (4, 16))
    net = biocredit.convert(transformers.GPT2LMHeadModel(config), "dfa",
                            taps=["transformer.h.0", "transformer.h.1"])
    ours, bp = rule_and_bp(net, input_ids=x, labels=x)
    engine = biocredit.conversion_of(net).engine
    assert engine.point == "lm_head" and engine.positions == 1
    assert tuple(net.direct_feedback.shape) == (64, 64)      # V × (d + d), not T-dependent
    assert torch.equal(ours["transformer.ln_f.weight"], bp["transformer.ln_f.weight"])
    h = "transformer.h.0.mlp.c_fc.weight"
    assert not torch.allclose(ours[h], bp[h])
    net(input_ids=x[:, :8], labels=x[:, :8]).loss.backward()   # another length
    report = biocredit.transport_report(net, {"input_ids": x})
    assert report.crossed and "transformer.h.0.mlp.c_fc.weight" in report.crossed
    views = biocredit.layer_views(net)
    assert [v.feedback.shape for v in views if v.weight is None] == [(64, 32), (64, 32)]


class Returns(nn.Module):
    """A small MLP returning its logits as ``kind`` says."""

    def __init__(self, kind, out=3):
        super().__init__()
        self.kind = kind
        self.body = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh())
        self.head = nn.Linear(8, out)

    def forward(self, x):
        z = self.head(self.body(x))
        if self.kind == "dict":
            return {"logits": z, "hidden": x}
        if self.kind == "tuple":
            return z, x
        if self.kind == "scores":
            return {"scores": z}
        return z.squeeze(1) if self.kind == "binary" else z


@pytest.mark.parametrize("kind", ["tensor", "dict", "tuple", "scores", "binary"])
def test_outputs_as_returned_match_tensor_model(kind):
    out = 1 if kind == "binary" else 3
    torch.manual_seed(0)
    model = Returns(kind, out)
    x = torch.randn(6, 5)
    picks = {"scores": {"output": "scores"}}.get(kind, {})
    taps = ["body.1", "body.3"]
    net = biocredit.convert(model, "dfa", taps=taps, generator=torch.Generator().manual_seed(0),
                            **picks)
    ref = biocredit.convert(Returns("binary" if kind == "binary" else "tensor", out), "dfa",
                            taps=taps, generator=torch.Generator().manual_seed(0))
    ref.load_state_dict(model.state_dict())
    for m, selector in ((net, picks.get("output")), (ref, None)):
        logits = biocredit.layers.output_point.select_output(m(x), selector)
        (logits ** 2).sum().backward()
    a, b = grads(net), grads(ref)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert net.direct_feedback.shape[0] == out


def test_callable_output_with_named_module():
    torch.manual_seed(0)
    net = biocredit.convert(Returns("tuple"), "dfa", taps=["body.1", "body.3"],
                            output=lambda o: o[0], output_module="head")
    net(torch.randn(4, 5))[0].sum().backward()
    assert net.body[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("rule", ["dfa", "dkp"])
def test_lazy_feedback_loads_from_state_dict(rule):
    torch.manual_seed(0)
    x = torch.randn(4, 5)
    trained = biocredit.convert(Returns("dict"), rule, taps=["body.1", "body.3"])
    trained(x)["logits"].sum().backward()
    biocredit.after_step(trained)              # DKP: its feedback learns, with optimizer state
    fresh = biocredit.convert(Returns("dict"), rule, taps=["body.1", "body.3"])
    fresh.load_state_dict(trained.state_dict())
    fresh(x)["logits"].sum().backward()        # the first forward keeps the loaded feedback
    assert torch.equal(fresh.direct_feedback, trained.direct_feedback)
    fresh.zero_grad()
    trained.zero_grad()
    fresh(x)["logits"].sum().backward()
    trained(x)["logits"].sum().backward()
    assert torch.equal(fresh.body[0].weight.grad, trained.body[0].weight.grad)


def test_hook_optimizer_unwraps_trainer_wrappers():
    accelerate = pytest.importorskip("accelerate")
    from accelerate.state import AcceleratorState, GradientState
    AcceleratorState._reset_state(reset_partial_state=True)   # whatever earlier tests left
    GradientState._reset_state()
    net = biocredit.convert(nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)), "kp")
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    calls = []
    net.biocredit_conversion.rule.after_step = lambda model: calls.append(model)
    wrapped = accelerate.Accelerator(cpu=True).prepare_optimizer(opt)
    biocredit.hook_optimizer(net, wrapped)
    net(torch.randn(3, 4)).sum().backward()
    wrapped.step()
    assert calls == [net]
    lightning = pytest.importorskip("lightning.pytorch")
    biocredit.hook_optimizer(net, lightning.core.optimizer.LightningOptimizer(opt))
    wrapped.step()
    assert calls == [net] * 3                   # both hooks on the one torch optimizer
    with pytest.raises(TypeError, match="after_step"):
        biocredit.hook_optimizer(net, object())


def test_hf_trainer_kp(tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    model, x, y = tiny_bert()
    net = biocredit.convert(model, "kp")
    data = [{"input_ids": x[i], "labels": y[i]} for i in range(len(x))]
    args = transformers.TrainingArguments(output_dir=str(tmp_path), max_steps=3, report_to=[],
                                          use_cpu=True, save_strategy="no",
                                          per_device_train_batch_size=4, learning_rate=1e-2)
    feedback = next(m for m in net.modules() if hasattr(m, "feedback")).feedback.clone()
    callback = biocredit.integrations.hf_callback()
    rule, steps = net.biocredit_conversion.rule, []
    learn = rule.after_step
    rule.after_step = lambda m: (steps.append(m), learn(m))
    trainer = transformers.Trainer(model=net, args=args, train_dataset=data,
                                   callbacks=[callback])
    trainer.train()
    assert len(steps) == 3
    after = next(m for m in net.modules() if hasattr(m, "feedback")).feedback
    assert not torch.equal(after, feedback)                   # KP learned its feedback


def test_lightning_module_trains_converted_net():
    pl = pytest.importorskip("lightning.pytorch")
    torch.manual_seed(0)
    net = biocredit.convert(Returns("dict"), "dfa", taps=["body.1", "body.3"])

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = net

        def training_step(self, batch, _):
            x, y = batch
            return nn.functional.cross_entropy(self.net(x)["logits"], y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.TensorDataset(torch.randn(24, 5), torch.randint(0, 3, (24,)))
    module, steps = Module(), []
    net.biocredit_conversion.rule.after_step = lambda m: steps.append(m)
    trainer = pl.Trainer(max_steps=3, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False,
                         callbacks=[biocredit.integrations.lightning_callback()])
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=8))
    assert steps == [net] * 3
    copy = Module()
    copy.net = biocredit.convert(Returns("dict"), "dfa", taps=["body.1", "body.3"])
    copy.load_state_dict(module.state_dict())                 # lazily drawn feedback loads
    assert torch.equal(copy.net.direct_feedback, net.direct_feedback)


class LossFirst(Returns):
    """Returns ``(loss, logits)`` when given labels, as transformers' models do with
    ``return_dict=False``."""

    def forward(self, x, labels=None):
        z = self.head(self.body(x))
        return (z,) if labels is None else (F.cross_entropy(z, labels), z)


@pytest.mark.parametrize("rule", ["dfa", "dkp"])
def test_a_loss_first_tuple_takes_e_at_the_logits_like_the_loss_outside(rule):
    """Issue 24: a tuple ``(loss, logits)`` took its 0-d loss for the logits."""
    torch.manual_seed(0)
    model = LossFirst("tensor", 3)
    x, y = torch.randn(6, 5), torch.tensor([0, 1, 2, 0, 1, 2])
    taps = ["body.1", "body.3"]
    net = biocredit.convert(model, rule, taps=taps, generator=torch.Generator().manual_seed(0))
    ref = biocredit.convert(Returns("tensor", 3), rule, taps=taps,
                            generator=torch.Generator().manual_seed(0))
    ref.load_state_dict(model.state_dict())
    net(x, labels=y)[0].backward()
    F.cross_entropy(ref(x), y).backward()
    a, b = grads(net), grads(ref)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k]) for k in a)
    assert a["body.0.weight"].abs().sum() > 0
