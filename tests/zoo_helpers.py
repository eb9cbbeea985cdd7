"""Helpers shared by the zoo tests: small random pruned models and raw uploads to the test Hub."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Optional

import torch

import gdzoo
from gdzoo.models import default_widths


def narrow_widths(arch: str, seed: int, cap: int = 8) -> dict:
    """``arch``'s widths spec with every width replaced by a random value in [1, cap]."""
    rng = random.Random(seed)

    def shrink(w):
        if isinstance(w, dict):
            return {k: shrink(v) for k, v in w.items()}
        if isinstance(w, list):
            return [shrink(v) for v in w]
        return rng.randint(1, min(cap, w))

    return shrink(default_widths(arch))


def pruned_model(arch: str = "cifar_resnet56", seed: int = 0, num_classes: Optional[int] = None):
    torch.manual_seed(seed)
    model = gdzoo.create_model(arch, widths=narrow_widths(arch, seed), num_classes=num_classes)
    for m in model.modules():  # non-trivial BN statistics, so a round trip really compares them
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.num_batches_tracked.fill_(seed + 7)
    return model


def export(model, out: Path, name: str = "test-variant", dataset: Optional[str] = None) -> Path:
    from gdzoo.zoo import export_model

    dataset = dataset or ("cifar10" if model.arch.startswith("cifar") else "imagenet-1k")
    return export_model(model, out, name=name, dataset=dataset,
                        metrics={"top1": 12.5, "eval_notes": "random weights: a test fixture, not a measurement"},
                        provenance={"test": True}, reproduce="gdzoo reproduce resnet56-70 --preset smoke")


def push_files(repo_id: str, files: dict[str, bytes], revision: Optional[str] = None, token=None) -> str:
    """Commit raw ``files`` to ``repo_id`` with the unmodified client; returns the commit sha."""
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, exist_ok=True)
    ops = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=data) for p, data in files.items()]
    return api.create_commit(repo_id, operations=ops, commit_message="test files", revision=revision).oid


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)
