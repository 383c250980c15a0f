"""A small GPT-style character language model trained with BP, DFA and DKP.

A causal Transformer decoder in plain ``torch.nn`` (token + position embeddings, pre-LayerNorm
blocks of causal self-attention and an MLP, a final LayerNorm and a linear read-out:
:class:`biocredit.models.gpt.CharGPT`), trained to predict the next character. Each block
ends in a ``biocredit.Tap()``, so ``biocredit.convert(model, "dfa")`` drives a tap after each
block: the output is ``(N, T, V)`` and every tap ``(N, T, d)``, so
the direct feedback is per position (Launay et al. 2020): each block's output at position
``t`` receives ``e_t B_l``, its own position's error through one ``V × d`` matrix shared by all
positions, whatever the context length. ``--rule dkp`` learns that matrix (its gradient
``Σ_t e_t h_tᵀ``); ``--rule bp`` is the baseline. ``--layout flat`` projects the whole
sequence's error instead (a ``T·V × T·d`` matrix per tap, the context length then fixed).

The text: by default the Python Language Reference shipped inside CPython itself
(``pydoc_data.topics``, the pages ``help("if")`` shows, about 465,000 characters; every
CPython has it, nothing is downloaded); ``--text FILE`` reads any UTF-8 text file instead.
The characters of the text are the vocabulary; the first 90% trains, the last 10% validates.
Reported: validation loss (nats per character) and bits per character (loss / ln 2).

Run::

    python examples/char_lm.py                         # BP, DFA and DKP, 600 steps each
    python examples/char_lm.py --threads 1             # the same, on a busy CPU
    python examples/char_lm.py --rules dfa --text book.txt --steps 2000

The same model and text on the command line (fixed windows, epochs):
``biocredit compare --rules bp,dfa,dkp --model gpt:2x64:h4 --data python-reference``
(``--data text:book.txt`` for a file); ``biocredit reproduce launay-char-lm``.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import biocredit
from biocredit.data.text import python_reference
from biocredit.models.gpt import Block, CausalSelfAttention, CharGPT  # noqa: F401 (re-exported)

RULES = ("bp", "dfa", "dkp")


# -- the text ---------------------------------------------------------------------------------
class CharText:
    """A text as character ids, split into a training and a validation part."""

    def __init__(self, text: str, validation: float = 0.1):
        self.chars = sorted(set(text))
        index = {c: i for i, c in enumerate(self.chars)}
        ids = torch.tensor([index[c] for c in text], dtype=torch.long)
        cut = int(len(ids) * (1 - validation))
        self.train, self.val = ids[:cut], ids[cut:]

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def batch(self, context: int, size: int, generator: torch.Generator):
        """``size`` random training windows: inputs ``(size, context)``, targets shifted by one."""
        start = torch.randint(len(self.train) - context - 1, (size,), generator=generator)
        window = torch.stack([self.train[s:s + context + 1] for s in start.tolist()])
        return window[:, :-1], window[:, 1:]

    def validation_windows(self, context: int, limit: int | None = None):
        """Consecutive non-overlapping validation windows (the first ``limit`` of them)."""
        count = (len(self.val) - 1) // context
        count = count if limit is None else min(count, limit)
        x = self.val[:count * context].view(count, context)
        y = self.val[1:count * context + 1].view(count, context)
        return x, y

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in ids)


# -- the model: biocredit.models.gpt (also `--model gpt:2x64:h4` on the command line) ------


def convert(plain: CharGPT, rule: str, layout: str = "auto") -> nn.Module:
    """``plain`` converted for ``rule``: direct rules drive the tap that ends each block."""
    if rule in ("dfa", "dkp"):
        return biocredit.convert(plain, biocredit.rules.create(rule, layout=layout))
    return biocredit.convert(plain, rule)


def token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per character, averaged over the batch and the positions."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


@torch.no_grad()
def validation_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    batch_size: int = 64) -> float:
    was = model.training
    model.eval()
    total = sum(token_loss(model(x[i:i + batch_size]), y[i:i + batch_size]).item()
                * len(x[i:i + batch_size]) for i in range(0, len(x), batch_size))
    model.train(was)
    return total / len(x)


@torch.no_grad()
def sample(model: nn.Module, text: CharText, prompt: str, length: int,
           generator: torch.Generator) -> str:
    """``length`` characters drawn from the model after ``prompt``."""
    was = model.training
    model.eval()
    ids = [text.chars.index(c) for c in prompt if c in text.chars] or [0]
    for _ in range(length):
        context = torch.tensor([ids[-model_context(model):]])
        probs = torch.softmax(model(context)[0, -1], dim=-1)
        ids.append(torch.multinomial(probs, 1, generator=generator).item())
    model.train(was)
    return text.decode(ids)


def model_context(model: nn.Module) -> int:
    return model.context


def train(rule: str, text: CharText, args) -> dict:
    """Train one model with ``rule``; returns its validation loss and bits per character."""
    torch.manual_seed(args.seed)
    plain = CharGPT(text.vocab_size, args.context, args.d_model, args.heads, args.layers)
    model = convert(plain, rule, args.layout)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    biocredit.hook_optimizer(model, opt)              # DKP's feedback step; no-op otherwise
    generator = torch.Generator().manual_seed(args.seed)
    val_x, val_y = text.validation_windows(args.context, args.val_windows)
    start, history = time.perf_counter(), []
    for step in range(1, args.steps + 1):
        x, y = text.batch(args.context, args.batch_size, generator)
        opt.zero_grad()
        loss = token_loss(model(x), y)
        loss.backward()                               # DFA: block l's output gets e_t B_l
        opt.step()
        if step % args.eval_every == 0 or step == args.steps:
            val = validation_loss(model, val_x, val_y)
            history.append({"step": step, "train_loss": loss.item(), "val_loss": val})
            if not args.quiet:
                print(f"{rule:4s} step {step:5d}  train {loss.item():.3f}  val {val:.3f}  "
                      f"({val / math.log(2):.3f} bpc)  {time.perf_counter() - start:.0f} s")
    val = history[-1]["val_loss"]
    result = {"rule": rule, "val_loss": val, "bpc": val / math.log(2),
              "seconds": time.perf_counter() - start, "history": history, "model": model}
    if args.sample:
        result["sample"] = sample(model, text, "The ", args.sample, generator)
        if not args.quiet:
            print(result["sample"])
    return result


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rules", default="bp,dfa,dkp",
                   help="comma-separated, from " + ", ".join(RULES) + " (default: all three)")
    p.add_argument("--text", type=Path, default=None,
                   help="a UTF-8 text file (default: the Python Language Reference in CPython)")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--context", type=int, default=64, help="characters per window")
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--lr", type=float, default=2e-3, help="AdamW learning rate")
    p.add_argument("--layout", default="auto", choices=("auto", "position", "flat"),
                   help="the direct feedback's layout (auto: per position here)")
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--val-windows", type=int, default=None,
                   help="validate on the first N validation windows only (default: all)")
    p.add_argument("--sample", type=int, default=0, help="print N sampled characters")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="torch's CPU threads (default: torch's choice; 1 on a busy machine)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    args = p.parse_args(argv)
    args.rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    unknown = [r for r in args.rules if r not in RULES]
    if unknown or not args.rules:
        p.error(f"--rules: choose from {', '.join(RULES)}; got {', '.join(unknown) or 'none'}")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    source = python_reference() if args.text is None else \
        args.text.read_text(encoding="utf-8", errors="replace")
    text = CharText(source)
    if len(text.val) < args.context + 2:
        raise SystemExit(f"the text is too short for --context {args.context}: "
                         f"{len(source)} characters")
    if not args.quiet:
        name = "the Python Language Reference (pydoc_data)" if args.text is None else args.text
        print(f"{name}: {len(source):,} characters, {text.vocab_size} distinct")
    results = {rule: train(rule, text, args) for rule in args.rules}
    if not args.quiet:
        print(f"\n{'rule':5s} {'val loss':>9s} {'bpc':>7s} {'seconds':>8s}")
        for r in results.values():
            print(f"{r['rule']:5s} {r['val_loss']:9.3f} {r['bpc']:7.3f} {r['seconds']:8.0f}")
    return {"vocab_size": text.vocab_size, "results": results}


if __name__ == "__main__":
    main()
