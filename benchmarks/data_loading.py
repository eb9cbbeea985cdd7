"""Small-image input pipelines: torchvision ImageFolder + DataLoader vs gdzoo's TensorLoader.

Usage: python benchmarks/data_loading.py DATA_ROOT [--batches 100] [--workers 2] [--threads 2]

DATA_ROOT is an ImageFolder tree with ``train/<class>/<image>`` (e.g. the CIFAR-10 JPEG folder).
Both pipelines produce the same thing: normalised float batches of 128 with random crop (padding
4) and horizontal flip. Prints one table row per pipeline (images/s of the loader alone) and the
one-off decode time of the tensor path.
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from gdzoo import data


def time_batches(batches, n: int) -> float:
    """Images per second over ``n`` batches after one warm-up batch."""
    iterator = iter(batches)
    next(iterator)
    seen, start = 0, time.perf_counter()
    for _ in range(n):
        images, _ = next(iterator)
        seen += images.shape[0]
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root")
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    transform = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                    transforms.ToTensor(), transforms.Normalize(data.CIFAR10_MEAN, data.CIFAR10_STD)])
    folder = datasets.ImageFolder(f"{args.root}/train", transform=transform)
    loader = DataLoader(folder, batch_size=128, shuffle=True, num_workers=args.workers, drop_last=True,
                        persistent_workers=args.workers > 0)
    dataloader_rate = time_batches(loader, args.batches)

    start = time.perf_counter()
    train, val = data.load_small_image_folder(args.root, desc=None)
    decode_s = time.perf_counter() - start
    tensors = data.TensorLoader(train, 128, train=True, mean=data.CIFAR10_MEAN, std=data.CIFAR10_STD)
    tensor_rate = time_batches(tensors.epoch(0), args.batches)

    print("| pipeline | images/s (loader alone) | one-off cost |")
    print("| --- | --- | --- |")
    print(f"| ImageFolder + DataLoader ({args.workers} workers, PIL transforms) | {dataloader_rate:,.0f} | - |")
    print(f"| gdzoo TensorLoader (uint8 tensor, augmented in torch) | {tensor_rate:,.0f} | "
          f"decode {len(train.labels) + len(val.labels):,} images once: {decode_s:.1f} s |")


if __name__ == "__main__":
    main()
