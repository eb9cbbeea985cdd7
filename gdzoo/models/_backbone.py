"""timm-style backbone API shared by every gdzoo architecture."""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class Backbone(nn.Module):
    """Base class: ``forward_features`` -> ``forward_head``, a resettable ``fc`` head and ``widths``.

    Subclasses set ``arch``, ``_widths`` and ``feature_info``, build their layers, call
    ``_build_head``, and implement ``forward_features``.
    """

    arch: str
    num_classes: int
    num_features: int
    feature_info: list[dict[str, Any]]
    _widths: dict

    def _build_head(self, num_features: int, num_classes: int) -> None:
        """Global pooling + linear head, then torchvision's initialisation of every layer."""
        self.num_features = num_features
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(num_features, num_classes) if num_classes else nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def widths(self) -> dict:
        """The widths spec that rebuilds this model's shapes with ``create_model(arch, widths=...)``."""
        return copy.deepcopy(self._widths)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head by a freshly initialised one (``num_classes=0`` gives an identity)."""
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes must be an int >= 0, got {num_classes!r}")
        self.num_classes = num_classes
        device = next(self.parameters()).device
        self.fc = nn.Linear(self.num_features, num_classes, device=device) if num_classes else nn.Identity()
