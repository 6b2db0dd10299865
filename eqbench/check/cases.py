"""The batched evaluation at the heart of every check.

A *case batch* is ``B`` inputs ``x`` (float64) and ``R`` group elements ``g_r``, element
``r`` acting on input ``owner[r]``. It is evaluated in one stacked forward pass:

1. the stacked float64 batch ``[x_0 .. x_{B-1}; g_0.x_{owner[0]} .. g_{R-1}.x_{owner[R-1]}]``
   is built by ONE ``in_action.apply`` on the ``R`` gathered inputs, the ``B`` inputs
   themselves put in front leaf by leaf;
2. it is cast to the checked dtype and passed through the model once (split into chunks
   only beyond :data:`CHUNK_VALUES` input numbers);
3. the outputs are cast to float64; ``g.f(x)`` is ``out_action.apply`` on the float64
   outputs of the first ``B`` rows, and the errors are taken in float64
   (:mod:`eqbench.check.metrics`).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from hypothesis import strategies as st
from torch import Tensor

from eqbench.actions.base import Action, DataError
from eqbench.actions.composite import Composite
from eqbench.check.forward import ModelFailure, TwinModel, evaluate
from eqbench.check.metrics import ErrorTable, error_table, output_gaps, relative_errors
from eqbench.groups.base import Group
from eqbench.groups.element import Element
from eqbench.inputs.base import InputGenerator, InputStructure

#: Largest number of input values (over all leaves) in one forward pass before chunking.
CHUNK_VALUES = 2**25


@dataclass
class CheckSetup:
    """What stays fixed during one check: the model (and its float64 twin), group, actions, dtype."""

    model: Callable[..., Any]
    group: Group | None
    in_action: Action
    out_action: Action
    dtype: torch.dtype = torch.float32
    device: torch.device | str = "cpu"
    #: The float64 twin (noise floor of a low-precision check, float64 diagnosis).
    float64_model: TwinModel = field(init=False)
    #: The float32 twin, for the noise floor of a float64 check (:mod:`eqbench.check.noise`).
    float32_model: TwinModel = field(init=False)

    def __post_init__(self) -> None:
        self.float64_model = TwinModel(self.model, torch.float64)
        self.float32_model = TwinModel(self.model, torch.float32)

    @property
    def other_model(self) -> TwinModel:
        """The twin in the other precision: float32 for a float64 check, float64 otherwise (:mod:`eqbench.check.rounding`)."""
        return self.float32_model if self.dtype == torch.float64 else self.float64_model

    @property
    def low_dtype(self) -> torch.dtype:
        """The lower of the checked dtype and its twin's."""
        return torch.float32 if self.dtype == torch.float64 else self.dtype

    def to_model(self, x64: Any, dtype: torch.dtype) -> Any:
        """Floating tensors of ``x64`` cast to ``dtype`` and moved to the device."""
        return self.in_action.map_tensors(
            x64, lambda t: t.to(device=self.device, dtype=dtype if t.is_floating_point() else t.dtype)
        )


@dataclass
class CaseEvaluation:
    """The outcome of one case batch: the error table plus what the noise floor needs."""

    table: ErrorTable
    stacked: Any  # float64 inputs, B input rows then R transformed rows
    outputs: Any  # model outputs of all B + R rows, cast to float64 on the CPU
    base_rows: int


def stack_transformed(in_action: Action, x64: Any, g: Element, owner: Tensor) -> Any:
    """``[x; g.x[owner]]`` as one float64 value (see the module docstring, step 1)."""
    return concat_values(in_action, [x64, in_action.apply(g, in_action.index(x64, owner))])


def concat_values(action: Action, values: list[Any]) -> Any:
    """Concatenate values of one action along the batch axis (leaf by leaf).

    Relies on ``map_tensors`` visiting the tensors in the order of ``leaves`` (as every
    eqbench action does: both walk the fields in their declared order).
    """
    if len(values) == 1:
        return values[0]
    per_leaf = zip(*(action.leaves(value) for value in values))
    joined: Iterator[Tensor] = iter([torch.cat([leaf.tensor for leaf in leaves]) for leaves in per_leaf])
    return action.map_tensors(values[0], lambda _: next(joined))


