"""Reference point for issue 7's accuracy gap: give any export the adaptation our baseline got.

Our `resnet56` baseline is the authors' checkpoint fine-tuned with the `cpu` preset's `[baseline]`
section (2 epochs, lr 0.01) on the JPEG folder's training split. This script applies that same
section, through gdzoo's loop, data and LR schedule (resumable per epoch), to another export, e.g.
the authors' own -70% model after their full schedule, and reports validation top-1 before and
after in OUT/metrics.json. The -70% number it gives is what the paper's schedule reaches on this
split with this adaptation; the gap between it and the baseline is what a full schedule leaves.
Usage::

    python benchmarks/adapt_export.py --init UPSTREAM_70 --data DATA_FOLDER --out runs/upstream70-adapted
"""
from __future__ import annotations

import json
import time

import torch
from _script_run import open_script_run, script_parser

import gdzoo
from gdzoo import count_flops
from gdzoo.recipe import take
from gdzoo.reproduce import BASELINE_DEFAULTS, DATA_DEFAULTS, evaluate_all_ranks, train_epochs
from gdzoo.run_folder import checkpoint_json, compute_seconds


def main() -> None:
    args = script_parser(__doc__.splitlines()[0], "Export folder (or zoo name) to adapt.", "cpu",
                         "Its [data] and [baseline] training keys are used.").parse_args()
    recipe, run, train_loader, val_loader, _ = open_script_run(args, {"adapt": vars(args)}, "baseline_train.pt")
    out = run.out
    size = take(recipe["data"], DATA_DEFAULTS, "data")["image_size"]

    model = gdzoo.load(args.init).to(memory_format=torch.channels_last)
    before = evaluate_all_ranks(run, model, val_loader)
    cfg = {k: v for k, v in take(recipe["baseline"], BASELINE_DEFAULTS, "baseline").items()
           if k not in ("init", "export_name")}
    after = train_epochs(run, "baseline", model, cfg, train_loader, val_loader)
    macs, params = count_flops(model, (3, size, size))
    summary = {"init": args.init, "recipe": args.recipe, "preset": args.preset, "epochs": cfg["epochs"],
               "lr": cfg["lr"], "top1_before": before["top1"], "top1": after["top1"], "top5": after["top5"],
               "macs": macs, "params": params, "wall_time_s": round(compute_seconds(out, time.time()), 1)}
    checkpoint_json(out / "metrics.json", summary)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
