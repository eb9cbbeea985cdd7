"""Errors of the zoo: each says what is wrong and what to do about it."""
from __future__ import annotations


class ZooLoadError(RuntimeError):
    """A model could not be loaded; the message names the cause and the fix."""


class NotPublishedError(ZooLoadError):
    """A registry entry whose weights are not on the Hub yet (status "recipe only")."""


class RemoteNotFoundError(ZooLoadError):
    """The repo, revision or file does not exist (or is not in the cache while offline)."""


class UnsafeWeightsError(ZooLoadError):
    """Only pickle checkpoints were found: gdzoo loads safetensors only and never unpickles."""


class CorruptWeightsError(ZooLoadError):
    """model.safetensors does not match its pinned sha256 or cannot be parsed."""


class WidthsMismatchError(ZooLoadError):
    """config.json's widths describe other shapes than the ones in model.safetensors."""
