"""Equivariance tracked through training: the checker on a fixed probe set after every epoch.

``eqbench train TASK --model M --track-equivariance G`` builds an :class:`EquivarianceTracker`
once per run: the first ``probe_size`` examples of the task's test split (the *probe set*,
the same every epoch and every seed) and, through the checker's ``seed``, the same group
elements every epoch (every element of a finite group such as C4 when it has at most
``n_elements``; else ``n_elements`` Haar-random ones per input). After each epoch it runs

    :func:`eqbench.check.check_equivariance` (model, G, probe set, actions, search_examples=0,
    counterexamples=False, repeat_check only on the first probe: the model's code does not change
    between epochs, so one repeated forward establishes that it is deterministic in eval mode;
    twin_rows="all": the probe set is small, so the float64 twin runs once on every row for both
    the noise floor and the re-evaluation; the probe set's cast, elements and transformed inputs
    are prepared once, :mod:`eqbench.check.random_phase`)

in eval mode and adds to the epoch's history row ``equivariance_group``, ``..._verdict``,
``..._mean_rel_error`` and ``..._max_rel_error`` (the checker's scale-adjusted relative error
``|f(g.x) - g.f(x)| / scale``), ``..._noise_floor``, ``..._seconds`` (the probe's time) and
``equivariance_cost = probe seconds / epoch seconds`` (training pass plus evaluation, both measured
in the same process, so machine load affects both alike). A non-equivariant baseline's error
falls as it learns the symmetry from the data; an equivariant model's stays at the floor.

The probe never changes the run: it runs under a forked torch RNG with Python's and NumPy's
states restored, so a tracked run reaches the same weights and metrics as an untracked one.
(Saving NumPy's state costs some 75 us a probe, a few percent of a small epoch: after the first
probe they are saved and restored only when that probe moved them, since the model's code does
not change between epochs.)

The task decides the actions: images ``(B, C, H, W)`` move as :class:`GridImage` and class
logits are invariant; n-body systems ``(positions, velocities, charges)`` move as
``(Points, Vectors, Scalars)`` and the predicted positions as points; QM9 molecules
``(positions, charges, mask)`` as ``(Points, Scalars, Scalars)`` with an invariant target.
"""
from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from eqbench.actions import Action, GridImage, Invariant, Points, Scalars, Tuple, Vectors
from eqbench.check import check_equivariance
from eqbench.groups import Group
from eqbench.groups.names import group_from_name
from eqbench.tasks.datasets import TaskData

#: Examples in the probe set and random elements per example (finite groups of this order or less are enumerated).
PROBE_SIZE = 8
PROBE_ELEMENTS = 4
PREFIX = "equivariance_"


def task_actions(task: str) -> tuple[Action, Action]:
    """``(input action, output action)`` of the models trained on ``task`` (see the module docs)."""
    if task.startswith(("digits-rot", "rotmnist")):
        return GridImage(), Invariant()
    if task == "nbody":
        return Tuple(Points(dim=3), Vectors(dim=3), Scalars()), Points(dim=3)
    if task.startswith("qm9-"):
        return Tuple(Points(dim=3), Scalars(), Scalars()), Invariant()
    raise ValueError(f"--track-equivariance: no symmetry actions known for task {task!r} (images, nbody and qm9-* have them)")


@dataclass
class EquivarianceTracker:
    """The checker on a fixed probe set with fixed elements (see the module docs); call :meth:`measure` after each epoch."""

    group: Group
    probe: Any
    in_action: Action
    out_action: Action
    device: torch.device
    n_elements: int = PROBE_ELEMENTS
    seed: int = 0
    #: Whether a probe has run: only the first one repeats the forward pass that detects nondeterminism.
    probed: bool = False
    #: Whether a probe moved Python's or NumPy's global random state (found on the first probe, whose
    #: states are always saved and restored): only then are they saved and restored on every probe.
    moves_global_random: bool = True

    @classmethod
    def for_task(cls, task: str, data: TaskData, group: str, device: torch.device, probe_size: int = PROBE_SIZE, **options: Any) -> EquivarianceTracker:
        """The tracker of group ``group`` (a name such as ``"C4"``, ``"SO2"``, ``"E3"``) on the first ``probe_size`` test examples of ``data``."""
        if probe_size < 1:
            raise ValueError(f"the probe set needs at least one example, got {probe_size}")
        in_action, out_action = task_actions(task)
        split = data.splits.get("test") or data.splits["valid"]
        tensors: Mapping[str, torch.Tensor] = split.tensors
        fields = [tensors[name][:probe_size].to(device) for name in data.inputs]
        probe = fields[0] if len(fields) == 1 else tuple(fields)
        return cls(group_from_name(group), probe, in_action, out_action, device, **options)

    def measure(self, model: nn.Module, epoch_seconds: float) -> dict[str, Any]:
        """The history columns of one probe of ``model`` (eval mode; its mode and every RNG are restored)."""
        started = time.perf_counter()
        was_training = model.training
        guarded = self.moves_global_random
        if guarded:
            python_state, numpy_state = random.getstate(), np.random.get_state()
        devices = [self.device] if self.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                if any(module.training for module in model.modules()):  # the trainer's evaluation leaves it in eval mode
                    model.eval()
                result = check_equivariance(
                    model, self.group, self.probe, self.in_action, self.out_action,
                    seed=self.seed, n_elements=self.n_elements, search_examples=0, device=self.device,
                    counterexamples=False, repeat_check=not self.probed, twin_rows="all",
                )
        finally:
            if was_training:  # eval() has left every submodule in eval mode already otherwise
                model.train()
            if guarded:
                if not self.probed:
                    self.moves_global_random = random.getstate() != python_state or not _same_numpy_state(
                        np.random.get_state(), numpy_state
                    )
                random.setstate(python_state)
                np.random.set_state(numpy_state)
            self.probed = True
        seconds = time.perf_counter() - started
        return {
            f"{PREFIX}group": self.group.name,
            f"{PREFIX}verdict": result.verdict.value,
            f"{PREFIX}mean_rel_error": result.mean_rel_error,
            f"{PREFIX}max_rel_error": result.max_rel_error,
            f"{PREFIX}noise_floor": result.noise_floor,
            f"{PREFIX}seconds": seconds,
            f"{PREFIX}cost": seconds / epoch_seconds if epoch_seconds > 0 else float("nan"),
        }


def _same_numpy_state(a: tuple, b: tuple) -> bool:
    """Whether two of NumPy's legacy global states ``(name, keys, pos, has_gauss, cached_gaussian)`` are equal."""
    return a[0] == b[0] and bool(np.array_equal(a[1], b[1])) and a[2:] == b[2:]
