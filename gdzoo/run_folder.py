"""A reproduce run's folder: its identity (run.json), log, atomic stage checkpoints, and the rules
for starting, resuming or seeding (``--reuse``) one. Everything here runs on rank 0 or is rank-safe.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from tqdm.auto import tqdm

from . import checkpoint, distributed


class RunError(RuntimeError):
    """A run that cannot start or continue as asked; the message says what to do."""


@dataclass
class Run:
    """One reproduce run: its recipe, output folder, runtime and log."""

    recipe: dict
    out: Path
    rt: distributed.Runtime
    seed: int
    init: str = "scratch"
    init_provenance: Optional[dict] = None  # where the initial weights came from, when they say
    classes: list = field(default_factory=list)
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.out / "log.jsonl"

    @property
    def state(self) -> Path:
        return self.out / "state"

    def log(self, record: dict) -> None:
        """Append one JSON record to log.jsonl and print its summary line (rank 0 only)."""
        if not self.rt.is_main:
            return
        record = {"time": round(time.time(), 3), **record}
        with open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        tqdm.write(_summary(record))

    def save(self, name: str, obj: Any) -> None:
        if self.rt.is_main:
            checkpoint.atomic_save(obj, self.state / f"{name}.pt")
        distributed.barrier()

    def load(self, name: str) -> Optional[Any]:
        return checkpoint.load(self.state / f"{name}.pt")


def _summary(record: dict) -> str:
    parts = [f"[{record.get('stage', '?')}]"]
    for key, fmt in (("event", "{}"), ("index", "#{}"), ("macs_ratio", "MACs {:.1%}"),
                     ("params_ratio", "params {:.1%}"), ("loss", "loss {:.4f}"), ("acc", "acc {:.2%}"),
                     ("val_top1", "val {:.2%}"), ("eval_top1", "val {:.2%}"), ("lr", "lr {:.2e}"),
                     ("units_pruned", "pruned {}")):
        if record.get(key) is not None:
            parts.append(fmt.format(record[key]))
    return " ".join(parts)


def compute_seconds(out: Path, now: float) -> float:
    """Seconds a run spent running, summed over its invocations (the gaps between a kill and its
    ``--resume`` excluded): each invocation logs a ``start`` record; the first begins at run.json."""
    segment_start = last = (out / "run.json").stat().st_mtime
    total = 0.0
    for line in (out / "log.jsonl").read_text().splitlines() if (out / "log.jsonl").exists() else []:
        record = json.loads(line)
        if record.get("event") == "start":
            total += last - segment_start
            segment_start = record["time"]
        last = record["time"]
    return total + now - segment_start


def checkpoint_json(path: Path, obj: Any) -> None:
    """Write JSON atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def prepare_out(out: Path, recipe: dict, seed: int, init: str, resume: bool) -> None:
    """Refuse an output folder that holds another run, or this run without ``--resume``."""
    identity = {"recipe": recipe, "seed": seed, "init": init}
    run_file = out / "run.json"
    if run_file.is_file():
        existing = json.loads(run_file.read_text())
        if existing != identity:
            raise RunError(f"{out} holds another run (recipe {existing.get('recipe', {}).get('recipe')!r}, preset "
                           f"{existing.get('recipe', {}).get('preset')!r}, seed {existing.get('seed')}) or this recipe "
                           f"changed since it started; choose another --out")
        if not resume:
            raise RunError(f"{out} already holds this run; pass --resume to continue it, or choose another --out")
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunError(f"{out} exists and is not an empty folder of a gdzoo run; choose a new or empty --out")
    try:
        (out / "state").mkdir(parents=True, exist_ok=True)
        checkpoint_json(run_file, identity)
    except OSError as error:
        raise RunError(f"cannot write to {out} ({error.strerror}); choose a writable --out") from error


STAGE_INPUTS = {"baseline": ("arch", "data", "baseline"), "pruned": ("arch", "data", "baseline", "prune")}


def reuse_stages(source: Path, out: Path, recipe: dict, seed: int, init: str) -> list[str]:
    """Copy the finished stages of the run in ``source`` whose inputs equal this run's into ``out``.

    A stage's inputs are the seed, the baseline init and the recipe sections it reads, so a run that
    only changes ``[finetune]`` starts from the other run's pruned model instead of pruning again.
    """
    run_file = source / "run.json"
    if not run_file.is_file():
        raise RunError(f"--reuse {source}: no gdzoo run there (run.json missing); pass the --out of an earlier run")
    other = json.loads(run_file.read_text())
    if (other.get("seed"), other.get("init")) != (seed, init):
        raise RunError(f"--reuse {source}: that run used seed {other.get('seed')} and --init {other.get('init')}, "
                       f"this one seed {seed} and --init {init}; pass the same --seed and --init")
    reused = []
    for stage, keys in STAGE_INPUTS.items():
        differs = [k for k in keys if other["recipe"].get(k) != recipe.get(k)]
        if differs:
            if not reused:
                raise RunError(f"--reuse {source}: nothing to reuse, its [{differs[0]}] differs from this recipe's")
            break
        if not (source / "state" / f"{stage}.pt").is_file():
            break
        reused.append(stage)
    if not reused:
        raise RunError(f"--reuse {source}: that run has not finished its baseline stage yet")
    for stage in reused:
        tmp = out / "state" / f".{stage}.pt.tmp"
        shutil.copyfile(source / "state" / f"{stage}.pt", tmp)
        os.replace(tmp, out / "state" / f"{stage}.pt")
    if (source / "baseline").is_dir() and not (out / "baseline").exists():
        shutil.copytree(source / "baseline", out / ".baseline.tmp")
        os.replace(out / ".baseline.tmp", out / "baseline")
    return reused
