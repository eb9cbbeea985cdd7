"""Inference speed of pruned variants against their baselines, measured in one interleaved run.

MACs are a proxy: this measures what pruning is for. For every variant and its baseline it
reports throughput (images/s) and per-batch latency at each batch size, peak memory, MACs and
params, optionally with the inference optimisations a user would apply to both sides (BatchNorm
folded into the convs, channels_last, ``torch.compile``).

* Interleaving: after a warm-up of every (model, options) unit, each of ``repeats`` rounds times
  every unit once, in forward order on even rounds and reverse order on odd ones, so load from
  other processes and thermal drift hit all units alike; the reported numbers are medians over
  rounds. Each timing runs enough forward calls to last ``min_time_s`` (1 call at large batch).
* Weights: zoo entries without published weights are built with random weights (the speed of a
  dense conv does not depend on the values) and rows say ``"weights": "random"``.
* Peak memory: CUDA: ``torch.cuda.max_memory_allocated`` over one forward (everything resident:
  weights, input, activations). CPU: the peak of live bytes of the tensors that the forward's ops
  create (a ``TorchDispatchMode`` tracks storages as ops return them and as they die), plus the
  weights and the input; oneDNN scratch buffers and allocator caching are not seen. Not measured
  (``None``) for compiled models, whose ops run inside generated kernels.

Pruned zoo entries whose widths do not exist yet (no pruning run dropped in) fail with
:class:`MissingWidthsError` unless ``widths_from`` supplies a structure (an export folder, a
``gdzoo reproduce`` run folder or a widths JSON file); such rows are labelled as proxies.
"""
from __future__ import annotations

import copy
import json
import math
import os
import platform
import statistics
import time
import weakref
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from .flops import count_flops
from .models import create_model, default_input_size, default_widths, list_archs

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
REQUIRED_KEYS = ("name", "batch_size", "throughput", "latency_ms", "macs", "params", "device", "weights")


class BenchError(ValueError):
    """A benchmark request that cannot be served (unknown name, missing widths, bad option)."""


class MissingWidthsError(BenchError):
    """A pruned zoo entry whose widths no pruning run has produced yet."""


# ----- widths ------------------------------------------------------------------------------------
def round_widths(widths: Any, arch: str, multiple: int = 8) -> Any:
    """``widths`` with every width rounded up to a multiple of ``multiple``, capped at ``arch``'s
    unpruned width at the same place (so a rounded model is never wider than the baseline).

    Pure: returns a new spec, ``widths`` is not modified. Raises ValueError if ``widths`` does not
    have the structure of ``default_widths(arch)``.
    """
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f"multiple must be a positive int, got {multiple!r}")
    return _round(widths, default_widths(arch), multiple, "")


