"""GatedBatchNorm2d: decorating is function-preserving, the mask (not the gate) prunes."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from gdzoo import create_model
from gdzoo.engine import GatedBatchNorm2d, decorate, gate_l1, gated_modules, undecorate

from _engine_utils import randomize_bn, one_thread  # noqa: F401


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 4, 1),
                        nn.BatchNorm2d(4))
    randomize_bn(net)
    with torch.no_grad():
        net[1].weight[0] = 0.0        # dead channel: beta/gamma would be inf
        net[1].weight[1] = 1e-7       # tiny: kept as gamma, gate 1
        net[1].weight[2] = -0.8       # negative gamma goes into the gate
    return net


@pytest.mark.parametrize("train", [False, True])
def test_decorate_preserves_function_including_zero_gamma(train):
    net = _net().train(train)
    x = torch.randn(4, 3, 8, 8)
    plain = _net().train(train)
    expected = plain(x)
    decorate(net)
    got = net(x)
    assert (got - expected).abs().max().item() <= 1e-6 * expected.abs().max().item()
    bn = net[1]
    assert isinstance(bn, GatedBatchNorm2d) and not bn.weight.requires_grad
    assert bn.gate[0].item() == 1.0 and bn.weight[0].item() == 0.0
    assert bn.gate[1].item() == 1.0 and bn.weight[1].item() == pytest.approx(1e-7)
    assert bn.gate[2].item() == pytest.approx(-0.8) and bn.weight[2].item() == 1.0
    if train:  # running statistics are updated exactly as the plain BN's
        torch.testing.assert_close(bn.running_mean, plain[1].running_mean, rtol=0, atol=0)
        torch.testing.assert_close(bn.running_var, plain[1].running_var, rtol=0, atol=0)
        assert bn.num_batches_tracked.item() == plain[1].num_batches_tracked.item() == 1


def test_state_dict_keeps_bn_names_plus_gate_and_mask():
    net = decorate(_net())
    assert sorted(k for k in net.state_dict() if k.startswith("1.")) == [
        "1.bias", "1.gate", "1.mask", "1.num_batches_tracked", "1.running_mean", "1.running_var", "1.weight"]


def test_mask_zeroes_channel_and_stops_gate_gradient():
    net = decorate(_net()).train()
    bn = net[1]
    bn.mask[3] = 0.0
    x = torch.randn(4, 3, 8, 8)
    out = bn(net[0](x))
    assert out[:, 3].abs().max().item() == 0.0
    out.square().sum().backward()
    assert bn.gate.grad[3].item() == 0.0 and bn.gate.grad[4].item() != 0.0
    assert bn.gate[3].item() != 0.0  # masked, yet the gate value itself is untouched


def test_undecorate_folds_gate_and_mask():
    net = decorate(_net()).eval()
    with torch.no_grad():
        net[1].gate.mul_(1.7)
    net[1].mask[5] = 0.0
    x = torch.randn(2, 3, 8, 8)
    expected = net(x)
    undecorate(net)
    assert type(net[1]) is nn.BatchNorm2d and not list(gated_modules(net))
    torch.testing.assert_close(net(x), expected, rtol=1e-6, atol=1e-6)


def test_gate_l1_ignores_masked_gates_and_requires_gates():
    net = decorate(_net())
    net[4].mask[:] = 0.0
    assert gate_l1(net).item() == pytest.approx(net[1].gate.abs().sum().item())
    with pytest.raises(ValueError, match="decorate"):
        gate_l1(create_model("cifar_resnet20"))
