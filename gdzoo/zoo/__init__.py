"""The model zoo: registry of named variants, the on-Hub export format, loading and publishing."""
from .errors import (CorruptWeightsError, NotPublishedError, RemoteNotFoundError, UnsafeWeightsError,
                     WidthsMismatchError, ZooLoadError)
from .export import export_model
from .hubconfig import ConfigError
from .listing import list_models
from .loading import load
from .push import push_folder
from .registry import UnknownModelError, ZooEntry, entries, get_entry, is_entry, update_from_export

__all__ = ["ConfigError", "CorruptWeightsError", "NotPublishedError", "RemoteNotFoundError", "UnknownModelError",
           "UnsafeWeightsError", "WidthsMismatchError", "ZooEntry", "ZooLoadError", "entries", "export_model",
           "get_entry", "is_entry", "list_models", "load", "push_folder", "update_from_export"]
