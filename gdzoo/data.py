"""Datasets for recipes: small-image folders kept as uint8 tensors on the device, ImageNet
folders through torchvision, and synthetic data.

Every loader exposes ``epoch(index)`` returning that epoch's batches in an order fixed by
``(seed, index)``, so a resumed run sees exactly the data an uninterrupted one would, and
``world_size`` ranks each take a contiguous slice of every global batch (the same samples a
single process would see with the same global batch size).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.247, 0.243, 0.261)  # the Gate Decorator authors' normalisation
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class DataError(ValueError):
    """A data folder that is missing or malformed; the message says what to fix."""


@dataclass
class ImageTensors:
    """Decoded images (uint8, N x C x H x W), integer labels and class names."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]


def _class_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist; pass --data pointing to an extracted "
                        f"ImageFolder tree (<root>/train/<class>/<image>)")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if not folders:
        raise DataError(f"data folder {root} has no class sub-folders; expected <class>/<image> "
                        f"files (ImageFolder layout)")
    return folders


def list_image_folder(root: str | os.PathLike) -> tuple[list[Path], list[int], list[str]]:
    """Files, labels and class names of an ImageFolder tree, classes and files sorted by name."""
    folders = _class_folders(Path(root))
    files, labels = [], []
    for label, folder in enumerate(folders):
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise DataError(f"class folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        files += images
        labels += [label] * len(images)
    return files, labels, [f.name for f in folders]


def holdout_last_per_class(labels: Sequence[int], per_class: int) -> tuple[list[int], list[int]]:
    """Split indices: the last ``per_class`` files of each class (by name) are validation.

    This is the split fixed for the CIFAR-10 JPEG folder: 4500.jpg ... 4999.jpg of each class.
    """
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    train, val = [], []
    for label, indices in sorted(by_class.items()):
        if len(indices) <= per_class:
            raise DataError(f"class {label} has {len(indices)} images, too few to hold out {per_class} for validation")
        train += indices[:-per_class]
        val += indices[-per_class:]
    return train, val


def _read_rgb(path: Path) -> torch.Tensor:
    with Image.open(path) as image:
        array = np.array(image.convert("RGB"))
    return torch.from_numpy(array).permute(2, 0, 1)


def decode_images(files: Sequence[Path], desc: Optional[str] = None) -> torch.Tensor:
    """Decode equally sized RGB images into one uint8 N x 3 x H x W tensor."""
    from tqdm.auto import tqdm

    first = _read_rgb(files[0])
    out = torch.empty((len(files), *first.shape), dtype=torch.uint8)
    for i, path in enumerate(tqdm(files, desc=desc, disable=desc is None, leave=False)):
        image = _read_rgb(path)
        if image.shape != first.shape:
            raise DataError(f"{path} is {tuple(image.shape[1:])}, expected {tuple(first.shape[1:])}: "
                            f"the tensor fast path needs equally sized images")
        out[i] = image
    return out


def load_small_image_folder(root: str | os.PathLike, val_per_class: int = 500,
                            desc: Optional[str] = "decoding") -> tuple[ImageTensors, ImageTensors]:
    """Train/val tensors of a small-image ImageFolder tree (decoded once, kept as uint8).

    ``root`` may hold ``train/`` and ``val/`` folders, or only ``train/`` (or the class folders
    directly), in which case the last ``val_per_class`` files of each class are validation.
    """
    root = Path(root)
    if (root / "train").is_dir() and (root / "val").is_dir():
        parts = []
        for split in ("train", "val"):
            files, labels, classes = list_image_folder(root / split)
            parts.append(ImageTensors(decode_images(files, desc and f"{desc} {split}"), torch.tensor(labels), classes))
        if parts[0].classes != parts[1].classes:
            raise DataError(f"{root}/train and {root}/val have different class folders")
        return parts[0], parts[1]
    folder = root / "train" if (root / "train").is_dir() else root
    files, labels, classes = list_image_folder(folder)
    images = decode_images(files, desc)
    train_idx, val_idx = holdout_last_per_class(labels, val_per_class)
    labels_t = torch.tensor(labels)
    return (ImageTensors(images[train_idx], labels_t[train_idx], classes),
            ImageTensors(images[val_idx], labels_t[val_idx], classes))


def load_validation_split(root: str | os.PathLike, val_per_class: int = 500) -> ImageTensors:
    """Only the validation part of :func:`load_small_image_folder` (``val/``, or the last
    ``val_per_class`` files of each class), decoding nothing else."""
    root = Path(root)
    folder = root / "val" if (root / "val").is_dir() else root / "train" if (root / "train").is_dir() else root
    files, labels, classes = list_image_folder(folder)
    if folder.name != "val":
        _, indices = holdout_last_per_class(labels, val_per_class)
        files, labels = [files[i] for i in indices], [labels[i] for i in indices]
    return ImageTensors(decode_images(files), torch.tensor(labels), classes)


def load_cifar10(root: str | os.PathLike, download: bool = True) -> tuple[ImageTensors, ImageTensors]:
    """Original CIFAR-10 through torchvision (downloaded when online): 50k train, 10k test as val."""
    from torchvision.datasets import CIFAR10

    parts = []
    for train in (True, False):
        try:
            dataset = CIFAR10(str(root), train=train, download=download)
        except RuntimeError as error:
            raise DataError(f"CIFAR-10 is not in {root} and could not be downloaded ({error}); "
                            f"pass --data pointing to an ImageFolder copy instead") from error
        images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()
        parts.append(ImageTensors(images, torch.tensor(dataset.targets), list(dataset.classes)))
    return parts[0], parts[1]


def synthetic(num_classes: int, n_train: int, n_val: int, image_size: int = 32,
              seed: int = 0) -> tuple[ImageTensors, ImageTensors]:
    """Learnable synthetic images: a fixed random prototype per class plus noise."""
    g = torch.Generator().manual_seed(seed)
    prototypes = torch.rand((num_classes, 3, image_size, image_size), generator=g) * 255

    def draw(n: int) -> ImageTensors:
        labels = torch.arange(n) % num_classes
        noise = torch.randn((n, 3, image_size, image_size), generator=g) * 48
        images = (prototypes[labels] + noise).clamp(0, 255).to(torch.uint8)
        return ImageTensors(images, labels, [f"class_{i}" for i in range(num_classes)])

    return draw(n_train), draw(n_val)


def random_crop_flip(images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor,
                     padding: int) -> torch.Tensor:
    """Crop each image at ``offsets`` (2 x N, in [0, 2 * padding]) of its zero-padded copy, and
    mirror those where ``flips``; one gather on the images' device."""
    n, c, h, w = images.shape
    device = images.device
    offsets, flips = offsets.to(device), flips.to(device)
    padded = F.pad(images, (padding, padding, padding, padding))
    rows = (offsets[0, :, None] + torch.arange(h, device=device))[:, None, :, None]
    cols = offsets[1, :, None] + torch.arange(w, device=device)
    cols = torch.where(flips[:, None], cols.flip(1), cols)[:, None, None, :]
    batch = torch.arange(n, device=device)[:, None, None, None]
    channel = torch.arange(c, device=device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


class EpochBatches:
    """One epoch of a loader: iterable, with ``len()`` (the number of batches)."""

    def __init__(self, loader, index: int) -> None:
        self.loader, self.index = loader, index

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        return self.loader.iter_epoch(self.index)


class TensorLoader:
    """Batches of a uint8 image tensor kept on the training device, augmented there.

    Decoding once and augmenting on the device removes the per-sample Python and PIL work
    that dominates small-image training with a DataLoader.
    """

    def __init__(self, data: ImageTensors, batch_size: int, *, train: bool, mean: Sequence[float],
                 std: Sequence[float], device: torch.device | str = "cpu", seed: int = 0,
                 padding: int = 4, rank: int = 0, world_size: int = 1) -> None:
        if batch_size % world_size:
            raise ValueError(f"global batch size {batch_size} is not divisible by world size {world_size}")
        self.device = torch.device(device)
        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)
        self.classes = data.classes
        self.batch_size, self.train, self.seed, self.padding = batch_size, train, seed, padding
        self.rank, self.world_size = rank, world_size
        self.mean = torch.tensor(mean, device=self.device).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, device=self.device).view(1, -1, 1, 1) * 255

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.train else -(-n // self.batch_size)

    def epoch(self, index: int = 0) -> EpochBatches:
        """This rank's share of epoch ``index``: shuffled and augmented for training (dropping
        the last partial batch), in order for evaluation."""
        return EpochBatches(self, index)

    def iter_epoch(self, index: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.labels)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        order = torch.randperm(n, generator=g).to(self.device) if self.train else torch.arange(n, device=self.device)
        share = self.batch_size // self.world_size
        for b in range(len(self)):
            global_batch = order[b * self.batch_size:(b + 1) * self.batch_size]
            if self.train:
                # every rank draws the whole global batch's augmentation, so RNG streams stay equal
                offsets = torch.randint(0, 2 * self.padding + 1, (2, len(global_batch)), generator=g)
                flips = torch.rand(len(global_batch), generator=g) < 0.5
                local = slice(self.rank * share, (self.rank + 1) * share)
                picked = global_batch[local]
                images = random_crop_flip(self.images[picked], offsets[:, local], flips[local], self.padding)
                labels = self.labels[picked]
            else:
                local = global_batch[self.rank::self.world_size]
                images, labels = self.images[local], self.labels[local]
            yield (images.float() - self.mean) / self.std, labels


class FolderLoader:
    """ImageNet-style folder (``train/`` + ``val/``) through torchvision's ImageFolder and a
    DataLoader, with the standard RandomResizedCrop/flip training and resize/center-crop eval
    transforms; shuffling is fixed by ``(seed, epoch)`` and sharded across ranks."""

    def __init__(self, root: str | os.PathLike, split: str, batch_size: int, *, train: bool,
                 mean: Sequence[float], std: Sequence[float], image_size: int = 224, workers: int = 8,
                 seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        from torch.utils.data import DataLoader, DistributedSampler
        from torchvision import datasets, transforms

        folder = Path(root) / split
        list_image_folder(folder)  # clear errors for a missing or malformed tree
        if train:
            transform = transforms.Compose([transforms.RandomResizedCrop(image_size), transforms.RandomHorizontalFlip(),
                                            transforms.ToTensor(), transforms.Normalize(mean, std)])
        else:
            transform = transforms.Compose([transforms.Resize(int(image_size * 256 / 224)),
                                            transforms.CenterCrop(image_size), transforms.ToTensor(),
                                            transforms.Normalize(mean, std)])
        if batch_size % world_size:
            raise ValueError(f"global batch size {batch_size} is not divisible by world size {world_size}")
        self.dataset = datasets.ImageFolder(str(folder), transform=transform)
        self.classes = self.dataset.classes
        self.sampler = DistributedSampler(self.dataset, num_replicas=world_size, rank=rank, shuffle=train,
                                          seed=seed, drop_last=train)
        self.loader = DataLoader(self.dataset, batch_size=batch_size // world_size, sampler=self.sampler,
                                 num_workers=workers, pin_memory=torch.cuda.is_available(), drop_last=train,
                                 persistent_workers=workers > 0)

    def __len__(self) -> int:
        return len(self.loader)

    def epoch(self, index: int = 0) -> EpochBatches:
        return EpochBatches(self, index)

    def iter_epoch(self, index: int):
        self.sampler.set_epoch(index)
        return iter(self.loader)
