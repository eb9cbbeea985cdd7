"""``gdzoo reproduce``: baseline -> gates -> Tick-Tock -> melt -> fine-tune -> evaluate -> export.

Every stage checkpoints atomically into ``OUT/state/`` (each epoch, Tick and Tock), so ``--resume``
continues a killed run and ends with the same masks as an uninterrupted one. Only rank 0 writes.
The pruned model is melted *before* fine-tuning: the melted model computes the same function as
the gated-masked one, and fine-tuning it costs the pruned model's MACs instead of the full width's.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import random
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import torch
from torch import nn
from tqdm.auto import tqdm

from . import __version__, data, distributed
from .flops import count_flops
from .models import create_model
from .recipe import RecipeError, load_recipe, take
from .run_folder import Run, RunError, checkpoint_json, compute_seconds, prepare_out, reuse_stages
from .training import cosine_lr, evaluate, train_one_epoch

if TYPE_CHECKING:
    from .engine import TickTockConfig

DATA_DEFAULTS = {"source": "cifar10", "num_classes": 10, "image_size": 32, "batch_size": 128,
                 "eval_batch_size": 500, "val_per_class": 500, "mean": list(data.CIFAR10_MEAN),
                 "std": list(data.CIFAR10_STD), "synthetic_train": 512, "synthetic_val": 256,
                 "workers": 8, "dataset": "cifar10", "data_description": ""}
TRAIN_DEFAULTS = {"epochs": 0, "lr": 0.1, "min_lr": 0.0, "momentum": 0.9, "weight_decay": 5e-4,
                  "nesterov": False, "max_steps_per_epoch": 0}
BASELINE_DEFAULTS = {**TRAIN_DEFAULTS, "init": "scratch", "export_name": ""}
FINETUNE_DEFAULTS = {**TRAIN_DEFAULTS, "distill_weight": 0.0, "distill_temperature": 4.0}


def _git_commit() -> Optional[str]:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                              text=True, timeout=5, check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------------------- data

def build_loaders(recipe: dict, data_path: Optional[str], rt: distributed.Runtime, seed: int):
    """Train and val loaders for the recipe's data source; checks the class count."""
    cfg = take(recipe["data"], DATA_DEFAULTS, "data")
    mean, std = cfg["mean"], cfg["std"]
    source = cfg["source"]
    shard = dict(rank=rt.rank, world_size=rt.world_size)
    if source in ("cifar10", "small-folder", "synthetic"):
        if source == "synthetic":
            train, val = data.synthetic(cfg["num_classes"], cfg["synthetic_train"], cfg["synthetic_val"],
                                        cfg["image_size"], seed)
        elif data_path is not None:
            train, val = data.load_small_image_folder(data_path, cfg["val_per_class"],
                                                      desc="decoding" if rt.is_main else None)
        elif source == "cifar10":
            root = Path(os.environ.get("GDZOO_DATA", Path.home() / ".cache" / "gdzoo" / "data"))
            train, val = data.load_cifar10(root / "cifar10", download=rt.is_main)
        else:
            raise data.DataError("this recipe reads an image folder: pass --data PATH")
        classes = train.classes
        train_loader = data.TensorLoader(train, cfg["batch_size"], train=True, mean=mean, std=std,
                                         device=rt.device, seed=seed, **shard)
        val_loader = data.TensorLoader(val, cfg["eval_batch_size"], train=False, mean=mean, std=std,
                                       device=rt.device, seed=seed, **shard)
    elif source == "imagenet":
        if data_path is None:
            raise data.DataError("ImageNet recipes need --data PATH holding train/<class>/ and val/<class>/ folders")
        common = dict(mean=mean, std=std, image_size=cfg["image_size"], workers=cfg["workers"], seed=seed, **shard)
        train_loader = data.FolderLoader(data_path, "train", cfg["batch_size"], train=True, **common)
        val_loader = data.FolderLoader(data_path, "val", cfg["eval_batch_size"], train=False, **common)
        classes = train_loader.classes
    else:
        raise RecipeError(f"unknown data source {source!r} in [data]; use cifar10, small-folder, imagenet or synthetic")
    if len(classes) != cfg["num_classes"]:
        raise data.DataError(f"the data at {data_path} has {len(classes)} classes but recipe "
                             f"{recipe['recipe']} expects {cfg['num_classes']}; check --data")
    return train_loader, val_loader, classes


# ------------------------------------------------------------------------------------- training

