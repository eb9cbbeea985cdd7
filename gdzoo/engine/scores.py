"""Taylor importance of every gate: the first-order loss change of zeroing its channel.

Zeroing channel i changes the loss by about ``-dL/dgate_i * gate_i`` (Gate Decorator, Eq. 5). Two
ways to sum it over batches:

* ``"per_batch"`` (default, the authors' code): ``sum_b |dL_b/dgate * gate|``;
* ``"total"`` (the paper's formula): ``|sum_b dL_b/dgate * gate|``.

Under ``torch.distributed`` the sums are all-reduced before ranking, so every rank derives the
same masks even when it saw different data.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.distributed as dist
from torch import nn

from .gates import gated_modules

REDUCTIONS = ("per_batch", "total")


class TaylorScorer:
    """Accumulates gate Taylor scores; call :meth:`accumulate` after each backward."""

    def __init__(self, model: nn.Module, reduction: str = "per_batch") -> None:
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self.modules = dict(gated_modules(model))
        if not self.modules:
            raise ValueError("model has no GatedBatchNorm2d layers; call decorate(model) first")
        self.reset()

    def reset(self) -> None:
        self.sums = {name: torch.zeros_like(m.gate, dtype=torch.float64) for name, m in self.modules.items()}
        self.batches = 0

    @torch.no_grad()
    def accumulate(self) -> None:
        """Add this batch's ``dL/dgate * gate`` (abs'ed per batch for ``"per_batch"``)."""
        for name, m in self.modules.items():
            if m.gate.grad is not None:
                t = m.gate.grad.double() * m.gate.double()
                self.sums[name] += t.abs() if self.reduction == "per_batch" else t
        self.batches += 1

    def all_reduce(self) -> None:
        """Sum the accumulators over all ranks (no-op unless torch.distributed is initialised)."""
        if not (dist.is_available() and dist.is_initialized()):
            return
        names = list(self.sums)
        flat = torch.cat([self.sums[n] for n in names])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        for n, chunk in zip(names, flat.split([self.sums[n].numel() for n in names])):
            self.sums[n] = chunk.clone()

    def scores(self) -> dict[str, torch.Tensor]:
        """Per gated BN (by name): one non-negative score per channel."""
        return {n: (s.abs() if self.reduction == "total" else s.clone()) for n, s in self.sums.items()}

    def state_dict(self) -> dict:
        return {"reduction": self.reduction, "batches": self.batches,
                "sums": {n: s.detach().cpu().clone() for n, s in self.sums.items()}}

    def load_state_dict(self, state: Mapping) -> None:
        if state["reduction"] != self.reduction:
            raise ValueError(f"checkpoint scores use reduction {state['reduction']!r}, not {self.reduction!r}")
        self.batches = int(state["batches"])
        self.sums = {n: state["sums"][n].to(self.sums[n].device, torch.float64) for n in self.sums}
