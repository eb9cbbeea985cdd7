"""Architectures whose every prunable width is an argument, and ``create_model`` to build them."""
from __future__ import annotations

import copy
import difflib
from typing import Callable, Optional

from torch import nn

from . import cifar_resnet, resnet, vgg
from ._backbone import Backbone


class _Arch:
    def __init__(self, module, cls: Callable[..., Backbone], num_classes: int, input_size: tuple) -> None:
        self.module, self.cls, self.num_classes, self.input_size = module, cls, num_classes, input_size


_ARCHS: dict[str, _Arch] = {}
for _depth in cifar_resnet.DEPTHS:
    _ARCHS[f"cifar_resnet{_depth}"] = _Arch(cifar_resnet, cifar_resnet.CifarResNet, 10, (3, 32, 32))
for _name in resnet._LAYERS:
    _ARCHS[_name] = _Arch(resnet, resnet.ResNet, 1000, (3, 224, 224))
_ARCHS["cifar_vgg16"] = _Arch(vgg, vgg.CifarVGG, 10, (3, 32, 32))


def list_archs() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return sorted(_ARCHS)


def _lookup(arch: str) -> _Arch:
    if arch not in _ARCHS:
        close = difflib.get_close_matches(str(arch), _ARCHS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown arch {arch!r}.{hint} Known archs: {', '.join(list_archs())}")
    return _ARCHS[arch]


def default_widths(arch: str) -> dict:
    """The unpruned widths spec of ``arch``."""
    return _lookup(arch).module.default_widths(arch)


def default_input_size(arch: str) -> tuple:
    """(C, H, W) the architecture is designed for: 32x32 for CIFAR models, 224x224 for ImageNet."""
    return _lookup(arch).input_size


def create_model(arch: str, widths: Optional[dict] = None, num_classes: Optional[int] = None) -> Backbone:
    """Build ``arch`` with ``widths`` (default: unpruned) and ``num_classes`` (default: its dataset's).

    Raises ValueError naming the offending entry for an unknown arch or an invalid widths spec.
    """
    spec = _lookup(arch)
    widths = default_widths(arch) if widths is None else copy.deepcopy(widths)
    return spec.cls(arch, widths, spec.num_classes if num_classes is None else num_classes)


def is_gdzoo_model(model: nn.Module) -> bool:
    """True when ``model`` can be rebuilt with ``create_model(model.arch, widths=model.widths)``."""
    return isinstance(model, Backbone) and getattr(model, "arch", None) in _ARCHS


__all__ = ["Backbone", "create_model", "default_input_size", "default_widths", "is_gdzoo_model", "list_archs"]
