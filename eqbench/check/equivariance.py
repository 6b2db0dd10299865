"""``check_equivariance`` and ``assert_equivariant``: the checker's front door.

A check tests ``f(g.x) == g.f(x)`` for a model ``f``, a group, and declared actions on the
model's input and output, in three steps:

1. **random phase** (always): ``n_inputs`` inputs (``inputs.default_structure(seed,
   batch=n_inputs)``, or the given concrete value) and ``n_elements`` Haar-random elements
   per input, from a ``torch.Generator`` seeded with ``seed`` (or, for a finite group, every
   element on every input: ``exhaustive``), evaluated in ONE stacked forward
   pass (:mod:`eqbench.check.cases`); the noise floor from one more pass over the inputs in
   float64 (in float32, scaled by eps64/eps32, for a float64 check; :mod:`eqbench.check.noise`);
2. **search** (``search_examples > 0``): hypothesis looks for inputs and elements that break
   the expectation and shrinks what it finds (:mod:`eqbench.check.search`); each searched
   input is checked with its drawn element and ``n_elements - 1`` random ones in one pass;
3. **verdict** (:mod:`eqbench.check.verdict`): ``exact`` / ``approximate`` / ``violated`` from
   the largest scale-adjusted relative error; ``error`` when the model raised, returned NaN or
   a wrong shape, or changed its input. A low-precision check that is violated or misses its
   expectation is re-run in float64 on its counterexample to tell ``numerical`` from
   ``structural`` failures (an ``exact`` model that reads ``approximate`` in float32 because a
   translation cost its coordinates bits, or flipped a tie, is ``numerical``).

``max_rel_error``/``max_abs_error`` cover the random phase and the search;
``mean_rel_error``/``mean_abs_error`` the random phase only (the search is adversarial).
"""
from __future__ import annotations

import inspect
import time
from typing import Any, Callable

import torch

from eqbench.actions.base import Action
from eqbench.check.cases import CheckSetup, InputSource, acts_exactly, evaluate_cases
from eqbench.check.forward import ModelFailure, model_name
from eqbench.check.noise import noise_floor
from eqbench.check.reproduce import counterexample, worst_counterexample
from eqbench.check.result import CheckResult, EquivarianceError, Float64Diagnosis, Verdict, meets_expectation
from eqbench.check.search import Case, Judge, SearchOutcome, run_search
from eqbench.check.verdict import check_expected, decide, exact_threshold, failure_threshold, is_numerical
from eqbench.groups.base import Group, Params, cat_params


