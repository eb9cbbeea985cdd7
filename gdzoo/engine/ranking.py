"""Global ranking: which units a pruning step removes, across all groups at once.

Units are ranked by score (optionally FLOPs-regularised as in the paper, Sec. 3.3):

    adjusted = score / mean(score) - eta * cost / mean(cost)

where ``cost`` is the unit's marginal MACs and both means run over the alive units, so ``eta`` is
scale-free (eta=1 weighs "average importance" against "average cost" equally). Each group keeps at
least ``max(1, ceil(min_share * units))`` units (the authors keep 10%). Pruning is cumulative:
masked units never come back.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .graph import ChannelGraph


def adjusted_scores(graph: ChannelGraph, scores: np.ndarray, alive: np.ndarray, flops_eta: float = 0.0) -> np.ndarray:
    """Scores used for ranking: raw, or FLOPs-regularised with a scale-free ``flops_eta``."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (graph.num_units,):
        raise ValueError(f"expected {graph.num_units} unit scores, got shape {scores.shape}")
    if not flops_eta:
        return scores
    cost = graph.unit_costs(alive)
    s_mean = scores[alive].mean() if alive.any() else 1.0
    c_mean = cost[alive].mean() if alive.any() else 1.0
    return scores / (s_mean or 1.0) - flops_eta * cost / (c_mean or 1.0)


def min_keep(graph: ChannelGraph, min_share: float) -> np.ndarray:
    """Units each group must keep: ``max(1, ceil(min_share * group size))``."""
    if not 0.0 <= min_share <= 1.0:
        raise ValueError(f"min_share must be in [0, 1], got {min_share}")
    return np.array([max(1, math.ceil(min_share * g.units.size - 1e-9)) for g in graph.groups], dtype=np.int64)


def prune_sequence(graph: ChannelGraph, adjusted: np.ndarray, alive: np.ndarray, min_share: float) -> np.ndarray:
    """Alive units in the order they would be pruned (lowest first), skipping those a group must keep."""
    budget = np.bincount(graph.unit_group[alive], minlength=len(graph.groups)) - min_keep(graph, min_share)
    candidates = np.flatnonzero(alive)
    order = candidates[np.argsort(adjusted[candidates], kind="stable")]
    taken = []
    for u in order.tolist():
        g = graph.unit_group[u]
        if budget[g] > 0:
            budget[g] -= 1
            taken.append(u)
    return np.array(taken, dtype=np.int64)


def _round_groups(graph: ChannelGraph, new: np.ndarray, before: np.ndarray, adjusted: np.ndarray,
                  multiple: int) -> np.ndarray:
    """Un-prune this step's best-scored units so every group's kept count is a multiple of ``multiple``."""
    if multiple <= 1:
        return new
    out = new.copy()
    for group in graph.groups:
        units = group.units
        kept, cap = int(out[units].sum()), int(before[units].sum())
        want = min(math.ceil(kept / multiple) * multiple, cap)
        if want > kept:
            just_pruned = units[before[units] & ~out[units]]
            best = just_pruned[np.argsort(-adjusted[just_pruned], kind="stable")][: want - kept]
            out[best] = True
    return out


def select_pruned(graph: ChannelGraph, scores: np.ndarray, alive: Optional[np.ndarray] = None, *,
                  k: Optional[int] = None, fraction: Optional[float] = None, target_macs: Optional[int] = None,
                  min_share: float = 0.1, flops_eta: float = 0.0, round_to: int = 1) -> np.ndarray:
    """Return the new per-unit ``alive`` array after one global pruning step (masks untouched).

    Prunes the ``k`` lowest units (or ``fraction`` of the alive ones), and with ``target_macs`` stops
    as soon as the MACs reach the target; with only ``target_macs`` it prunes until they do,
    then, if that overshoots by more than 1%, replaces the last unit by cheaper next-ranked ones.
    ``round_to`` rounds each group's kept count up to a multiple (the 1% landing is then not tried).
    """
    before = graph.alive() if alive is None else np.asarray(alive, dtype=bool)
    if k is None and fraction is None and target_macs is None:
        raise ValueError("give k, fraction or target_macs")
    if k is not None and k < 0 or fraction is not None and not 0 <= fraction <= 1:
        raise ValueError(f"k must be >= 0 and fraction in [0, 1], got k={k}, fraction={fraction}")
    adjusted = adjusted_scores(graph, scores, before, flops_eta)
    seq = prune_sequence(graph, adjusted, before, min_share)
    limit = seq.size
    if fraction is not None:
        limit = min(limit, int(round(fraction * before.sum())))
    if k is not None:
        limit = min(limit, k)

    def state(j: int) -> np.ndarray:
        new = before.copy()
        new[seq[:j]] = False
        return _round_groups(graph, new, before, adjusted, round_to)

    if target_macs is None or graph.macs(state(limit)) > target_macs:
        return state(limit)
    lo, hi = 0, limit  # smallest j with macs(state(j)) <= target
    while lo < hi:
        mid = (lo + hi) // 2
        if graph.macs(state(mid)) <= target_macs:
            hi = mid
        else:
            lo = mid + 1
    result = state(lo)
    if lo == 0 or round_to > 1 or graph.macs(result) >= 0.99 * target_macs:
        return result
    landed = _land(graph, state(lo - 1), seq[lo - 1:], target_macs, min_share)
    return result if landed is None else landed


def _land(graph: ChannelGraph, base: np.ndarray, candidates: np.ndarray, target: int,
          min_share: float) -> Optional[np.ndarray]:
    """From ``base`` (just above target), prune further candidates in rank order, skipping any that
    would drop below 0.99*target, until the MACs are in [0.99*target, target]."""
    state, macs = base.copy(), graph.macs(base)
    budget = np.bincount(graph.unit_group[base], minlength=len(graph.groups)) - min_keep(graph, min_share)
    for u in candidates.tolist():
        g = graph.unit_group[u]
        if budget[g] <= 0:
            continue
        state[u] = False
        trial = graph.macs(state)
        if trial < 0.99 * target:
            state[u] = True
            continue
        macs, budget[g] = trial, budget[g] - 1
        if macs <= target:
            return state
    return None
