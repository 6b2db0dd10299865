"""Measuring child for the reference LieConv (mfinzi/LieConv), run by the reference's own Python.

``suites.lieconv_ratios --reference PATH --reference-python PYTHON`` starts it once per
(workload, mode, round) as ``PYTHON -m suites.lieconv_reference REQUEST``; nothing of the
reference is in this repository: it is imported from ``PATH`` (a checkout of mfinzi/LieConv,
e.g. at 93affb1) in that process. The interpreter needs torch and the packages of
../shared/ANCHORS.md ("Running the reference LieConv live"); two import-time shims stand in
for what the reference imports but the benchmark never runs:

* every ``torchvision.*`` module is served as an empty module whose attributes are empty
  classes (the reference and olive-oil-ml use torchvision's datasets only as base classes and
  module-level imports; an unpinned torchvision would replace the CPU torch);
* ``collections.Iterable`` and its siblings are aliased to ``collections.abc`` (olive-oil-ml
  predates Python 3.10).

Networks, as the reference's trainers build them: rotMNIST is
``Sequential(RandomRotateTranslate(0), ImgLieResnet(...))`` (``train_img.py`` with ``--aug``:
the dataset's random rotation layer, active in training only); QM9 is
``MolecLieResNet(5, 9, aug=True, ...)`` (``train_molec.py``'s defaults: random rotation in
training). Only the standard library, torch and the reference are imported here.
"""
from __future__ import annotations

import collections
import collections.abc
import importlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import torch

from suites.lieconv_protocol import child_main

ABC_ALIASES = ("Iterable", "Mapping", "MutableMapping", "Sequence", "Callable")
#: The reference's modules that :func:`build` uses.
REFERENCE_MODULES = ("lie_conv.datasets", "lie_conv.lieConv", "lie_conv.lieGroups", "lie_conv.moleculeTrainer")


class EmptyModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves every module under ``prefix`` as an empty package whose public attributes are empty classes."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name == self.prefix or name.startswith(self.prefix + "."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        def empty_class(attribute: str) -> type:
            if attribute.startswith("__"):
                raise AttributeError(attribute)
            return type(attribute, (), {})

        module.__path__ = []
        module.__getattr__ = empty_class  # type: ignore[method-assign]


def install_shims() -> None:
    """The two import-time shims of the module docstring (idempotent)."""
    if not any(isinstance(finder, EmptyModules) for finder in sys.meta_path):
        sys.meta_path.insert(0, EmptyModules("torchvision"))
    for name in ABC_ALIASES:
        setattr(collections, name, getattr(collections.abc, name))


def reference_group(name: str, alpha: float) -> Any:
    """The reference's lifting group for one of the benchmark's group names."""
    from lie_conv.lieGroups import SO2, T

    groups: dict[str, Callable[[], Any]] = {"SO2": lambda: SO2(alpha), "T2": lambda: T(2), "T3": lambda: T(3)}
    if name not in groups:
        raise ValueError(f"the reference benchmark knows the groups {sorted(groups)}, got {name!r}")
    return groups[name]()


def prepare(request: dict[str, Any]) -> None:
    """Import the reference from ``request["reference"]`` (with the shims): the modules :func:`build` uses."""
    sys.path.insert(0, request["reference"])
    install_shims()
    for module in REFERENCE_MODULES:
        importlib.import_module(module)


def build(request: dict[str, Any]) -> tuple[torch.nn.Module, Callable[[], torch.Tensor]]:
    """The reference network of ``request["workload"]`` and a call on the saved batch ``request["batch"]`` (after :func:`prepare`)."""
    workload = request["workload"]
    options = dict(workload["model"])
    group = reference_group(workload["group"], options.pop("alpha", 0.2))
    batch = torch.load(request["batch"])
    if workload["kind"] == "image":
        from lie_conv.datasets import RandomRotateTranslate
        from lie_conv.lieConv import ImgLieResnet

        network = ImgLieResnet(chin=batch["images"].shape[1], num_targets=10, group=group, **options)
        model = torch.nn.Sequential(RandomRotateTranslate(0), network)
        images = batch["images"]
        return model, lambda: model(images)
    if workload["kind"] == "molecule":
        from lie_conv.moleculeTrainer import MolecLieResNet

        species = batch["one_hot"].shape[-1]
        model = MolecLieResNet(species, batch["charge_scale"], aug=True, group=group, act="swish", bn=True, mean=True, **options)
        molecules = {"positions": batch["pos"], "one_hot": batch["one_hot"], "charges": batch["charges"]}
        return model, lambda: model(molecules)
    raise ValueError(f"workload {workload['name']}: kind must be 'image' or 'molecule', got {workload['kind']!r}")


if __name__ == "__main__":
    raise SystemExit(child_main(build, sys.argv[1:], prepare))
