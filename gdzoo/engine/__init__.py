"""Gate Decorator pruning engine: gates, channel graph, scores, ranking, Tick-Tock and melt.

*What* to prune (``graph``, ``scores``, ``ranking``) is separate from *how* (``melt``).
"""
from .gates import GatedBatchNorm2d, decorate, gate_l1, gated_modules, undecorate, unwrap
from .graph import ChannelGraph, Group, build_graph
from .melt import melt, widths_from_masks
from .ranking import adjusted_scores, min_keep, prune_sequence, select_pruned
from .scores import TaylorScorer
from .ticktock import TickTock, TickTockConfig

__all__ = ["ChannelGraph", "GatedBatchNorm2d", "Group", "TaylorScorer", "TickTock", "TickTockConfig",
           "adjusted_scores", "build_graph", "decorate", "gate_l1",
           "gated_modules", "melt", "min_keep", "prune_sequence", "select_pruned", "undecorate", "unwrap",
           "widths_from_masks"]
