"""Edge lists of graphs on the point axis, relabelled when the group permutes the nodes.

With the permutation convention ``(g.X)_i = X_{p[i]}``, the node at old index ``j`` sits at
new index ``argsort(p)[j]`` after the action, so an edge ``(j, k)`` becomes
``(argsort(p)[j], argsort(p)[k])``; the order of the edges is kept. Then for any
message-passing layer ``y_i = sum_{(i, k) in E} phi(x_i, x_k)``, ``y(g.x, g.E) = g.y(x, E)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from eqbench.actions.base import DataError
from eqbench.actions.checks import check_batch, require_dtype, require_ndim, require_size, require_tensor
from eqbench.actions.field import FieldAction
from eqbench.groups.element import Element

LAYOUT = "(B, 2, E)"


@dataclass(frozen=True, repr=False)
class EdgeIndex(FieldAction):
    """``(B, 2, E)`` int64 node indices into the point axis; relabelled by ``argsort(p)``."""

    per_point = False
    comparable = False

    def apply(self, g: Element, x: Tensor) -> Tensor:
        check_batch(g, x, "edge index")
        if g.permutation is None:
            return x
        num_nodes = g.permutation.shape[1]
        self.validate_nodes(x, num_nodes, "edge index")
        new_index = torch.argsort(g.permutation, dim=1).to(x.device)
        return torch.gather(new_index, 1, x.reshape(x.shape[0], -1)).reshape(x.shape)

    def validate(self, x: Tensor, where: str = "input") -> None:
        require_tensor(x, where, "edge index")
        require_ndim(x, where, "edge index", LAYOUT, 3, exact=True)
        require_size(x, 1, 2, where, "edge index", LAYOUT)
        require_dtype(x, torch.long, where, "edge index")
        if x.numel() and int(x.min()) < 0:
            raise DataError(f"{where}: edge index has negative node index {int(x.min())}")

    def validate_nodes(self, x: Tensor, num_nodes: int, where: str) -> None:
        """Every node index is below ``num_nodes`` (the size of the point axis)."""
        if x.numel() and int(x.max()) >= num_nodes:
            raise DataError(f"{where}: edge index refers to node {int(x.max())} but there are only {num_nodes} points")
