"""Models from the ecosystem × rules: which convert and train, and how close to BP.

For each model (built from a config, no download) and rule: convert with defaults, check that
tied weights stay tied, then on a fixed batch report the loss before training, the cosine of
the rule's gradient to BP's (over all weights but the output layer's, which every rule
trains with its true error), and the loss after a few Adam steps. A refusal prints its
message. Needs transformers (the test extra)::

    python tools/ecosystem.py [--steps 30] [--rules bp,fa,kp,usf,dfa,dkp]
    python tools/ecosystem.py --rules fa,fa:feedback_like_weight=true   # rule options
"""

from __future__ import annotations

import argparse
import contextlib
import io
import warnings

import torch

import biocredit
from biocredit.training.options import parse_rule_spec


def gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=64, n_positions=32,
                        bos_token_id=0, eos_token_id=0, resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0)
    tokens = torch.randint(0, 64, (8, 16), generator=torch.Generator().manual_seed(1))
    return (GPT2LMHeadModel(config), {"input_ids": tokens, "labels": tokens},
            ["transformer.h.0", "transformer.h.1"], "lm_head")


def bert():
    from transformers import BertConfig, BertForSequenceClassification
    config = BertConfig(num_hidden_layers=2, num_attention_heads=2, hidden_size=32,
                        intermediate_size=64, vocab_size=64, max_position_embeddings=32,
                        num_labels=3, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 64, (8, 16), generator=g)
    labels = tokens[:, 0] % 3          # learnable from the first token
    return (BertForSequenceClassification(config), {"input_ids": tokens, "labels": labels},
            ["bert.encoder.layer.0", "bert.encoder.layer.1"], "classifier")


class WithLoss(torch.nn.Module):
    """A plain model returning ``{"loss", "logits"}`` as Hugging Face models do."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, labels):
        logits = self.model(x)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, -2), labels.flatten())
        return {"loss": loss, "logits": logits}


def resnet():
    """examples/resnet_fa.py's ResNet (conv, batch norm, residual adds) on random images."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "examples" / "resnet_fa.py"
    spec = importlib.util.spec_from_file_location("resnet_fa", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 1, 28, 28, generator=g)
    labels = torch.randint(0, 10, (16,), generator=g)
    return (WithLoss(module.ResNet(width=8)), {"x": x, "labels": labels},
            ["model.blocks.0", "model.blocks.1", "model.blocks.2"], "model.head")


def char_gpt():
    """The library's causal Transformer (gpt:2x32:h2; its blocks end in taps)."""
    from biocredit.models.gpt import CharGPT
    tokens = torch.randint(0, 64, (8, 16), generator=torch.Generator().manual_seed(1))
    return (WithLoss(CharGPT(64, context=16, d_model=32, heads=2)),
            {"x": tokens[:, :-1], "labels": tokens[:, 1:]}, None, "model.head")


MODELS = {"gpt2": gpt2, "bert": bert, "resnet": resnet, "char-gpt": char_gpt}


def loss_of(net, batch):
    out = net(**batch)
    return out.loss if hasattr(out, "loss") else out["loss"]


def grads(net, head):
    """Every gradient but those of the output layer's parameters (a tied one included)."""
    skip = {id(p) for p in net.get_submodule(head).parameters()}
    return {n: p.grad.detach().clone() for n, p in net.named_parameters()
            if p.grad is not None and id(p) not in skip}


def cosine(a, b):
    keys = sorted(set(a) & set(b))
    if not keys:
        return float("nan")
    x = torch.cat([a[k].flatten() for k in keys])
    y = torch.cat([b[k].flatten() for k in keys])
    return float(torch.nn.functional.cosine_similarity(x, y, dim=0))


def cell(build, spec, steps):
    torch.manual_seed(0)
    model, batch, taps, head = build()
    tied_before = sum(p.numel() for p in model.parameters())
    name, options = parse_rule_spec(spec)
    try:
        rule = biocredit.rules.create(name, **options)
        net = biocredit.convert(model, rule, **({"taps": taps} if rule.direct and taps else {}))
    except Exception as error:                     # the refusal is the result
        return {"status": f"refused: {type(error).__name__}: {str(error)[:140]}"}
    params = sum(p.numel() for p in net.parameters())
    try:
        net.zero_grad()
        before = loss_of(net, batch)
        before.backward()
        ours = grads(net, head)
        net.zero_grad()
        with biocredit.exact_gradients(net):
            loss_of(net, batch).backward()
        bp = grads(net, head)
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        biocredit.hook_optimizer(net, opt)
        for _ in range(steps):
            opt.zero_grad()
            loss = loss_of(net, batch)
            loss.backward()
            opt.step()
        after = float(loss_of(net, batch))
    except Exception as error:
        return {"status": f"fails: {type(error).__name__}: {str(error)[:140]}"}
    return {"status": "works", "params": f"{tied_before}->{params}",
            "cos": cosine(ours, bp), "before": float(before), "after": after}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rules", default="bp,fa,kp,usf,dfa,dkp")
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print("| model | rule | result | parameters | cosine to BP | loss before | after |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        for rule in args.rules.split(","):
            with contextlib.redirect_stderr(io.StringIO()):
                r = cell(MODELS[name], rule, args.steps)
            if r["status"] == "works":
                print(f"| {name} | {rule} | works | {r['params']} | {r['cos']:.3f} | "
                      f"{r['before']:.3f} | {r['after']:.3f} |")
            else:
                print(f"| {name} | {rule} | {r['status']} | | | | |")


if __name__ == "__main__":
    main()
