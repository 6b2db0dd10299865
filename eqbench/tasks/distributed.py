"""The process layout of a run: one process, or one per device under ``torchrun`` (DistributedDataParallel).

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
when ``WORLD_SIZE > 1`` :func:`start_runtime` joins the process group (NCCL on GPUs, gloo on
CPUs, so two CPU processes on loopback work too) and gives each process ``cuda:LOCAL_RANK`` or
the CPU. Nothing else in the trainer changes: metrics are summed with :func:`all_reduce_sum`,
so every rank reports the same numbers, and only rank 0 writes files.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class Runtime:
    """This process's rank, the number of processes, its device, and whether it started the process group."""

    rank: int
    world_size: int
    device: torch.device
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def choose_device(requested: str | None, local_rank: int = 0) -> torch.device:
    """``cuda:LOCAL_RANK`` when CUDA is asked for or (``requested=None``) present, else the CPU."""
    if requested is not None and requested not in DEVICES:
        raise ValueError(f"unknown device {requested!r}; known: {DEVICES}")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but torch sees no CUDA device")
    if requested == "cuda" or (requested is None and torch.cuda.is_available()):
        return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return torch.device("cpu")


def start_runtime(requested_device: str | None = None) -> Runtime:
    """The runtime from the environment ``torchrun`` sets (a single process without it)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Runtime(0, 1, choose_device(requested_device))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = choose_device(requested_device, local_rank)
    owns = not dist.is_initialized()
    if owns:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Runtime(rank, world_size, device, owns)


def stop_runtime(runtime: Runtime) -> None:
    """Leave the process group if :func:`start_runtime` joined it."""
    if runtime.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, runtime: Runtime) -> torch.Tensor:
    """``values`` summed over all processes (itself in a single process)."""
    if runtime.distributed:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def all_gather_objects(value: Any, runtime: Runtime) -> list[Any]:
    """Every rank's ``value``, in rank order (``[value]`` in a single process)."""
    if not runtime.distributed:
        return [value]
    gathered: list[Any] = [None] * runtime.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def barrier(runtime: Runtime) -> None:
    """Wait for every process (no-op in a single process)."""
    if runtime.distributed:
        dist.barrier()
