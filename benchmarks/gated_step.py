"""Training-step time of a gated vs a plain ResNet-56 on CPU (interleaved repeats, medians).

Also times a naive gate (``bn(x) * gate * mask`` as separate elementwise ops) for comparison.
Usage: python benchmarks/gated_step.py [--repeats 7] [--steps 2] [--batch 128] [--threads 2]
"""
from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time

import torch
from torch import nn

from gdzoo import create_model
from gdzoo.engine import decorate


class NaiveGate(nn.Module):
    """The obvious design the engine avoids: a BN followed by two elementwise multiplies."""

    def __init__(self, bn: nn.BatchNorm2d) -> None:
        super().__init__()
        self.bn = bn
        self.gate = nn.Parameter(torch.ones(bn.num_features))
        self.register_buffer("mask", torch.ones(bn.num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x) * self.gate.view(1, -1, 1, 1) * self.mask.view(1, -1, 1, 1)


def naive(model: nn.Module) -> nn.Module:
    for name, m in list(model.named_modules()):
        if type(m) is nn.BatchNorm2d:
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, NaiveGate(m))
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--steps", type=int, default=2, help="timed steps per repeat")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = {"plain": create_model("cifar_resnet56"), "gated": decorate(create_model("cifar_resnet56")),
              "naive-mul": naive(create_model("cifar_resnet56"))}
    opts = {k: torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.01, momentum=0.9,
                               weight_decay=5e-4) for k, m in models.items()}
    x, y = torch.randn(args.batch, 3, 32, 32), torch.randint(0, 10, (args.batch,))

    def step(name: str) -> None:
        m, opt = models[name], opts[name]
        loss = nn.functional.cross_entropy(m(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for name in models:  # warm-up
        step(name)
    times: dict[str, list[float]] = {k: [] for k in models}
    for r in range(args.repeats):
        order = list(models) if r % 2 == 0 else list(reversed(models))
        for name in order:
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(name)
            times[name].append((time.perf_counter() - t0) / args.steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"# {datetime.date.today()} torch {torch.__version__} {platform.processor() or platform.machine()}, "
          f"{args.threads} threads, batch {args.batch}, {args.repeats} interleaved repeats x {args.steps} steps")
    for k, v in med.items():
        # Paired ratio: each repeat times every variant back to back, so load drift cancels.
        paired = statistics.median(a / b for a, b in zip(times[k], times["plain"]))
        print(f"{k:10s} median {v * 1000:8.1f} ms/step  ({(v / med['plain'] - 1) * 100:+.1f}% vs plain; "
              f"median paired ratio {(paired - 1) * 100:+.1f}%)  all: {[round(t * 1000) for t in times[k]]}")


if __name__ == "__main__":
    main()
