"""Pruning-engine costs on CPU: Tick scoring and Tock steps vs a plain training step, and ResNet-50 melt time.

Usage::

    python benchmarks/engine_costs.py [--arch cifar_resnet56] [--batch-size 64] [--threads 2] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from gdzoo.bench import engine_costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="cifar_resnet56")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="training steps per timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--melt-arch", default="resnet50")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = engine_costs(args.arch, args.batch_size, args.steps, args.repeats, melt_arch=args.melt_arch,
                          threads=args.threads, log=print)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
