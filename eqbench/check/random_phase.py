"""The random phase's inputs, elements and transformed inputs: prepared once, reused by repeated checks.

The random phase of :func:`eqbench.check.check_equivariance` evaluates ``B`` inputs ``x``
(``inputs.default_structure(seed, batch=n_inputs)``, or every item of a concrete value) under
``R`` elements ``g_r`` (``n_elements`` Haar-random ones per input from
``torch.Generator().manual_seed(seed)``, or every element of a finite group small enough to
enumerate, see :func:`enumeration`), element ``r`` acting on input ``owner[r]``, stacked as
the float64 batch ``[x; g_r . x_{owner[r]}]`` (:func:`eqbench.check.cases.stack_transformed`).

None of this depends on the model. A caller that checks a changing model on the same concrete
inputs again and again, such as the equivariance tracker after every training epoch
(:mod:`eqbench.tasks.tracking`), gets it from a small cache instead of casting, validating,
sampling and transforming again: an entry is reused only for the same input object whose
tensors are unchanged (same storage, shape, dtype and in-place version counter), the same group
and input action objects, and the same ``n_inputs``, ``n_elements``, ``exhaustive`` and
``seed``. Inputs from an :class:`~eqbench.inputs.InputGenerator` are prepared afresh each check.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from eqbench.actions.base import Action
from eqbench.check.cases import InputSource, acts_exactly, stack_transformed
from eqbench.groups.base import Group, Params, cat_params
from eqbench.groups.element import Element
from eqbench.inputs.base import InputGenerator, InputStructure

#: Prepared random phases kept for repeated checks (least recently used dropped first).
CACHED_PHASES = 4


@dataclass(frozen=True)
class RandomPhase:
    """The random phase of one check before any model runs (see the module docstring)."""

    source: InputSource
    structure: InputStructure | None
    x64: Any
    params: Params
    g: Element
    owner: Tensor
    #: Elements per input: ``n_elements``, or the group's order when the phase is exhaustive.
    per_input: int
    exhaustive: bool
    #: ``[x; g_r . x_{owner[r]}]`` in float64.
    stacked: Any
    #: Whether every element acts exactly on the inputs (no interpolation, :func:`~eqbench.check.cases.acts_exactly`).
    acts_exactly_on_inputs: bool

    @property
    def batch(self) -> int:
        return self.source.in_action.batch_size(self.x64)


_CACHE: OrderedDict[tuple, tuple[tuple, RandomPhase]] = OrderedDict()


def prepare_random_phase(
    inputs: Any, group: Group, in_action: Action, *, n_inputs: int, n_elements: int, exhaustive: bool | None, seed: int
) -> RandomPhase:
    """The random phase of a check on ``inputs`` (from the cache for unchanged concrete inputs, see the module docstring)."""
    if isinstance(inputs, InputGenerator):
        return _prepare(inputs, group, in_action, n_inputs, n_elements, exhaustive, seed)
    key = (id(inputs), _signature(inputs), id(group), id(in_action), n_inputs, n_elements, exhaustive, seed)
    cached = _CACHE.get(key)
    if cached is not None:
        _CACHE.move_to_end(key)
        return cached[1]
    phase = _prepare(inputs, group, in_action, n_inputs, n_elements, exhaustive, seed)
    # The entry holds the objects behind the ids, so that no other object can take their ids while it lives.
    _CACHE[key] = ((inputs, group, in_action), phase)
    while len(_CACHE) > CACHED_PHASES:
        _CACHE.popitem(last=False)
    return phase


def _prepare(
    inputs: Any, group: Group, in_action: Action, n_inputs: int, n_elements: int, exhaustive: bool | None, seed: int
) -> RandomPhase:
    source = InputSource(inputs, in_action)
    structure, x64 = source.random(n_inputs, seed)
    batch, num_points = in_action.batch_size(x64), in_action.num_points(x64)
    enumerated = enumeration(group, num_points, n_elements, exhaustive)
    if enumerated is None:
        per_input = n_elements
        params = group.sample_params(batch * n_elements, torch.Generator().manual_seed(seed), num_points)
    else:
        per_input = group.order(num_points)
        params = cat_params([enumerated] * batch)
    g = group.element(params)
    owner = torch.arange(batch).repeat_interleave(per_input)
    stacked = stack_transformed(in_action, x64, g, owner)
    exhaustive_phase = enumerated is not None
    return RandomPhase(source, structure, x64, params, g, owner, per_input, exhaustive_phase, stacked, acts_exactly(in_action, g))


def _signature(value: Any) -> tuple:
    """What identifies the state of a concrete input: per tensor, its storage, version, shape, dtype and device."""
    if isinstance(value, Tensor):
        return (value.data_ptr(), value._version, tuple(value.shape), value.dtype, str(value.device))
    if isinstance(value, Mapping):
        return tuple((key, _signature(item)) for key, item in value.items())
    if isinstance(value, (tuple, list)):
        return tuple(_signature(item) for item in value)
    return (type(value).__name__, id(value))


def enumeration(group: Group, num_points: int | None, n_elements: int, exhaustive: bool | None) -> Params | None:
    """Every element's parameters when the random phase is exhaustive (see ``exhaustive``), else ``None``."""
    if exhaustive is False:
        return None
    order = group.order(num_points)
    if order is None:
        if exhaustive:
            raise ValueError(f"exhaustive=True needs a finite group; {group.name} is not finite on this data")
        return None
    if exhaustive is None and order > n_elements:
        return None
    try:
        return group.enumerate_params(num_points)
    except NotImplementedError as missing:  # a finite group of a plugin that only overrides order()
        if exhaustive:
            raise ValueError(f"exhaustive=True: {group.name} does not enumerate its parameters ({missing})") from None
        return None
