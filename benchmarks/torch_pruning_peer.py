"""Peer comparison: Torch-Pruning's group Taylor importance on the same baseline, MACs target and
fine-tuning budget as a ``gdzoo reproduce`` preset (issue 7).

Prunes a gdzoo CIFAR ResNet export with ``torch_pruning.MetaPruner`` (global ranking,
``GroupTaylorImportance``, residual-coupled channels pruned together, at most 90% of any layer
removed, matching gdzoo's ``min_share = 0.1``) in small iterative steps until MACs reach the
target, rebuilds the plain gdzoo model from the resulting widths, then fine-tunes it with the
preset's ``[finetune]`` section through gdzoo's own loop, data and evaluation (resumable per epoch),
and writes an export folder plus metrics.json. Needs ``pip install -e '.[bench]'``. Usage::

    python benchmarks/torch_pruning_peer.py --init runs/r56-cpu/baseline --data DATA_FOLDER \\
        --recipe resnet56-70 --preset cpu-one-shot --out runs/r56-torch-pruning
"""
from __future__ import annotations

import json
import time

import torch
import torch_pruning as tp
from _script_run import open_script_run, script_parser
from torch import nn

import gdzoo
from gdzoo import count_flops
from gdzoo.models import create_model
from gdzoo.recipe import take
from gdzoo.reproduce import DATA_DEFAULTS, TRAIN_DEFAULTS, train_epochs
from gdzoo.run_folder import checkpoint_json, compute_seconds
from gdzoo.zoo import export_model

SCORING_EPOCH = 3_000_000  # data order of the Taylor batches, apart from the fine-tune epochs


def cifar_resnet_widths(model: nn.Module) -> dict:
    """The widths spec of a (Torch-Pruning-pruned) gdzoo CIFAR ResNet, read from its layers."""
    stages = [model.layer1, model.layer2, model.layer3]
    widths = {"stages": [stage[0].conv2.out_channels for stage in stages],
              "blocks": [[block.conv1.out_channels for block in stage] for stage in stages]}
    assert model.conv1.out_channels == widths["stages"][0], "stem and stage 1 share the residual width"
    return widths


def scoring_batches(loader):
    """Training batches for Taylor gradients, epoch after epoch (orders apart from the fine-tune's)."""
    epoch = SCORING_EPOCH
    while True:
        yield from loader.epoch(epoch)
        epoch += 1


def taylor_prune(model: nn.Module, batches, target_macs: int, input_size: tuple, steps: int,
                 ratio: float, batches_per_step: int, log) -> nn.Module:
    """Iterative global Group-Taylor pruning until ``count_flops(model) <= target_macs``."""
    example = torch.randn(1, *input_size)
    pruner = tp.pruner.MetaPruner(model, example, importance=tp.importance.GroupTaylorImportance(),
                                  global_pruning=True, pruning_ratio=ratio, iterative_steps=steps,
                                  max_pruning_ratio=0.9, ignored_layers=[model.fc])
    model.eval()  # Taylor scores only: keep BatchNorm statistics as they are
    for step in range(steps):
        model.zero_grad()
        for _ in range(batches_per_step):
            images, labels = next(batches)
            nn.functional.cross_entropy(model(images), labels).backward()
        pruner.step()
        macs, params = count_flops(model, input_size)
        log({"stage": "prune", "event": "step", "index": step, "macs": macs, "params": params})
        if macs <= target_macs:
            return model
    raise SystemExit(f"{steps} steps up to pruning ratio {ratio} did not reach {target_macs} MACs; raise --ratio")


def main() -> None:
    parser = script_parser(__doc__.splitlines()[0], "Baseline export folder (or zoo name).", "cpu-one-shot",
                           "Its [data], target and [finetune] are used.")
    parser.add_argument("--steps", type=int, default=300, help="Iterative pruning steps up to --ratio.")
    parser.add_argument("--ratio", type=float, default=0.9, help="Channel pruning ratio reached at the last step.")
    parser.add_argument("--batches-per-step", type=int, default=5, help="Training batches of Taylor gradients per step.")
    args = parser.parse_args()

    recipe, run, train_loader, val_loader, classes = open_script_run(
        args, {"peer": "torch-pruning " + tp.__version__, **vars(args)}, "tp_pruned.pt")
    out = run.out
    size = take(recipe["data"], DATA_DEFAULTS, "data")["image_size"]
    input_size = (3, size, size)

    baseline = gdzoo.load(args.init)
    base_macs, base_params = count_flops(baseline, input_size)
    done = run.load("tp_pruned")
    if done is None:
        start = time.time()
        model = taylor_prune(baseline, scoring_batches(train_loader), int(recipe["prune"]["target_macs_ratio"] * base_macs),
                             input_size, args.steps, args.ratio, args.batches_per_step,
                             lambda rec: run.log({**rec, "macs_ratio": rec["macs"] / base_macs}))
        done = {"widths": cifar_resnet_widths(model), "model": model.state_dict(), "seconds": time.time() - start}
        run.save("tp_pruned", done)
    model = create_model(recipe["arch"], widths=done["widths"], num_classes=baseline.num_classes)
    model.load_state_dict(done["model"])
    model = model.to(memory_format=torch.channels_last)
    cfg = take(recipe["finetune"], TRAIN_DEFAULTS, "finetune")
    metrics = train_epochs(run, "finetune", model, cfg, train_loader, val_loader)
    macs, params = count_flops(model, input_size)
    command = (f"python benchmarks/torch_pruning_peer.py --init BASELINE_EXPORT --data DATA_FOLDER --recipe {args.recipe} "
               f"--preset {args.preset} --steps {args.steps} --ratio {args.ratio} --batches-per-step {args.batches_per_step}")
    export_model(model.eval(), out / "export", name=f"{recipe['name']}-torch-pruning", dataset=recipe["data"]["dataset"],
                 metrics={"top1": 100 * metrics["top1"], "top5": 100 * metrics["top5"],
                          "eval_split": "validation split (last 500 files per class)"},
                 provenance={"peer": f"torch-pruning {tp.__version__} GroupTaylorImportance", "baseline_init": args.init},
                 reproduce=command, baseline={"name": recipe["arch"], "macs": base_macs, "params": base_params},
                 label_names=classes, mean=recipe["data"]["mean"], std=recipe["data"]["std"], input_size=input_size,
                 overwrite=True)
    summary = {"method": f"torch-pruning {tp.__version__} GroupTaylorImportance", "widths": done["widths"],
               "top1": metrics["top1"], "top5": metrics["top5"], "macs": macs, "params": params,
               "macs_ratio": macs / base_macs, "params_ratio": params / base_params,
               "prune_seconds": round(done["seconds"], 1),
               "wall_time_s": round(compute_seconds(out, time.time()), 1), "command": command}
    checkpoint_json(out / "metrics.json", summary)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
