"""Where this process stands in a `torchrun` job: rank, world size, and the process group.

    torchrun --nproc_per_node 2 -m bertserve train --data ../shared/data/chnsenticorp --output runs/ddp

Without torchrun the world size is 1 and every call here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass
class Distributed:
    """Where this process stands in a `torchrun` job (world size 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls) -> "Distributed":
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        return cls(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))

    def start(self, device: torch.device) -> torch.device:
        """Join the process group (gloo on CPU, nccl on GPU); return this process's device."""
        if self.world_size <= 1:
            return device
        if device.type == "cuda":
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return device

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The model to train: DistributedDataParallel around `model` in a job, else `model` itself."""
        if self.world_size <= 1:
            return model
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def shard(self, batch: list[int]) -> tuple[list[int], float]:
        """This process's share of `batch` and its weight in the loss: a batch smaller than the number of
        processes still gets every process a row (with weight 0), so all of them step together."""
        shard = batch[self.rank :: self.world_size]
        return (shard, 1.0) if shard else (batch[:1], 0.0)

    def barrier(self) -> None:
        if self.world_size > 1:
            torch.distributed.barrier()

    def stop(self) -> None:
        if self.world_size > 1:
            torch.distributed.destroy_process_group()
