"""Counterexamples that replay: one input, one group element, their error, and how to show them.

Each :class:`~eqbench.check.result.Counterexample` keeps a :class:`~eqbench.check.result.Replay`:
the batch-1 input tensors (float64), the element as its matrix / translation / permutation, the
actions and the failure threshold, which :func:`eqbench.check.scripts.save_counterexample`
writes beside a standalone script. For reading on the console, :func:`describe_input` prints a
small input as coordinates and :func:`describe_element` an element as a rotation angle and axis
(plus reflection, scale, translation and permutation).

``reproduce`` (the record's ``counterexample`` field) is a snippet for a namespace holding the
check's objects under the names ``model``, ``group``, ``inputs``, ``in_action`` and
``out_action``; it rebuilds the input from its :class:`~eqbench.inputs.InputStructure` (or
indexes the concrete input value), builds the element with ``group.element`` from the recorded
parameters, and calls :func:`equivariance_error`, leaving the result in ``error``. The saved
script needs no such namespace.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch

from eqbench.actions.base import Action
from eqbench.check.cases import CheckSetup, InputSource, evaluate_cases
from eqbench.check.forward import ModelFailure
from eqbench.check.result import Counterexample, Replay
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
    threshold: float = float("nan"),
) -> Counterexample:
    """Replay element ``index`` of ``params`` alone on the case input and describe it.

    The recorded errors are those of this single (input, element) pair, exactly what the
    snippet and the saved script print. A model failure on the pair is recorded in
    ``failure``. ``threshold`` is the check's failure threshold, kept in the replay.
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
        input_text=describe_input(x64, structure.to_dict() if structure is not None else None),
        element_text=describe_element(g),
        replay=Replay(
            input=x64,
            params={key: value[index : index + 1].clone() for key, value in params.items()},
            element=element_parts(g),
            group=setup.group,
            in_action=setup.in_action,
            out_action=setup.out_action,
            dtype=str(setup.dtype).removeprefix("torch."),
            threshold=threshold,
        ),
    )


def worst_counterexample(
    setup: CheckSetup, source: InputSource, cases: Sequence[tuple[Any, int, str]], threshold: float
) -> Counterexample:
    """The replayed candidate ``(case, index, origin)`` with the largest single-pair error (a failure counts as largest).

    ``case`` is a :class:`~eqbench.check.search.Case`. The search's shrunk example is the
    simplest failure, not the largest; this is the one worth showing and saving.
    """
    replayed = [counterexample(setup, source, c.structure, c.item, c.params, i, o, threshold) for c, i, o in cases]
    return max(replayed, key=lambda c: math.inf if c.failure else (c.rel_error if math.isfinite(c.rel_error) else -math.inf))


#: An input with at most this many numbers is printed as coordinates.
SMALL_INPUT = 64


def describe_input(x: Any, structure: dict[str, Any] | None = None) -> str:
    """A batch-1 input for the console: its tensors as coordinates when they hold at most
    :data:`SMALL_INPUT` numbers in all, else their shapes (and the input structure)."""
    leaves = _leaves(x)
    if sum(t.numel() for _, t in leaves) <= SMALL_INPUT:
        return "; ".join(f"{name + ' ' if name else ''}{_rounded(t[0] if t.dim() else t)}" for name, t in leaves)
    shapes = ", ".join(f"{name + ' ' if name else ''}{tuple(t.shape)}" for name, t in leaves)
    return shapes + (f" from {structure}" if structure is not None else "")


def describe_element(g: Element) -> str:
    """The first element of ``g`` in words: rotation angle (degrees) and axis, reflection, scale, translation, permutation."""
    parts = []
    if g.matrix is not None:
        parts.append(_describe_matrix(g.matrix[0].double()))
    if g.translation is not None and bool(g.translation[0].abs().max() > 0):
        parts.append(f"translation {_rounded(g.translation[0])}")
    if g.permutation is not None:
        order = g.permutation[0].tolist()
        if order != sorted(order):
            parts.append(f"permutation {order}")
    return ", then ".join(reversed(parts)) if parts else "identity"


def element_parts(g: Element) -> dict[str, torch.Tensor]:
    """The batch-1 element's matrix, translation and permutation (those it has), as ``Element(**parts)`` takes them."""
    parts = {"matrix": g.matrix, "translation": g.translation, "permutation": g.permutation}
    return {name: part[:1].clone() for name, part in parts.items() if part is not None}


def _describe_matrix(m: torch.Tensor) -> str:
    dim = m.shape[0]
    det = float(torch.linalg.det(m))
    scale = abs(det) ** (1.0 / dim)
    scaled = f" with scale {scale:.4g}" if abs(scale - 1.0) > 1e-6 else ""
    r = m / scale
    if dim == 2:
        if det > 0:
            return f"rotation by {math.degrees(math.atan2(float(r[1, 0]), float(r[0, 0]))):.4g} deg{scaled}"
        mirror = math.degrees(math.atan2(float(r[1, 0]), float(r[0, 0]))) / 2
        return f"reflection across the line at {mirror:.4g} deg{scaled}"
    if dim == 3:
        from scipy.spatial.transform import Rotation

        proper = r if det > 0 else -r
        vector = Rotation.from_matrix(proper.numpy()).as_rotvec()
        angle = float((vector**2).sum() ** 0.5)
        axis = vector / angle if angle > 0 else vector
        words = f"rotation by {math.degrees(angle):.4g} deg about {_rounded(torch.as_tensor(axis))}" if angle > 0 else "no rotation"
        return (words if det > 0 else f"inversion x -> -x after {words}") + scaled
    return f"matrix {_rounded(m)}"


def _leaves(x: Any, name: str = "") -> list[tuple[str, torch.Tensor]]:
    if isinstance(x, torch.Tensor):
        return [(name, x)]
    if isinstance(x, dict):
        return [leaf for key, value in x.items() for leaf in _leaves(value, f"{name}.{key}" if name else str(key))]
    if isinstance(x, (tuple, list)):
        return [leaf for i, value in enumerate(x) for leaf in _leaves(value, f"{name}[{i}]" if name else f"[{i}]")]
    return []


def _rounded(t: torch.Tensor) -> Any:
    """Nested lists of 4 significant digits (integers and booleans as they are)."""
    if t.is_floating_point():
        return [_rounded(row) for row in t] if t.dim() else float(f"{float(t):.4g}")
    return t.tolist()