def check_equivariance(
    model: Callable[..., Any],
    group: Group,
    inputs: Any,
    in_action: Action,
    out_action: Action,
    *,
    expected: str | None = None,
    tolerance: float = 1e-2,
    seed: int = 0,
    n_inputs: int = 4,
    n_elements: int = 16,
    search_examples: int = 40,
    exhaustive: bool | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    name: str | None = None,
) -> CheckResult:
    """Check that ``model(g.x) == g.model(x)`` for ``g`` in ``group`` (see the module docstring).

    ``inputs`` is an :class:`~eqbench.inputs.InputGenerator` or a concrete batched input
    value (then every item is used and ``n_inputs`` is ignored). A tuple input is passed to
    the model as ``*args``, a dict as ``**kwargs``, a tensor as one argument. ``expected``
    (``"exact"``, ``"approximate"``, ``"violated"`` or ``None``) sets what the search hunts for
    and ``result.matches_expected``. ``tolerance`` bounds the relative error of
    ``approximate``. ``exhaustive`` decides whether the random phase tries every element of a
    finite group on every input instead of ``n_elements`` random ones: ``None`` (default) when
    the group's order on the data is at most ``n_elements``, ``True`` always (``ValueError`` for
    a group that is not finite or too large to enumerate), ``False`` never. The same ``seed``
    gives the same inputs, elements, search and verdict.
    Model misbehaviour gives the verdict ``error``; invalid arguments raise ``ValueError``
    or ``TypeError``. Inside a test that is itself a hypothesis ``@given`` test, the outer
    test needs ``suppress_health_check=[HealthCheck.nested_given]`` (the ``eqbench-quick``
    and ``eqbench-thorough`` profiles have it), or ``search_examples=0``.
    """
    start = time.perf_counter()
    expected = check_expected(expected)
    _check_arguments(group, tolerance, n_inputs, n_elements, search_examples, exhaustive)
    setup = CheckSetup(model, group, in_action, out_action, dtype, device)
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
    result = CheckResult(
        model=name or model_name(model),
        group=group.name,
        verdict=Verdict.ERROR,
        expected=expected,
        max_rel_error=float("nan"),
        mean_rel_error=float("nan"),
        max_abs_error=float("nan"),
        mean_abs_error=float("nan"),
        noise_floor=float("nan"),
        exact_threshold=float("nan"),
        tolerance=tolerance,
        n_elements=batch * per_input,
        n_inputs=batch,
        exhaustive=enumerated is not None,
        seed=seed,
        seconds=0.0,
        dtype=str(dtype).removeprefix("torch."),
    )
    try:
        evaluation = evaluate_cases(setup, x64, g, owner)
        floor = noise_floor(setup, evaluation)
    except ModelFailure as failure:
        result.message = f"model failed on the random phase's inputs: {failure}"
        return _finish(result, start)
    table = evaluation.table
    rel, absolute = table.rel, table.abs  # each property stacks every output leaf: read them once
    random_max = float(rel.max())
    threshold = exact_threshold(floor.value, dtype)
    worst, _ = table.worst()
    random_worst = Case(structure, int(owner[worst]), {key: value[worst : worst + 1] for key, value in params.items()})
    search = SearchOutcome()
    if search_examples > 0:
        anchor = random_worst if random_max > failure_threshold(expected, threshold, tolerance) else None
        judge = Judge(expected, threshold, tolerance)
        search = run_search(
            setup, source, judge=judge, examples=search_examples, elements=n_elements, seed=seed, anchor=anchor
        )

    result.per_output = {leaf.name: leaf.summary() for leaf in table.leaves}
    for leaf_name, (leaf_rel, leaf_abs) in search.per_output.items():
        summary = result.per_output[leaf_name]
        summary.max_rel_error = max(summary.max_rel_error, leaf_rel)
        summary.max_abs_error = max(summary.max_abs_error, leaf_abs)
    result.max_rel_error = max(random_max, search.max_rel_error)
    result.mean_rel_error = float(rel.mean())
    result.max_abs_error = max(float(absolute.max()), search.max_abs_error)
    result.mean_abs_error = float(absolute.mean())
    result.noise_floor, result.exact_threshold = floor.value, threshold
    result.n_elements += search.elements
    result.search_examples = search.evaluations
    exact_action = search.exact_action and acts_exactly(in_action, g) and acts_exactly(out_action, g)
    notes = [f"noise floor by {floor.method}" + (f" ({floor.detail})" if floor.detail else "")]
    if enumerated is not None:
        notes.append(f"exhaustive: all {per_input} elements of {group.name} on each input")
    if not exact_action:
        notes.append("some elements act only approximately on the data (interpolation): exact is reported as approximate")

    if search.failure is not None:
        result.verdict = Verdict.ERROR
        notes.insert(0, f"model failed on a searched input: {search.failure}")
    else:
        result.verdict = decide(result.max_rel_error, threshold, tolerance, exact_action)
    if result.verdict is not Verdict.EXACT:
        case, index, origin = _worst_case(search, random_worst, random_max)
        fail_at = failure_threshold(expected, threshold, tolerance)
        result.counterexample = counterexample(setup, source, case.structure, case.item, case.params, index, origin, fail_at)
        result.worst_example = worst_counterexample(setup, source, _candidates(search, random_worst), fail_at)
        missed = result.expected is not None and not meets_expectation(result.verdict, result.expected)
        if (result.verdict is Verdict.VIOLATED or missed) and result.verdict is not Verdict.ERROR and dtype != torch.float64:
            result.float64 = _diagnose(setup, source, case, index, result.counterexample.rel_error)
    result.message = "; ".join(notes)
    return _finish(result, start)


