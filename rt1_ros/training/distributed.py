"""Multi-GPU under torchrun (WORLD_SIZE > 1): each process takes one GPU (LOCAL_RANK), wraps the model in
DistributedDataParallel (NCCL; gloo on CPU) and draws its own batches (seeded by rank); rank 0 validates, logs and
writes checkpoints. The batch given in the config is per process. BatchNorm statistics stay per process.
A single process (no torchrun) is the default and touches none of torch.distributed."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        """``module`` under DistributedDataParallel when there is more than one process, else as it is."""
        if self.world_size <= 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.local_rank] if device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def decided_by_main(self, flag: bool, device: torch.device) -> bool:
        """Rank 0's ``flag`` on every process. Why: a time budget is measured on each process's own clock, and rank
        0's validation pauses are spent by the others waiting inside their next step, so left alone the processes
        would stop after different step counts and the last one would block forever in a gradient all-reduce."""
        if self.world_size <= 1:
            return flag
        import torch.distributed as dist

        decision = torch.tensor([1 if flag else 0], device=device)
        dist.broadcast(decision, src=0)
        return bool(decision.item())

    def finish(self) -> None:
        """Wait for every process, then leave the process group (nothing to do in a single process)."""
        if self.world_size <= 1:
            return
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()


def setup_distributed() -> Distributed:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    return Distributed(rank=dist.get_rank(), world_size=world_size, local_rank=local_rank)
