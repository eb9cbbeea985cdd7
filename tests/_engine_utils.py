"""Shared helpers for the engine tests: non-trivial random BN state and tiny synthetic data."""
from __future__ import annotations

import pytest
import torch
from torch import nn


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN affine and running stats, so folding and slicing are actually exercised."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.2)
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
    return model


def synthetic_batches(n_batches: int, batch: int, seed: int, size: int = 16, classes: int = 4):
    """Deterministic, learnable data: the class sets the mean of one colour channel."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        y = torch.randint(0, classes, (batch,), generator=gen)
        x = torch.randn(batch, 3, size, size, generator=gen) * 0.5
        x[:, 0] += (y.float() - classes / 2)[:, None, None]
        out.append((x, y))
    return out


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The 2 CPU cores are shared: two intra-op threads under load run ~10x slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
