"""Two gloo ranks seeing different data derive identical masks (scores are all-reduced)."""
from __future__ import annotations

import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gdzoo import create_model
from gdzoo.engine import TickTock, TickTockConfig, build_graph, decorate

from _engine_utils import one_thread, synthetic_batches  # noqa: F401


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        for wrap_ddp in (False, True):
            _prune(rank, out, wrap_ddp)
    finally:
        dist.destroy_process_group()


def _prune(rank: int, out: str, wrap_ddp: bool) -> None:
    torch.manual_seed(0)
    model = decorate(create_model("cifar_resnet20", num_classes=4))
    graph = build_graph(model, (3, 16, 16))
    if wrap_ddp:
        model = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    config = TickTockConfig(target_macs_ratio=0.8, tick_steps=2, fraction_per_tick=0.05, ticks_per_tock=2,
                            tock_steps=1, tick_lr=0.05)
    # Each rank sees its own data: without the all-reduce the rankings would differ.
    driver = TickTock(model, graph, lambda phase, i: synthetic_batches(2, 8, seed=1000 * rank + i), config)
    driver.run()
    masks = {k: v for k, v in driver.net.state_dict().items() if k.endswith(".mask")}
    gate = driver.net.layer1[0].bn1.gate.detach().clone()
    torch.save({"masks": masks, "gate": gate, "history": driver.history}, f"{out}/ddp{wrap_ddp:d}_rank{rank}.pt")


def test_two_ranks_with_different_data_get_identical_masks(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = [torch.load(tmp_path / f"ddp0_rank{r}.pt", weights_only=False) for r in range(2)]
    assert not torch.equal(r0["gate"], r1["gate"])  # they really trained on different data
    assert r0["masks"].keys() == r1["masks"].keys()
    assert all(torch.equal(r0["masks"][k], r1["masks"][k]) for k in r0["masks"])
    assert sum(int((m == 0).sum()) for m in r0["masks"].values()) > 0
    assert [h["macs"] for h in r0["history"]] == [h["macs"] for h in r1["history"]]
    # The same with the model wrapped in DistributedDataParallel (decorated before wrapping).
    r0, r1 = [torch.load(tmp_path / f"ddp1_rank{r}.pt", weights_only=False) for r in range(2)]
    assert torch.equal(r0["gate"], r1["gate"])  # DDP keeps replicas in sync
    assert all(torch.equal(r0["masks"][k], r1["masks"][k]) for k in r0["masks"])
    assert r0["history"][-1]["macs_ratio"] <= 0.8
