"""gdzoo: CNNs pruned with Gate Decorator, the pruning engine, and Hub publishing."""
from typing import Any, Optional

from torch import nn

from .flops import count_flops
from .models import default_widths, list_archs
from .models import create_model as _create_arch

__version__ = "0.1.0"

from . import zoo  # noqa: E402  (the zoo reads __version__)
from .zoo import list_models, load  # noqa: E402


def create_model(name: str, pretrained: bool = False, num_classes: Optional[int] = None,
                 widths: Optional[dict] = None, **kwargs: Any) -> nn.Module:
    """timm-style entry point: an architecture name or a zoo model name.

    For an arch (``gdzoo.list_archs()``) this builds it with ``widths`` (default: unpruned). For a zoo
    name, ``hf-hub:`` id or export folder it calls :func:`gdzoo.load`: ``pretrained=True`` loads the
    weights, ``pretrained=False`` builds the (pruned) architecture with random weights; ``kwargs``
    (``features_only``, ``revision``, ``cache_dir``...) go to :func:`gdzoo.load`.
    """
    if name in list_archs() and not (pretrained and zoo.is_entry(name)):  # "resnet50" is both
        if pretrained:
            raise ValueError(f"{name!r} is a bare architecture and has no weights; pass a zoo model name "
                             f"(gdzoo.list_models()) or 'hf-hub:ORG/NAME' for pretrained weights")
        if kwargs:
            raise TypeError(f"unexpected argument(s) for architecture {name!r}: {sorted(kwargs)}")
        return _create_arch(name, widths=widths, num_classes=num_classes)
    if widths is not None:
        raise ValueError(f"{name!r} is a zoo model with its own widths; pass widths only with an arch name")
    return load(name, pretrained=pretrained, num_classes=num_classes, **kwargs)


__all__ = ["count_flops", "create_model", "default_widths", "list_archs", "list_models", "load", "__version__"]
