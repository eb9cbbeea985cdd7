"""Gated BatchNorm (GBN): the per-channel gate and 0/1 mask that Gate Decorator prunes with.

``GatedBatchNorm2d`` computes ``bn(x) * gate * mask`` by handing ``weight*gate*mask`` and
``bias*gate*mask`` to ``F.batch_norm``: the same function as an elementwise multiply of the output,
but the extra work is a handful of per-channel ops, so a gated ResNet-56 trains as fast as a plain
one (see BENCHMARKS.md). It stays a ``BatchNorm2d`` (tracing, ``isinstance`` checks, state-dict
names ``weight/bias/running_*`` plus ``gate`` and ``mask``).
"""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

#: |gamma| below this keeps gamma in the BN and starts the gate at 1 (no division by ~0).
ZERO_GAMMA = 1e-4


class GatedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose output is multiplied by a learnable ``gate`` and a 0/1 ``mask`` buffer.

    The mask, not the gate value, decides what is pruned: with ``mask=0`` the channel outputs exactly
    0 and its gate receives no gradient (the gate itself may stay non-zero).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None, dtype=None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype)
        self.gate = nn.Parameter(torch.ones(num_features, device=device, dtype=dtype))
        self.register_buffer("mask", torch.ones(num_features, device=device, dtype=dtype))
        if self.weight is not None:
            self.weight.requires_grad_(False)  # gamma is frozen; the gate carries the scale

    @classmethod
    def from_bn(cls, bn: nn.BatchNorm2d, zero_gamma: float = ZERO_GAMMA) -> "GatedBatchNorm2d":
        """Decorate ``bn`` as the authors did: gate <- gamma, gamma <- 1 (frozen), beta <- beta/gamma.

        The function is unchanged (up to one rounding of beta/gamma*gamma). Channels with
        ``|gamma| < zero_gamma`` keep their gamma and get gate 1, so nothing is divided by ~0.
        """
        w = bn.weight
        new = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats,
                  device=(w if w is not None else bn.running_mean).device,
                  dtype=(w if w is not None else bn.running_mean).dtype)
        new.train(bn.training)
        with torch.no_grad():
            if bn.track_running_stats:
                new.running_mean.copy_(bn.running_mean)
                new.running_var.copy_(bn.running_var)
                new.num_batches_tracked.copy_(bn.num_batches_tracked)
            if bn.affine:
                gamma, beta = bn.weight.detach(), bn.bias.detach()
                tiny = gamma.abs() < zero_gamma
                new.gate.copy_(torch.where(tiny, torch.ones_like(gamma), gamma))
                new.weight.copy_(torch.where(tiny, gamma, torch.ones_like(gamma)))
                new.bias.copy_(torch.where(tiny, beta, beta / torch.where(tiny, torch.ones_like(gamma), gamma)))
        return new

    def folded_affine(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(weight*gate*mask, bias*gate*mask)``: the plain-BN affine with the same function."""
        gm = self.gate * self.mask
        weight = gm if self.weight is None else self.weight * gm
        bias = None if self.bias is None else self.bias * gm
        return weight, bias

    def to_bn(self) -> nn.BatchNorm2d:
        """The equivalent plain ``BatchNorm2d`` (gate*mask folded into an affine BN)."""
        bn = nn.BatchNorm2d(self.num_features, self.eps, self.momentum, True, self.track_running_stats,
                            device=self.gate.device, dtype=self.gate.dtype)
        bn.train(self.training)
        with torch.no_grad():
            weight, bias = self.folded_affine()
            bn.weight.copy_(weight)
            bn.bias.copy_(bias if bias is not None else torch.zeros_like(weight))
            if self.track_running_stats:
                bn.running_mean.copy_(self.running_mean)
                bn.running_var.copy_(self.running_var)
                bn.num_batches_tracked.copy_(self.num_batches_tracked)
        return bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Same bookkeeping as nn.BatchNorm2d.forward; only the affine differs.
        self._check_input_dim(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        weight, bias = self.folded_affine()
        return F.batch_norm(x, self.running_mean if track else None, self.running_var if track else None,
                            weight, bias, use_batch_stats, factor, self.eps)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel / DataParallel wrapper (or ``model`` itself)."""
    return model.module if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else model


def decorate(model: nn.Module, zero_gamma: float = ZERO_GAMMA) -> nn.Module:
    """Replace every ``nn.BatchNorm2d`` of ``model`` by a function-preserving GatedBatchNorm2d, in place.

    Decorate before wrapping in DistributedDataParallel. Already gated layers are left alone.
    """
    if isinstance(model, nn.BatchNorm2d):
        raise ValueError("decorate() needs a model containing BatchNorm2d layers, not a bare BatchNorm2d")
    for name, module in list(model.named_modules()):
        if type(module) is nn.BatchNorm2d:
            _replace(model, name, GatedBatchNorm2d.from_bn(module, zero_gamma))
    return model


def undecorate(model: nn.Module) -> nn.Module:
    """Inverse of :func:`decorate`: fold gate*mask into each BN's affine, in place (shapes unchanged)."""
    for name, module in list(unwrap(model).named_modules()):
        if isinstance(module, GatedBatchNorm2d):
            _replace(unwrap(model), name, module.to_bn())
    return model


def gated_modules(model: nn.Module) -> Iterator[tuple[str, GatedBatchNorm2d]]:
    """``(name, module)`` of every GatedBatchNorm2d, names relative to the unwrapped model."""
    for name, module in unwrap(model).named_modules():
        if isinstance(module, GatedBatchNorm2d):
            yield name, module


def gate_l1(model: nn.Module) -> torch.Tensor:
    """Sum of ``|gate * mask|`` over all gates: the Tock sparsity penalty (masked gates get no push)."""
    terms = [(m.gate * m.mask).abs().sum() for _, m in gated_modules(model)]
    if not terms:
        raise ValueError("model has no GatedBatchNorm2d layers; call decorate(model) first")
    return torch.stack(terms).sum()
