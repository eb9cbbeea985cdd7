"""Taylor scores rank channels like the true loss change of zeroing them."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gdzoo.engine import TaylorScorer, build_graph, decorate
from gdzoo.training import train_one_epoch

from _engine_utils import synthetic_batches, one_thread  # noqa: F401


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 4))
    decorate(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    stats = train_one_epoch(net, synthetic_batches(40, 32, seed=0), opt, disable_progress=True)
    assert stats["acc"] > 0.6  # it learned something, so the scores are meaningful
    return net.eval()


@pytest.fixture(scope="module")
def true_change(trained):
    """|loss change| of masking each unit alone, on the scoring data."""
    net, data = trained, synthetic_batches(6, 64, seed=1)
    graph = build_graph(net, (3, 16, 16))

    def loss() -> float:
        with torch.no_grad():
            return sum(nn.functional.cross_entropy(net(x), y).item() for x, y in data)

    base, true = loss(), []
    for u in range(graph.num_units):
        alive = np.ones(graph.num_units, bool)
        alive[u] = False
        graph.set_alive(alive)
        true.append(abs(loss() - base))
    graph.set_alive(np.ones(graph.num_units, bool))
    return graph, data, np.array(true)


@pytest.mark.parametrize("reduction", ["per_batch", "total"])
def test_taylor_scores_rank_like_true_loss_change(trained, true_change, reduction):
    graph, data, true = true_change
    scorer = TaylorScorer(trained, reduction)
    for x, y in data:
        trained.zero_grad()
        nn.functional.cross_entropy(trained(x), y).backward()
        scorer.accumulate()
    assert graph.num_units == 48
    assert _spearman(graph.unit_scores(scorer.scores()), true) > 0.85  # measured: 0.896 / 0.893


def test_scorer_state_roundtrip_and_validation(trained):
    scorer = TaylorScorer(trained, "total")
    trained.zero_grad()
    x, y = synthetic_batches(1, 8, seed=2)[0]
    nn.functional.cross_entropy(trained(x), y).backward()
    scorer.accumulate()
    scorer.all_reduce()  # no process group: a no-op
    other = TaylorScorer(trained, "total")
    other.load_state_dict(scorer.state_dict())
    assert other.batches == 1 and all(torch.equal(other.scores()[k], v) for k, v in scorer.scores().items())
    with pytest.raises(ValueError, match="reduction"):
        TaylorScorer(trained, "per_batch").load_state_dict(scorer.state_dict())
    with pytest.raises(ValueError, match="reduction must be one of"):
        TaylorScorer(trained, "sum")
