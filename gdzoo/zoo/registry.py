"""The zoo's named variants, read from one JSON file per entry under ``gdzoo/zoo/data/``.

Data, not code: ``data/entries/<name>.json`` says what a variant is and where its weights live;
``data/widths/<name>.json`` holds a pruned variant's widths once a pruning run has produced them;
``data/weights/<name>/`` holds an export folder shipped inside the package (small CIFAR models),
which loads offline with no download.
:func:`update_from_export` drops a run's export into both files, so publishing needs no code change.
Folders listed in ``GDZOO_REGISTRY`` (os.pathsep-separated, same layout) add or override entries:
an organisation's private zoo, or a test's.
"""
from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Optional

import torch

from ..flops import count_flops
from ..models import create_model, default_widths
from .datasets import get_dataset

PUBLISHED, BUNDLED, RECIPE_ONLY = "published", "in package", "recipe only"


class UnknownModelError(ValueError):
    """A name that is neither a zoo entry, an ``hf-hub:`` id nor an existing folder."""


def data_dir() -> Path:
    """Folder of the packaged registry data (entries/ and widths/)."""
    return Path(str(resources.files("gdzoo.zoo") / "data"))


@dataclass(frozen=True)
class ZooEntry:
    """One named variant. ``status`` is derived: published iff its Hub revision and sha256 are pinned."""

    name: str
    arch: str
    dataset: str
    widths: Optional[dict]  # None until a pruning run's widths are dropped in
    baseline: Optional[str]
    description: str
    repo_id: str
    revision: Optional[str]
    sha256: Optional[str]
    metrics: dict[str, Any]
    target: Optional[dict[str, Any]]
    recipe: dict[str, Any]
    license: str
    bundled: Optional[Path] = None  # export folder shipped in the package
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """published (pinned on the Hub) > in package (weights shipped) > recipe only."""
        if self.revision and self.sha256:
            return PUBLISHED
        return BUNDLED if self.bundled is not None and self.sha256 else RECIPE_ONLY

    @property
    def reproduce(self) -> Optional[str]:
        return self.recipe.get("command")

    def macs_params(self) -> Optional[tuple[int, int]]:
        """(MACs, params) counted from the architecture at its widths; None while widths are unknown."""
        return _count(self.arch, json.dumps(self.widths), self.dataset) if self.widths is not None else None


def _read_entry(path: Path, widths_dir: Path) -> ZooEntry:
    bundled = widths_dir.parent / "weights" / path.stem
    raw = json.loads(path.read_text())
    name = raw["name"]
    if name != path.stem:
        raise ValueError(f"{path}: entry name {name!r} must equal its file name {path.stem!r}")
    get_dataset(raw["dataset"])
    widths_file = widths_dir / f"{name}.json"
    if raw["widths"] == "default":
        widths = default_widths(raw["arch"])
    elif raw["widths"] == "file":
        widths = json.loads(widths_file.read_text()) if widths_file.exists() else None
    else:
        raise ValueError(f"{path}: \"widths\" must be \"default\" or \"file\" (data/widths/{name}.json)")
    hub = raw["hub"]
    known = {"name", "arch", "dataset", "widths", "baseline", "description", "hub", "metrics", "target",
             "recipe", "license"}
    return ZooEntry(name=name, arch=raw["arch"], dataset=raw["dataset"], widths=widths,
                    baseline=raw.get("baseline"), description=raw.get("description", ""),
                    repo_id=hub["repo_id"], revision=hub.get("revision"), sha256=hub.get("sha256"),
                    metrics=raw.get("metrics", {}), target=raw.get("target"), recipe=raw.get("recipe", {}),
                    license=raw.get("license", "apache-2.0"),
                    bundled=bundled if (bundled / "model.safetensors").is_file() else None,
                    extra={k: v for k, v in raw.items() if k not in known})


def _entries() -> dict[str, ZooEntry]:
    return _load_entries(os.environ.get("GDZOO_REGISTRY", ""))


@lru_cache(maxsize=4)
def _load_entries(extra_roots: str) -> dict[str, ZooEntry]:
    entries = {}
    for root in [data_dir()] + [Path(p) for p in extra_roots.split(os.pathsep) if p]:
        for path in sorted((root / "entries").glob("*.json")):
            entry = _read_entry(path, root / "widths")
            entries[entry.name] = entry
    return entries


def entries() -> dict[str, ZooEntry]:
    """All zoo entries by name."""
    return dict(_entries())


def is_entry(name: str) -> bool:
    return name in _entries()


def get_entry(name: str) -> ZooEntry:
    """The entry called ``name``; :class:`UnknownModelError` listing close names otherwise."""
    if name not in _entries():
        close = difflib.get_close_matches(name, list(_entries()), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}.{hint} Zoo models: {', '.join(_entries())}. "
            "Also accepted: 'hf-hub:ORG/NAME[@REVISION]' or the path of an exported folder.")
    return _entries()[name]


@lru_cache(maxsize=None)
def _count(arch: str, widths_json: str, dataset: str) -> tuple[int, int]:
    with torch.device("meta"):  # shapes only: no memory, no init cost
        model = create_model(arch, widths=json.loads(widths_json))
    return count_flops(model, get_dataset(dataset).input_size)


def update_from_export(name: str, export_dir: str | Path, *, revision: Optional[str] = None,
                       bundle: bool = False, root: Optional[Path] = None) -> ZooEntry:
    """Record an export of entry ``name`` in the registry data: its widths, metrics and weights sha256.

    Pass ``revision`` (the Hub commit sha that ``gdzoo push`` printed) once it is published: pinning
    revision + sha256 is what makes the entry "published". ``bundle=True`` copies the export folder
    into ``data/weights/<name>/`` so it ships in the package and loads offline ("in package").
    ``root`` defaults to the packaged data dir.
    """
    from .hubconfig import read_config

    root = Path(root) if root is not None else data_dir()
    entry_path = root / "entries" / f"{name}.json"
    if not entry_path.exists():
        get_entry(name)  # raises with close names
    raw = json.loads(entry_path.read_text())
    cfg = read_config(Path(export_dir) / "config.json", str(export_dir))
    if cfg["arch"] != raw["arch"] or cfg["dataset"] != raw["dataset"]:
        raise ValueError(f"{export_dir} is {cfg['arch']} on {cfg['dataset']}, but entry {name!r} is "
                         f"{raw['arch']} on {raw['dataset']}")
    if raw["widths"] == "file":
        (root / "widths").mkdir(parents=True, exist_ok=True)
        (root / "widths" / f"{name}.json").write_text(json.dumps(cfg["widths"]) + "\n")
    elif cfg["widths"] != default_widths(raw["arch"]):
        raise ValueError(f"entry {name!r} is an unpruned baseline but {export_dir} has pruned widths")
    metrics = cfg["metrics"]
    raw["metrics"] = {"top1": metrics.get("top1"), "top1_source": metrics.get("eval_notes")}
    raw["hub"]["sha256"] = cfg["weights"]["sha256"]
    if revision is not None:
        raw["hub"]["revision"] = revision
    if bundle:
        import shutil

        target = root / "weights" / name
        staging = root / "weights" / f".{name}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(export_dir, staging)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    entry_path.write_text(json.dumps(raw, indent=2) + "\n")
    _load_entries.cache_clear()
    return _read_entry(entry_path, root / "widths")