def assert_equivariant(*args: Any, **kwargs: Any) -> CheckResult:
    """:func:`check_equivariance`, raising :class:`EquivarianceError` when the check fails.

    Fails when the verdict does not match ``expected``, or, without an expectation, when it
    is ``violated`` or ``error``. The message lists the errors per output and the
    counterexample with its reproduce snippet. Returns the result otherwise.
    """
    result = check_equivariance(*args, **kwargs)
    failed = result.verdict in (Verdict.VIOLATED, Verdict.ERROR) if result.expected is None else not result.matches_expected
    if failed:
        raise EquivarianceError(result)
    return result


assert_equivariant.__signature__ = inspect.signature(check_equivariance)  # type: ignore[attr-defined]


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


def _check_arguments(
    group: Group, tolerance: float, n_inputs: int, n_elements: int, search_examples: int, exhaustive: bool | None
) -> None:
    if not isinstance(group, Group):
        raise TypeError(f"group must be an eqbench Group (e.g. eqbench.groups.SO3()), got {group!r}")
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be a number >= 0, got {tolerance!r}")
    if exhaustive not in (None, True, False):
        raise ValueError(f"exhaustive must be None, True or False, got {exhaustive!r}")
    counts = (("n_inputs", n_inputs, 1), ("n_elements", n_elements, 1), ("search_examples", search_examples, 0))
    for label, value, least in counts:
        if not isinstance(value, int) or value < least:
            raise ValueError(f"{label} must be an integer >= {least}, got {value!r}")


def _worst_case(search: SearchOutcome, random_worst: Case, random_max: float) -> tuple[Case, int, str]:
    """The shrunk search failure if any, else the worst sample of the search or of the random phase.

    Returns the case (its ``params`` a batch), the index of the element in that batch, and the origin.
    """
    if search.case is not None:
        return search.case, 0, "search"
    if search.worst is not None and search.max_rel_error > random_max:
        case, params, index = search.worst
        return Case(case.structure, case.item, params), index, "search"
    return random_worst, 0, "random"


def _candidates(search: SearchOutcome, random_worst: Case) -> list[tuple[Case, int, str]]:
    """Every example that may be the worst: the shrunk search failure, the search's and the random phase's largest."""
    cases = [(random_worst, 0, "random")]
    if search.case is not None:
        cases.append((search.case, 0, "search"))
    if search.worst is not None:
        case, params, index = search.worst
        cases.append((Case(case.structure, case.item, params), index, "search"))
    return cases


def _diagnose(setup: CheckSetup, source: InputSource, case: Case, index: int, low_precision_error: float) -> Float64Diagnosis:
    """Re-run the counterexample in float64: is the violation rounding or structure?"""
    if setup.float64_model.problem:
        return Float64Diagnosis("unavailable", float("nan"), low_precision_error, setup.float64_model.problem)
    g = setup.group.element({key: value[index : index + 1] for key, value in case.params.items()})
    x64 = source.item(case.structure, case.item)
    try:
        table = evaluate_cases(setup, x64, g, torch.zeros(1, dtype=torch.long), float64=True).table
    except ModelFailure as failure:
        detail = f"the model does not run in float64: {failure}"
        return Float64Diagnosis("unavailable", float("nan"), low_precision_error, detail)
    error = float(table.rel.max())
    kind = "numerical" if is_numerical(error, low_precision_error) else "structural"
    return Float64Diagnosis(kind, error, low_precision_error)


def _finish(result: CheckResult, start: float) -> CheckResult:
    result.seconds = time.perf_counter() - start
    return result
