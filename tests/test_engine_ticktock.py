"""Tick-Tock on synthetic data: MACs shrink to the target; an interrupted run resumes bit-identically."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from gdzoo import count_flops, create_model
from gdzoo.training import train_one_epoch
from gdzoo.engine import TickTock, TickTockConfig, build_graph, decorate, melt

from _engine_utils import synthetic_batches, one_thread  # noqa: F401

SIZE = (3, 16, 16)


def _batches(phase: str, index: int):
    return synthetic_batches(2, 16, seed={"tick": 0, "tock": 10_000, "finetune": 20_000}[phase] + index)


def _driver(config: TickTockConfig, **kw) -> TickTock:
    torch.manual_seed(0)
    model = decorate(create_model("cifar_resnet20", num_classes=4))
    return TickTock(model, build_graph(model, SIZE), _batches, config, **kw)


CONFIG = dict(target_macs_ratio=0.6, tick_steps=2, fraction_per_tick=0.05, ticks_per_tock=2, tock_epochs=1,
              tock_steps=2, tick_lr=0.01, lr_min=1e-3, lr_max=0.05)


def _masks(driver: TickTock) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in driver.net.state_dict().items() if k.endswith(".mask")}


def test_ticktock_shrinks_macs_to_target_and_logs():
    records = []
    driver = _driver(TickTockConfig(**CONFIG), log_fn=records.append, eval_fn=lambda m: {"top1": 0.5})
    history = driver.run()
    assert history == records and driver.done
    ticks = [r for r in records if r["phase"] == "tick"]
    tocks = [r for r in records if r["phase"] == "tock"]
    assert len(tocks) == (len(ticks) - 1) // 2 and len(ticks) >= 3
    macs = [r["macs"] for r in ticks]
    assert all(a > b for a, b in zip(macs, macs[1:]))
    assert macs[-1] <= driver.target < macs[-2]
    assert set(records[0]) >= {"macs_ratio", "params_ratio", "loss", "acc", "lr", "units_pruned"}
    assert tocks[0]["eval_top1"] == 0.5 and 0 < tocks[0]["lr"] <= 0.05 and ticks[-1]["params_ratio"] < 1
    melted = melt(driver.net, driver.graph)
    assert count_flops(melted, SIZE)[0] == macs[-1]
    optimizer = torch.optim.SGD(melted.parameters(), lr=0.01, momentum=0.9)
    stats = train_one_epoch(melted, _batches("tock", 99), optimizer, max_steps=2)
    assert stats["steps"] == 2 and np.isfinite(stats["loss"])


def test_tick_freezes_convs_and_trains_gates():
    driver = _driver(TickTockConfig(**CONFIG))
    conv_before = driver.net.layer1[0].conv1.weight.detach().clone()
    gate_before = driver.net.layer1[0].bn1.gate.detach().clone()
    driver.tick()
    assert torch.equal(driver.net.layer1[0].conv1.weight, conv_before)
    assert not torch.equal(driver.net.layer1[0].bn1.gate, gate_before)
    assert not driver.net.layer1[0].bn1.weight.requires_grad and driver.net.fc.weight.requires_grad


def test_resume_from_checkpoint_gives_bit_identical_masks():
    reference = _driver(TickTockConfig(**CONFIG))
    reference.run()
    saved = []

    class Killed(Exception):
        pass

    def checkpoint(state):
        buf = io.BytesIO()
        torch.save(state, buf)
        saved.append(buf.getvalue())
        if len(saved) == 5:  # after tick 4, with a Tock pending
            raise Killed

    with pytest.raises(Killed):
        _driver(TickTockConfig(**CONFIG), checkpoint_fn=checkpoint).run()
    torch.manual_seed(123)  # the resumed process starts from a different RNG state
    resumed = _driver(TickTockConfig(**CONFIG))
    resumed.load_state_dict(torch.load(io.BytesIO(saved[-1]), weights_only=False))
    assert resumed.pending_tock
    resumed.run()
    assert [r["macs"] for r in resumed.history] == [r["macs"] for r in reference.history]
    ref_masks, got = _masks(reference), _masks(resumed)
    assert ref_masks.keys() == got.keys() and all(torch.equal(ref_masks[k], got[k]) for k in got)
    with pytest.raises(ValueError, match="different config"):
        _driver(TickTockConfig(**{**CONFIG, "l1_lambda": 1.0})).load_state_dict(
            torch.load(io.BytesIO(saved[-1]), weights_only=False))


def test_one_shot_and_tick_only():
    one = _driver(TickTockConfig(**{**CONFIG, "mode": "one_shot", "target_macs_ratio": 0.5}))
    history = one.run()
    assert len(history) == 1 and 0.99 * one.target <= history[0]["macs"] <= one.target
    only = _driver(TickTockConfig(**{**CONFIG, "mode": "tick_only"}))
    assert {r["phase"] for r in only.run()} == {"tick"} and only.history[-1]["macs"] <= only.target
