"""Counterexamples that replay: one input, one group element, and a snippet that recomputes the error.

The snippet runs in a namespace holding the objects of the check, under the names
``model``, ``group``, ``inputs``, ``in_action`` and ``out_action``; it rebuilds the input
from its :class:`~eqbench.inputs.InputStructure` (or indexes the concrete input value),
builds the element with ``group.element`` from the recorded parameters, and calls
:func:`equivariance_error`, leaving the result in ``error``.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from eqbench.actions.base import Action
from eqbench.check.cases import CheckSetup, InputSource, evaluate_cases
from eqbench.check.forward import ModelFailure
from eqbench.check.result import Counterexample
from eqbench.groups.base import Params
from eqbench.groups.element import Element
from eqbench.inputs.base import InputStructure


def equivariance_error(
    model: Callable[..., Any],
    x: Any,
    g: Element,
    in_action: Action,
    out_action: Action,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> float:
    """Largest scale-adjusted relative error ``||f(g.x) - g.f(x)|| / scale`` over the elements ``g``.

    ``x`` is a batch-1 input value; every element of the batch ``g`` acts on it (one forward
    pass over ``[x; g.x]``, transforms and differences in float64). ``scale`` is the RMS
    output norm over ``f(x)`` and every ``f(g.x)`` (:mod:`eqbench.check.metrics`). The group is
    not needed: ``g`` is already concrete. Raises
    :class:`~eqbench.check.forward.ModelFailure` when the model misbehaves.
    """
    setup = CheckSetup(model, None, in_action, out_action, dtype, device)
    x64 = in_action.cast(x, torch.float64)
    evaluation = evaluate_cases(setup, x64, g, torch.zeros(g.batch_size, dtype=torch.long))
    return float(evaluation.table.rel.max())


def params_to_lists(params: Params, index: int = 0) -> tuple[dict[str, list], dict[str, str]]:
    """Element ``index`` of a parameter batch as batch-1 Python lists, and their dtypes."""
    values = {key: value[index : index + 1].tolist() for key, value in params.items()}
    dtypes = {key: str(value.dtype).removeprefix("torch.") for key, value in params.items()}
    return values, dtypes


def params_from_lists(values: dict[str, list], dtypes: dict[str, str]) -> Params:
    return {key: torch.tensor(value, dtype=getattr(torch, dtypes[key])) for key, value in values.items()}


def snippet(
    structure: InputStructure | None, item: int, values: dict[str, list], dtypes: dict[str, str], dtype: torch.dtype
) -> str:
    """The reproduce snippet (see the module docstring)."""
    lines = ["import torch", "from eqbench.check import equivariance_error"]
    if structure is None:
        lines.append(f"x = in_action.index(inputs, slice({item}, {item + 1}))")
    else:
        lines.append("from eqbench.inputs import InputStructure")
        fields = ", ".join(f"{key}={value!r}" for key, value in structure.to_dict().items())
        lines.append(f"x = in_action.index(inputs(InputStructure({fields})), slice({item}, {item + 1}))")
    params = ", ".join(f"{key!r}: torch.tensor({value!r}, dtype=torch.{dtypes[key]})" for key, value in values.items())
    lines.append(f"g = group.element({{{params}}})")
    dtype_name = str(dtype).removeprefix("torch.")
    lines.append(f"error = equivariance_error(model, x, g, in_action, out_action, dtype=torch.{dtype_name})")
    lines.append("print(error)")
    return "\n".join(lines)


def counterexample(
    setup: CheckSetup,
    source: InputSource,
    structure: InputStructure | None,
    item: int,
    params: Params,
    index: int,
    origin: str,
) -> Counterexample:
    """Replay element ``index`` of ``params`` alone on the case input and describe it.

    The recorded errors are those of this single (input, element) pair, exactly what the
    snippet prints. A model failure on the pair is recorded in ``failure``.
    """
    values, dtypes = params_to_lists(params, index)
    g = setup.group.element(params_from_lists(values, dtypes))
    x64 = source.item(structure, item)
    rel = abs_error = float("nan")
    output = failure = ""
    try:
        table = evaluate_cases(setup, x64, g, torch.zeros(1, dtype=torch.long)).table
        _, output = table.worst()
        rel, abs_error = float(table.rel.max()), float(table.abs.max())
    except ModelFailure as error:
        failure = str(error)
    return Counterexample(
        structure=None if structure is None else structure.to_dict(),
        item=item,
        params=values,
        param_dtypes=dtypes,
        rel_error=rel,
        abs_error=abs_error,
        output=output,
        source=origin,
        reproduce=snippet(structure, item, values, dtypes, setup.dtype),
        failure=failure,
    )