def forward(model: Callable[..., Any], setup: CheckSetup, x: Any, dtype: torch.dtype) -> Any:
    """The checked model output on the float64 value ``x`` in ``dtype``, as float64 on the CPU.

    ``model`` is the model or one of its dtype twins; chunks of at most :data:`CHUNK_VALUES`
    input numbers. Raises :class:`~eqbench.check.forward.ModelFailure`.
    """
    rows = setup.in_action.batch_size(x)
    per_row = max(1, sum(math.prod(leaf.tensor.shape[1:]) for leaf in setup.in_action.leaves(x)))
    chunk = max(1, CHUNK_VALUES // per_row)
    outputs = []
    for start in range(0, rows, chunk):
        part = x if rows <= chunk else setup.in_action.index(x, slice(start, start + chunk))
        size = min(chunk, rows - start)
        out = evaluate(model, setup.to_model(part, dtype), setup.in_action, setup.out_action, size)
        outputs.append(setup.out_action.map_tensors(out, _to_cpu_float64))
    return concat_values(setup.out_action, outputs)


def _to_cpu_float64(t: Tensor) -> Tensor:
    if t.is_cpu and t.dtype == torch.float64:  # a float64 twin's output (``to`` would return it too, at some cost)
        return t
    return t.to(device="cpu", dtype=torch.float64) if t.is_floating_point() else t.cpu()


def evaluate_cases(
    setup: CheckSetup, x64: Any, g: Element, owner: Tensor, *, twin: TwinModel | None = None, stacked: Any = None
) -> CaseEvaluation:
    """Errors of ``f(g_r.x_{owner[r]})`` against ``g_r.f(x_{owner[r]})`` for every ``r`` (one forward pass).

    ``twin`` (one of ``setup``'s dtype twins) is evaluated instead of the model in the checked
    dtype. ``stacked`` is ``stack_transformed(in_action, x64, g, owner)`` when the caller has it
    already (rows of an earlier evaluation, a prepared check). Raises
    :class:`~eqbench.check.forward.ModelFailure`.
    """
    base_rows = setup.in_action.batch_size(x64)
    if stacked is None:
        stacked = stack_transformed(setup.in_action, x64, g, owner)
    if twin is None:
        outputs = forward(setup.model, setup, stacked, setup.dtype)
    else:
        outputs = forward(twin, setup, stacked, twin.dtype)
    return case_errors(setup, stacked, outputs, g, owner, base_rows)


def case_errors(setup: CheckSetup, stacked: Any, outputs: Any, g: Element, owner: Tensor, base_rows: int) -> CaseEvaluation:
    """The errors of a case batch from its stacked float64 inputs and the model's float64 outputs on them (step 3)."""
    out_action = setup.out_action
    fx, gfx, fgx = _compared_outputs(out_action, outputs, g, owner, base_rows)
    mask = setup.in_action.point_mask(stacked)
    table = error_table(
        out_action.leaves(fgx),
        out_action.leaves(gfx),
        out_action.leaves(fx),
        None if mask is None else mask[base_rows:],
        None if mask is None else mask[:base_rows],
    )
    return CaseEvaluation(table, stacked, outputs, base_rows)


def sample_errors(
    setup: CheckSetup, stacked: Any, outputs: Any, g: Element, owner: Tensor, base_rows: int, scales: list[float]
) -> Tensor:
    """``(R,)`` the samples' relative errors against given output scales: ``case_errors(...).table.rescaled(scales).rel``.

    For outputs judged by another evaluation's scales (a twin's, by the check's), without the
    table's own scales and ratios.
    """
    out_action = setup.out_action
    _, gfx, fgx = _compared_outputs(out_action, outputs, g, owner, base_rows)
    mask = setup.in_action.point_mask(stacked)
    return relative_errors(out_action.leaves(fgx), out_action.leaves(gfx), None if mask is None else mask[base_rows:], scales)


def _compared_outputs(out_action: Action, outputs: Any, g: Element, owner: Tensor, base_rows: int) -> tuple[Any, Any, Any]:
    """``(f(x), g.f(x_owner), f(g.x_owner))`` from the outputs of the stacked rows ``[x; g.x_owner]``."""
    fx = out_action.index(outputs, slice(0, base_rows))
    try:
        gfx = out_action.apply(g, out_action.index(fx, owner))
    except DataError as error:
        raise ModelFailure("output", f"the model output cannot carry the declared output action: {error}") from None
    return fx, gfx, out_action.index(outputs, slice(base_rows, None))


@dataclass(frozen=True)
class TwinPass:
    """The twin in the other precision on every row of an evaluated case batch, in one pass up front.

    ``row_gaps[i]`` is the model's own gap between the two precisions on row ``i`` (inputs, then
    transformed inputs): ``max over leaves ||f_checked - f_twin|| / scale``, the check's scales.
    The noise floor (:func:`eqbench.check.noise.noise_floor`) reads the input rows' gaps, and the
    re-evaluation (:func:`eqbench.check.rounding.judge_samples`) every sample's error and gap,
    instead of running the twin themselves: one pass instead of two, worth it when the whole
    batch costs the model little (the tracker's probe).
    """

    outputs: Any
    row_gaps: Tensor


def twin_pass(setup: CheckSetup, evaluation: CaseEvaluation) -> TwinPass | None:
    """:class:`TwinPass` of ``evaluation``; ``None`` when the twin cannot run (its ``problem`` says why)."""
    twin = setup.other_model
    if twin.problem:
        return None
    try:
        outputs = forward(twin, setup, evaluation.stacked, twin.dtype)
    except ModelFailure as failure:
        twin.refuse(failure)
        return None
    mask = setup.in_action.point_mask(evaluation.stacked)
    return TwinPass(outputs, output_gaps(setup.out_action, evaluation.outputs, outputs, mask, evaluation.table.scales))


def acts_exactly(action: Action, g: Element) -> bool:
    """False when some element acts on a field of ``action`` only approximately (``is_exact``)."""
    if isinstance(action, Composite):
        return all(acts_exactly(sub, g) for sub in action.fields.values())
    is_exact = getattr(action, "is_exact", None)
    return True if is_exact is None else bool(is_exact(g))


class InputSource:
    """Where a check's inputs come from: an :class:`InputGenerator`, or a concrete batched value.

    A case input is named by ``(structure, item)``: item ``item`` of the batch
    ``inputs(structure)``, or of the concrete value when ``structure`` is ``None``.
    """

    def __init__(self, inputs: Any, in_action: Action) -> None:
        self.in_action = in_action
        self.generator = inputs if isinstance(inputs, InputGenerator) else None
        self.value: Any = None
        if self.generator is None:
            in_action.validate(inputs, "inputs")
            self.value = in_action.cast(inputs, torch.float64)
        self._cache: dict[InputStructure, Any] = {}

    def batch(self, structure: InputStructure | None) -> Any:
        """The float64 batch for ``structure`` (validated; the concrete value for ``None``)."""
        if structure is None:
            return self.value
        cached = self._cache.get(structure)
        if cached is None:
            cached = self.in_action.cast(self.generator(structure), torch.float64)
            self.in_action.validate(cached, f"inputs for {structure}")
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[structure] = cached
        return cached

    def random(self, n_inputs: int, seed: int) -> tuple[InputStructure | None, Any]:
        """The random phase's inputs: ``default_structure(seed, batch=n_inputs)`` or the concrete value."""
        if self.generator is None:
            return None, self.value
        structure = self.generator.default_structure(seed=seed, batch=n_inputs)
        return structure, self.batch(structure)

    def item(self, structure: InputStructure | None, item: int) -> Any:
        return self.in_action.index(self.batch(structure), slice(item, item + 1))

    @functools.cached_property
    def _drawn(self) -> Any:
        """What a case input is drawn from: an item index of the concrete value, or a batch-1 structure."""
        if self.generator is None:
            return st.integers(0, self.in_action.batch_size(self.value) - 1)
        return self.generator.structure_strategy(batch=1)

    def _case(self, drawn: Any) -> tuple[InputStructure | None, int]:
        return (None, drawn) if self.generator is None else (drawn, 0)

    def strategy(self) -> Any:
        """Hypothesis strategy over ``(structure, item)`` case inputs (batch-1 structures)."""
        return self._drawn.map(self._case)

    def draw(self, draw: st.DrawFn) -> tuple[InputStructure | None, int]:
        """What :meth:`strategy` draws, drawn inside a search composite without nesting a strategy
        (:meth:`~eqbench.inputs.base.InputGenerator.draw_structure`)."""
        if self.generator is None:
            return self._case(draw(self._drawn))
        return self._case(self.generator.draw_structure(draw, batch=1))
