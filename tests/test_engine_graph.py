"""Channel graph: groups found by tracing, exact MACs, and refusals that name the layer."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from gdzoo import count_flops, create_model

from _engine_utils import one_thread  # noqa: F401
from gdzoo.engine import build_graph, decorate


def _groups(graph) -> dict[str, list[str]]:
    return {g.name: g.members for g in graph.groups}


def test_cifar_resnet56_groups():
    graph = build_graph(decorate(create_model("cifar_resnet56")), (3, 32, 32))
    multi = [g for g in graph.groups if len(g.members) > 1]
    assert [len(g.members) for g in multi] == [10, 10, 10]
    assert multi[0].members[:3] == ["bn1", "layer1.0.bn2", "layer1.1.bn2"]
    assert "layer2.0.downsample.1" in multi[1].members and "layer3.0.downsample.1" in multi[2].members
    singles = [g for g in graph.groups if len(g.members) == 1]
    assert len(singles) == 27 and all(g.name.endswith(".bn1") for g in singles)
    assert [g.units.size for g in multi] == [16, 32, 64]
    assert graph.num_units == 16 + 32 + 64 + 9 * (16 + 32 + 64)


def test_resnet50_groups_and_macs():
    model = decorate(create_model("resnet50"))
    graph = build_graph(model, (3, 32, 32))
    sizes = sorted(len(g.members) for g in graph.groups if len(g.members) > 1)
    assert sizes == [4, 4, 5, 7]
    assert _groups(graph)["bn1"] == ["bn1"]  # the stem feeds a projection, so it is free
    assert sum(len(g.members) == 1 for g in graph.groups) == 1 + 32
    assert graph.macs() == count_flops(model, (3, 32, 32))[0]


def test_torchvision_groups():
    r18 = build_graph(decorate(torchvision.models.resnet18()), (3, 32, 32))
    assert sorted(len(g.members) for g in r18.groups) == [1] * 8 + [3] * 4
    assert _groups(r18)["bn1"] == ["bn1", "layer1.0.bn2", "layer1.1.bn2"]
    vgg = build_graph(decorate(torchvision.models.vgg11_bn(num_classes=10)), (3, 32, 32))
    assert [len(g.members) for g in vgg.groups] == [1] * 8 and vgg.num_units == sum([64, 128, 256, 256] + [512] * 4)
    mb = build_graph(decorate(torchvision.models.mobilenet_v2(num_classes=10)), (3, 32, 32))
    groups = _groups(mb)
    assert groups["features.0.1"] == ["features.0.1", "features.1.conv.0.1"]       # stem tied to depthwise
    assert groups["features.2.conv.0.1"] == ["features.2.conv.0.1", "features.2.conv.1.1"]  # expand == dw
    assert groups["features.2.conv.3"] == ["features.2.conv.3", "features.3.conv.3"]  # inverted residual
    assert groups["features.4.conv.3"] == ["features.4.conv.3", "features.5.conv.3", "features.6.conv.3"]
    assert len(mb.groups) == 25


def test_unit_costs_are_marginal_macs():
    graph = build_graph(decorate(create_model("cifar_resnet20")), (3, 32, 32))
    alive = np.ones(graph.num_units, dtype=bool)
    alive[::3] = False
    costs = graph.unit_costs(alive)
    for u in np.flatnonzero(alive)[::37]:
        trial = alive.copy()
        trial[u] = False
        assert costs[u] == graph.macs(alive) - graph.macs(trial)


class _InputResidual(nn.Module):
    """``x + bn(conv(x))``: its channels are the model input's, so nothing may be pruned."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)
        self.conv2, self.bn2, self.raw = nn.Conv2d(3, 5, 1), nn.BatchNorm2d(5), nn.Conv2d(3, 5, 1)
        self.head = nn.Conv2d(5, 2, 1)

    def forward(self, x):
        y = x + self.bn(self.conv(x))
        return self.head(self.bn2(self.conv2(y)) + self.raw(y))  # ``raw`` is never zeroed by a mask


def test_input_and_unmasked_channels_are_not_prunable():
    graph = build_graph(decorate(_InputResidual()), (3, 8, 8))
    assert graph.num_units == 0
    assert all(u.size == 0 for u in (g.units for g in graph.groups))


class _Roll(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)

    def forward(self, x):
        return torch.roll(self.bn(self.conv(x)), 1, dims=1)


@pytest.mark.parametrize("model, size, message", [
    (lambda: torchvision.models.resnext50_32x4d(), (3, 32, 32),
     r"layer 'layer1.0.conv2': grouped convolution \(groups=32"),
    (lambda: torchvision.models.shufflenet_v2_x0_5(), (3, 32, 32), r"node 'view' .*reshape .* mixes channels"),
    (lambda: _Roll(), (3, 8, 8), r"node 'roll' \(call_function roll\) touches channels"),
])
def test_unsupported_models_are_refused_with_the_layer_named(model, size, message):
    with pytest.raises(ValueError, match=message):
        build_graph(decorate(model()), size)
