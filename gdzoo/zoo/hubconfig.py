"""The ``config.json`` of an exported model: what it holds, and checking it before any weights are read.

One schema (``format_version``) shared by :func:`gdzoo.zoo.export_model`, :func:`gdzoo.load` and
``gdzoo info``, so the three never disagree about what a published folder means.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..models import list_archs

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
FORMAT_VERSION = 1
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".ckp", ".pkl", ".pickle")

_REQUIRED = {"arch": str, "widths": dict, "num_classes": int, "input_size": list, "mean": list, "std": list}


class ConfigError(ValueError):
    """A config.json that gdzoo cannot build a model from."""


def validate_config(cfg: Any, source: str) -> dict:
    """Return ``cfg`` if it can rebuild a model; raise :class:`ConfigError` naming ``source`` otherwise."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"{source}: config.json must hold a JSON object, got {type(cfg).__name__}")
    if cfg.get("format") != "gdzoo":
        raise ConfigError(f"{source}: config.json is not a gdzoo config (no \"format\": \"gdzoo\"); "
                          "export models with gdzoo.zoo.export_model")
    version = cfg.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ConfigError(f"{source}: config format_version {version!r} is newer than this gdzoo reads "
                          f"({FORMAT_VERSION}); upgrade gdzoo")
    for key, kind in _REQUIRED.items():
        if not isinstance(cfg.get(key), kind) or isinstance(cfg.get(key), bool):
            raise ConfigError(f"{source}: config.json field {key!r} must be a {kind.__name__}, "
                              f"got {cfg.get(key)!r}")
    if cfg["arch"] not in list_archs():
        raise ConfigError(f"{source}: unknown arch {cfg['arch']!r} in config.json; this gdzoo knows "
                          f"{', '.join(list_archs())} (a newer gdzoo may be needed)")
    if len(cfg["input_size"]) != 3 or len(cfg["mean"]) != len(cfg["std"]):
        raise ConfigError(f"{source}: input_size must be [C, H, W] and mean/std of equal length")
    labels = cfg.get("label_names")
    if labels is not None and len(labels) != cfg["num_classes"]:
        raise ConfigError(f"{source}: {len(labels)} label_names for num_classes={cfg['num_classes']}")
    return cfg


def read_config(path: Path, source: str) -> dict:
    """Parse and validate a config.json file."""
    try:
        cfg = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{source}: cannot read config.json ({e})") from e
    return validate_config(cfg, source)


def pretrained_cfg(cfg: dict, source: str) -> dict:
    """timm-style ``pretrained_cfg`` (preprocessing, labels, origin) for a model built from ``cfg``."""
    out = {
        "architecture": cfg["arch"],
        "input_size": tuple(cfg["input_size"]),
        "mean": tuple(cfg["mean"]),
        "std": tuple(cfg["std"]),
        "num_classes": cfg["num_classes"],
        "label_names": tuple(cfg["label_names"]) if cfg.get("label_names") else None,
        "first_conv": "conv1",
        "classifier": "fc",
        "source": source,
    }
    for key in ("interpolation", "crop_pct", "license"):
        if cfg.get(key) is not None:
            out[key] = cfg[key]
    return out
