"""Direct feedback: the output error projected to many hidden blocks with one matmul."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class DirectFeedback(nn.Module):
    """``[s_1 | … | s_k] = e B`` with ``B = [B_1ᵀ | … | B_kᵀ]`` of shape ``C × Σ n_l``.

    ``s_l`` is reshaped to block ``l``'s output shape. Every block has its own columns of
    ``B`` (no rows shared between blocks of equal width). ``matrix`` is a buffer, so
    ``state_dict`` carries it.
    """

    def __init__(self, matrix: torch.Tensor, shapes: Sequence[Sequence[int]],
                 mask: torch.Tensor | None = None):
        super().__init__()
        self.shapes = [tuple(s) for s in shapes]
        self.sizes = [math.prod(s) for s in self.shapes]
        if matrix.dim() != 2 or matrix.shape[1] != sum(self.sizes):
            raise ValueError(f"direct feedback matrix must be C x {sum(self.sizes)}; "
                             f"got {tuple(matrix.shape)}")
        self.register_buffer("matrix", matrix)
        self.register_buffer("mask", mask)  # 0/1: the connections kept (sparse feedback)

    def forward(self, error: torch.Tensor) -> list[torch.Tensor]:
        flat = error @ self.matrix
        return [s.reshape(len(error), *shape)
                for s, shape in zip(flat.split(self.sizes, dim=1), self.shapes)]

    def project_each(self, errors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """``s_l = e_l B_lᵀ``: every block its own error (auxiliary errors)."""
        return [(e @ b).reshape(len(e), *shape)
                for e, b, shape in zip(errors, self.block_matrices(), self.shapes)]

    def block_matrices(self) -> list[torch.Tensor]:
        """Views ``B_lᵀ`` (``C × n_l``) of the columns feeding each block."""
        return list(self.matrix.split(self.sizes, dim=1))

    def extra_repr(self) -> str:
        return f"outputs={self.matrix.shape[0]}, blocks={self.shapes}"
