"""``gdzoo.load``: a ready model from a zoo name, an ``hf-hub:`` id or an exported folder.

Downloads go through huggingface_hub's standard cache (HF_ENDPOINT, HF_HUB_CACHE, HF_HUB_OFFLINE
apply). Weights are read from ``model.safetensors`` only; nothing is ever unpickled. A download
that fails a check (sha256, parse, widths) is evicted from the cache so no later load trusts it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from huggingface_hub import HfApi, constants, hf_hub_download
from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError,
                                    RepositoryNotFoundError, RevisionNotFoundError)
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from .. import __version__
from ..models import create_model
from .errors import (CorruptWeightsError, NotPublishedError, RemoteNotFoundError, UnsafeWeightsError,
                     WidthsMismatchError, ZooLoadError)
from .export import sha256_file
from .hubconfig import CONFIG_NAME, PICKLE_SUFFIXES, WEIGHTS_NAME, ConfigError, pretrained_cfg, read_config
from .datasets import get_dataset
from .registry import RECIPE_ONLY, UnknownModelError, ZooEntry, get_entry, is_entry

HF_HUB_PREFIX = "hf-hub:"


@dataclass(frozen=True)
class Source:
    """Where a model comes from: a Hub repo at a revision, or a local export folder."""

    label: str  # how messages name it
    repo_id: Optional[str] = None
    revision: Optional[str] = None
    path: Optional[Path] = None
    entry: Optional[ZooEntry] = None


def resolve(name: str, revision: Optional[str] = None) -> Source:
    """Turn ``name`` (zoo name | ``hf-hub:org/repo[@rev]`` | folder) into a :class:`Source`."""
    name = os.fspath(name)
    if name.startswith(HF_HUB_PREFIX):
        repo_id, _, rev = name[len(HF_HUB_PREFIX):].partition("@")
        if rev and revision and rev != revision:
            raise ValueError(f"{name!r} names revision {rev!r} but revision={revision!r} was passed; give one")
        if repo_id.count("/") != 1 or not all(repo_id.split("/")):
            raise ValueError(f"{name!r}: expected 'hf-hub:ORG/NAME[@REVISION]'")
        return Source(label=name, repo_id=repo_id, revision=rev or revision)
    if is_entry(name):
        entry = get_entry(name)
        if entry.bundled is not None and entry.sha256 and revision is None:
            return Source(label=name, path=entry.bundled, entry=entry)
        if revision is not None:
            raise ValueError(f"zoo entry {name!r} is pinned to a reviewed revision; to load another one use "
                             f"gdzoo.load('hf-hub:{entry.repo_id}@{revision}')")
        return Source(label=name, repo_id=entry.repo_id, revision=entry.revision, entry=entry)
    path = Path(name).expanduser()
    if path.is_dir():
        return Source(label=str(path), path=path)
    if path.exists():
        raise UnknownModelError(f"{name!r} is a file, not an export folder (a directory with {CONFIG_NAME} "
                                f"and {WEIGHTS_NAME} written by gdzoo.zoo.export_model)")
    try:
        get_entry(name)
    except UnknownModelError as e:
        hint = f" No folder {name!r} exists either; for a Hub repo write 'hf-hub:{name}'." if "/" in name else ""
        raise UnknownModelError(f"{e}{hint}") from None
    raise AssertionError("is_entry and get_entry disagree")


def _not_published(entry: ZooEntry) -> NotPublishedError:
    how = (f"Make it with: {entry.reproduce}" if entry.reproduce
           else entry.recipe.get("description", "No recipe is recorded for it."))
    return NotPublishedError(
        f"{entry.name!r} is not published yet (status: {RECIPE_ONLY}); there are no weights to download. "
        f"{how}. gdzoo.create_model({entry.name!r}) builds its architecture with random weights"
        + ("" if entry.widths is not None else " once its widths are known") + ".")


class _Fetcher:
    """Downloads files of one Hub commit and remembers them, so a failed load can evict them."""

    def __init__(self, source: Source, cache_dir: Optional[str], token: Optional[str]) -> None:
        self.source, self.cache_dir, self.token = source, cache_dir, token
        self.revision = source.revision
        self.fetched: list[Path] = []

    def get(self, filename: str) -> Path:
        src = self.source
        try:
            path = Path(hf_hub_download(src.repo_id, filename, revision=self.revision, cache_dir=self.cache_dir,
                                        token=self.token, library_name="gdzoo", library_version=__version__))
        except RepositoryNotFoundError as e:
            raise RemoteNotFoundError(
                f"{src.label}: repository {src.repo_id!r} not found on {constants.ENDPOINT}. Check the id; for a "
                "private repo log in (hf auth login) or set HF_TOKEN.") from e
        except RevisionNotFoundError as e:
            raise RemoteNotFoundError(f"{src.label}: revision {self.revision!r} not found in {src.repo_id!r}; "
                                      "pass an existing branch, tag or commit sha.") from e
        except LocalEntryNotFoundError as e:
            raise RemoteNotFoundError(
                f"{src.label}: {filename} of {src.repo_id}@{self.revision or 'main'} is not in the cache "
                f"({self.cache_dir or constants.HF_HUB_CACHE}) and the Hub cannot be reached"
                f"{' (HF_HUB_OFFLINE is set)' if constants.HF_HUB_OFFLINE else ''}. Load it once online, "
                "or point HF_HUB_CACHE at a cache that holds it.") from e
        except EntryNotFoundError as e:
            if filename == WEIGHTS_NAME:
                raise self._missing_weights(e) from e
            raise RemoteNotFoundError(f"{src.label}: {src.repo_id}@{self.revision or 'main'} has no {filename}; "
                                      "it is not a gdzoo export (publish folders written by export_model).") from e
        self.fetched.append(path)
        self.revision = path.parent.name  # snapshots/<commit>/file: later files come from the same commit
        return path

    def _missing_weights(self, error: Exception) -> ZooLoadError:
        src = self.source
        try:
            files = HfApi(token=self.token).list_repo_files(src.repo_id, revision=self.revision)
        except (HfHubHTTPError, OSError):
            files = []
        pickles = [f for f in files if f.endswith(PICKLE_SUFFIXES)]
        if pickles:
            return UnsafeWeightsError(
                f"{src.label}: {src.repo_id} has only pickle weights ({', '.join(pickles)}) and no {WEIGHTS_NAME}. "
                "gdzoo never unpickles files from the Hub (they can run code). Ask the publisher for a "
                "safetensors export (gdzoo.zoo.export_model), or convert a checkpoint you trust locally.")
        return RemoteNotFoundError(f"{src.label}: {src.repo_id}@{self.revision} has no {WEIGHTS_NAME}; "
                                   "re-publish the full export folder with gdzoo push.")

    def evict(self) -> None:
        """Remove what this load fetched (snapshot links and their blobs) from the cache."""
        for path in self.fetched:
            blob = Path(os.path.realpath(path))
            for p in {path, blob}:
                try:
                    p.unlink()
                except FileNotFoundError:
                    pass


def fetch_config(source: Source, cache_dir: Optional[str] = None, token: Optional[str] = None) -> dict:
    """The validated config.json of ``source`` (downloading only that file)."""
    if source.path is not None:
        return read_config(source.path / CONFIG_NAME, source.label)
    fetcher = _Fetcher(source, cache_dir, token)
    try:
        return read_config(fetcher.get(CONFIG_NAME), source.label)
    except ConfigError:
        fetcher.evict()
        raise


def _read_weights(path: Path, cfg: dict, source: Source) -> dict:
    expected = source.entry.sha256 if source.entry is not None else (cfg.get("weights") or {}).get("sha256")
    if expected:
        actual = sha256_file(path)
        if actual != expected:
            pinned = "the registry's pinned" if source.entry is not None else "config.json's"
            raise CorruptWeightsError(f"{source.label}: {WEIGHTS_NAME} has sha256 {actual}, not {pinned} "
                                      f"{expected}: truncated or tampered. Download it again (the bad copy "
                                      "was removed from the cache); if it persists, the published file is bad.")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CorruptWeightsError(f"{source.label}: {WEIGHTS_NAME} is not a readable safetensors file ({e}); "
                                  "re-export it with gdzoo.zoo.export_model.") from e


def _check_shapes(model: nn.Module, state: dict, source: Source) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    problems = [f"{k}: weights {got[k]} vs widths {expected[k]}" for k in expected if k in got and got[k] != expected[k]]
    problems += [f"{k}: missing from weights" for k in expected if k not in got]
    problems += [f"{k}: not in the architecture" for k in got if k not in expected]
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise WidthsMismatchError(f"{source.label}: config.json's arch/widths do not match {WEIGHTS_NAME}: "
                                  f"{'; '.join(problems[:3])}{more}. The widths must be the ones the weights "
                                  "were exported with; re-export with gdzoo.zoo.export_model.")


def load(
    name: str | os.PathLike,
    pretrained: bool = True,
    num_classes: Optional[int] = None,
    revision: Optional[str] = None,
    features_only: bool = False,
    out_indices: Optional[Sequence[int]] = None,
    cache_dir: Optional[str | os.PathLike] = None,
    token: Optional[str] = None,
) -> nn.Module:
    """A ready model: zoo name, ``"hf-hub:org/repo[@revision]"`` or an exported folder.

    ``num_classes`` different from the checkpoint's resets the classifier (for fine-tuning);
    ``features_only`` returns timm's ``FeatureListNet`` giving one feature map per ``feature_info``
    entry (or ``out_indices``). ``pretrained=False`` builds the architecture with random weights.
    The model carries ``pretrained_cfg`` (input_size, mean, std, label_names, ...) as timm models do.
    """
    source = resolve(os.fspath(name), revision)
    cache_dir = os.fspath(cache_dir) if cache_dir is not None else None
    if source.entry is not None and (source.entry.status == RECIPE_ONLY or not pretrained):
        if pretrained:
            raise _not_published(source.entry)
        model, pcfg = _from_entry_arch(source.entry)  # the registry knows the shapes: no download
    else:
        fetcher = _Fetcher(source, cache_dir, token) if source.path is None else None
        try:
            cfg = (read_config(source.path / CONFIG_NAME, source.label) if fetcher is None
                   else read_config(fetcher.get(CONFIG_NAME), source.label))
            if source.entry is not None and source.entry.widths not in (None, cfg["widths"]):
                raise WidthsMismatchError(f"{source.label}: the published config.json widths differ from the "
                                          "registry's; the registry data or the repo is wrong.")
            model = create_model(cfg["arch"], widths=cfg["widths"], num_classes=cfg["num_classes"])
            if pretrained:
                weights = source.path / WEIGHTS_NAME if fetcher is None else fetcher.get(WEIGHTS_NAME)
                if fetcher is None and not weights.exists():
                    pickles = [p.name for p in source.path.iterdir() if p.name.endswith(PICKLE_SUFFIXES)]
                    raise (UnsafeWeightsError if pickles else RemoteNotFoundError)(
                        f"{source.label}: no {WEIGHTS_NAME}"
                        + (f" (only pickle files {pickles}; gdzoo never unpickles)" if pickles else "")
                        + "; export the model with gdzoo.zoo.export_model.")
                state = _read_weights(weights, cfg, source)
                _check_shapes(model, state, source)
                model.load_state_dict(state, strict=True)
        except (ConfigError, CorruptWeightsError, WidthsMismatchError, UnsafeWeightsError, RemoteNotFoundError):
            if fetcher is not None:
                fetcher.evict()
            raise
        pcfg = pretrained_cfg(cfg, source.label)
    model.pretrained_cfg = pcfg
    if num_classes is not None and num_classes != model.num_classes:
        model.reset_classifier(num_classes)
        model.pretrained_cfg = {**model.pretrained_cfg, "num_classes": num_classes, "label_names": None}
    model.default_cfg = model.pretrained_cfg  # timm's older name for the same dict
    if features_only:
        return _features(model, out_indices)
    return model


def _from_entry_arch(entry: ZooEntry) -> tuple[nn.Module, dict]:
    """An unpublished entry's architecture with random weights, and its dataset's preprocessing."""
    if entry.widths is None:
        raise NotPublishedError(f"the widths of {entry.name!r} are not known yet: they come from its pruning "
                                f"run ({entry.reproduce}); until then only the recipe exists.")
    ds = get_dataset(entry.dataset)
    model = create_model(entry.arch, widths=entry.widths, num_classes=ds.num_classes)
    pcfg = {"architecture": entry.arch, "input_size": ds.input_size, "mean": ds.mean, "std": ds.std,
            "num_classes": ds.num_classes, "label_names": tuple(ds.label_names()),
            "interpolation": ds.interpolation, "crop_pct": ds.crop_pct, "first_conv": "conv1",
            "classifier": "fc", "source": f"{entry.name} (architecture only, random weights)"}
    return model, pcfg


def _features(model: nn.Module, out_indices: Optional[Sequence[int]]) -> nn.Module:
    from timm.models import FeatureListNet

    indices = tuple(out_indices) if out_indices is not None else tuple(range(len(model.feature_info)))
    wrapped = FeatureListNet(model, out_indices=indices)
    wrapped.pretrained_cfg = model.pretrained_cfg
    return wrapped