def _round(w: Any, cap: Any, m: int, where: str) -> Any:
    if isinstance(cap, dict):
        if not isinstance(w, dict) or set(w) != set(cap):
            raise ValueError(f"widths{where}: expected keys {sorted(cap)}, got {w!r}")
        return {k: _round(w[k], cap[k], m, f"{where}[{k!r}]") for k in w}
    if isinstance(cap, (list, tuple)):
        if not isinstance(w, (list, tuple)) or len(w) != len(cap):
            raise ValueError(f"widths{where}: expected a list of {len(cap)}, got {w!r}")
        return [_round(a, b, m, f"{where}[{i}]") for i, (a, b) in enumerate(zip(w, cap))]
    if isinstance(w, bool) or not isinstance(w, int) or w < 1:
        raise ValueError(f"widths{where} must be a positive int, got {w!r}")
    return min(-(-w // m) * m, max(cap, w))


def read_widths(path: str | os.PathLike) -> tuple[str, dict, str]:
    """``(arch, widths, description)`` from an export folder (config.json), a ``gdzoo reproduce``
    run folder (export/config.json) or a JSON file holding a config (arch + widths) or bare widths
    (arch then ``""``)."""
    p = Path(path).expanduser()
    candidates = [p] if p.is_file() else [p / "config.json", p / "export" / "config.json"]
    for c in candidates:
        if c.is_file():
            try:
                raw = json.loads(c.read_text())
            except json.JSONDecodeError as e:
                raise BenchError(f"{c}: not valid JSON ({e})") from None
            if isinstance(raw, dict) and "widths" in raw:
                return str(raw.get("arch", "")), raw["widths"], str(c)
            if isinstance(raw, dict):
                return "", raw, str(c)
            raise BenchError(f"{c}: expected a JSON object (a config with 'widths', or a widths spec)")
    raise BenchError(f"--widths-from {path}: no config.json, export/config.json or JSON file there")


# ----- what to measure ---------------------------------------------------------------------------
@dataclass
class Variant:
    """One structure to time. ``build()`` returns the eval-mode model (fresh each call)."""
    name: str
    arch: str
    widths: dict
    num_classes: int
    input_size: tuple
    weights: str                  # "trained" or "random"
    source: str                   # where the structure (and weights) come from
    role: str = "variant"         # "variant" or "baseline"
    baseline: Optional[str] = None
    loader: Optional[Callable[[], nn.Module]] = field(default=None, repr=False)

    def build(self) -> nn.Module:
        if self.loader is not None:
            return self.loader().eval()
        return create_model(self.arch, widths=self.widths, num_classes=self.num_classes).eval()


def _arch_variant(arch: str, name: Optional[str] = None, widths: Optional[dict] = None, *, role: str = "variant",
                  source: Optional[str] = None) -> Variant:
    from .models import _lookup
    spec = _lookup(arch)
    w = default_widths(arch) if widths is None else widths
    create_model(arch, widths=w, num_classes=1) if widths is not None else None  # validates the spec early
    return Variant(name=name or arch, arch=arch, widths=w, num_classes=spec.num_classes,
                   input_size=tuple(default_input_size(arch)), weights="random",
                   source=source or f"architecture {arch} at {'given' if widths is not None else 'unpruned'} widths",
                   role=role)


def resolve(name: str, widths_from: Optional[str] = None, *, role: str = "variant") -> Variant:
    """A :class:`Variant` from a zoo entry name, an export folder or an architecture name.

    ``widths_from`` (an export / run folder or widths JSON) gives the structure of a pruned zoo entry
    whose widths are not known yet; it is an error for names that already have widths.
    """
    from . import zoo
    from .zoo.registry import RECIPE_ONLY

    if zoo.is_entry(name):
        entry = zoo.get_entry(name)
        widths, source = entry.widths, f"zoo entry {name}"
        if widths_from is not None:
            if entry.widths is not None:
                raise BenchError(f"{name!r} already has widths in the zoo; --widths-from is only for entries "
                                 "whose pruning run has not produced widths yet")
            arch, widths, where = read_widths(widths_from)
            if arch and arch != entry.arch:
                raise BenchError(f"--widths-from {widths_from}: structure is {arch}, but {name!r} is {entry.arch}")
            source = f"proxy structure for {name} from {where}"
        if widths is None:
            how = f" Make them with: {entry.reproduce}." if entry.reproduce else ""
            raise MissingWidthsError(
                f"zoo entry {name!r} has no pruned widths yet (no pruning run has been dropped into the "
                f"registry), so there is no structure to time.{how} Or pass --widths-from {name}=DIR with an "
                "export folder, a `gdzoo reproduce --out DIR` run folder or a widths JSON file as a proxy.")
        ds = zoo.datasets.get_dataset(entry.dataset)
        published = entry.status != RECIPE_ONLY and widths_from is None  # on the Hub or in the package
        loader = (lambda: zoo.load(name, pretrained=True)) if published else None
        return Variant(name=name, arch=entry.arch, widths=widths, num_classes=ds.num_classes,
                       input_size=tuple(ds.input_size), weights="trained" if published else "random",
                       source=source, role=role, baseline=entry.baseline, loader=loader)
    if widths_from is not None:
        raise BenchError(f"--widths-from applies to zoo entries without widths; {name!r} is not one")
    path = Path(name).expanduser()
    if path.is_dir():
        from .zoo.hubconfig import read_config
        cfg_path = path / "config.json"
        if not cfg_path.is_file():
            raise BenchError(f"{name!r} is a folder without config.json: not a gdzoo export folder")
        cfg = read_config(cfg_path, str(path))
        from . import load
        return Variant(name=cfg.get("name") or path.name, arch=cfg["arch"], widths=cfg["widths"],
                       num_classes=cfg["num_classes"], input_size=tuple(cfg["input_size"]), weights="trained",
                       source=f"export folder {path}", role=role,
                       baseline=None if cfg["widths"] == default_widths(cfg["arch"]) else cfg["arch"],
                       loader=lambda: load(str(path)))
    if name in list_archs():
        return _arch_variant(name, role=role)
    from difflib import get_close_matches
    known = list(zoo.entries()) + list_archs()
    close = get_close_matches(name, list(dict.fromkeys(known)), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise BenchError(f"unknown model {name!r}: not a zoo entry, an export folder or an architecture.{hint} "
                     f"Zoo entries: {', '.join(zoo.entries())}; archs: {', '.join(list_archs())}.")


def resolve_with_baselines(names: Sequence[str], widths_from: Mapping[str, str] | None = None,
                           baseline: Optional[str] = None, round_to: Optional[int] = None) -> list[Variant]:
    """Variants for ``names`` plus each one's baseline (once), baselines first.

    A zoo entry's baseline is its registry ``baseline``; a pruned export folder's is its architecture
    at unpruned widths (random weights); ``baseline`` (a name :func:`resolve` accepts) overrides both.
    A requested name that is another's baseline is timed once, as the baseline. ``round_to`` adds, for
    every pruned variant, a copy with widths rounded up to that multiple (named ``NAME@rN``).
    """
    widths_from = dict(widths_from or {})
    unknown = set(widths_from) - set(names)
    if unknown:
        raise BenchError(f"--widths-from names {sorted(unknown)}, which are not among the models to time {list(names)}")
    variants = [resolve(n, widths_from.get(n)) for n in names]
    repeated = Counter(v.name for v in variants)
    for requested, v in zip(names, variants):
        if repeated[v.name] > 1 and v.source.startswith("export folder"):
            v.name = requested  # exports of one variant from different runs: tell them apart by folder
    by_name = {v.name: v for v in variants}
    if len(by_name) != len(variants):
        raise BenchError(f"the same model is named twice in {list(names)}")
    by_name.update((requested, v) for requested, v in zip(names, variants))  # --baseline may name a folder
    bases: dict[str, Variant] = {}
    for v in variants:
        bname = baseline or v.baseline
        if bname is None or bname == v.name or v.widths == default_widths(v.arch) and baseline is None:
            v.baseline = None
            if v.widths == default_widths(v.arch):
                v.role = "baseline"  # an unpruned model is timed as a baseline
            continue
        if bname in by_name:
            b = by_name[bname]
        elif bname in bases:
            b = bases[bname]
        elif baseline is None and bname in list_archs() and not _is_entry(bname):
            b = _arch_variant(bname, name=f"{bname} (unpruned)")
        else:
            b = resolve(bname)
        b.role = "baseline"
        bases[bname] = b
        v.baseline = b.name
    baselines = [v for v in variants if v.role == "baseline"]
    baselines += [b for b in bases.values() if all(b is not v for v in baselines)]
    others = [v for v in variants if v.role != "baseline"]
    extra = []
    if round_to:
        for v in others:
            if v.widths == default_widths(v.arch):
                continue
            rw = round_widths(v.widths, v.arch, round_to)
            extra.append(Variant(name=f"{v.name}@r{round_to}", arch=v.arch, widths=rw, num_classes=v.num_classes,
                                 input_size=v.input_size, weights="random",
                                 source=f"{v.source}, widths rounded up to multiples of {round_to}",
                                 role="variant", baseline=v.baseline))
    return baselines + others + extra


def _is_entry(name: str) -> bool:
    from . import zoo
    return zoo.is_entry(name)


# ----- inference optimisations -------------------------------------------------------------------
@dataclass(frozen=True)
class Options:
    fold_bn: bool = False
    channels_last: bool = False
    compile: bool = False

    @property
    def label(self) -> str:
        on = [k for k in ("fold_bn", "channels_last", "compile") if getattr(self, k)]
        return "+".join(on) if on else "plain"


def fold_bn(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with every conv -> BatchNorm pair folded into the conv
    (torch.fx's ``fuse``: traces the model and rewrites the graph; the original is untouched)."""
    from torch.fx.experimental.optimization import fuse
    return fuse(copy.deepcopy(model).eval(), inplace=True)


def prepare(model: nn.Module, opts: Options, dtype: torch.dtype, device: torch.device) -> nn.Module:
    """``model`` ready to time under ``opts`` (eval mode, on ``device`` in ``dtype``)."""
    model = model.eval().to(device=device, dtype=dtype)
    if opts.fold_bn:
        model = fold_bn(model)
    if opts.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if opts.compile:
        model = torch.compile(model, dynamic=False)
    return model


# ----- measurement -------------------------------------------------------------------------------
class _LiveBytes(TorchDispatchMode):
    """Tracks the live bytes of storages returned by ops while active (CPU peak-memory proxy)."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, list] = {}   # data_ptr -> [nbytes, python refs alive]
        self.current = self.peak = 0

    def _release(self, ptr: int) -> None:
        rec = self.live.get(ptr)
        if rec is None:
            return
        rec[1] -= 1
        if rec[1] == 0:
            self.current -= rec[0]
            del self.live[ptr]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                storage = t.untyped_storage()
                ptr = storage.data_ptr()
                if ptr in self.live:
                    self.live[ptr][1] += 1
                else:
                    self.live[ptr] = [storage.nbytes(), 1]
                    self.current += storage.nbytes()
                    self.peak = max(self.peak, self.current)
                weakref.finalize(t, self._release, ptr)
        return out


def peak_memory(model: nn.Module, x: torch.Tensor, compiled: bool = False) -> tuple[Optional[int], str]:
    """Peak memory of one forward of ``model`` on ``x``: ``(bytes or None, method)``."""
    static = sum(p.numel() * p.element_size() for p in model.parameters())
    static += sum(b.numel() * b.element_size() for b in model.buffers()) + x.numel() * x.element_size()
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        with torch.inference_mode():
            model(x)
        torch.cuda.synchronize(x.device)
        return int(torch.cuda.max_memory_allocated(x.device)), "torch.cuda.max_memory_allocated"
    if compiled:
        return None, "n/a (compiled: ops run inside generated kernels)"
    tracker = _LiveBytes()
    with torch.inference_mode(), tracker:
        model(x)
    return int(static + tracker.peak), "weights+input + peak live bytes of op outputs (TorchDispatchMode)"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_calls(fn: Callable[[], object], calls: int, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / calls


def interleaved_order(units: Sequence[Any], round_index: int) -> list[Any]:
    """The order of one timing round: forward on even rounds, reversed on odd rounds."""
    return list(units) if round_index % 2 == 0 else list(units)[::-1]


@dataclass
class BenchConfig:
    batch_sizes: Sequence[int] = (1, 256)
    device: str = "cpu"
    dtype: str = "float32"
    options: Sequence[Options] = (Options(),)
    threads: Optional[int] = None
    repeats: int = 7
    warmup: int = 2
    min_time_s: float = 0.05      # each timing lasts at least this long (repeating small batches)
    memory: bool = True
    seed: int = 0


def _env(cfg: BenchConfig) -> dict:
    env = {"torch": torch.__version__, "machine": platform.machine(), "host_cpus": os.cpu_count(),
           "threads": torch.get_num_threads(), "dtype": cfg.dtype,
           "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    if cfg.device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(torch.device(cfg.device))
    if hasattr(os, "getloadavg"):
        env["loadavg"] = [round(v, 2) for v in os.getloadavg()]
    return env


def run_bench(variants: Sequence[Variant], cfg: BenchConfig,
              log: Callable[[str], None] = lambda s: None) -> list[dict]:
    """Time every variant under every option set at every batch size, interleaved; one row each."""
    if cfg.dtype not in DTYPES:
        raise BenchError(f"dtype must be one of {sorted(DTYPES)}, got {cfg.dtype!r}")
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchError("--device cuda was asked for but torch sees no CUDA device")
    if not cfg.batch_sizes or any(b < 1 for b in cfg.batch_sizes) or cfg.repeats < 1:
        raise BenchError("batch sizes and repeats must be >= 1")
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    dtype = DTYPES[cfg.dtype]
    env_before = _env(cfg)
    gen = torch.Generator().manual_seed(cfg.seed)

    units = []   # (variant, options, model)
    counts = {}
    for v in variants:
        base = v.build()
        counts[v.name] = count_flops(base, v.input_size)
        for opts in cfg.options:
            units.append((v, opts, prepare(copy.deepcopy(base), opts, dtype, device)))
    inputs = {}
    for v, opts, _ in units:
        for bs in cfg.batch_sizes:
            key = (tuple(v.input_size), bs, opts.channels_last)
            if key not in inputs:
                x = torch.randn(bs, *v.input_size, generator=gen).to(device=device, dtype=dtype)
                inputs[key] = x.contiguous(memory_format=torch.channels_last) if opts.channels_last else x

    def x_for(v: Variant, opts: Options, bs: int) -> torch.Tensor:
        return inputs[(tuple(v.input_size), bs, opts.channels_last)]

    calls: dict[tuple, int] = {}
    with torch.inference_mode():
        for v, opts, model in units:    # warm-up (compiles here) and per-unit call counts
            for bs in cfg.batch_sizes:
                x = x_for(v, opts, bs)
                for _ in range(cfg.warmup):
                    model(x)
                t = _time_calls(lambda: model(x), 1, device)
                calls[(v.name, opts, bs)] = max(1, math.ceil(cfg.min_time_s / max(t, 1e-6)))
            log(f"warm: {v.name} [{opts.label}]")
        samples: dict[tuple, list[float]] = {k: [] for k in calls}
        order_log = []
        for r in range(cfg.repeats):
            for v, opts, model in interleaved_order(units, r):
                order_log.append((r, v.name, opts.label))
                for bs in cfg.batch_sizes:
                    x = x_for(v, opts, bs)
                    samples[(v.name, opts, bs)].append(_time_calls(lambda: model(x), calls[(v.name, opts, bs)], device))
            log(f"round {r + 1}/{cfg.repeats} done")
    mem = {}
    if cfg.memory:
        for v, opts, model in units:
            for bs in cfg.batch_sizes:
                mem[(v.name, opts, bs)] = peak_memory(model, x_for(v, opts, bs), compiled=opts.compile)
    env = {**env_before, "loadavg_after": _env(cfg).get("loadavg")}

    rows = []
    for v, opts, _ in units:
        macs, params = counts[v.name]
        for bs in cfg.batch_sizes:
            sec = statistics.median(samples[(v.name, opts, bs)])
            peak, how = mem.get((v.name, opts, bs), (None, "not measured"))
            rows.append({
                "name": v.name, "role": v.role, "baseline": v.baseline, "arch": v.arch, "source": v.source,
                "weights": v.weights, "options": opts.label, "device": str(device), "dtype": cfg.dtype,
                "threads": torch.get_num_threads() if device.type == "cpu" else None,
                "batch_size": bs, "input_size": list(v.input_size),
                "throughput": bs / sec, "latency_ms": 1e3 * sec,
                "latency_spread_ms": [1e3 * min(samples[(v.name, opts, bs)]), 1e3 * max(samples[(v.name, opts, bs)])],
                "calls_per_timing": calls[(v.name, opts, bs)], "repeats": cfg.repeats,
                "peak_memory_bytes": peak, "memory_method": how, "macs": macs, "params": params,
                "widths": v.widths, **{f"env_{k}": val for k, val in env.items()}})
    _add_ratios(rows)
    run_bench.last_order = order_log  # type: ignore[attr-defined]
    return rows


def _add_ratios(rows: list[dict]) -> None:
    """Speedups against the baseline (same options, batch size) and against plain (same model)."""
    index = {(r["name"], r["options"], r["batch_size"]): r for r in rows}
    for r in rows:
        b = index.get((r["baseline"], r["options"], r["batch_size"])) if r["baseline"] else None
        r["macs_ratio"] = b["macs"] / r["macs"] if b else None            # baseline MACs / variant MACs
        r["speedup"] = r["throughput"] / b["throughput"] if b else None   # variant / baseline, same options
        p = index.get((r["name"], "plain", r["batch_size"]))
        r["speedup_vs_plain"] = r["throughput"] / p["throughput"] if p and r["options"] != "plain" else None


def format_table(rows: Sequence[dict]) -> str:
    """Markdown table of ``run_bench`` rows."""
    head = ("| model | weights | options | batch | img/s | ms/batch | speedup | MACs | MACs ratio | params | "
            "peak mem |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]

    def f(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec) + "x"

    for r in rows:
        mem = "n/a" if r["peak_memory_bytes"] is None else f"{r['peak_memory_bytes'] / 2**20:.1f} MiB"
        lines.append(f"| {r['name']} | {r['weights']} | {r['options']} | {r['batch_size']} | "
                     f"{r['throughput']:.1f} | {r['latency_ms']:.2f} | {f(r['speedup'], '.2f')} | "
                     f"{r['macs'] / 1e6:.2f} M | {f(r['macs_ratio'], '.2f')} | {r['params']:,} | {mem} |")
    return "\n".join(lines)


def write_json(rows: Sequence[dict], path: str | os.PathLike) -> None:
    Path(path).write_text(json.dumps(list(rows), indent=1) + "\n")


# ----- engine costs ------------------------------------------------------------------------------
def _batches(n: int, bs: int, input_size: Sequence[int], num_classes: int, seed: int = 0) -> list:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(bs, *input_size, generator=g)
    y = torch.randint(0, num_classes, (bs,), generator=g)
    return [(x, y)] * n


def engine_costs(arch: str = "cifar_resnet56", batch_size: int = 64, steps: int = 3, repeats: int = 3,
                 melt_arch: Optional[str] = "resnet50", melt_repeats: int = 3, threads: Optional[int] = None,
                 log: Callable[[str], None] = lambda s: None) -> dict:
    """Costs of the pruning engine on CPU, interleaved and median of ``repeats`` rounds.

    * Tick: img/s of a Tick's scoring step (decorated model, convs frozen, forward + backward +
      ``TaylorScorer.accumulate`` + SGD step on gates/BN biases/classifier), through the same
      ``train_one_epoch`` call TickTock.tick makes; vs a plain training step of the undecorated model.
    * Tock: img/s of a Tock step (gated model, everything trains, L1 gate penalty) vs the plain step.
    * Melt (``melt_arch``, default ResNet-50 at 224x224): seconds of ``build_graph`` and of ``melt``
      on a gated model with a random half of the prunable units masked.
    """
    import numpy as np

    from .engine import TickTock, TickTockConfig, build_graph, decorate, gate_l1, melt
    from .training import train_one_epoch

    if threads is not None:
        torch.set_num_threads(threads)
    input_size = tuple(default_input_size(arch))
    torch.manual_seed(0)
    plain = create_model(arch)
    gated = decorate(copy.deepcopy(plain))
    graph = build_graph(gated, input_size)
    data = _batches(steps, batch_size, input_size, plain.num_classes)
    tt = TickTock(gated, graph, lambda phase, i: data, TickTockConfig(tick_steps=steps))
    plain_opt = torch.optim.SGD(plain.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)

    def tick() -> None:
        tt._set_trainable(tick=True)
        tt.scorer.reset()
        train_one_epoch(gated, data, tt.optimizer, lr_at=lambda s: 1e-3, after_backward=tt.scorer.accumulate,
                        max_steps=steps, disable_progress=True)

    def tock() -> None:
        tt._set_trainable(tick=False)
        train_one_epoch(gated, data, tt.optimizer, lr_at=lambda s: 1e-3, penalty=lambda: 1e-4 * gate_l1(gated),
                        max_steps=steps, disable_progress=True)

    def plain_step() -> None:
        train_one_epoch(plain, data, plain_opt, lr_at=lambda s: 1e-3, max_steps=steps, disable_progress=True)

    fns = {"tick (gated, convs frozen, Taylor scores)": tick, "tock (gated, L1 on gates)": tock,
           "plain training step": plain_step}
    for fn in fns.values():   # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    for r in range(repeats):
        for k in interleaved_order(list(fns), r):
            start = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - start)
        log(f"engine round {r + 1}/{repeats}")
    result: dict[str, Any] = {"arch": arch, "batch_size": batch_size, "steps_per_timing": steps, "repeats": repeats,
                              "threads": torch.get_num_threads(), "torch": torch.__version__,
                              "loadavg_before": load_before, "steps": {}}
    plain_t = statistics.median(times["plain training step"])
    for k, ts in times.items():
        t = statistics.median(ts)
        result["steps"][k] = {"img_per_s": steps * batch_size / t, "ms_per_step": 1e3 * t / steps,
                              "relative_to_plain": plain_t / t}
    if melt_arch:
        m_size = tuple(default_input_size(melt_arch))
        torch.manual_seed(0)
        net = decorate(create_model(melt_arch)).eval()
        rng = np.random.default_rng(0)
        g0 = build_graph(net, m_size)
        alive = rng.random(g0.num_units) < 0.5
        g0.set_alive(alive)
        t_graph, t_melt, widths = [], [], None
        for _ in range(melt_repeats):
            start = time.perf_counter()
            g = build_graph(net, m_size)
            t_graph.append(time.perf_counter() - start)
            start = time.perf_counter()
            melted = melt(net, g)
            t_melt.append(time.perf_counter() - start)
            widths = melted.widths
        result["melt"] = {"arch": melt_arch, "input_size": list(m_size), "units": int(g0.num_units),
                          "units_masked": int((~g0.alive()).sum()),
                          "build_graph_s": statistics.median(t_graph), "melt_s": statistics.median(t_melt),
                          "melted_macs": count_flops(melted, m_size)[0],
                          "full_macs": count_flops(create_model(melt_arch), m_size)[0],
                          "melted_stem": widths.get("stem") if isinstance(widths, dict) else None}
        log("melt done")
    result["loadavg_after"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    return result


# ----- per-layer profile -------------------------------------------------------------------------
def conv_profile(model: nn.Module, x: torch.Tensor, repeats: int = 3) -> list[dict]:
    """Per-conv wall time and MAC rate of ``model`` on ``x`` (CPU; forward hooks around each conv,
    median over ``repeats`` forwards). One row per Conv2d: its channels, output size, MACs, ms, GMAC/s."""
    times: dict[str, list[float]] = {}
    info: dict[str, dict] = {}
    starts: dict[str, float] = {}
    handles = []
    for name, m in model.named_modules():
        if not isinstance(m, nn.Conv2d):
            continue

        def pre(mod, inp, name=name):
            starts[name] = time.perf_counter()

        def post(mod, inp, out, name=name):
            times.setdefault(name, []).append(time.perf_counter() - starts[name])
            k = mod.kernel_size[0] * mod.kernel_size[1]
            info[name] = {"conv": name, "in": mod.in_channels, "out": mod.out_channels, "kernel": mod.kernel_size[0],
                          "stride": mod.stride[0], "out_hw": out.shape[-1],
                          "macs": out.numel() * mod.in_channels // mod.groups * k}
        handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    try:
        with torch.inference_mode():
            model(x)
            for name in list(times):
                times[name].clear()
            for _ in range(repeats):
                model(x)
    finally:
        for h in handles:
            h.remove()
    rows = []
    for name, ts in times.items():
        t = statistics.median(ts)
        rows.append({**info[name], "ms": 1e3 * t, "gmacs_per_s": info[name]["macs"] / t / 1e9})
    return rows


__all__ = ["BenchConfig", "BenchError", "MissingWidthsError", "Options", "REQUIRED_KEYS", "Variant", "conv_profile",
           "engine_costs", "fold_bn", "format_table", "interleaved_order", "peak_memory", "prepare", "read_widths",
           "resolve", "resolve_with_baselines", "round_widths", "run_bench", "write_json"]
