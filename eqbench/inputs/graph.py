"""Graphs for GNN / EGNN / n-body models: positions, velocities and charges on a fully connected graph.

The value is a dict (passed to the model as keyword arguments):

* ``pos`` ``(B, N, d)`` (``Points``): a point cloud from :class:`PointCloudInputs` (generic or degenerate);
* ``vel`` ``(B, N, d)`` (``Vectors``): ``N(0, 1)`` velocities;
* ``charges`` ``(B, N, 1)`` (``Scalars``): random ``+-1`` charges, as in the charged-particle
  n-body task of Kipf et al. 2018 used by EGNN (Satorras et al. 2021);
* ``edges`` ``(B, 2, N (N - 1))`` int64 (``EdgeIndex``): every ordered pair ``(i, j)`` with
  ``i != j``, sorted by ``i`` then ``j`` (fully connected without self loops, so the edge count
  depends only on ``N`` and a batch stacks without ragged edges);
* ``mask`` ``(B, N)`` bool (``Mask``), only with ``mask=True``; padded nodes keep their edges.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from eqbench.actions import Action, Dict, EdgeIndex, Mask, Points, Scalars, Vectors
from eqbench.inputs.base import InputGenerator, InputStructure
from eqbench.inputs.point_cloud import PointCloudInputs


def fully_connected_edges(num_nodes: int) -> Tensor:
    """``(2, n (n - 1))`` int64 edge index of every ordered pair ``(i, j)``, ``i != j``, sorted by ``(i, j)``."""
    rows, cols = torch.meshgrid(torch.arange(num_nodes), torch.arange(num_nodes), indexing="ij")
    keep = rows != cols
    return torch.stack([rows[keep], cols[keep]])


class GraphInputs(InputGenerator):
    """Fully connected particle graphs (see module docs); structures as for :class:`PointCloudInputs`."""

    def __init__(
        self,
        dim: int = 3,
        min_points: int = 2,
        max_points: int = 12,
        mask: bool = False,
        min_scale: float = 0.1,
        max_scale: float = 10.0,
        degenerate: Sequence[str] | None = None,
    ) -> None:
        self.points = PointCloudInputs(
            dim=dim, min_points=min_points, max_points=max_points, mask=mask,
            min_scale=min_scale, max_scale=max_scale, degenerate=degenerate,
        )

    def __repr__(self) -> str:
        mask = ", mask=True" if self.points.mask else ""
        return f"GraphInputs(dim={self.points.dim}, points={self.points.min_points}..{self.points.max_points}{mask})"

    @property
    def action(self) -> Action:
        fields: dict[str, Action] = {
            "pos": Points(dim=self.points.dim),
            "vel": Vectors(dim=self.points.dim),
            "charges": Scalars(),
            "edges": EdgeIndex(),
        }
        if self.points.mask:
            fields["mask"] = Mask()
        return Dict(**fields)

    def __call__(self, structure: InputStructure) -> dict[str, Tensor]:
        generator = self.generator(structure)
        pos, mask = self.points.positions(structure, generator)
        shape = (structure.batch, structure.num_points)
        vel = self.points.pad(torch.randn(*shape, self.points.dim, generator=generator, dtype=torch.float64), structure, generator)
        signs = torch.randint(0, 2, (*shape, 1), generator=generator)
        value = {
            "pos": pos,
            "vel": vel,
            "charges": (2 * signs - 1).to(torch.float64),
            "edges": fully_connected_edges(structure.num_points).expand(structure.batch, -1, -1).clone(),
        }
        if self.points.mask:
            value["mask"] = mask
        return value

    def structure_strategy(self, batch: int = 1) -> Any:
        return self.points.structure_strategy(batch)

    def draw_structure(self, draw: Any, batch: int = 1) -> InputStructure:
        return self.points.draw_structure(draw, batch)

    def default_structure(self, seed: int = 0, batch: int = 1) -> InputStructure:
        return self.points.default_structure(seed, batch)
