"""Validation of widths specs: plain JSON structures of positive ints."""
from __future__ import annotations

from typing import Any, Sequence


def check_width(value: Any, where: str) -> int:
    """Return ``value`` if it is a positive int, else raise ValueError naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"widths{where} must be a positive int, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"widths{where} must be >= 1, got {value}")
    return value


def check_list(value: Any, length: int, where: str) -> Sequence[Any]:
    """Return ``value`` if it is a list/tuple of ``length`` entries, else raise ValueError."""
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"widths{where} must be a list of {length} entries, got {value!r}")
    if len(value) != length:
        raise ValueError(f"widths{where} must have {length} entries, got {len(value)}")
    return value


def check_keys(widths: Any, keys: Sequence[str], arch: str) -> dict:
    """Check that ``widths`` is a dict holding exactly ``keys``."""
    if not isinstance(widths, dict):
        raise ValueError(f"widths for {arch} must be a dict with keys {list(keys)}, got {type(widths).__name__}")
    missing = [k for k in keys if k not in widths]
    extra = [k for k in widths if k not in keys]
    if missing:
        raise ValueError(f"widths for {arch} are missing key(s) {missing}; expected keys {list(keys)}")
    if extra:
        raise ValueError(f"widths for {arch} have unknown key(s) {extra}; expected keys {list(keys)}")
    return widths
