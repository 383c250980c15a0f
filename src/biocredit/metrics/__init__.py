"""Diagnostics of a converted model: how close each rule's updates are to BP's, how its
feedback relates to the forward weights, update sizes, saturation and weight transport. Most
run their own forward and backward passes on a probe batch (leaving ``.grad`` as it was)."""

from .alignment import angle_deg, rule_and_bp_gradients, update_alignment
from .feedback import correlation, feedback_alignment, norm_ratio, output_feedback_angles
from .gradients import gradient_norms
from .probe import probe_metrics
from .saturation import block_activation, saturated_fraction
from .transport import TransportReport, transport_report

__all__ = ["TransportReport", "transport_report", "angle_deg", "block_activation", "correlation", "feedback_alignment",
           "gradient_norms", "norm_ratio", "output_feedback_angles", "probe_metrics", "rule_and_bp_gradients",
           "saturated_fraction", "update_alignment"]
