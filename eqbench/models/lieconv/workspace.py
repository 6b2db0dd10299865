"""Scratch memory shared by the layers of one LieConv forward (and backward) pass, kept from pass to pass.

LieConv's pair-level temporaries (weight-network stages, scattered kernel weights, gathered
neighbour values) are tens of megabytes per layer. Allocating them afresh in every layer
costs more than the arithmetic on them: large blocks come straight from the operating system
and every fresh page faults on first touch (glibc serves blocks above 32 MB by ``mmap``).
A :class:`Workspace` hands out views of one buffer instead, allocated at the largest size any
layer of the pass declared (:meth:`Workspace.reserve`) and reused by every layer in turn.

The network keeps its workspace from one pass to the next (:class:`WorkspacePool`, one per
thread), so that repeated passes of the same size reuse the same pages: on a rotMNIST batch
a fresh workspace page-faulted about 320 MB per forward + backward call, about a tenth of the
call's CPU time. :meth:`Workspace.begin` starts a pass: what it reserves then replaces the
previous pass's reservation, and a buffer more than twice the size the pass needs is
released (e.g. a pass without backward, which streams small chunks of queries, after training).

Rules: each :meth:`Workspace.views` call invalidates the views handed out before, and
nothing that outlives a forward or backward call of a layer (outputs, tensors saved for
backward) may live in it: its contents carry nothing from one pass (or one input) to the
next. A workspace serves one thread: passes run one at a time on it, and a backward pass may
follow later passes (it only takes fresh views).
"""
from __future__ import annotations

import math
import threading
from typing import Any

import torch
from torch import Tensor


class Workspace:
    """A growable flat scratch buffer (see the module docstring)."""

    def __init__(self) -> None:
        self.buffers: dict[tuple[torch.dtype, torch.device], Tensor] = {}
        self.reserved = 0

    def begin(self) -> None:
        """Start a pass: its reservations replace the previous pass's (the buffer is kept until :meth:`views` resizes it)."""
        self.reserved = 0

    def reserve(self, numel: int) -> None:
        """Declare that a later :meth:`views` call will need ``numel`` elements (so the buffer is sized once)."""
        self.reserved = max(self.reserved, int(numel))

    def views(self, shapes: list[tuple[int, ...]], like: Tensor) -> list[Tensor]:
        """Contiguous, disjoint tensors of the given shapes (``like``'s dtype and device) carved from the buffer.

        There is one buffer per dtype and device, reallocated when it is too small or more
        than twice the size this pass needs; views of it handed out before are invalidated.
        """
        sizes = [math.prod(shape) for shape in shapes]
        needed = sum(sizes)
        target = max(needed, self.reserved)
        key = (like.dtype, like.device)
        buffer = self.buffers.get(key)
        if buffer is None or buffer.numel() < needed or buffer.numel() > 2 * target:
            self.buffers.pop(key, None)  # free the old buffer before allocating the new one
            self.buffers[key] = buffer = torch.empty(target, dtype=like.dtype, device=like.device)
        out, start = [], 0
        for shape, size in zip(shapes, sizes):
            out.append(buffer[start : start + size].view(shape))
            start += size
        return out


class WorkspacePool:
    """One :class:`Workspace` per thread, kept between passes; copies and pickles start empty (scratch is not state)."""

    def __init__(self) -> None:
        self.local = threading.local()

    def current(self) -> Workspace:
        """This thread's workspace (created on first use)."""
        workspace = getattr(self.local, "workspace", None)
        if workspace is None:
            workspace = self.local.workspace = Workspace()
        return workspace

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.local = threading.local()

    def __deepcopy__(self, memo: dict[int, Any]) -> WorkspacePool:
        return WorkspacePool()