def _sgd(model: nn.Module, cfg: dict) -> torch.optim.SGD:
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=cfg["lr"], momentum=cfg["momentum"],
                           weight_decay=cfg["weight_decay"], nesterov=cfg["nesterov"])


def _wrap(model: nn.Module, rt: distributed.Runtime, find_unused_parameters: bool = False) -> nn.Module:
    if rt.world_size > 1:
        return nn.parallel.DistributedDataParallel(model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None,
                                                   find_unused_parameters=find_unused_parameters)
    return model


def _forward_model(model: nn.Module, rt: distributed.Runtime) -> nn.Module:
    return torch.compile(model) if rt.compile else model


def train_epochs(run: Run, stage: str, model: nn.Module, cfg: dict, train_loader, val_loader,
                 criterion: Optional[Callable[..., torch.Tensor]] = None) -> dict:
    """SGD with cosine LR for ``cfg['epochs']`` epochs, resumable at every epoch boundary; returns
    the validation metrics of the trained model. ``criterion``: see ``train_one_epoch``."""
    epochs = cfg["epochs"]
    if epochs <= 0:
        return evaluate_all_ranks(run, model, val_loader)
    steps_per_epoch = len(train_loader) if not cfg["max_steps_per_epoch"] else min(len(train_loader), cfg["max_steps_per_epoch"])
    optimizer = _sgd(model, cfg)
    start = 0
    state = run.load(f"{stage}_train")
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["epoch"]
        torch.set_rng_state(state["rng"])
    total = epochs * steps_per_epoch
    net = _forward_model(_wrap(model, run.rt), run.rt)
    val = None
    for epoch in range(start, epochs):
        stats = train_one_epoch(
            net, train_loader.epoch(epoch), optimizer, device=run.rt.device,
            lr_at=lambda step: cosine_lr(step, total, cfg["lr"], cfg["min_lr"]), start_step=epoch * steps_per_epoch,
            criterion=criterion, amp_dtype=run.rt.amp_dtype, channels_last=run.rt.channels_last,
            max_steps=steps_per_epoch, desc=f"{stage} epoch {epoch + 1}/{epochs}", disable_progress=not run.rt.is_main)
        val = evaluate_all_ranks(run, net, val_loader)
        run.save(f"{stage}_train", {"epoch": epoch + 1, "model": model.state_dict(),
                                   "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state()})
        run.log({"stage": stage, "event": "epoch", "index": epoch + 1, "loss": stats["loss"], "acc": stats["acc"],
                 "val_top1": val["top1"], "lr": optimizer.param_groups[0]["lr"]})
    return val if val is not None else evaluate_all_ranks(run, model, val_loader)


def evaluate_all_ranks(run: Run, model: nn.Module, val_loader) -> dict:
    """Validation metrics over the whole split: each rank evaluates its shard, sums are all-reduced."""
    stats = evaluate(model, val_loader.epoch(0), device=run.rt.device, amp_dtype=run.rt.amp_dtype,
                     channels_last=run.rt.channels_last, desc="evaluating", disable_progress=not run.rt.is_main)
    if run.rt.world_size == 1:
        return stats
    n = stats["samples"]
    totals = torch.tensor([stats["loss"] * n, stats["top1"] * n, stats["top5"] * n, n], dtype=torch.float64,
                          device=run.rt.device)
    torch.distributed.all_reduce(totals)
    loss, top1, top5, n = totals.tolist()
    return {"loss": loss / n, "top1": top1 / n, "top5": top5 / n, "samples": int(n)}


# --------------------------------------------------------------------------------------- stages

def initial_model(recipe: dict, init: str) -> nn.Module:
    """The model a baseline starts from: ``scratch``, ``torchvision`` weights, or anything
    ``gdzoo.load`` accepts (zoo name, ``hf-hub:org/repo``, export folder)."""
    num_classes = recipe["data"].get("num_classes", DATA_DEFAULTS["num_classes"])
    if init == "scratch":
        return create_model(recipe["arch"], num_classes=num_classes)
    if init == "torchvision":
        import torchvision

        model = create_model(recipe["arch"])
        reference = torchvision.models.get_model(recipe["arch"], weights="DEFAULT")
        model.load_state_dict(reference.state_dict(), strict=True)
        if num_classes != model.num_classes:
            model.reset_classifier(num_classes)
        return model
    from .zoo import load

    model = load(init, num_classes=num_classes)
    if getattr(model, "arch", None) != recipe["arch"]:
        raise RunError(f"baseline init {init!r} is a {getattr(model, 'arch', type(model).__name__)}, but recipe "
                       f"{recipe['recipe']} prunes a {recipe['arch']}")
    return model


def init_provenance(init: str) -> Optional[dict]:
    """Where a baseline's initial weights come from: an export's recorded provenance, if any."""
    if init in ("scratch", "torchvision"):
        return {"init": init}
    from .zoo.loading import fetch_config, resolve

    return fetch_config(resolve(init)).get("provenance")


def baseline_stage(run: Run, train_loader, val_loader, command: str) -> tuple[nn.Module, dict]:
    """Build (and optionally train) the unpruned model; returns it and its validation metrics.

    With ``export_name`` set, the baseline is also exported to OUT/baseline (e.g. the zoo's
    ``resnet56``), so comparisons can start from exactly this model with ``--init OUT/baseline``.
    """
    cfg = take(run.recipe["baseline"], BASELINE_DEFAULTS, "baseline")
    done = run.load("baseline")
    if done is not None:
        model = create_model(run.recipe["arch"], widths=done["widths"], num_classes=done["num_classes"])
        model.load_state_dict(done["model"])
        return model.to(run.rt.device), done["metrics"]
    model = initial_model(run.recipe, run.init).to(run.rt.device)
    if run.rt.channels_last:
        model = model.to(memory_format=torch.channels_last)
    metrics = train_epochs(run, "baseline", model, cfg, train_loader, val_loader)
    if cfg["export_name"] and run.rt.is_main:
        _export(run, model, metrics, "baseline", cfg["export_name"], command, None,
                {"baseline_init": run.init, "baseline_init_provenance": run.init_provenance, "stage": "baseline",
                 "epochs": cfg["epochs"]})
    run.save("baseline", {"model": model.state_dict(), "widths": model.widths, "num_classes": model.num_classes,
                          "metrics": metrics})
    run.log({"stage": "baseline", "event": "done", "val_top1": metrics["top1"], "loss": metrics["loss"]})
    return model, metrics


PHASE_OFFSETS = {"tick": 1_000_000, "tock": 2_000_000}


def prune_config(recipe: dict) -> TickTockConfig:
    """The recipe's ``[prune]`` table as a checked ``TickTockConfig``."""
    from dataclasses import asdict

    from .engine import TickTockConfig

    try:
        return TickTockConfig(**take(recipe["prune"], asdict(TickTockConfig()), "prune"))
    except ValueError as error:
        raise RecipeError(f"[prune] of recipe {recipe['recipe']}: {error}") from error


def check_recipe(recipe: dict) -> None:
    """Refuse a bad key or value in any section before the first stage starts, not hours into a run."""
    from .distill import check_settings

    take(recipe["data"], DATA_DEFAULTS, "data")
    take(recipe["baseline"], BASELINE_DEFAULTS, "baseline")
    prune_config(recipe)
    finetune = take(recipe["finetune"], FINETUNE_DEFAULTS, "finetune")
    if finetune["distill_weight"]:
        try:
            check_settings(finetune["distill_weight"], finetune["distill_temperature"])
        except ValueError as error:
            raise RecipeError(f"[finetune] of recipe {recipe['recipe']}: {error}") from error


def prune_stage(run: Run, model: nn.Module, train_loader, val_loader) -> nn.Module:
    """Decorate, Tick-Tock (or One-Shot / Tick-Only) to the MACs target, melt; resumable per Tick/Tock."""
    from .engine import TickTock, build_graph, decorate, melt

    done = run.load("pruned")
    if done is not None:
        melted = create_model(run.recipe["arch"], widths=done["widths"], num_classes=done["num_classes"])
        melted.load_state_dict(done["model"])
        return melted.to(run.rt.device)
    config = prune_config(run.recipe)
    size = take(run.recipe["data"], DATA_DEFAULTS, "data")["image_size"]
    decorate(model)
    graph = build_graph(model, (3, size, size))
    net = _wrap(model, run.rt, find_unused_parameters=True)

    def batches(phase: str, index: int):
        return train_loader.epoch(PHASE_OFFSETS[phase] + index)

    driver = TickTock(net, graph, batches, config, device=run.rt.device, amp_dtype=run.rt.amp_dtype,
                      channels_last=run.rt.channels_last, checkpoint_fn=lambda state: run.save("prune", state),
                      log_fn=lambda rec: run.log({"stage": "prune", "event": rec["phase"], **rec}),
                      eval_fn=lambda m: evaluate_all_ranks(run, m, val_loader))
    state = run.load("prune")
    if state is not None:
        driver.load_state_dict(state)
    with tqdm(desc="Tick-Tock", unit="phase", disable=not run.rt.is_main, leave=False) as bar:
        while not driver.done:
            rec = driver.step()
            bar.update()
            bar.set_postfix(macs=f"{rec['macs_ratio']:.1%}", target=f"{driver.target / driver.full_macs:.1%}")
    melted = melt(model, graph)
    run.save("pruned", {"model": melted.state_dict(), "widths": melted.widths, "num_classes": melted.num_classes})
    return melted


def finetune_stage(run: Run, model: nn.Module, train_loader, val_loader,
                   teacher: nn.Module) -> tuple[nn.Module, dict]:
    """Fine-tune the melted model; returns it and its final validation metrics.

    With ``distill_weight`` > 0 in ``[finetune]``, ``teacher`` (the unpruned baseline) supplies
    soft targets (see ``gdzoo.distill``); otherwise it is not used.
    """
    from .distill import Distillation

    cfg = take(run.recipe["finetune"], FINETUNE_DEFAULTS, "finetune")
    done = run.load("finetune")
    if done is not None:
        model.load_state_dict(done["model"])
        return model, done["metrics"]
    criterion = None
    if cfg["distill_weight"]:
        criterion = Distillation(teacher.to(run.rt.device), cfg["distill_weight"], cfg["distill_temperature"])
    if run.rt.channels_last:
        model = model.to(memory_format=torch.channels_last)
        teacher.to(memory_format=torch.channels_last)
    metrics = train_epochs(run, "finetune", model, cfg, train_loader, val_loader, criterion)
    run.save("finetune", {"model": model.state_dict(), "metrics": metrics})
    run.log({"stage": "finetune", "event": "done", "val_top1": metrics["top1"], "loss": metrics["loss"]})
    return model, metrics


def _export(run: Run, model: nn.Module, metrics: dict, folder: str, name: str, command: str,
            baseline: Optional[dict], extra: dict) -> None:
    """Write one export folder (rank 0) in the zoo's on-Hub format."""
    from .zoo import export_model

    cfg = take(run.recipe["data"], DATA_DEFAULTS, "data")
    split = f"{cfg['data_description'] or cfg['source']} validation split"
    crop = "center crop" if cfg["source"] == "imagenet" else "full image"
    export_model(
        model.eval(), run.out / folder, name=name, dataset=cfg["dataset"],
        metrics={"top1": 100 * metrics["top1"], "top5": 100 * metrics["top5"], "eval_split": split,
                 "eval_notes": f"top-1 on the {split} ({metrics['samples']} images), {crop} at {cfg['image_size']}px"},
        provenance={"recipe": run.recipe["recipe"], "preset": run.recipe["preset"], "seed": run.seed,
                    "gdzoo_version": __version__, "git_commit": _git_commit(), "date": _dt.date.today().isoformat(),
                    "machine": f"{platform.machine()} {run.rt.device.type}", "world_size": run.rt.world_size, **extra},
        reproduce=command, baseline=baseline, label_names=run.classes, mean=cfg["mean"], std=cfg["std"],
        input_size=(3, cfg["image_size"], cfg["image_size"]), overwrite=True)


def export_stage(run: Run, model: nn.Module, metrics: dict, baseline_model: nn.Module, baseline_metrics: dict,
                 command: str) -> dict:
    """Write OUT/export (the zoo's on-Hub format) and OUT/metrics.json; return the metrics."""
    size = take(run.recipe["data"], DATA_DEFAULTS, "data")["image_size"]
    input_size = (3, size, size)
    base_macs, base_params = count_flops(baseline_model, input_size)
    macs, params = count_flops(model, input_size)
    summary = {
        "variant": run.recipe["name"], "recipe": run.recipe["recipe"], "preset": run.recipe["preset"],
        "arch": run.recipe["arch"], "widths": model.widths, "seed": run.seed,
        "top1": metrics["top1"], "top5": metrics["top5"], "baseline_top1": baseline_metrics["top1"],
        "macs": macs, "params": params, "baseline_macs": base_macs, "baseline_params": base_params,
        "macs_ratio": macs / base_macs, "params_ratio": params / base_params, "input_size": list(input_size),
        "eval_samples": metrics["samples"], "wall_time_s": round(compute_seconds(run.out, time.time()), 1),
    }
    if run.rt.is_main:
        _export(run, model, metrics, "export", run.recipe["name"], command,
                {"name": run.recipe["arch"], "macs": base_macs, "params": base_params},
                {"baseline_top1": round(100 * baseline_metrics["top1"], 2), "baseline_init": run.init,
                 "baseline_init_provenance": run.init_provenance,
                 "schedule": {key: run.recipe[key] for key in ("baseline", "prune", "finetune")}})
        checkpoint_json(run.out / "metrics.json", summary)
    distributed.barrier()
    return summary


def reproduce_command_line(recipe: dict, preset: Optional[str], data_path: Optional[str], init: str,
                           seed: int) -> str:
    """The command that regenerates a run, for its card: the data folder and any non-default
    baseline are placeholders (their provenance is recorded beside it)."""
    parts = ["gdzoo reproduce", recipe["recipe"]]
    if preset:
        parts.append(f"--preset {preset}")
    if data_path is not None:
        parts.append("--data DATA_FOLDER")
    if init != recipe["baseline"].get("init", BASELINE_DEFAULTS["init"]):
        parts.append("--init BASELINE_EXPORT")
    if seed != recipe.get("seed", 0):
        parts.append(f"--seed {seed}")
    return " ".join(parts)


def reproduce(recipe_name: str, *, data_path: Optional[str] = None, out: Optional[str] = None,
              preset: Optional[str] = None, resume: bool = False, push: Optional[str] = None,
              device: Optional[str] = None, init: Optional[str] = None, seed: Optional[int] = None,
              amp: str = "auto", channels_last: Optional[bool] = None, compile: bool = False,
              reuse: Optional[str] = None) -> dict:
    """Run a recipe end to end into ``out`` (default ``runs/<recipe>[-<preset>]``); return its metrics.

    ``reuse``: the folder of an earlier run whose finished stages with equal inputs are copied in.
    """
    recipe = load_recipe(recipe_name, preset)
    check_recipe(recipe)
    seed = recipe.get("seed", 0) if seed is None else seed
    out_dir = Path(out) if out else Path("runs") / (recipe["recipe"] + (f"-{preset}" if preset else ""))
    init = init or recipe["baseline"].get("init", BASELINE_DEFAULTS["init"])
    rt = distributed.setup(device, amp, channels_last, compile)
    if reuse is not None and resume:
        raise RunError("--reuse seeds a new run; drop it when passing --resume")
    reused: list[str] = []
    if rt.is_main:
        prepare_out(out_dir, recipe, seed, init, resume)
        if reuse is not None:
            try:
                reused = reuse_stages(Path(reuse), out_dir, recipe, seed, init)
            except RunError:
                shutil.rmtree(out_dir / "state")  # leave no half-seeded run behind
                (out_dir / "run.json").unlink()
                raise
    distributed.barrier()
    run = Run(recipe, out_dir, rt, seed, init, init_provenance(init))
    _seed_everything(seed)
    run.log({"stage": "run", "event": "start", "resume": resume})
    if reused:
        run.log({"stage": "run", "event": "reuse", "source": str(Path(reuse).resolve()), "stages": reused})
    command = reproduce_command_line(recipe, preset, data_path, init, seed)
    train_loader, val_loader, run.classes = build_loaders(recipe, data_path, rt, seed)
    baseline, baseline_metrics = baseline_stage(run, train_loader, val_loader, command)
    # pruning decorates the baseline in place: keep a plain copy, the MACs reference and the teacher
    baseline_copy = create_model(recipe["arch"], widths=baseline.widths, num_classes=baseline.num_classes)
    baseline_copy.load_state_dict(baseline.state_dict())
    pruned = prune_stage(run, baseline, train_loader, val_loader)
    model, metrics = finetune_stage(run, pruned, train_loader, val_loader, baseline_copy)
    summary = export_stage(run, model, metrics, baseline_copy, baseline_metrics, command)
    run.log({"stage": "export", "event": "done", "val_top1": metrics["top1"], "macs_ratio": summary["macs_ratio"],
             "params_ratio": summary["params_ratio"]})
    if push and rt.is_main:
        from .zoo.publish import push_folder

        push_folder(out_dir / "export", push)
    return summary
