"""Why a pruned model is not as much faster as its MACs say: per-op and per-conv CPU profile.

For each model (zoo name, export folder or arch; ``NAME=WIDTHS_JSON_OR_FOLDER`` for a proxy structure) prints
torch.profiler's per-op table (self CPU time) and a per-conv table (channels, MACs, ms, GMAC/s), and
aggregates the MAC rate by conv width. Usage::

    python benchmarks/profile_widths.py resnet56 /path/to/export [--batch 128] [--threads 2] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from gdzoo.bench import conv_profile, resolve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = {"loadavg_before": os.getloadavg(), "threads": args.threads, "batch": args.batch, "models": {}}
    for item in args.names:
        name, sep, widths_from = item.partition("=")
        v = resolve(name, widths_from or None)
        model = v.build()
        x = torch.randn(args.batch, *v.input_size)
        with torch.inference_mode():
            model(x)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(args.repeats):
                    model(x)
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8)
        ops = {e.key: e.self_cpu_time_total / args.repeats / 1e3 for e in prof.key_averages()}
        convs = conv_profile(model, x, args.repeats)
        by_width = defaultdict(lambda: [0, 0.0])
        for c in convs:
            key = f"{c['in']}->{c['out']} k{c['kernel']} s{c['stride']} @{c['out_hw']}"
            by_width[key][0] += c["macs"]
            by_width[key][1] += c["ms"]
        agg = sorted(({"shape": k, "macs_M": m / 1e6, "ms": t, "gmacs_per_s": m / t / 1e6}
                      for k, (m, t) in by_width.items()), key=lambda r: -r["ms"])
        total_ms = sum(c["ms"] for c in convs)
        print(f"\n=== {v.name} ({v.source}), batch {args.batch}, {args.threads} threads ===\n{table}")
        print(f"convs: {total_ms:.1f} ms, {sum(c['macs'] for c in convs) / total_ms / 1e6:.1f} GMAC/s overall; "
              f"median per-conv rate {statistics.median(c['gmacs_per_s'] for c in convs):.1f} GMAC/s")
        print("| conv shape (in->out, kernel, stride, out HxW) | MACs (M, batch) | ms | GMAC/s |")
        for r in agg:
            print(f"| {r['shape']} | {r['macs_M']:.0f} | {r['ms']:.1f} | {r['gmacs_per_s']:.1f} |")
        out["models"][v.name] = {"source": v.source, "ops_ms": ops, "convs": convs, "by_shape": agg,
                                 "conv_ms": total_ms}
    out["loadavg_after"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
