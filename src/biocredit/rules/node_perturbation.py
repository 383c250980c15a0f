"""Node perturbation: reinforcement learning of the hidden layers (Lillicrap 2016, Fig. 1d)."""

from __future__ import annotations

import torch

from ..layers import engine_of
from .direct_feedback import DirectFeedbackRule


class NodePerturbation(DirectFeedbackRule):
    """``δh_l = ΔL · ξ_l / σ²`` at every tap, with ``ξ_l ~ N(0, σ²I)``.

    Every hidden unit at every tap is perturbed at once, and each example's one scalar reward
    ``ΔL`` (the change of its loss that the perturbation causes) teaches them all. ``ΔL`` is
    taken to first order, ``ΔL = eᵀ J ξ``, where ``J ξ = Σ_l (∂ŷ/∂h_l) ξ_l`` is the change of
    the output: the perturbation carried forward through the layers between the taps and
    above the last one, on this forward pass's recorded graph (a Jacobian-vector product of
    two reverse-mode calls, as IFA's). It stands in for the second, perturbed forward pass of
    the biological rule: it measures the loss, it sends no error back through any ``W``.
    Then ``E[δh_l] = J_lᵀ e``, BP's ``δh_l``: an unbiased estimate whose variance grows with
    the number of perturbed units. The layers above the last tap learn from ``e`` as usual.

    With ``ΔL`` linear in ``ξ``, ``σ`` cancels (``δh_l = (eᵀ J z) z_l``, ``z ~ N(0, I)``) up
    to rounding: the rule is node perturbation's small-noise limit, and ``sigma`` (default
    1e-3, well inside that limit) only states the paper's equation.

    The noise has its own stream: the root buffer ``perturbation_seed`` holds ``[s, k]``, ``s``
    drawn from the conversion's generator; backward ``k`` (from 0) draws from a generator seeded
    ``s + k`` on the error's device. So a seed fixes the noise, and a ``state_dict`` resumes it.
    (The engine's ``runtime["perturbation_stream"]`` mirrors ``[s, k]`` on the host, so that
    no backward waits to read them from the device.)
    """

    name = "node-perturbation"
    summary = "node perturbation: hidden noise times the loss change it causes (reinforcement)"
    defaults = {"sigma": 1e-3}
    local_input_grad = True
    needs_output = True
    compiles = False

    def __init__(self, **options):
        super().__init__(**options)
        if not self.options["sigma"] > 0:
            raise ValueError("sigma is the noise's standard deviation, > 0; "
                             f"got {self.options['sigma']}")

    @classmethod
    def floor_macs(cls, macs, tap_widths, outputs):
        """``ΣF + ΣF + Σ_{l≥2} F_l``: the change of the output, carried forward."""
        return 2 * sum(macs) + sum(macs[1:])

    def direct_shapes(self, shapes):
        return []

    def make_direct_state(self, root, shapes, num_outputs, generator, like):
        """The noise stream's seed, from ``generator``; no feedback."""
        seed = torch.randint(2 ** 62, (), generator=generator).item()
        root.register_buffer("perturbation_seed", torch.tensor([seed, 0], device=like.device))

    def noise(self, root, records, device) -> list[torch.Tensor]:
        """``ξ_l ~ N(0, σ²)`` in every tap's shape, from the next generator of the stream."""
        stream, runtime = root.perturbation_seed, engine_of(root).runtime
        known = runtime.get("perturbation_stream")   # (seed, draws, id, version)
        if known is not None and known[2:] == (id(stream), stream._version):
            seed, draws = known[:2]        # as this rule left it: no read-back from the device
        else:
            seed, draws = stream.tolist()  # first use, or loaded or moved since: read it
        stream[1] += 1
        runtime["perturbation_stream"] = (seed, draws + 1, id(stream), stream._version)
        g = torch.Generator(device).manual_seed(seed + draws)
        # drawn in at least float32 (under bf16 autocast: the float32 noise, rounded)
        return [(torch.randn(r.point.shape, generator=g, device=device,
                             dtype=torch.promote_types(r.point.dtype, torch.float32))
                 * self.options["sigma"]).to(r.point.dtype) for r in records]

    def hidden_signals(self, root, error, records, target, output):
        """``ΔL_n ξ_l / σ²`` at every tap, ``ΔL_n = e_n · (J ξ)_n`` per example ``n``."""
        xi = self.noise(root, records, error.device)
        with torch.enable_grad():
            tangents = []   # how each tap's output moves: its own ξ_l plus what comes from below
            for l, record in enumerate(records):
                below = directional(record.point, [r.output for r in records[:l]], tangents)
                tangents.append(xi[l] if below is None else xi[l] + below)
            change = directional(output, [r.output for r in records], tangents)     # J ξ
        loss_change = torch.zeros(len(error), dtype=error.dtype, device=error.device) \
            if change is None else (error * change).flatten(1).sum(1)
        return [loss_change.view(-1, *[1] * (x.dim() - 1)) * x / self.options["sigma"] ** 2
                for x in xi]


def directional(output: torch.Tensor, inputs: list[torch.Tensor],
                tangents: list[torch.Tensor]) -> torch.Tensor | None:
    """``Σ_i (∂output/∂inputs_i) · tangents_i`` on the recorded graph (two reverse-mode
    calls); ``None`` when ``output`` depends on none of ``inputs``."""
    if not inputs:
        return None
    probe = torch.zeros_like(output, requires_grad=True)
    try:
        vjps = torch.autograd.grad(output, inputs, probe, create_graph=True, allow_unused=True)
        used = [(v, t) for v, t in zip(vjps, tangents) if v is not None and v.requires_grad]
        if not used:
            return None
        (out,) = torch.autograd.grad([v for v, _ in used], probe, [t for _, t in used],
                                     retain_graph=True, allow_unused=True)
    except RuntimeError as err:
        raise ValueError("node perturbation carries its noise forward through the layers "
                         f"above the taps and cannot through this model's "
                         f"({str(err).splitlines()[0]})") from None
    return out
