"""Global ranking: groups share one mask, minimum shares hold, rounding, and MACs targets land."""
from __future__ import annotations

import math

import numpy as np
import pytest

from gdzoo import create_model
from gdzoo.engine import build_graph, decorate, select_pruned

from _engine_utils import one_thread  # noqa: F401


@pytest.fixture(scope="module")
def graph():
    return build_graph(decorate(create_model("cifar_resnet56")), (3, 32, 32))


def test_lowest_units_go_first_and_groups_share_one_mask(graph):
    scores = np.random.default_rng(1).random(graph.num_units)
    alive = select_pruned(graph, scores, np.ones(graph.num_units, bool), k=25, min_share=0.0)
    assert set(np.flatnonzero(~alive)) == set(np.argsort(scores)[:25])
    graph.set_alive(alive)
    try:
        residual = next(g for g in graph.groups if len(g.members) == 10)
        masks = [graph.gated[name].mask for name in residual.members]
        assert all((m == masks[0]).all() for m in masks)
        assert graph.alive().tolist() == alive.tolist()
    finally:
        graph.set_alive(np.ones(graph.num_units, bool))


@pytest.mark.parametrize("share", [0.1, 0.5])
def test_minimum_share_per_group(graph, share):
    scores = np.random.default_rng(2).random(graph.num_units)
    alive = select_pruned(graph, scores, np.ones(graph.num_units, bool), k=graph.num_units, min_share=share)
    for group in graph.groups:
        assert alive[group.units].sum() == max(1, math.ceil(share * group.units.size))


def test_rounding_to_multiples(graph):
    scores = np.random.default_rng(3).random(graph.num_units)
    alive = select_pruned(graph, scores, np.ones(graph.num_units, bool), fraction=0.4, round_to=4)
    kept = [int(alive[g.units].sum()) for g in graph.groups]
    assert all(k % 4 == 0 for k in kept) and sum(kept) > 0.6 * graph.num_units - 1
    assert sorted(set(kept)) != [16]  # it did prune


@pytest.mark.parametrize("ratio, eta", [(0.5, 0.0), (0.3, 0.0), (0.3, 1.0), (0.7, 0.5)])
def test_prune_to_macs_target_lands_within_one_percent(graph, ratio, eta):
    full = graph.macs(np.ones(graph.num_units, bool))
    target = int(ratio * full)
    scores = np.random.default_rng(4).random(graph.num_units)
    alive = select_pruned(graph, scores, np.ones(graph.num_units, bool), target_macs=target, flops_eta=eta)
    assert 0.99 * target <= graph.macs(alive) <= target


def test_flops_regularisation_prefers_costly_units(graph):
    full = np.ones(graph.num_units, bool)
    costs = graph.unit_costs(full)
    alive = select_pruned(graph, np.ones(graph.num_units), full, k=1, flops_eta=1.0, min_share=0.0)
    assert costs[np.flatnonzero(~alive)[0]] == costs.max()


def test_bad_arguments_are_refused(graph):
    with pytest.raises(ValueError, match="give k, fraction or target_macs"):
        select_pruned(graph, np.zeros(graph.num_units))
    with pytest.raises(ValueError, match="unit scores"):
        select_pruned(graph, np.zeros(3), k=1)
