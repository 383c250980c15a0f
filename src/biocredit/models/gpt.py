"""A small GPT-style causal Transformer decoder for character language models:
``gpt:LAYERSxWIDTH[:hHEADS]`` (default ``gpt:2x64:h4``).

Token and position embeddings, pre-LayerNorm blocks of causal self-attention and an MLP
(``x + attn(ln(x))``, then ``x + mlp(ln(x))``), a final LayerNorm and a linear read-out: tokens
``(N, T)`` -> logits ``(N, T, V)``. A :class:`~biocredit.layers.Tap` ends each block (named
``blocks.I.tap``; ``--taps blocks.0`` keeps only the first), so a direct rule sends each
block's output at position ``t`` its own position's error ``e_t`` through one ``V × d``
matrix shared by all positions (the ``position`` layout, chosen from the shapes: Launay et
al. 2020). Plain ``torch.nn`` modules, initialised as PyTorch does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.tap import Tap

DEFAULT = (2, 64, 4)        # layers, width, heads


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention from two ``nn.Linear`` s, each position attending to itself
    and the positions before it."""

    def __init__(self, d_model: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x):
        n, t, d = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(n, t, d))


class Block(nn.Module):
    """``x + attn(ln(x))``, then ``x + mlp(ln(x))``, then the block's tap."""

    def __init__(self, d_model: int, heads: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, heads)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(),
                                 nn.Linear(4 * d_model, d_model))
        self.tap = Tap()

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return self.tap(x + self.mlp(self.ln2(x)), skip=True, elementwise=False)


class CharGPT(nn.Module):
    """tokens ``(N, T)`` -> embeddings + positions -> blocks -> LayerNorm -> logits ``(N, T, V)``;
    at most ``context`` positions."""

    def __init__(self, vocab_size: int, context: int = 64, d_model: int = 64, heads: int = 4,
                 layers: int = 2):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"the width {d_model} must be a multiple of the heads ({heads})")
        self.context = context
        self.embed = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList(Block(d_model, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, tokens):
        t = tokens.shape[1]
        if t > self.context:
            raise ValueError(f"at most {self.context} positions; got {t}")
        x = self.embed(tokens) + self.position(torch.arange(t, device=tokens.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))

    def example_input(self) -> torch.Tensor:
        """One example of ``context`` zero tokens (a batch of 1), to find the taps' shapes."""
        return torch.zeros((1, self.context), dtype=torch.long, device=self.head.weight.device)


def parse(args: Sequence[str]) -> tuple[int, int, int]:
    """``["2x64", "h4"]`` -> ``(2, 64, 4)`` (layers, width, heads); missing parts: 2x64, h4."""
    layers, width, heads = DEFAULT
    if len(args) > 2:
        raise ValueError(f"gpt takes LAYERSxWIDTH and hHEADS (e.g. gpt:2x64:h4); got "
                         f"{':'.join(args)}")
    if args:
        match = re.fullmatch(r"(\d+)x(\d+)", args[0])
        if not match:
            raise ValueError(f"cannot read gpt:{args[0]}: write gpt:LAYERSxWIDTH (e.g. gpt:2x64)")
        layers, width = int(match[1]), int(match[2])
    if len(args) == 2:
        match = re.fullmatch(r"h(\d+)", args[1])
        if not match:
            raise ValueError(f"cannot read gpt:...:{args[1]}: the heads are hHEADS (e.g. h4)")
        heads = int(match[1])
    if min(layers, width, heads) < 1:
        raise ValueError(f"gpt needs at least one layer, width and head; got "
                         f"{layers}x{width}:h{heads}")
    return layers, width, heads


def build_gpt(args: Sequence[str], input_shape: Sequence[int], num_classes: int, *,
              init: str = "uniform", dropout_input: float = 0.0, dropout_hidden: float = 0.0,
              **options) -> CharGPT:
    """The model for token windows of ``input_shape[-1]`` positions and a vocabulary of
    ``num_classes`` characters (the built-in models' ``init`` and dropout do not apply)."""
    layers, width, heads = parse(args)
    given = {"init": init, "dropout_input": dropout_input, "dropout_hidden": dropout_hidden,
             **options}
    defaults = {"init": "uniform", "dropout_input": 0.0, "dropout_hidden": 0.0}
    foreign = [f"`{k}={v}`" for k, v in given.items() if k not in defaults or v != defaults[k]]
    if foreign:
        raise ValueError("gpt is initialised as PyTorch does and has no dropout: "
                         f"{', '.join(foreign)} does not apply to it")
    if len(input_shape) != 1:
        raise ValueError(f"gpt reads windows of token ids, inputs of shape (T,); got "
                         f"{tuple(input_shape)}: give it text (`data` python-reference or "
                         "text:PATH)")
    return CharGPT(num_classes, int(input_shape[0]), width, heads, layers)
