"""FA: feedback alignment (Lillicrap et al. 2016)."""

from __future__ import annotations

from .layer_feedback import LayerFeedbackRule, fan_out, spread_like_weight


class FeedbackAlignment(LayerFeedbackRule):
    """``δa_l = (B_{l+1} δa_{l+1}) ⊙ f'(a_l)`` with ``B_{l+1}`` fixed and random.

    Every weight layer's backward sends its error through its own ``B`` (stored in the
    weight's layout, ``out × in``: the buffer ``feedback``). By default ``B ~ U(−s, s)`` with
    ``s = 1/√n_{l+1}`` (``n_{l+1}``: the width of the layer the error comes from; ``C_out·k²``
    for a convolution); ``feedback_init`` picks another kind (Gaussian, orthogonal,
    Flam-Shepherd's B1–B7), ``feedback_density`` sparse feedback;
    ``feedback_like_weight=True`` draws each layer's ``B`` with its own ``W``'s standard
    deviation instead (for models whose weights do not start at ``1/√fan``, such as
    transformers' ``N(0, 0.02)``). The rules that learn or derive their feedback (KP, URFB,
    sign symmetry) start from this draw.
    """

    name = "fa"
    summary = "feedback alignment: fixed random feedback to the layer below"

    def layer_feedback(self, layer, generator):
        """``B`` for ``layer`` (the weight's shape) and its sparse mask (or ``None``)."""
        w = layer.weight
        if self.options["feedback_like_weight"] and self.options["feedback_scale"] is None:
            spread = spread_like_weight(layer, self.options["feedback_init"])
            return self.make_feedback(tuple(w.shape), fan_out(layer), generator, w,
                                      scale=spread)
        return self.make_feedback(tuple(w.shape), fan_out(layer), generator, w)
