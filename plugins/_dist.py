"""torchrun support every trainer shares: join the process group torchrun describes in the
environment (gloo on CPU, NCCL on GPUs) and leave it together."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = ["distributed", "finish_distributed"]


def distributed() -> tuple[int, int]:
    """(rank, world size); starts the process group when torchrun set the environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        cuda = torch.cuda.is_available() and os.environ.get("LUCID3D_DEVICE", "cpu").startswith("cuda")
        dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size()


def finish_distributed() -> None:
    """Leave the process group together: a rank that exits while another still talks to it makes
    gloo abort the other (SIGABRT). Call once, at the end of a process that trained."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
