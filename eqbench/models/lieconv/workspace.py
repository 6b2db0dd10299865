"""Scratch memory shared by the layers of one LieConv forward (and backward) pass.

LieConv's pair-level temporaries (weight-network stages, scattered kernel weights, gathered
neighbour values) are tens of megabytes per layer. Allocating them afresh in every layer
costs more than the arithmetic on them: large blocks come straight from the operating system
and every fresh page faults on first touch (glibc serves blocks above 32 MB by ``mmap``).
A :class:`Workspace` hands out views of one buffer instead, allocated once at the largest
size any layer declared (:meth:`Workspace.reserve`) and reused by every layer in turn.

Rules: a workspace belongs to one forward pass (the network creates it; the autograd
graph keeps it alive for the backward pass and frees it with the graph); layers use it one
after the other, and each :meth:`Workspace.views` call invalidates the views handed out
before. Nothing that outlives a call (outputs, tensors saved for backward) may live in it.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


class Workspace:
    """A growable flat scratch buffer (see the module docstring)."""

    def __init__(self) -> None:
        self.buffers: dict[tuple[torch.dtype, torch.device], Tensor] = {}
        self.reserved = 0

    def reserve(self, numel: int) -> None:
        """Declare that a later :meth:`views` call will need ``numel`` elements (so the buffer is sized once)."""
        self.reserved = max(self.reserved, int(numel))

    def views(self, shapes: list[tuple[int, ...]], like: Tensor) -> list[Tensor]:
        """Contiguous, disjoint tensors of the given shapes (``like``'s dtype and device) carved from the buffer.

        There is one buffer per dtype and device; views of it handed out before are invalidated.
        """
        sizes = [math.prod(shape) for shape in shapes]
        needed = sum(sizes)
        key = (like.dtype, like.device)
        buffer = self.buffers.get(key)
        if buffer is None or buffer.numel() < needed:
            self.buffers[key] = buffer = torch.empty(max(needed, self.reserved), dtype=like.dtype, device=like.device)
        out, start = [], 0
        for shape, size in zip(shapes, sizes):
            out.append(buffer[start : start + size].view(shape))
            start += size
        return out
