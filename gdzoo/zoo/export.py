"""Write a model as a publishable folder: config.json + model.safetensors + README.md, atomically."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from safetensors.torch import save_file
from torch import nn

from .. import __version__
from ..flops import count_flops
from ..models import create_model, default_widths, is_gdzoo_model
from .card import render_card
from .datasets import DATASETS, get_dataset
from .hubconfig import CARD_NAME, CONFIG_NAME, FORMAT_VERSION, WEIGHTS_NAME, validate_config

_METRIC_KEYS = {"top1", "top5", "eval_split", "eval_notes", "macs", "params"}


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export_model(
    model: nn.Module,
    out_dir: str | os.PathLike,
    *,
    name: str,
    dataset: str,
    metrics: dict[str, Any],
    provenance: dict[str, Any],
    reproduce: Optional[str] = None,
    base_model: Optional[str] = None,
    baseline: Optional[dict[str, Any]] = None,
    label_names: Optional[Sequence[str]] = None,
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
    input_size: Optional[Sequence[int]] = None,
    license: str = "apache-2.0",
    summary: Optional[str] = None,
    repo_id: Optional[str] = None,
    overwrite: bool = False,
) -> Path:
    """Export ``model`` to ``out_dir`` in the zoo's on-Hub format and return ``out_dir``.

    The folder holds ``config.json`` (arch, widths, num_classes, input_size, mean/std, label_names,
    metrics, provenance, gdzoo version, sha256 of the weights), ``model.safetensors`` (the state dict)
    and ``README.md`` (model card rendered from ``hub_cards/model_card.md``). It is written into a
    temporary sibling folder and renamed into place, so ``out_dir`` either does not exist or is complete.

    Args:
        model: a gdzoo model (``gdzoo.create_model``/``gdzoo.load``), i.e. one with ``arch`` and
            ``widths``; its weights are saved as they are (call ``.eval()``/melt first yourself).
        out_dir: destination folder. Must not exist unless ``overwrite=True`` (then it is replaced
            atomically: the old folder is only removed once the new one is in place).
        name: variant name, e.g. ``"resnet50-gbn60"`` (a zoo entry name or your own).
        dataset: ``"cifar10"`` or ``"imagenet-1k"`` (gives defaults for mean/std/input_size/labels),
            or another name together with explicit ``mean``, ``std``, ``input_size``, ``label_names``.
        metrics: measured numbers: ``top1`` and optional ``top5`` (percent, on ``eval_split``),
            ``eval_split`` and ``eval_notes`` (one sentence: how accuracy was measured — data,
            preprocessing, single crop...). ``macs``/``params`` are computed here with
            ``gdzoo.count_flops`` at ``input_size``; if you pass them they must agree.
        provenance: free JSON describing where the weights come from (recipe file, git commit,
            source checkpoint and its sha256, seed, date...). Stored verbatim in config.json and the card.
        reproduce: the shell command that regenerates these weights, e.g. ``"gdzoo reproduce gbn-60"``.
        base_model: Hub repo id of the model these weights were pruned/fine-tuned from (card metadata).
        baseline: ``{"name": str, "macs": int, "params": int}`` of the unpruned model, to record the
            reduction; default: ``arch`` at default widths when the model is pruned.
        label_names, mean, std, input_size: override the dataset's defaults.
        license: SPDX-like license id for the card. summary: one paragraph for the card.
        repo_id: Hub repo the card's usage snippet names (``gdzoo push`` re-renders it anyway).
        overwrite: replace an existing ``out_dir``.

    Raises:
        ValueError: not a gdzoo model, unknown dataset without explicit preprocessing, unknown metric
            keys, or MACs/params that disagree with the model. FileExistsError: ``out_dir`` exists.
    """
    if not is_gdzoo_model(model):
        raise ValueError("export_model needs a gdzoo model (built by gdzoo.create_model or gdzoo.load), "
                         f"got {type(model).__name__}; it must carry .arch and .widths")
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True to replace it")
    unknown = set(metrics) - _METRIC_KEYS
    if unknown:
        raise ValueError(f"unknown metrics key(s) {sorted(unknown)}; allowed: {sorted(_METRIC_KEYS)}")
    if dataset in DATASETS:
        ds = get_dataset(dataset)
        label_names = list(label_names) if label_names is not None else (
            ds.label_names() if model.num_classes == ds.num_classes else None)
        mean, std = mean or ds.mean, std or ds.std
        input_size = input_size or ds.input_size
        interpolation, crop_pct = ds.interpolation, ds.crop_pct
    elif mean is None or std is None or input_size is None:
        raise ValueError(f"dataset {dataset!r} has no defaults; pass mean, std and input_size "
                         f"(known datasets: {', '.join(DATASETS)})")
    else:
        interpolation, crop_pct = None, None

    macs, params = count_flops(model, input_size)
    for key, value in (("macs", macs), ("params", params)):
        if key in metrics and metrics[key] != value:
            raise ValueError(f"metrics[{key!r}]={metrics[key]} but the model has {value} {key} at "
                             f"input_size {tuple(input_size)}; drop it to let export_model count it")
    widths = model.widths
    pruned = widths != default_widths(model.arch)
    if baseline is None and pruned:
        with torch.device("meta"):
            ref = create_model(model.arch, num_classes=model.num_classes)
        base_macs, base_params = count_flops(ref, input_size)
        baseline = {"name": f"{model.arch} (default widths)", "macs": base_macs, "params": base_params}

    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    cfg: dict[str, Any] = {
        "format": "gdzoo",
        "format_version": FORMAT_VERSION,
        "name": name,
        "arch": model.arch,
        "widths": widths,
        "pruned": pruned,
        "num_classes": model.num_classes,
        "dataset": dataset,
        "input_size": list(input_size),
        "mean": list(mean),
        "std": list(std),
        "interpolation": interpolation,
        "crop_pct": crop_pct,
        "label_names": list(label_names) if label_names is not None else None,
        "metrics": {**metrics, "macs": macs, "params": params},
        "reduction": ({"baseline": baseline["name"], "macs": 1 - macs / baseline["macs"],
                       "params": 1 - params / baseline["params"]} if baseline else None),
        "provenance": provenance,
        "reproduce": reproduce,
        "base_model": base_model,
        "license": license,
        "summary": summary,
        "gdzoo_version": __version__,
    }
    json.dumps(cfg)  # fail before touching the disk if provenance is not JSON
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "gdzoo_arch": model.arch})
        cfg["weights"] = {"file": WEIGHTS_NAME, "sha256": sha256_file(tmp / WEIGHTS_NAME)}
        validate_config(cfg, str(out))
        (tmp / CONFIG_NAME).write_text(json.dumps(cfg, indent=2) + "\n")
        render_card(cfg, repo_id).save(tmp / CARD_NAME)
        _replace_dir(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _replace_dir(src: Path, dst: Path, overwrite: bool) -> None:
    """Rename ``src`` to ``dst``; an existing ``dst`` (only with ``overwrite``) is moved aside first."""
    for f in src.iterdir():  # flush file contents before the rename makes them visible
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if not dst.exists():
        os.rename(src, dst)
        return
    if not overwrite:
        raise FileExistsError(f"{dst} appeared while exporting; pass overwrite=True to replace it")
    old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old-", dir=dst.parent))
    os.rename(dst, old / dst.name)
    os.rename(src, dst)
    shutil.rmtree(old, ignore_errors=True)
