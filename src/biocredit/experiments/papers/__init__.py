"""The presets of each paper, one module a paper."""

from . import amit, flam_shepherd, launay, lillicrap, nokland, webster

PAPER_MODULES = (lillicrap, nokland, flam_shepherd, amit, webster, launay)
