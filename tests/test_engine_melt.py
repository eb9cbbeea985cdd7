"""Melt exactness: the melted model computes what the gated, masked model computed."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from gdzoo import count_flops, create_model
from gdzoo.engine import GatedBatchNorm2d, build_graph, decorate, melt, select_pruned, widths_from_masks
from gdzoo.models import is_gdzoo_model

from _engine_utils import randomize_bn, one_thread  # noqa: F401


def _tv_vgg16_bn() -> nn.Module:
    model = torchvision.models.vgg16_bn(num_classes=10)
    # Keep the 7x7 adaptive pool (each channel feeds 49 classifier columns), shrink the hidden width.
    model.classifier = nn.Sequential(nn.Linear(512 * 49, 64), nn.ReLU(True), nn.Dropout(), nn.Linear(64, 10))
    return model


CASES = {
    "cifar_resnet20": (lambda: create_model("cifar_resnet20"), (3, 32, 32)),
    "resnet18": (lambda: create_model("resnet18", num_classes=10), (3, 32, 32)),
    "resnet50": (lambda: create_model("resnet50", num_classes=10), (3, 32, 32)),
    "cifar_vgg16": (lambda: create_model("cifar_vgg16"), (3, 32, 32)),
    "tv_resnet18": (lambda: torchvision.models.resnet18(num_classes=10), (3, 32, 32)),
    "tv_resnet50": (lambda: torchvision.models.resnet50(num_classes=10), (3, 32, 32)),
    "tv_vgg16_bn": (_tv_vgg16_bn, (3, 32, 32)),
    "tv_mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(num_classes=10), (3, 32, 32)),
}


def _check_melt(model: nn.Module, graph, size, x: torch.Tensor) -> nn.Module:
    alive = graph.alive()
    with torch.no_grad():
        expected = model(x)
    macs, params = graph.macs(alive), graph.params(alive)
    widths = widths_from_masks(model, graph) if is_gdzoo_model(model) else None
    melted = melt(model, graph).eval()
    assert not any(isinstance(m, GatedBatchNorm2d) for m in melted.modules())
    with torch.no_grad():
        got = melted(x)
    scale = expected.abs().max().item()
    assert (got - expected).abs().max().item() <= 1e-5 * scale
    assert count_flops(melted, size) == (macs, params)
    if widths is not None:
        assert melted.widths == widths
    return melted


@pytest.mark.parametrize("name", list(CASES))
def test_melt_is_exact_with_random_masks(name):
    make, size = CASES[name]
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = decorate(randomize_bn(make())).eval()
    with torch.no_grad():
        for _, m in model.named_modules():
            if isinstance(m, GatedBatchNorm2d):
                m.gate.mul_(torch.rand(m.num_features) + 0.5)
    graph = build_graph(model, size)
    full_macs = graph.macs()
    # Residual (multi-BN) groups and every other group cut to their 10% minimum, the rest random.
    alive = rng.random(graph.num_units) < 0.5
    for i, group in enumerate(graph.groups):
        keep = max(1, int(np.ceil(0.1 * group.units.size)))
        if len(group.members) > 1 or i % 2 == 0:
            alive[group.units] = False
            alive[rng.choice(group.units, keep, replace=False)] = True
        elif not alive[group.units].any():
            alive[group.units[0]] = True
    graph.set_alive(alive)
    melted = _check_melt(model, graph, size, torch.randn(1, *size))
    assert graph.macs() < full_macs
    if name == "cifar_resnet20":  # group order: stem+stage 1, then inner/residual groups as traced
        assert melted.widths["stages"] == [2, 4, 7]
    if name == "resnet50":
        assert melted.widths["stages"] == [26, 52, 103, 205]


def test_melt_torchvision_is_in_place_and_gdzoo_is_rebuilt():
    tv = decorate(torchvision.models.resnet18(num_classes=10)).eval()
    graph = build_graph(tv, (3, 32, 32))
    graph.set_alive(select_pruned(graph, np.arange(graph.num_units, dtype=float), k=100))
    assert melt(tv, graph) is tv
    assert tv.layer1[0].conv1.out_channels + tv.layer1[1].conv1.out_channels < 128
    gz = decorate(create_model("cifar_resnet20"))
    out = melt(gz)
    assert out is not gz and type(out).__name__ == "CifarResNet" and out.widths == create_model("cifar_resnet20").widths
    assert any(isinstance(m, GatedBatchNorm2d) for m in gz.modules())


def test_melt_refuses_inconsistent_masks():
    model = decorate(create_model("cifar_resnet20"))
    model.layer1[0].bn2.mask[3] = 0  # its residual partners still say "alive"
    with pytest.raises(ValueError, match="masks disagree"):
        melt(model)
