"""The model zoo: registry of named variants, the on-Hub export format, loading and publishing."""
from .export import export_model

__all__ = ["export_model"]
