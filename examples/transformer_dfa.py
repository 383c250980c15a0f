"""A small Transformer encoder trained with direct feedback alignment (DFA) on the digits.

In the style of Launay et al. (2020), "Direct feedback alignment scales to modern deep
learning": each 8 x 8 digit is read as a sequence of 8 tokens (its rows, 8 pixels each),
embedded by a linear layer plus a learned positional embedding, passed through two
``nn.TransformerEncoderLayer`` blocks (dropout 0), mean-pooled and classified by a linear
head. ``biocredit.convert(model, "dfa", taps=[...])`` places a tap after each encoder layer:
on ``loss.backward()`` each tap receives the output error projected by a fixed random
matrix (``e B_l``) instead of the error back-propagated from the layers above, and the
weights inside each encoder layer learn from their own tap's signal. The head still learns
from the output error itself. ``--rule dkp`` learns the direct feedback (updated after each
optimizer step through ``biocredit.hook_optimizer``); ``--rule bp`` is the baseline.

Run::

    python examples/transformer_dfa.py                 # DFA, 15 epochs: ~3% test error, ~30 s on 2 cores
    python examples/transformer_dfa.py --rule bp
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

import biocredit

DIRECT_RULES = ("dfa", "dkp")


class DigitTransformer(nn.Module):
    """rows -> linear embedding + position -> encoder layers -> mean over rows -> linear."""

    def __init__(self, row_size: int = 8, rows: int = 8, num_classes: int = 10,
                 d_model: int = 64, heads: int = 4, layers: int = 2):
        super().__init__()
        self.embed = nn.Linear(row_size, d_model)
        self.position = nn.Parameter(0.02 * torch.randn(1, rows, d_model))
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=2 * d_model,
                                           dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, x):                       # x: N x 1 x 8 x 8
        tokens = self.embed(x.flatten(1, 2)) + self.position   # N x 8 rows x d_model
        return self.head(self.encoder(tokens).mean(dim=1))


@torch.no_grad()
def error_rate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    wrong = (model(x).argmax(1) != y).sum().item()
    model.train()
    return wrong / len(y)


def convert(plain: DigitTransformer, rule: str) -> nn.Module:
    """``plain`` converted for ``rule``: direct rules get a tap after each encoder layer."""
    if rule in DIRECT_RULES:
        taps = [f"encoder.layers.{i}" for i in range(len(plain.encoder.layers))]
        return biocredit.convert(plain, rule, taps=taps)
    return biocredit.convert(plain, rule)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rule", default="dfa", choices=("dfa", "dkp", "bp"))
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None,
                   help="train on the first N training examples only (quick tests)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    data = biocredit.data.load("digits", normalize="standardize")
    train_x, train_y = data.train_x[:args.limit], data.train_y[:args.limit]

    plain = DigitTransformer(num_classes=data.num_classes, d_model=args.d_model,
                             heads=args.heads, layers=args.layers)
    model = convert(plain, args.rule)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    biocredit.hook_optimizer(model, opt)              # DKP's feedback step; no-op for DFA
    if not args.quiet:
        print(biocredit.conversion_of(model))

    start = time.perf_counter()
    history = []
    for epoch in range(args.epochs):
        order = torch.randperm(len(train_x))
        total = 0.0
        for i in range(0, len(order), args.batch_size):
            idx = order[i:i + args.batch_size]
            opt.zero_grad()
            loss = F.cross_entropy(model(train_x[idx]), train_y[idx])
            loss.backward()                        # DFA: each tap gets e B_l
            opt.step()
            total += loss.item() * len(idx)
        biocredit.after_epoch(model)               # DKP's feedback learning-rate schedule
        test_error = error_rate(model, data.test_x, data.test_y)
        history.append({"epoch": epoch + 1, "train_loss": total / len(train_x),
                        "test_error": test_error})
        if not args.quiet:
            print(f"epoch {epoch + 1:3d}  train loss {total / len(train_x):.4f}  "
                  f"test error {100 * test_error:.2f}%")

    return {"rule": args.rule,
            "test_error": error_rate(model, data.test_x, data.test_y),
            "train_error": error_rate(model, train_x, train_y), "history": history,
            "seconds": time.perf_counter() - start, "model": model}


if __name__ == "__main__":
    main()
