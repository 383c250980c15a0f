"""Multi-head attention whose projections send the error back through feedback matrices.

``nn.MultiheadAttention`` calls its projection weights functionally, so swapping its modules
changes nothing; :class:`FeedbackMultiheadAttention` keeps its parameters and their names
(``in_proj_weight``/``in_proj_bias``, or ``q_proj_weight``/``k_proj_weight``/``v_proj_weight``
when ``kdim``/``vdim`` differ from ``embed_dim``; ``bias_k``/``bias_v``; ``out_proj``) and
re-implements the forward so that every projection is a
:class:`~biocredit.layers.feedback_linear.LinearFeedbackFunction`:

- in-projection ``q = x_q W_qᵀ + b_q`` (likewise ``k``, ``v``): ``∂x_q = ∂q B_q``, with
  ``B_q`` a row block of the ``in_proj_feedback`` buffer (``in_proj_weight``'s layout), or
  the ``q_proj_feedback``/``k_proj_feedback``/``v_proj_feedback`` buffers;
- out-projection: ``out_proj`` is a :class:`~biocredit.layers.FeedbackLinear` with its own
  ``feedback``;
- the attention itself (``softmax(q kᵀ/√d + mask) v``) holds no weights and back-propagates
  exactly; the parameter gradients are BP's given the errors that reach each projection.

A feedback buffer left ``None`` ties that pathway to its weight (BP). With every pathway tied,
or with ``exact`` set, the module computes exactly what ``nn.MultiheadAttention`` computes,
forward and backward.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .feedback_linear import FeedbackLinear, LinearFeedbackFunction

InFeedback = torch.Tensor | Sequence[torch.Tensor] | None


def _float_mask(mask: torch.Tensor | None, name: str, dtype: torch.dtype) -> torch.Tensor | None:
    """A boolean mask (``True`` = may not attend) as an additive float mask; float as is."""
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        return torch.zeros_like(mask, dtype=dtype).masked_fill_(mask, float("-inf"))
    if not torch.is_floating_point(mask):
        raise TypeError(f"{name} must be a boolean or floating-point tensor, got {mask.dtype}")
    return mask.to(dtype)


def _map_keeping_identity(fn, query, key, value):
    """``fn`` of each, computed once per distinct tensor: self-attention stays recognisable
    (``query is key is value``) and runs as one packed projection."""
    key_out = fn(key)
    value_out = key_out if value is key else fn(value)
    query_out = key_out if query is key else fn(query)
    return query_out, key_out, value_out


def _check_inputs(query, key, value) -> bool:
    """Whether ``query``, ``key`` and ``value`` are batched (3-D; else 2-D, unbatched)."""
    if query.is_nested or key.is_nested or value.is_nested:
        raise ValueError("FeedbackMultiheadAttention does not take nested tensors")
    if query.dim() not in (2, 3) or key.dim() != query.dim() or value.dim() != query.dim():
        raise ValueError(f"query, key and value must all be 3-D (batched) or 2-D "
                         f"(unbatched), got {query.dim()}, {key.dim()} and {value.dim()}")
    return query.dim() == 3


class FeedbackMultiheadAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` whose backward sends the error through feedback matrices
    (see the module docstring). Same arguments as ``nn.MultiheadAttention``, plus
    ``in_feedback`` (for :meth:`set_in_feedback`) and ``out_feedback`` (``out_proj``'s).

    ``exact``: the module's single switch for exact back-propagation (as
    :class:`~biocredit.layers.feedback_layer.FeedbackLayer`'s); it is stored on ``out_proj``,
    so :func:`~biocredit.layers.exact_gradients`, which switches every feedback layer,
    switches the whole attention, and setting it here switches ``out_proj`` too.

    Inside ``nn.TransformerEncoderLayer`` in eval mode without gradients, PyTorch's fused
    fast path reads ``in_proj_weight``/``out_proj.weight`` directly: that computes the same
    forward, and with no gradient there is no backward for the feedback to change.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, device=None, dtype=None,
                 *, in_feedback: InFeedback = None, out_feedback: torch.Tensor | None = None):
        super().__init__(embed_dim, num_heads, dropout=dropout, bias=bias,
                         add_bias_kv=add_bias_kv, add_zero_attn=add_zero_attn, kdim=kdim,
                         vdim=vdim, batch_first=batch_first, device=device, dtype=dtype)
        # The same initial values as nn.MultiheadAttention's, now with a feedback pathway.
        self.out_proj = FeedbackLinear.from_layer(self.out_proj, out_feedback)
        for name in ("in_proj_feedback", "q_proj_feedback", "k_proj_feedback",
                     "v_proj_feedback"):
            self.register_buffer(name, None)
        if in_feedback is not None:
            self.set_in_feedback(in_feedback)

    @classmethod
    def from_module(cls, mha: nn.MultiheadAttention, in_feedback: InFeedback = None,
                    out_feedback: torch.Tensor | None = None) -> "FeedbackMultiheadAttention":
        """A copy of ``mha`` (every hyper-parameter, parameter value, trainability, dtype,
        device and train/eval mode) with the given feedback; ``None`` ties a pathway to its
        weight (BP). ``in_feedback``: ``in_proj_weight``'s shape, or three matrices in the
        layouts of the q, k and v projection weights. ``mha`` is not modified."""
        reference = mha.in_proj_weight if mha._qkv_same_embed_dim else mha.q_proj_weight
        new = cls(mha.embed_dim, mha.num_heads, dropout=mha.dropout,
                  bias=mha.in_proj_bias is not None, add_bias_kv=mha.bias_k is not None,
                  add_zero_attn=mha.add_zero_attn, kdim=mha.kdim, vdim=mha.vdim,
                  batch_first=mha.batch_first, device=reference.device, dtype=reference.dtype)
        with torch.no_grad():
            for name, param in new.named_parameters(recurse=False):
                source = getattr(mha, name)
                param.copy_(source)
                param.requires_grad_(source.requires_grad)
        new.out_proj = FeedbackLinear.from_layer(mha.out_proj, out_feedback)
        if in_feedback is not None:
            new.set_in_feedback(in_feedback)
        return new.train(mha.training)

    @property
    def exact(self) -> bool:
        return self.out_proj.exact

    @exact.setter
    def exact(self, value: bool) -> None:
        self.out_proj.exact = value

    def set_in_feedback(self, feedback: torch.Tensor | Sequence[torch.Tensor]) -> None:
        """Set the in-projection feedback: one matrix of ``in_proj_weight``'s shape, or three
        in the layouts of the q, k and v projections (stacked when the weight is packed)."""
        weights = self._in_weights()
        if isinstance(feedback, torch.Tensor):
            if not self._qkv_same_embed_dim:
                raise ValueError("this attention has separate q/k/v projection weights "
                                 "(kdim or vdim differs from embed_dim): give three feedback "
                                 "matrices")
            parts = feedback.chunk(3) if feedback.shape[0] == 3 * self.embed_dim else [feedback]
        else:
            parts = list(feedback)
        if len(parts) != 3:
            raise ValueError(f"expected one packed or three in-projection feedback matrices, "
                             f"got {len(parts)}")
        for part, weight, which in zip(parts, weights, "qkv"):
            if tuple(part.shape) != tuple(weight.shape):
                raise ValueError(f"{which} feedback shape {tuple(part.shape)} does not match "
                                 f"the {which} projection weight shape {tuple(weight.shape)}")
        parts = [p.detach().to(weights[0]) for p in parts]
        if self._qkv_same_embed_dim:
            self.in_proj_feedback = torch.cat(parts)
        else:
            self.q_proj_feedback, self.k_proj_feedback, self.v_proj_feedback = parts

    def _in_weights(self) -> list[torch.Tensor]:
        if self._qkv_same_embed_dim:
            return list(self.in_proj_weight.chunk(3))
        return [self.q_proj_weight, self.k_proj_weight, self.v_proj_weight]

    def in_backward_matrices(self) -> list[torch.Tensor]:
        """What the backward multiplies the errors at q, k and v by (``W``'s layout each):
        the feedback, or the weight when tied or ``exact``."""
        if self._qkv_same_embed_dim:
            return list(self._packed_backward_matrix().chunk(3))
        return [w if self.exact or b is None else b
                for w, b in zip(self._in_weights(), (self.q_proj_feedback, self.k_proj_feedback,
                                                     self.v_proj_feedback))]

    def _packed_backward_matrix(self) -> torch.Tensor:
        tied = self.exact or self.in_proj_feedback is None
        return self.in_proj_weight if tied else self.in_proj_feedback

    def _in_projection(self, query, key, value):
        """``q, k, v``, each projection through its feedback pathway; self-attention on one
        tensor runs as one packed product (its input error is the sum of the three)."""
        if self._qkv_same_embed_dim and query is key and key is value:
            qkv = LinearFeedbackFunction.apply(query, self.in_proj_weight, self.in_proj_bias,
                                               self._packed_backward_matrix())
            return qkv.unflatten(-1, (3, self.embed_dim)).unbind(-2)
        weights, feedbacks = self._in_weights(), self.in_backward_matrices()
        biases = [None] * 3 if self.in_proj_bias is None else list(self.in_proj_bias.chunk(3))
        return tuple(LinearFeedbackFunction.apply(x, w, b, f)
                     for x, w, b, f in zip((query, key, value), weights, biases, feedbacks))

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = True,
                attn_mask: torch.Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``nn.MultiheadAttention.forward``'s arguments and results. ``is_causal`` without
        an ``attn_mask`` applies the causal mask (PyTorch requires the mask as well)."""
        is_batched = _check_inputs(query, key, value)
        if not is_batched:                # a batch of one
            query, key, value = _map_keeping_identity(lambda x: x.unsqueeze(1),
                                                      query, key, value)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif self.batch_first:            # to (length, batch, features)
            query, key, value = _map_keeping_identity(lambda x: x.transpose(0, 1),
                                                      query, key, value)
        tgt_len, bsz, embed_dim = query.shape
        if embed_dim != self.embed_dim:
            raise ValueError(f"query has {embed_dim} features, expected {self.embed_dim}")
        if key.shape[:2] != value.shape[:2]:
            raise ValueError(f"key's length and batch {tuple(key.shape[:2])} do not match "
                             f"value's {tuple(value.shape[:2])}")
        attn_mask, key_padding_mask, is_causal = self._masks(
            attn_mask, key_padding_mask, is_causal, need_weights, query, key.shape[0])
        q, k, v = self._in_projection(query, key, value)
        q, k, v, attn_mask, key_padding_mask = self._heads(q, k, v, attn_mask,
                                                           key_padding_mask)
        if key_padding_mask is not None:
            key_padding_mask = self._padding_mask(key_padding_mask, bsz, k.shape[1])
            attn_mask = key_padding_mask if attn_mask is None else attn_mask + key_padding_mask
        dropout_p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            attended, weights = self._attend_with_weights(q, k, v, attn_mask, dropout_p,
                                                          tgt_len, bsz)
            if average_attn_weights:
                weights = weights.mean(dim=1)
            if not is_batched:
                weights = weights.squeeze(0)
        else:
            attended = self._attend(q, k, v, attn_mask, dropout_p, is_causal, tgt_len, bsz)
        out = self.out_proj(attended).view(tgt_len, bsz, embed_dim)
        if not is_batched:
            out = out.squeeze(1)
        elif self.batch_first:
            out = out.transpose(0, 1)
        return out, weights

    def _masks(self, attn_mask, key_padding_mask, is_causal: bool, need_weights: bool,
               query: torch.Tensor, src_len: int):
        """The attention mask as a float ``(1 or batch·heads, L, S)`` mask (``None`` where
        the kernel applies the causal mask itself), the padding mask as a float mask, and
        whether the attention is still causal."""
        tgt_len, bsz = query.shape[:2]
        key_padding_mask = _float_mask(key_padding_mask, "key_padding_mask", query.dtype)
        if is_causal and attn_mask is None and (key_padding_mask is not None or need_weights):
            attn_mask = torch.ones(tgt_len, src_len, dtype=torch.bool,
                                   device=query.device).triu(1)
        if is_causal and key_padding_mask is None and not need_weights:
            return None, key_padding_mask, is_causal  # the SDPA kernel applies it itself
        attn_mask = _float_mask(attn_mask, "attn_mask", query.dtype)
        if key_padding_mask is not None:
            is_causal = False         # merged with the padding mask: no longer causal
        if attn_mask is None:
            return attn_mask, key_padding_mask, is_causal
        if attn_mask.dim() == 2:
            if tuple(attn_mask.shape) != (tgt_len, src_len):
                raise ValueError(f"2-D attn_mask has shape {tuple(attn_mask.shape)}, "
                                 f"expected {(tgt_len, src_len)}")
            attn_mask = attn_mask.unsqueeze(0)
        elif attn_mask.dim() == 3:
            if tuple(attn_mask.shape) != (bsz * self.num_heads, tgt_len, src_len):
                raise ValueError(f"3-D attn_mask has shape {tuple(attn_mask.shape)}, "
                                 f"expected {(bsz * self.num_heads, tgt_len, src_len)}")
        else:
            raise ValueError(f"attn_mask must be 2-D or 3-D, got {attn_mask.dim()}-D")
        return attn_mask, key_padding_mask, is_causal

    def _heads(self, q, k, v, attn_mask, key_padding_mask):
        """``q, k, v`` from ``(length, batch, E)`` to ``(batch·heads, length, head_dim)``,
        with ``bias_k``/``bias_v`` and the zero key/value appended where asked for (and
        the masks padded to match)."""
        bsz, heads, head_dim = q.shape[1], self.num_heads, self.head_dim
        if self.bias_k is not None:       # one learned key/value appended to every sequence
            k = torch.cat([k, self.bias_k.repeat(1, bsz, 1)])
            v = torch.cat([v, self.bias_v.repeat(1, bsz, 1)])
            attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
            key_padding_mask = None if key_padding_mask is None else \
                F.pad(key_padding_mask, (0, 1))
        q = q.reshape(q.shape[0], bsz * heads, head_dim).transpose(0, 1)
        k = k.reshape(k.shape[0], bsz * heads, head_dim).transpose(0, 1)
        v = v.reshape(v.shape[0], bsz * heads, head_dim).transpose(0, 1)
        if self.add_zero_attn:            # one all-zero key/value appended
            zeros = torch.zeros(bsz * heads, 1, head_dim, dtype=k.dtype, device=k.device)
            k, v = torch.cat([k, zeros], dim=1), torch.cat([v, zeros], dim=1)
            attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
            key_padding_mask = None if key_padding_mask is None else \
                F.pad(key_padding_mask, (0, 1))
        return q, k, v, attn_mask, key_padding_mask

    def _padding_mask(self, key_padding_mask: torch.Tensor, bsz: int,
                      src_len: int) -> torch.Tensor:
        """The ``(batch, S)`` padding mask as a ``(batch·heads, 1, S)`` additive mask."""
        if tuple(key_padding_mask.shape) != (bsz, src_len):
            raise ValueError(f"key_padding_mask has shape {tuple(key_padding_mask.shape)}, "
                             f"expected {(bsz, src_len)}")
        return key_padding_mask.view(bsz, 1, 1, src_len) \
            .expand(-1, self.num_heads, -1, -1).reshape(bsz * self.num_heads, 1, src_len)

    def _attend_with_weights(self, q, k, v, attn_mask, dropout_p: float, tgt_len: int,
                             bsz: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The attended values as ``(L·batch, E)`` and the weights ``(batch, heads, L, S)``,
        computed explicitly (PyTorch's path when the weights are asked for)."""
        scores = torch.bmm(q * math.sqrt(1.0 / self.head_dim), k.transpose(-2, -1))
        if attn_mask is not None:
            scores = scores + attn_mask
        weights = torch.softmax(scores, dim=-1)
        if dropout_p > 0:             # the returned weights too, as PyTorch's
            weights = F.dropout(weights, p=dropout_p)
        attended = torch.bmm(weights, v)                     # (batch·heads, L, head_dim)
        attended = attended.transpose(0, 1).reshape(tgt_len * bsz, self.embed_dim)
        return attended, weights.view(bsz, self.num_heads, tgt_len, k.shape[1])

    def _attend(self, q, k, v, attn_mask, dropout_p: float, is_causal: bool, tgt_len: int,
                bsz: int) -> torch.Tensor:
        """The attended values as ``(L·batch, E)``, by PyTorch's fused kernel."""
        heads, head_dim, src_len = self.num_heads, self.head_dim, k.shape[1]
        if attn_mask is not None:
            attn_mask = attn_mask.unsqueeze(0) if attn_mask.shape[0] == 1 else \
                attn_mask.view(bsz, heads, -1, src_len)
        attended = F.scaled_dot_product_attention(
            q.view(bsz, heads, tgt_len, head_dim), k.view(bsz, heads, src_len, head_dim),
            v.view(bsz, heads, src_len, head_dim), attn_mask, dropout_p, is_causal)
        return attended.permute(2, 0, 1, 3).reshape(tgt_len * bsz, self.embed_dim)

    def extra_repr(self) -> str:
        if self._qkv_same_embed_dim:
            tied = self.in_proj_feedback is None
        else:
            tied = all(getattr(self, f"{w}_proj_feedback") is None for w in "qkv")
        kind = "tied (BP)" if tied else "feedback"
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, in_backward={kind}"
