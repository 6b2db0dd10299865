"""Building blocks of LieConv networks: the bottleneck residual block and global mean pooling.

Bottleneck block (Finzi et al. 2020, Fig. 5): on ``c_in`` channels,

    BN -> SiLU -> Linear(c_in, c_in/4) -> BN -> SiLU -> LieConv(c_in/4, c_out/4) -> BN -> SiLU -> Linear(c_out/4, c_out)

plus the block's input at the query points (zero-padded from ``c_in`` to ``c_out`` channels)
as the residual. Features travel between blocks packed: the ``(R, c)`` rows of the real points
(:mod:`eqbench.models.lieconv.pointwise`), so per-point maps skip the padding and the
BatchNorms are masked. Queries are the first ``m`` of the ``n`` input points (farthest-point
order), so the residual is the queries' subset of the input rows.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from eqbench.models.lieconv.conv import LieConv, LiftedCloud
from eqbench.models.lieconv.groups.base import LiftingGroup
from eqbench.models.lieconv.pointwise import batch_norm, silu, unpack


class BottleneckBlock(nn.Module):
    """The bottleneck residual block (module docstring); ``conv_options`` go to :class:`~eqbench.models.lieconv.conv.LieConv`."""

    def __init__(self, chin: int, chout: int, group: LiftingGroup, bn: bool = True, **conv_options: Any) -> None:
        super().__init__()
        if not 4 <= chin <= chout:
            raise ValueError(f"a bottleneck block needs 4 <= chin <= chout (no channel reduction), got chin={chin}, chout={chout}")
        self.chin, self.chout = chin, chout
        self.norm_in = batch_norm(chin, bn)
        self.reduce = nn.Linear(chin, chin // 4)
        self.norm_reduced = batch_norm(chin // 4, bn)
        self.conv = LieConv(chin // 4, chout // 4, group, bn=bn, **conv_options)
        self.norm_conv = batch_norm(chout // 4, bn)
        self.expand = nn.Linear(chout // 4, chout)

    def forward(self, cloud: LiftedCloud, values: Tensor, inputs: int, queries: int, generator: torch.Generator | None) -> Tensor:
        """Packed ``(R_n, chin)`` features of the first ``inputs`` lifted points to packed ``(R_m, chout)`` at the first ``queries``."""
        batch = cloud.mask.shape[0]
        x = silu(self.norm_reduced(self.reduce(silu(self.norm_in(values), keep=values))))
        x = self.conv(cloud, unpack(x, cloud.rows(inputs), batch, inputs), queries, generator)
        x = self.expand(silu(self.norm_conv(x)))
        x[:, : self.chin] += cloud.restrict(values, inputs, queries)  # the zero-padded residual, added in place
        return x


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` ``(B, n, C)`` over the real points of ``mask`` ``(B, n)``: ``(B, C)``."""
    total = torch.where(mask[..., None], values, torch.zeros_like(values)).sum(1)
    return total / mask.sum(1, keepdim=True).clamp(min=1).to(values.dtype)
