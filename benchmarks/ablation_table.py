"""Print the issue-7 comparison table from finished runs and one ``gdzoo bench --json`` file.

Each run folder is a ``gdzoo reproduce`` output or a ``benchmarks/torch_pruning_peer.py`` output
(metrics.json, log.jsonl, export/). Accuracy, MACs and params come from metrics.json; stage wall
times from the log's timestamps (a stage copied with ``--reuse`` counts the time it took in the
run it came from); throughput from the bench rows whose source is the run's export folder.
Usage::

    gdzoo bench runs/r56-cpu/baseline runs/*/export --threads 2 --batch-sizes 1,256 --json bench.json
    python benchmarks/ablation_table.py --bench bench.json "Tick-Tock=runs/r56-cpu" "One-Shot=runs/r56-oneshot"
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def _events(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def _stage_seconds(events: list[dict], stage: str) -> float:
    """From the record before the stage's first record to its last one (0 when it did not run here)."""
    idx = [i for i, e in enumerate(events) if e["stage"] == stage]
    if not idx:
        return 0.0
    return events[idx[-1]]["time"] - events[max(idx[0] - 1, 0)]["time"]


def stage_times(run: Path) -> dict:
    """Pruning and fine-tuning wall seconds of a run, following ``--reuse`` to its source."""
    events = _events(run)
    times = {"prune": _stage_seconds(events, "prune"), "finetune": _stage_seconds(events, "finetune")}
    for e in events:
        if e["event"] == "reuse" and "pruned" in e["stages"]:
            times["prune"] = stage_times(Path(e["source"]))["prune"]
    return times


def budget(run: Path) -> str:
    """The training a run spent, in batches and epochs, read from its log and recipe."""
    events = _events(run)
    identity = json.loads((run / "run.json").read_text())
    finetune = sum(1 for e in events if e["stage"] == "finetune" and e["event"] == "epoch")
    if "peer" in identity:  # benchmarks/torch_pruning_peer.py
        steps = sum(1 for e in events if e["stage"] == "prune" and e["event"] == "step")
        return f"{steps * identity['batches_per_step']} scoring batches, {finetune} fine-tune epochs"
    for e in events:
        if e["event"] == "reuse" and "pruned" in e["stages"]:
            events = _events(Path(e["source"])) + events
    prune = identity["recipe"]["prune"]
    ticks = sum(1 for e in events if e["stage"] == "prune" and e["event"] == "tick")
    tocks = sum(1 for e in events if e["stage"] == "prune" and e["event"] == "tock")
    parts = [f"{ticks} x {prune['tick_steps']} gate batches"]
    if tocks:
        parts.append(f"{tocks * prune['tock_epochs']} Tock epochs")
    distilled = " (distilled from the baseline)" if identity["recipe"]["finetune"].get("distill_weight") else ""
    return ", ".join(parts + [f"{finetune} fine-tune epochs{distilled}"])


def _bench_row(rows: list[dict], export: Path, batch: int) -> dict | None:
    for r in rows:
        if r["batch_size"] == batch and r["source"] == f"export folder {export}":
            return r
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR")
    parser.add_argument("--bench", required=True, help="gdzoo bench --json output covering every export.")
    parser.add_argument("--batch", type=int, default=256, help="Bench batch size for the throughput column.")
    args = parser.parse_args()
    rows = json.loads(Path(args.bench).read_text())

    first = Path(args.runs[0].split("=", 1)[1])
    base = json.loads((first / "metrics.json").read_text())
    base_row = _bench_row(rows, first / "baseline", args.batch)
    print(f"| model | val top-1 | vs baseline | MACs | params | img/s (batch {args.batch}) | training budget "
          "| prune wall | fine-tune wall |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    base_speed = base_row["throughput"] if base_row else None
    print(f"| baseline | {100 * base['baseline_top1']:.2f}% | - | {base['baseline_macs'] / 1e6:.2f} M "
          f"| {base['baseline_params']:,} | {f'{base_speed:,.0f}' if base_speed else 'not timed'} | - | - | - |")
    for spec in args.runs:
        label, folder = spec.split("=", 1)
        run = Path(folder)
        m = json.loads((run / "metrics.json").read_text())
        times = stage_times(run)
        row = _bench_row(rows, run / "export", args.batch)
        speed = (f"{row['throughput']:,.0f} ({row['throughput'] / base_speed:.2f}x)"
                 if row and base_speed else "not timed")
        print(f"| {label} | {100 * m['top1']:.2f}% | {100 * (m['top1'] - base['baseline_top1']):+.2f} "
              f"| {m['macs'] / 1e6:.2f} M ({100 * (m['macs_ratio'] - 1):+.2f}%) "
              f"| {m['params']:,} ({100 * (m['params_ratio'] - 1):+.2f}%) | {speed} | {budget(run)} "
              f"| {times['prune'] / 60:.1f} min | {times['finetune'] / 60:.1f} min |")


if __name__ == "__main__":
    main()
