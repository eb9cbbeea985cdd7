"""Atomic checkpoint files: a crash mid-write never leaves a checkpoint that looks valid."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Optional

import torch


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` into a temporary file beside ``path``, fsync, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str | os.PathLike) -> Optional[Any]:
    """The checkpoint at ``path`` (tensors and plain Python only: ``weights_only=True``), or None."""
    path = Path(path)
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)
