"""The CIFAR VGG-16 of the Gate Decorator paper: 13 conv-BN-ReLU layers, 5 max-pools, one linear.

Widths spec (JSON): ``{"convs": [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]}``.
"""
from __future__ import annotations

import torch
from torch import nn

from ._backbone import Backbone
from ._widths import check_keys, check_list, check_width

_CONVS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
_POOL_AFTER = {1, 3, 6, 9, 12}  # conv indices followed by a 2x2 max-pool


def default_widths(arch: str) -> dict:
    return {"convs": list(_CONVS)}


def validate_widths(arch: str, widths: dict) -> None:
    check_keys(widths, ["convs"], arch)
    check_list(widths["convs"], len(_CONVS), '["convs"]')
    for i, w in enumerate(widths["convs"]):
        check_width(w, f'["convs"][{i}]')


class CifarVGG(Backbone):
    def __init__(self, arch: str, widths: dict, num_classes: int = 10) -> None:
        super().__init__()
        validate_widths(arch, widths)
        self.arch, self._widths, self.num_classes = arch, widths, num_classes
        layers: list[nn.Module] = []
        self.feature_info = []
        in_planes, reduction = 3, 1
        for i, planes in enumerate(widths["convs"]):
            layers += [nn.Conv2d(in_planes, planes, 3, padding=1, bias=False), nn.BatchNorm2d(planes),
                       nn.ReLU(inplace=True)]
            if i in _POOL_AFTER:
                self.feature_info.append(dict(num_chs=planes, reduction=reduction,
                                              module=f"features.{len(layers) - 1}"))
                layers.append(nn.MaxPool2d(2))
                reduction *= 2
            in_planes = planes
        self.features = nn.Sequential(*layers)
        self._build_head(in_planes, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
