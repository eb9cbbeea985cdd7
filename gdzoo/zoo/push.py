"""Publish an export folder to the Hub with huggingface_hub (create_repo, create_branch, upload_folder)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from huggingface_hub import CommitInfo, HfApi

from .card import render_card
from .errors import CorruptWeightsError
from .export import sha256_file
from .hubconfig import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, read_config


def push_folder(folder: str | os.PathLike, repo_id: str, *, revision: Optional[str] = None,
                private: bool = False, token: Optional[str] = None,
                commit_message: Optional[str] = None) -> CommitInfo:
    """Upload ``folder`` (written by ``export_model``) to ``repo_id`` as one commit on branch ``revision``.

    The folder is checked first (valid config, weights matching their recorded sha256), and its
    README.md is re-rendered for ``repo_id``. The repo and branch are created if missing. The token
    comes from ``token`` or huggingface_hub's usual sources (HF_TOKEN, ``hf auth login``).
    Returns the commit; its ``oid`` is the revision to pin in the registry.
    """
    folder = Path(folder)
    cfg = read_config(folder / CONFIG_NAME, str(folder))
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"{folder} has no {WEIGHTS_NAME}; export it with gdzoo.zoo.export_model")
    recorded = (cfg.get("weights") or {}).get("sha256")
    if recorded and sha256_file(weights) != recorded:
        raise CorruptWeightsError(f"{weights} does not match the sha256 recorded in config.json; re-export it")
    card = folder / CARD_NAME
    tmp = card.with_name(f".{CARD_NAME}.tmp")
    render_card(cfg, repo_id).save(tmp)
    os.replace(tmp, card)

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision and revision != "main":
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    return api.upload_folder(
        folder_path=folder, repo_id=repo_id, revision=revision,
        allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, CARD_NAME],
        commit_message=commit_message or f"gdzoo: upload {cfg['name']} ({cfg['arch']})",
    )
