"""Per-point maps on real points only: packing, and masked batch normalisation.

Point features are ``(B, n, c)`` tensors with a ``(B, n)`` mask of real points. Per-point
maps (Linear, BatchNorm, SiLU) run on the *packed* real rows ``(R, c)`` instead:

* masked batch normalisation is ``nn.BatchNorm1d`` on the packed rows, so its statistics
  (training) come from real points only, exactly as if the padding were not there;
* padded batches (molecules of different sizes padded to the largest) do not pay for their
  padding in the matrix products: 32% of the rows of a QM9 batch (1,474 atoms in 75 x 29 slots).

Unpadded batches (images) pack by a free reshape. :func:`unpack` puts zeros on padded points.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def real_rows(mask: Tensor) -> Tensor | None:
    """Flat indices of the True entries of a ``(B, n)`` mask, or ``None`` when every entry is True."""
    if bool(mask.all()):
        return None
    return mask.reshape(-1).nonzero().squeeze(1)


def pack(x: Tensor, rows: Tensor | None) -> Tensor:
    """The real rows ``(R, c)`` of ``x`` ``(B, n, c)`` (``rows``: flat indices from :func:`real_rows`)."""
    flat = x.reshape(-1, x.shape[-1])
    return flat if rows is None else flat.index_select(0, rows)


def unpack(packed: Tensor, rows: Tensor | None, batch: int, points: int) -> Tensor:
    """``(B, n, c)`` from packed rows, zeros on padded points."""
    if rows is None:
        return packed.view(batch, points, packed.shape[-1])
    out = torch.zeros(batch * points, packed.shape[-1], dtype=packed.dtype, device=packed.device)
    return out.index_copy(0, rows, packed).view(batch, points, packed.shape[-1])


def batch_norm(channels: int, enabled: bool = True) -> nn.Module:
    """``nn.BatchNorm1d(channels)`` for packed rows, or the identity when batch normalisation is off."""
    return nn.BatchNorm1d(channels) if enabled else nn.Identity()


def silu(x: Tensor, keep: Tensor | None = None) -> Tensor:
    """SiLU of an intermediate result: in place when no gradient is being recorded, unless ``x`` is ``keep``.

    Without autograd nothing else reads the intermediate (e.g. a BatchNorm's output), so its
    memory is reused; ``keep`` guards a tensor the caller still needs (a block's input, which
    the identity "BatchNorm" of ``bn=False`` hands through).
    """
    return F.silu(x, inplace=not torch.is_grad_enabled() and x is not keep)
