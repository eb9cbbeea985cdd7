"""CIFAR ResNets (He et al. 2016, section 4.2) with option-B shortcuts and free widths.

Three stages of BasicBlocks at widths 16/32/64 after a 3x3 stem; a 1x1 conv + BN shortcut where
the shape changes (first block of stages 2 and 3), as in the Gate Decorator authors' checkpoints.
Widths spec (JSON)::

    {"stages": [16, 32, 64],                 # residual width of each stage (the stem feeds stage 1)
     "blocks": [[16] * n, [32] * n, [64] * n]}  # inner (conv1) width of every block

with ``n = (depth - 2) / 6`` blocks per stage.
"""
from __future__ import annotations

import torch
from torch import nn

from ._backbone import Backbone
from ._widths import check_keys, check_list, check_width
from .resnet import BasicBlock, conv3x3, projection

DEPTHS = (20, 32, 44, 56, 110)
_BASE = [16, 32, 64]


def blocks_per_stage(arch: str) -> int:
    return (int(arch.removeprefix("cifar_resnet")) - 2) // 6


def default_widths(arch: str) -> dict:
    n = blocks_per_stage(arch)
    return {"stages": list(_BASE), "blocks": [[w] * n for w in _BASE]}


def validate_widths(arch: str, widths: dict) -> None:
    n = blocks_per_stage(arch)
    check_keys(widths, ["stages", "blocks"], arch)
    check_list(widths["stages"], 3, '["stages"]')
    for i, w in enumerate(widths["stages"]):
        check_width(w, f'["stages"][{i}]')
    check_list(widths["blocks"], 3, '["blocks"]')
    for i, stage in enumerate(widths["blocks"]):
        check_list(stage, n, f'["blocks"][{i}]')
        for j, w in enumerate(stage):
            check_width(w, f'["blocks"][{i}][{j}]')


class CifarResNet(Backbone):
    def __init__(self, arch: str, widths: dict, num_classes: int = 10) -> None:
        super().__init__()
        validate_widths(arch, widths)
        self.arch, self._widths, self.num_classes = arch, widths, num_classes
        stem = widths["stages"][0]
        self.conv1 = conv3x3(3, stem)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.feature_info = [dict(num_chs=stem, reduction=1, module="relu")]
        in_planes = stem
        for i, (planes, inner) in enumerate(zip(widths["stages"], widths["blocks"])):
            stride = 1 if i == 0 else 2
            blocks = []
            for j, width in enumerate(inner):
                s = stride if j == 0 else 1
                downsample = projection(in_planes, planes, s) if s != 1 else None
                blocks.append(BasicBlock(in_planes, width, planes, s, downsample))
                in_planes = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            self.feature_info.append(dict(num_chs=planes, reduction=2**i, module=f"layer{i + 1}"))
        self._build_head(in_planes, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))
