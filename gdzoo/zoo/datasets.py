"""Preprocessing and label names of the datasets the zoo is trained on, so configs are self-describing."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class DatasetInfo:
    """What a model trained on a dataset needs at inference time, and how the Hub names that dataset."""

    name: str
    hub_id: str  # Hub dataset id for the card's ``datasets:`` metadata
    pretty: str
    num_classes: int
    input_size: tuple[int, int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str
    crop_pct: float
    eval_split: str

    def label_names(self) -> list[str]:
        return list(_label_names(self.name))


CIFAR10_LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo("cifar10", "uoft-cs/cifar10", "CIFAR-10", 10, (3, 32, 32),
                           (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), "bilinear", 1.0, "test"),
    "imagenet-1k": DatasetInfo("imagenet-1k", "ILSVRC/imagenet-1k", "ImageNet-1k", 1000, (3, 224, 224),
                               (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "bilinear", 0.875, "validation"),
}


@lru_cache(maxsize=None)
def _label_names(name: str) -> tuple[str, ...]:
    if name == "cifar10":
        return CIFAR10_LABELS
    # timm ships the ImageNet-1k class descriptions offline; reuse them rather than vendoring 1000 names.
    from timm.data import ImageNetInfo

    return tuple(ImageNetInfo().label_descriptions(as_dict=False))


def get_dataset(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name``; ValueError listing the known ones otherwise."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}. "
                         "Pass mean/std/input_size/label_names explicitly for another dataset.")
    return DATASETS[name]
