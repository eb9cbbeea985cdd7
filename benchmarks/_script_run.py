"""Run-folder setup shared by the benchmark scripts that train through gdzoo's loop on CPU
(``torch_pruning_peer.py``, ``adapt_export.py``): common options, OUT/run.json, the log, the loaders."""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from gdzoo import distributed
from gdzoo.recipe import load_recipe
from gdzoo.reproduce import build_loaders
from gdzoo.run_folder import Run, checkpoint_json


def script_parser(description: str, init_help: str, preset: str, preset_help: str) -> argparse.ArgumentParser:
    """--init, --data, --recipe, --preset, --out and --seed; the script adds its own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--init", required=True, help=init_help)
    parser.add_argument("--data", required=True, help="ImageFolder tree (train/<class>/...).")
    parser.add_argument("--recipe", default="resnet56-70")
    parser.add_argument("--preset", default=preset, help=preset_help)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def open_script_run(args: argparse.Namespace, identity: dict, resumed_by: str):
    """The recipe, a ``Run`` in ``args.out`` (run.json written once) and its train/val loaders and
    classes; the start record says whether ``OUT/state/<resumed_by>`` already exists."""
    recipe = load_recipe(args.recipe, args.preset)
    out = Path(args.out)
    (out / "state").mkdir(parents=True, exist_ok=True)
    if not (out / "run.json").exists():
        checkpoint_json(out / "run.json", identity)
    rt = distributed.setup("cpu", "off", True, False)
    torch.manual_seed(args.seed)
    run = Run(recipe, out, rt, args.seed, args.init)
    run.log({"stage": "run", "event": "start", "resume": (out / "state" / resumed_by).exists()})
    train_loader, val_loader, classes = build_loaders(recipe, args.data, rt, args.seed)
    return recipe, run, train_loader, val_loader, classes
