"""Tick-Tock: the Gate Decorator pruning schedule (and the paper's One-Shot / Tick-Only baselines).

* **Tick**: conv weights and hidden linears frozen; gates, BN biases and the classifier train on a
  small data subset while Taylor scores accumulate; then a global pruning step.
* **Tock** (every ``ticks_per_tock`` Ticks): everything trains for ``tock_epochs`` epochs with
  ``l1_lambda * sum|gate*mask|`` added to the loss and a triangular LR ``lr_min -> lr_max -> lr_min``.
* Stops once MACs reach the target; fine-tune the melted result with ``gdzoo.training``.

Data comes from ``batches_fn(phase, index)`` ("tick", tick index) / ("tock", epoch index), so the data order is fixed per Tick/epoch and a run resumed from
:meth:`TickTock.state_dict` (taken at any Tick/Tock boundary through ``checkpoint_fn``) ends with
bit-identical masks. For DistributedDataParallel, decorate and build the graph first, then wrap
with ``find_unused_parameters=True`` (Ticks freeze most parameters); scores are all-reduced.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Iterable, Mapping, Optional

import numpy as np
import torch
from torch import nn

from ..training import train_one_epoch, triangular_lr
from .gates import GatedBatchNorm2d, gate_l1, unwrap
from .graph import ChannelGraph
from .ranking import select_pruned
from .scores import TaylorScorer

MODES = ("ticktock", "tick_only", "one_shot")


@dataclass
class TickTockConfig:
    """Every hyperparameter of a pruning run (defaults follow the authors where they state one)."""
    mode: str = "ticktock"                  # "ticktock", "tick_only" or "one_shot"
    target_macs_ratio: float = 0.5          # stop at MACs <= ratio * unpruned MACs ...
    target_macs: Optional[int] = None       # ... or at this absolute MACs count
    tick_steps: int = 100                   # batches per Tick (the data subset)
    tick_lr: float = 1e-3                   # constant LR of the Tick's gate/BN/classifier updates
    units_per_tick: Optional[int] = None    # units pruned per Tick, or ...
    fraction_per_tick: float = 0.01         # ... this fraction of the alive prunable units
    ticks_per_tock: int = 10                # T
    tock_epochs: int = 1                    # E
    tock_steps: Optional[int] = None        # batches per Tock epoch (None: len() of the iterable)
    l1_lambda: float = 1e-4                 # Tock penalty on |gate * mask|
    lr_min: float = 1e-3                    # triangular Tock LR bounds
    lr_max: float = 1e-2
    momentum: float = 0.9
    weight_decay: float = 5e-4              # on all trainable parameters except gates
    min_share: float = 0.1                  # each group keeps >= ceil(min_share * its units)
    flops_eta: float = 0.0                  # FLOPs regularisation (scale-free, see ranking.py)
    round_to: int = 1                       # round each group's kept width up to a multiple
    score_reduction: str = "per_batch"      # "per_batch" (authors' code) or "total" (paper)
    max_ticks: int = 100_000                # safety stop

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.ticks_per_tock < 1 or self.tock_epochs < 0 or self.tick_steps < 1:
            raise ValueError("ticks_per_tock and tick_steps must be >= 1 and tock_epochs >= 0")


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class TickTock:
    """Driver of one pruning run. ``model`` is decorated (optionally DDP-wrapped); ``graph`` its graph."""

    def __init__(self, model: nn.Module, graph: ChannelGraph, batches_fn: Callable[[str, int], Iterable],
                 config: Optional[TickTockConfig] = None, *, device: torch.device | str = "cpu",
                 amp_dtype: Optional[torch.dtype] = None, channels_last: bool = False,
                 checkpoint_fn: Optional[Callable[[dict], None]] = None,
                 log_fn: Optional[Callable[[dict], None]] = None,
                 eval_fn: Optional[Callable[[nn.Module], Mapping[str, Any]]] = None) -> None:
        config = config if config is not None else TickTockConfig()
        self.model, self.net, self.graph, self.config = model, unwrap(model), graph, config
        self.batches_fn, self.device, self.amp_dtype, self.channels_last = batches_fn, device, amp_dtype, channels_last
        self.checkpoint_fn, self.log_fn, self.eval_fn = checkpoint_fn, log_fn, eval_fn
        self.scorer = TaylorScorer(self.net, config.score_reduction)
        full = np.ones(graph.num_units, dtype=bool)
        self.full_macs, self.full_params = graph.macs(full), graph.params(full)
        self.target = config.target_macs if config.target_macs is not None else int(
            config.target_macs_ratio * self.full_macs)
        last = graph.ops[-1] if graph.ops else None
        self.classifier = self.net.get_submodule(last.name) if last is not None and last.kind == "linear" else None
        gates = [m.gate for _, m in self.scorer.modules.items()]
        gate_ids = {id(g) for g in gates}
        others = [p for p in self.net.parameters() if id(p) not in gate_ids]
        self.optimizer = torch.optim.SGD([{"params": gates, "weight_decay": 0.0},
                                          {"params": others, "weight_decay": config.weight_decay}],
                                         lr=config.tick_lr, momentum=config.momentum)
        self.ticks, self.tocks, self.pending_tock, self.done = 0, 0, False, False
        self.history: list[dict] = []

    # ----- phases --------------------------------------------------------------------------
    def _set_trainable(self, tick: bool) -> None:
        """Tick: gates, BN biases and the classifier; Tock: everything. Gated BN gamma stays frozen."""
        for p in self.net.parameters():
            p.requires_grad_(not tick)
        for m in self.net.modules():
            if isinstance(m, nn.BatchNorm2d):
                for p in m.parameters(recurse=False):
                    p.requires_grad_(True)
                if isinstance(m, GatedBatchNorm2d) and m.weight is not None:
                    m.weight.requires_grad_(False)
        if self.classifier is not None:
            for p in self.classifier.parameters():
                p.requires_grad_(True)

    def _record(self, phase: str, index: int, stats: dict, lr: float, pruned: int) -> dict:
        alive = self.graph.alive()
        macs = self.graph.macs(alive)
        return {"phase": phase, "index": index, "macs": macs, "macs_ratio": macs / self.full_macs,
                "params_ratio": self.graph.params(alive) / self.full_params, "loss": stats.get("loss"),
                "acc": stats.get("acc"), "lr": lr, "units_pruned": pruned, "units_alive": int(alive.sum())}

    def tick(self) -> dict:
        """One Tick: score gates on ``batches_fn("tick", i)``, then prune globally."""
        cfg = self.config
        self._set_trainable(tick=True)
        self.scorer.reset()
        stats = train_one_epoch(self.model, self.batches_fn("tick", self.ticks), self.optimizer, device=self.device,
                                lr_at=lambda step: cfg.tick_lr, after_backward=self.scorer.accumulate,
                                amp_dtype=self.amp_dtype, channels_last=self.channels_last,
                                max_steps=cfg.tick_steps, disable_progress=True)
        self.scorer.all_reduce()
        scores = self.graph.unit_scores(self.scorer.scores())
        before = self.graph.alive()
        kw = dict(target_macs=self.target, min_share=cfg.min_share, flops_eta=cfg.flops_eta, round_to=cfg.round_to)
        if cfg.mode == "one_shot":
            after = select_pruned(self.graph, scores, before, **kw)
        else:
            k = cfg.units_per_tick if cfg.units_per_tick is not None else max(
                1, round(cfg.fraction_per_tick * int(before.sum())))
            after = select_pruned(self.graph, scores, before, k=k, **kw)
        self.graph.set_alive(after)
        pruned = int(before.sum() - after.sum())
        self.ticks += 1
        rec = self._record("tick", self.ticks - 1, stats, cfg.tick_lr, pruned)
        self.done = (rec["macs"] <= self.target or cfg.mode == "one_shot" or pruned == 0
                     or self.ticks >= cfg.max_ticks)
        self.pending_tock = (cfg.mode == "ticktock" and not self.done and cfg.tock_epochs > 0
                             and self.ticks % cfg.ticks_per_tock == 0)
        return rec

    def tock(self) -> dict:
        """One Tock: train everything for ``tock_epochs`` with the L1 gate penalty and triangular LR."""
        cfg = self.config
        self._set_trainable(tick=False)
        stats: dict = {}
        step = 0
        total = None
        for e in range(cfg.tock_epochs):
            batches = self.batches_fn("tock", self.tocks * cfg.tock_epochs + e)
            per_epoch = cfg.tock_steps if cfg.tock_steps is not None else len(batches)  # type: ignore[arg-type]
            total = total or cfg.tock_epochs * per_epoch
            stats = train_one_epoch(self.model, batches, self.optimizer, device=self.device,
                                    lr_at=lambda s: triangular_lr(s, total, cfg.lr_min, cfg.lr_max), start_step=step,
                                    penalty=lambda: cfg.l1_lambda * gate_l1(self.net), amp_dtype=self.amp_dtype,
                                    channels_last=self.channels_last, max_steps=cfg.tock_steps,
                                    disable_progress=True)
            step += stats["steps"]
        self.tocks += 1
        self.pending_tock = False
        rec = self._record("tock", self.tocks - 1, stats, self.optimizer.param_groups[0]["lr"], 0)
        if self.eval_fn is not None:
            rec.update({f"eval_{k}": v for k, v in self.eval_fn(self.model).items()})
        return rec

    def step(self) -> dict:
        """Run the next phase (a pending Tock, else a Tick), log it and checkpoint at the boundary."""
        rec = self.tock() if self.pending_tock else self.tick()
        self.history.append(rec)
        if self.log_fn is not None:
            self.log_fn(rec)
        if self.checkpoint_fn is not None:
            self.checkpoint_fn(self.state_dict())
        return rec

    def run(self) -> list[dict]:
        """Tick (and Tock) until the MACs target is reached; return the log records."""
        while not self.done:
            self.step()
        return self.history

    # ----- checkpointing -------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything a resumed run needs (tensors are live references: serialise before training on)."""
        return {"model": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scorer": self.scorer.state_dict(), "ticks": self.ticks, "tocks": self.tocks,
                "pending_tock": self.pending_tock, "done": self.done, "history": list(self.history),
                "rng": _rng_state(), "config": asdict(self.config), "target": self.target}

    def load_state_dict(self, state: Mapping) -> None:
        if state["config"] != asdict(self.config):
            diff = [f.name for f in fields(self.config) if state["config"].get(f.name) != getattr(self.config, f.name)]
            raise ValueError(f"checkpoint was made with a different config (fields {diff})")
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scorer.load_state_dict(state["scorer"])
        self.ticks, self.tocks = int(state["ticks"]), int(state["tocks"])
        self.pending_tock, self.done = bool(state["pending_tock"]), bool(state["done"])
        self.history = list(state["history"])
        self.target = int(state["target"])
        _set_rng_state(state["rng"])
