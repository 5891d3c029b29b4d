"""Process groups for ``torchrun``: one place that joins them, for training, evaluation and generation.

Each process learns its rank from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``);
the backend is ``nccl`` on CUDA and ``gloo`` on the CPU. A single process (no ``WORLD_SIZE`` or 1)
starts no group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    """Rank / world size of this process and the device it runs on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def launched_by_torchrun() -> bool:
    """Whether this process is one of several started by ``torchrun``."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: str | None = None) -> DistInfo:
    """Join the ``torchrun`` process group when ``WORLD_SIZE`` > 1 (``nccl`` on CUDA, else ``gloo``).

    ``device``: None = ``cuda:<LOCAL_RANK>`` when CUDA is available, else CPU; a bare ``"cuda"``
    also means this process's GPU.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        device = f"cuda:{local_rank}"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if launched_by_torchrun() and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    if dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev)
    return DistInfo(0, 1, 0, dev)
