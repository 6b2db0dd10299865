"""Measuring child for eqbench's LieConv, the counterpart of :mod:`suites.lieconv_reference`.

``suites.lieconv_ratios`` starts it once per (workload, mode, round) as
``python -m suites.lieconv_ours REQUEST`` (:func:`suites.lieconv_protocol.child_main`). It
imports only what building and running the network needs (the standard library, torch,
:mod:`eqbench.models.lieconv` and the protocol), since the child's peak resident set, imports
included, is the measured figure: the harness's own imports (tables, flop counting, the task
presets) stay in the parent.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from eqbench.models.lieconv import (
    ImgLieResNet,
    MolecLieResNet,
    image_point_cloud,
    lifting_group,
)
from suites.lieconv_protocol import child_main


@dataclass(frozen=True)
class Workload:
    """One benchmarked network and batch, as plain JSON-able values (sent to the measuring children).

    ``kind`` ``"image"`` (``size`` x ``size`` images cropped at ``crop_radius``) or
    ``"molecule"`` (``atoms`` real atoms padded to ``size`` per molecule); ``group`` a
    :func:`~eqbench.models.lieconv.lifting_group` name; ``model`` the network's keyword options.
    """

    name: str
    kind: str
    group: str
    model: dict[str, Any]
    batch: int
    size: int
    atoms: int = 0
    crop_radius: float | None = None
    points_per_layer: tuple[int, ...] = field(default=())


def our_network(workload: Workload, batch: dict[str, Any], device: str) -> tuple[nn.Module, tuple[Tensor, ...]]:
    """eqbench's network for the workload (seeded initialisation) and its inputs on ``device``."""
    torch.manual_seed(0)
    options = dict(workload.model)
    group = lifting_group(workload.group, options.pop("alpha", 0.2))
    if workload.kind == "image":
        model: nn.Module = ImgLieResNet(chin=1, num_targets=10, group=group, **options)
        inputs: tuple[Tensor, ...] = image_point_cloud(batch["images"], workload.crop_radius)
    else:
        model = MolecLieResNet(batch["one_hot"].shape[-1], charge_scale=batch["charge_scale"], group=group, **options)
        inputs = (batch["pos"], batch["one_hot"], batch["charges"])
    return model.to(device), tuple(x.to(device) for x in inputs)


def build_child(request: dict[str, Any]) -> tuple[nn.Module, Callable[[], Tensor]]:
    """Our side of a measuring child: the network of ``request["workload"]`` on the saved batch ``request["batch"]``."""
    payload = request["workload"]
    workload = Workload(**{**payload, "points_per_layer": tuple(payload["points_per_layer"])})
    model, inputs = our_network(workload, torch.load(request["batch"]), request.get("device", "cpu"))
    return model, lambda: model(*inputs)


if __name__ == "__main__":
    raise SystemExit(child_main(build_child, sys.argv[1:]))
