"""ImageNet ResNets whose every prunable width is an argument.

At default widths parameter names and shapes equal torchvision's ``resnet.py``, so torchvision
weights load with ``strict=True``. Widths spec (JSON):

* Bottleneck archs (resnet50/101/152)::

      {"stem": 64, "stages": [256, 512, 1024, 2048],
       "blocks": [[[64, 64], [64, 64], [64, 64]], ...]}   # per block: [conv1 width, conv2 width]

* BasicBlock archs (resnet18/34); the stem feeds stage 1 through identity shortcuts, so it is
  tied to ``stages[0]`` and has no entry::

      {"stages": [64, 128, 256, 512], "blocks": [[64, 64], [128, 128], ...]}  # per block: conv1 width

``stages[i]`` is the residual width of stage i, shared by its shortcut and every block's last conv,
since residual additions tie them.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ._backbone import Backbone
from ._widths import check_keys, check_list, check_width


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


def projection(in_planes: int, out_planes: int, stride: int) -> nn.Sequential:
    """Option-B shortcut: 1x1 conv + BN."""
    return nn.Sequential(conv1x1(in_planes, out_planes, stride), nn.BatchNorm2d(out_planes))


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, width: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_planes, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(width, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    def __init__(self, in_planes: int, width1: int, width2: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(in_planes, width1)
        self.bn1 = nn.BatchNorm2d(width1)
        self.conv2 = conv3x3(width1, width2, stride)
        self.bn2 = nn.BatchNorm2d(width2)
        self.conv3 = conv1x1(width2, planes)
        self.bn3 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


_LAYERS = {
    "resnet18": ("basic", [2, 2, 2, 2]),
    "resnet34": ("basic", [3, 4, 6, 3]),
    "resnet50": ("bottleneck", [3, 4, 6, 3]),
    "resnet101": ("bottleneck", [3, 4, 23, 3]),
    "resnet152": ("bottleneck", [3, 8, 36, 3]),
}
_BASE = [64, 128, 256, 512]


def default_widths(arch: str) -> dict:
    kind, layers = _LAYERS[arch]
    if kind == "basic":
        return {"stages": list(_BASE), "blocks": [[w] * n for w, n in zip(_BASE, layers)]}
    return {"stem": 64, "stages": [4 * w for w in _BASE],
            "blocks": [[[w, w] for _ in range(n)] for w, n in zip(_BASE, layers)]}


def validate_widths(arch: str, widths: dict) -> None:
    kind, layers = _LAYERS[arch]
    keys = ["stages", "blocks"] if kind == "basic" else ["stem", "stages", "blocks"]
    check_keys(widths, keys, arch)
    if kind == "bottleneck":
        check_width(widths["stem"], '["stem"]')
    check_list(widths["stages"], 4, '["stages"]')
    for i, w in enumerate(widths["stages"]):
        check_width(w, f'["stages"][{i}]')
    check_list(widths["blocks"], 4, '["blocks"]')
    for i, (stage, n) in enumerate(zip(widths["blocks"], layers)):
        check_list(stage, n, f'["blocks"][{i}]')
        for j, block in enumerate(stage):
            where = f'["blocks"][{i}][{j}]'
            if kind == "basic":
                check_width(block, where)
            else:
                check_list(block, 2, where)
                for k, w in enumerate(block):
                    check_width(w, f"{where}[{k}]")


class ResNet(Backbone):
    """torchvision's ResNet (v1.5: stride on the 3x3 conv) with free per-layer widths."""

    def __init__(self, arch: str, widths: dict, num_classes: int = 1000) -> None:
        super().__init__()
        validate_widths(arch, widths)
        kind, layers = _LAYERS[arch]
        default = default_widths(arch)["stages"]
        self.arch, self._widths, self.num_classes = arch, widths, num_classes
        stem = widths["stem"] if kind == "bottleneck" else widths["stages"][0]
        self.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_planes, default_in = stem, 64
        self.feature_info = [dict(num_chs=stem, reduction=2, module="relu")]
        for i, (planes, stage_blocks) in enumerate(zip(widths["stages"], widths["blocks"])):
            stride = 1 if i == 0 else 2
            blocks = []
            for j, block_widths in enumerate(stage_blocks):
                s = stride if j == 0 else 1
                downsample = None
                if j == 0 and (s != 1 or default_in != default[i]):
                    downsample = projection(in_planes, planes, s)
                if kind == "basic":
                    blocks.append(BasicBlock(in_planes, block_widths, planes, s, downsample))
                else:
                    blocks.append(Bottleneck(in_planes, *block_widths, planes, s, downsample))
                in_planes = planes
            default_in = default[i]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            self.feature_info.append(dict(num_chs=planes, reduction=4 * 2**i, module=f"layer{i + 1}"))
        self._build_head(in_planes, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))
