"""The tensor operations behind the actions (batched: element ``b`` acts on item ``b``)."""
from __future__ import annotations

import torch
from torch import Tensor

from eqbench.actions.base import DataError


def permute_points(x: Tensor, permutation: Tensor, what: str) -> Tensor:
    """Re-index the point axis (axis 1): ``(g.X)_i = X_{p[i]}`` for each batch item."""
    if permutation.shape[1] != x.shape[1]:
        raise DataError(f"group permutes {permutation.shape[1]} points but {what} have {x.shape[1]} points")
    rows = torch.arange(x.shape[0], device=x.device).unsqueeze(1)
    return x[rows, permutation.to(x.device)]


def linear_on_axis(matrix: Tensor, x: Tensor, axis: int = -1) -> Tensor:
    """``M v`` on axis ``axis`` of ``x`` (shape ``(B, ..., d, ...)``) with ``M`` of shape ``(B, d, d)``."""
    moved = x.movedim(axis, -1)
    flat = moved.reshape(x.shape[0], -1, moved.shape[-1])
    out = torch.matmul(flat, matrix.transpose(1, 2).to(dtype=x.dtype, device=x.device))
    return out.reshape(moved.shape).movedim(-1, axis)


def broadcast_batch(values: Tensor, x: Tensor, trailing: int) -> Tensor:
    """Reshape a ``(B, *rest)`` per-element tensor to broadcast against ``x`` (``trailing`` axes kept at the end)."""
    shape = (values.shape[0],) + (1,) * (x.dim() - 1 - trailing) + tuple(values.shape[1:])
    return values.reshape(shape).to(dtype=x.dtype, device=x.device)
