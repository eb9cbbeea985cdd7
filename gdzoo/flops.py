"""MACs and parameter counts."""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_flops(model: nn.Module, input_size: Sequence[int]) -> tuple[int, int]:
    """Return ``(macs, params)`` of ``model`` for one forward pass at ``input_size``.

    ``input_size`` is (C, H, W) or (N, C, H, W). MACs are counted by ``torch.utils.flop_counter``,
    which covers convolutions and matrix multiplies (linears) only: one MAC = 2 of its FLOPs.
    The paper's thop-style "FLOPs" are also MACs but add BatchNorm (2 per output element) and a
    global pooling, so its counts are slightly higher (for ResNet-56 at 32x32, +0.87%: see BENCHMARKS.md).
    The model is copied to the meta device, so this costs no real compute or memory.
    """
    shape = tuple(int(s) for s in input_size)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4:
        raise ValueError(f"input_size must be (C, H, W) or (N, C, H, W), got {tuple(input_size)}")
    meta_model = copy.deepcopy(model).to("meta").eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta_model(torch.empty(shape, device="meta"))
    params = sum(p.numel() for p in model.parameters())
    return counter.get_total_flops() // 2, params
