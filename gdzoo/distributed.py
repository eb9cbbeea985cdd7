"""torchrun support: process-group setup and the rank that writes."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist


@dataclass
class Runtime:
    """Where and how a run computes: device, rank/world size, AMP dtype, memory format."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    amp_dtype: Optional[torch.dtype] = None
    channels_last: bool = False
    compile: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: Optional[str] = None, amp: str = "auto", channels_last: Optional[bool] = None,
          compile: bool = False) -> Runtime:
    """Initialise the process group when launched by torchrun and pick the device.

    ``amp="auto"`` uses bf16 autocast on CUDA and fp32 on CPU; ``"bf16"``/``"fp16"``/``"off"`` force it.
    channels_last defaults to on for CUDA and CPU alike (it is faster for these convnets on both).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    dtypes = {"auto": torch.bfloat16 if dev.type == "cuda" else None, "off": None,
              "bf16": torch.bfloat16, "fp16": torch.float16}
    if amp not in dtypes:
        raise ValueError(f"amp must be one of {', '.join(dtypes)}, got {amp!r}")
    return Runtime(dev, rank, world_size, dtypes[amp], True if channels_last is None else channels_last, compile)


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
