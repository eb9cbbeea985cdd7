"""Compare the converted upstream ResNet-56 exports: widths, MACs/params (two counts), accuracy, CPU speed.

Reads two export folders written by ``gdzoo convert-upstream`` (accuracy is taken from their
config.json, measured at conversion with ``--data``), rebuilds each from config.json +
model.safetensors alone, and times both in one interleaved run so that load from other processes
hits both alike. Usage::

    python benchmarks/upstream.py --baseline DIR --pruned DIR [--threads 2] [--repeats 7] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import date
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file
from torch import nn

from gdzoo import count_flops
from gdzoo.models import create_model


def load_export(folder: Path) -> tuple[nn.Module, dict]:
    """The model of an export folder (strict load) and its config.json."""
    cfg = json.loads((folder / "config.json").read_text())
    model = create_model(cfg["arch"], widths=cfg["widths"], num_classes=cfg["num_classes"])
    model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)
    return model.eval(), cfg


def thop_style_ops(model: nn.Module, input_size: tuple[int, int, int]) -> int:
    """Per-image ops counted as thop does for these modules (the paper's "FLOPs" are of this kind).

    Conv2d: out elements x (Cin/groups x kh x kw) (+1 with bias); Linear: in x out features;
    BatchNorm2d: 2 per output element; AdaptiveAvgPool2d: (H*W + 1) per output element;
    ReLU: 0; residual additions are functional, not modules, so thop does not see them.
    """
    total = 0

    def hook(m: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        nonlocal total
        x = inputs[0]
        if isinstance(m, nn.Conv2d):
            per = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1] + (m.bias is not None)
            total += out.numel() * per
        elif isinstance(m, nn.Linear):
            total += m.in_features * out.numel()
        elif isinstance(m, nn.BatchNorm2d):
            total += 2 * out.numel()
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            total += (x.shape[2] * x.shape[3] // (out.shape[2] * out.shape[3]) + 1) * out.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.AdaptiveAvgPool2d))]
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_size))
    finally:
        for h in handles:
            h.remove()
    return total


def _timed(fn: Callable[[], object], calls: int) -> float:
    """Median seconds of ``calls`` calls of ``fn``."""
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_speed(models: dict[str, nn.Module], repeats: int, batch: int = 256,
                      latency_calls: int = 30) -> dict[str, dict[str, float]]:
    """Throughput (images/s at ``batch``) and latency (ms at batch 1): medians over ``repeats``
    rounds, each round timing every model once, in alternating order, after a warm-up."""
    g = torch.Generator().manual_seed(0)
    big, one = torch.randn(batch, 3, 32, 32, generator=g), torch.randn(1, 3, 32, 32, generator=g)
    names = list(models)
    samples: dict[str, dict[str, list[float]]] = {n: {"throughput": [], "latency": []} for n in names}
    with torch.inference_mode():
        for name in names:  # warm-up: allocator, oneDNN primitive caches
            for _ in range(2):
                models[name](big)
            for _ in range(10):
                models[name](one)
        for r in range(repeats):
            for name in (names if r % 2 == 0 else names[::-1]):
                model = models[name]
                samples[name]["throughput"].append(batch / _timed(lambda: model(big), 1))
                samples[name]["latency"].append(1e3 * _timed(lambda: model(one), latency_calls))
    return {n: {k: statistics.median(v) for k, v in s.items()} for n, s in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="export of the unpruned checkpoint")
    parser.add_argument("--pruned", type=Path, required=True, help="export of the gated (pruned) checkpoint")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    load_before = os.getloadavg()
    models, result = {}, {"models": {}}
    for key, folder in (("baseline", args.baseline), ("pruned", args.pruned)):
        model, cfg = load_export(folder)
        models[key] = model
        input_size = tuple(cfg["input_size"])
        macs, params = count_flops(model, input_size)
        result["models"][key] = {
            "folder": str(folder), "widths": cfg["widths"], "macs": macs, "params": params,
            "thop_style_ops": thop_style_ops(model, input_size),
            "top1": cfg["metrics"].get("top1"), "eval_split": cfg["metrics"].get("eval_split")}
    speed = interleaved_speed(models, args.repeats)
    base, pruned = result["models"]["baseline"], result["models"]["pruned"]
    for key in models:
        result["models"][key].update(speed[key])
    result["reduction"] = {k: 1 - pruned[k] / base[k] for k in ("macs", "params", "thop_style_ops")}
    result["speedup"] = {"throughput": pruned["throughput"] / base["throughput"],
                         "latency": base["latency"] / pruned["latency"]}
    result["machine"] = {"cpu": platform.machine(), "cores": os.cpu_count(), "threads": args.threads,
                         "torch": torch.__version__, "loadavg_before": load_before,
                         "loadavg_after": os.getloadavg(), "date": date.today().isoformat(),
                         "repeats": args.repeats}
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
