"""Initial feedback matrices, by name.

``shape`` is the stored layout: for layer feedback the forward weight's ``out × in`` (the
transpose of docs/algorithms.md's ``B_{l+1}``), for direct feedback ``C × n_l`` (``B_lᵀ``). ``fan_in``
is the width the error comes from (``out`` for layer feedback, ``C`` for direct feedback).

Random kinds (``scale`` overrides their default spread):

- ``uniform``: ``U(−s, s)``, ``s = 1/√fan_in`` (the default everywhere)
- ``gaussian``: ``N(0, s²)``, ``s = 1/√fan_in``
- ``orthogonal``: a (semi-)orthogonal matrix times ``s = 1``

Flam-Shepherd's structured matrices B1–B7 (``N(0, σ)`` means standard deviation σ = 0.01, and
"sparse" means each entry is one with probability ``SPARSE_P``):

- ``b1`` / ``ones-noise``: ones + N(0, 0.01)
- ``b2`` / ``identity``: the (non-square) identity
- ``b3`` / ``identity-noise``: identity + N(0, 0.01)
- ``b4`` / ``sparse-ones``: sparse ones
- ``b5`` / ``ones-uniform``: ones + U(−0.01, 0.01)
- ``b6`` / ``sparse-ones-noise``: sparse ones + N(0, 0.01)
- ``b7`` / ``noise``: N(0, 0.01)
"""

from __future__ import annotations

import math

import torch

NOISE = 0.01
SPARSE_P = 0.1
_ALIASES = {"b1": "ones-noise", "b2": "identity", "b3": "identity-noise", "b4": "sparse-ones",
            "b5": "ones-uniform", "b6": "sparse-ones-noise", "b7": "noise"}
KINDS = ("uniform", "gaussian", "orthogonal", *_ALIASES.values(), *_ALIASES)


def initial_feedback(kind: str, shape: tuple[int, ...], fan_in: int, *,
                     scale: float | None = None, generator: torch.Generator | None = None,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A feedback matrix of ``kind`` (see the module docstring)."""
    kind = _ALIASES.get(kind, kind)
    if kind not in KINDS:
        raise ValueError(f"unknown feedback init {kind!r}; choose from {', '.join(KINDS)}")

    def noise(std):
        return torch.randn(shape, generator=generator, dtype=dtype) * std

    def uniform(bound):
        return (torch.rand(shape, generator=generator, dtype=dtype) * 2 - 1) * bound

    def eye():  # the (non-square) identity; kernels: over (out, in·k²)
        return torch.eye(shape[0], math.prod(shape[1:]), dtype=dtype).reshape(shape)

    ones = torch.ones(shape, dtype=dtype)
    s = scale if scale is not None else 1.0 / math.sqrt(fan_in)
    if kind == "uniform":
        b = uniform(s)
    elif kind == "gaussian":
        b = noise(s)
    elif kind == "orthogonal":
        b = torch.nn.init.orthogonal_(torch.empty(shape, dtype=dtype), generator=generator)
        b *= scale if scale is not None else 1.0
    elif kind == "ones-noise":
        b = ones + noise(NOISE)
    elif kind == "identity":
        b = eye()
    elif kind == "identity-noise":
        b = eye() + noise(NOISE)
    elif kind == "sparse-ones":
        b = sparse_mask(shape, SPARSE_P, generator, dtype)
    elif kind == "ones-uniform":
        b = ones + uniform(NOISE)
    elif kind == "sparse-ones-noise":
        b = sparse_mask(shape, SPARSE_P, generator, dtype) + noise(NOISE)
    else:  # noise
        b = noise(NOISE)
    return b


def sparse_mask(shape, density: float, generator, dtype=torch.float32) -> torch.Tensor:
    """Each entry one with probability ``density``, else zero."""
    return (torch.rand(shape, generator=generator) < density).to(dtype)
