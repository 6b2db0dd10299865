"""``check_equivariance`` and ``assert_equivariant``: the checker's front door.

A check tests ``f(g.x) == g.f(x)`` for a model ``f``, a group, and declared actions on the
model's input and output, in three steps:

1. **random phase** (always): ``n_inputs`` inputs (``inputs.default_structure(seed,
   batch=n_inputs)``, or the given concrete value) and ``n_elements`` Haar-random elements
   per input, from a ``torch.Generator`` seeded with ``seed`` (or, for a finite group, every
   element on every input: ``exhaustive``), evaluated in ONE stacked forward
   pass (:mod:`eqbench.check.cases`); the noise floor from one more pass over the inputs in
   float64 (in float32, scaled by eps64/eps32, for a float64 check; :mod:`eqbench.check.noise`);
   one more pass over the inputs alone in the checked dtype tells whether the model is a
   deterministic function of each item (:mod:`eqbench.check.determinism`; if not, ``error``);
2. **search** (``search_examples > 0``): hypothesis looks for inputs and elements that break
   the expectation and shrinks what it finds (:mod:`eqbench.check.search`); each searched
   input is checked with its drawn element and ``search_elements - 1`` random ones in one pass
   (``search_elements`` defaults to ``2 * n_elements``: an example's fixed cost, about 2-3 ms of
   hypothesis's engine, drawing, transforming and judging, is spread over twice the random
   phase's elements per input, and every searched input meets that many elements);
3. **verdict** (:mod:`eqbench.check.verdict`): every sample above the exact threshold is
   re-evaluated in the other precision (:mod:`eqbench.check.rounding`, worst first), and only
   an error that does not shrink with precision is unexplained; ``exact`` when nothing is,
   else ``approximate`` / ``violated`` from the largest unexplained error against the
   tolerance; ``error`` when the model raised, returned NaN or a wrong shape, changed its
   input, or was not deterministic. ``result.float64`` gives the counterexample's errors in
   both precisions; ``result.ill_posed`` an input where the model's float32 and float64
   outputs differ by more than ``ILL_POSED_GAP`` (discontinuous or ill-posed there).

``max_rel_error``/``max_abs_error`` cover the random phase and the search;
``mean_rel_error``/``mean_abs_error`` the random phase only (the search is adversarial).
"""
from __future__ import annotations

import inspect
import math
import time
from typing import Any, Callable

import torch

from eqbench.actions.base import Action
from eqbench.check.cases import CheckSetup, InputSource, acts_exactly, evaluate_cases, twin_pass
from eqbench.check.forward import ModelFailure, model_name
from eqbench.check.determinism import nondeterminism
from eqbench.check.noise import NoiseFloor, noise_floor
from eqbench.check.random_phase import prepare_random_phase
from eqbench.check.reproduce import counterexample, params_to_lists, worst_counterexample
from eqbench.check.result import CheckResult, EquivarianceError, Float64Diagnosis, IllPosed, Verdict
from eqbench.check.rounding import Judgement, judge_samples
from eqbench.check.search import Case, Judge, SearchOutcome, run_search
from eqbench.check.verdict import (
    check_expected,
    decide,
    exact_threshold,
    failure_threshold,
    precision_thresholds,
    is_ill_posed,
)
from eqbench.groups.base import Group, Params
from eqbench.inputs.base import InputStructure


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
    search_elements: int | None = None,
    exhaustive: bool | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    name: str | None = None,
    counterexamples: bool = True,
    repeat_check: bool = True,
    twin_rows: str = "worst",
) -> CheckResult:
    """Check that ``model(g.x) == g.model(x)`` for ``g`` in ``group`` (see the module docstring).

    ``inputs`` is an :class:`~eqbench.inputs.InputGenerator` or a concrete batched input
    value (then every item is used and ``n_inputs`` is ignored). A tuple input is passed to
    the model as ``*args``, a dict as ``**kwargs``, a tensor as one argument. ``expected``
    (``"exact"``, ``"approximate"``, ``"violated"``, ``"error"`` or ``None``) sets what the search
    hunts for and ``result.matches_expected`` (``"violated"`` is met by ``approximate`` too).
    ``tolerance`` bounds the unexplained relative error of ``approximate``. ``dtype`` is the
    precision the inputs are cast to; the model is called as given (cast a module yourself, or
    register it with ``check_options={"dtype": ...}``, which casts it). ``search_elements``
    (default ``2 * n_elements``) is the number of elements each searched input is evaluated
    with in one pass, its drawn element included: lower it for a model whose forward pass on
    that many rows does not fit in memory. ``exhaustive`` decides whether the random phase tries
    every element of a finite group on every input instead of ``n_elements`` random ones:
    ``None`` (default) when the group's order on the data is at most ``n_elements``, ``True``
    always (``ValueError`` for a group that is not finite or too large to enumerate), ``False`` never. The same ``seed``
    gives the same inputs, elements, search and verdict. ``counterexamples=False`` skips building
    the reproducible counterexample and the worst example of a non-exact verdict (their replays
    and snippets; ``result.counterexample`` and ``result.worst_example`` stay ``None``), for
    callers that only read the verdict and the errors, such as tracking through training.
    ``repeat_check=False`` skips the second forward pass of the base inputs that detects
    undeclared nondeterminism (:mod:`eqbench.check.determinism`), for a caller that has already
    established it on the same model code (the tracker after its first probe). ``twin_rows`` says
    which rows of the random phase the model's twin in the other precision evaluates: ``"worst"``
    (default) the inputs (noise floor), then only samples above the exact threshold, worst first;
    ``"all"`` every row in one pass up front, which both steps then read (one twin pass instead of
    two, for a model that costs little on the whole batch, such as the tracker's probe; the same
    rows and rule, so the same verdict).
    Model misbehaviour gives the verdict ``error``; invalid arguments raise ``ValueError``
    or ``TypeError``. Inside a test that is itself a hypothesis ``@given`` test, the outer
    test needs ``suppress_health_check=[HealthCheck.nested_given]`` (the ``eqbench-quick``
    and ``eqbench-thorough`` profiles have it), or ``search_examples=0``.
    """
    start = time.perf_counter()
    expected = check_expected(expected)
    search_elements = 2 * n_elements if search_elements is None else search_elements
    _check_arguments(group, tolerance, n_inputs, n_elements, search_examples, search_elements, exhaustive)
    if twin_rows not in ("worst", "all"):
        raise ValueError(f"twin_rows must be 'worst' or 'all', got {twin_rows!r}")
    setup = CheckSetup(model, group, in_action, out_action, dtype, device)
    phase = prepare_random_phase(
        inputs, group, in_action, n_inputs=n_inputs, n_elements=n_elements, exhaustive=exhaustive, seed=seed
    )
    source, structure, x64, params, g, owner = phase.source, phase.structure, phase.x64, phase.params, phase.g, phase.owner
    batch, per_input = phase.batch, phase.per_input
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
        exhaustive=phase.exhaustive,
        seed=seed,
        seconds=0.0,
        dtype=str(dtype).removeprefix("torch."),
    )
    try:
        evaluation = evaluate_cases(setup, x64, g, owner, stacked=phase.stacked)
        twin = twin_pass(setup, evaluation) if twin_rows == "all" else None
        floor = noise_floor(setup, evaluation, twin)
        threshold, thresholds = exact_threshold(floor.value, dtype), precision_thresholds(floor.value, dtype)
        result.noise_floor, result.exact_threshold = floor.value, threshold
        unrepeatable = nondeterminism(setup, evaluation, threshold) if repeat_check else ""
        if unrepeatable:
            result.message = unrepeatable
            return _finish(result, start)
        table = evaluation.table
        judgement = judge_samples(setup, g, owner, evaluation, table, threshold, thresholds, twin_pass=twin)
    except ModelFailure as failure:
        result.message = f"model failed on the random phase's inputs: {failure}"
        return _finish(result, start)
    rel = table.rel
    random_unexplained = judgement.unexplained_error(rel)
    worst = judgement.worst(rel)

    def random_worst() -> Case:
        """The random phase's worst sample as a search case (a search anchor, a counterexample candidate)."""
        return Case(structure, int(owner[worst]), {key: value[worst : worst + 1] for key, value in params.items()})

    search = SearchOutcome()
    if search_examples > 0:
        failing = random_unexplained > failure_threshold(expected, tolerance)
        judge = Judge(expected, threshold, thresholds, tolerance, table)
        search = run_search(
            setup, source, judge=judge, examples=search_examples, elements=search_elements, seed=seed,
            anchor=random_worst() if failing else None,
        )

    result.per_output, (max_rel, result.mean_rel_error, max_abs, result.mean_abs_error) = table.summary()
    for leaf_name, (leaf_rel, leaf_abs) in search.per_output.items():
        summary = result.per_output[leaf_name]
        summary.max_rel_error = max(summary.max_rel_error, leaf_rel)
        summary.max_abs_error = max(summary.max_abs_error, leaf_abs)
    result.max_rel_error = max(max_rel, search.max_rel_error)
    result.max_abs_error = max(max_abs, search.max_abs_error)
    result.unexplained_error = max(random_unexplained, search.unexplained_error)
    result.n_elements += search.elements
    result.search_examples = search.evaluations
    result.ill_posed = _ill_posed(setup, source, structure, floor, judgement, owner, params, search)
    exact_action = search.exact_action and phase.acts_exactly_on_inputs and acts_exactly(out_action, g)
    notes = [f"noise floor by {floor.method}" + (f" ({floor.detail})" if floor.detail else "")]
    problem = judgement.problem or search.problem
    if problem:
        notes.append(f"errors above the exact threshold could not be re-evaluated in the other precision ({problem})")
    if phase.exhaustive:
        notes.append(f"exhaustive: all {per_input} elements of {group.name} on each input")
    if not exact_action:
        notes.append("some elements act only approximately on the data (interpolation): exact is reported as approximate")

    if search.failure is not None:
        result.verdict = Verdict.ERROR
        notes.insert(0, f"model failed on a searched input: {search.failure}")
    else:
        result.verdict = decide(result.unexplained_error, tolerance, exact_action)
    if result.verdict is not Verdict.EXACT:
        random_key = (bool(judgement.unexplained[worst]), float(rel[worst]))
        random_case = (random_worst() if counterexamples else None, 0, "random", random_key, float(judgement.other_error[worst]))
        case, index, origin, key, other = _worst_case(search, random_case, random_key)
        if counterexamples:
            assert case is not None
            fail_at = max(failure_threshold(expected, tolerance), threshold)
            result.counterexample = counterexample(setup, source, case.structure, case.item, case.params, index, origin, fail_at)
            result.worst_example = worst_counterexample(setup, source, _candidates(search, random_worst()), fail_at)
        if result.verdict is not Verdict.ERROR:
            result.float64 = _diagnosis(setup, key, other, problem)
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


def _check_arguments(
    group: Group, tolerance: float, n_inputs: int, n_elements: int, search_examples: int, search_elements: int,
    exhaustive: bool | None,
) -> None:
    if not isinstance(group, Group):
        raise TypeError(f"group must be an eqbench Group (e.g. eqbench.groups.SO3()), got {group!r}")
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be a number >= 0, got {tolerance!r}")
    if exhaustive not in (None, True, False):
        raise ValueError(f"exhaustive must be None, True or False, got {exhaustive!r}")
    counts = (
        ("n_inputs", n_inputs, 1), ("n_elements", n_elements, 1), ("search_examples", search_examples, 0),
        ("search_elements", search_elements, 1),
    )
    for label, value, least in counts:
        if not isinstance(value, int) or value < least:
            raise ValueError(f"{label} must be an integer >= {least}, got {value!r}")


def _worst_case(
    search: SearchOutcome, random_case: tuple[Case | None, int, str, tuple[bool, float], float], random_key: tuple[bool, float]
) -> tuple[Case | None, int, str, tuple[bool, float], float]:
    """The shrunk search failure if any, else the worst sample (unexplained ones first) of the search or the random phase.

    Returns the case (its ``params`` a batch), the index of the element in that batch, the
    origin, whether the sample is unexplained with its error in the checked dtype, and its
    error in the other precision (NaN when it was not re-evaluated).
    """
    if search.case is not None:
        return search.case, 0, "search", (True, search.case_error), search.case_other_error
    if search.worst is not None and search.worst_key > random_key:
        case, params, index, other = search.worst
        return Case(case.structure, case.item, params), index, "search", search.worst_key, other
    return random_case


def _diagnosis(setup: CheckSetup, key: tuple[bool, float], other: float, problem: str) -> Float64Diagnosis | None:
    """The counterexample's errors in both precisions and whether they shrink with precision (its judgement).

    ``None`` when the sample was within the exact threshold (nothing to explain).
    """
    unexplained, error = key
    if math.isnan(other):
        return Float64Diagnosis("unavailable", float("nan"), error, problem) if problem else None
    low, high = (other, error) if setup.dtype == torch.float64 else (error, other)
    return Float64Diagnosis("structural" if unexplained else "numerical", high, low)


def _ill_posed(
    setup: CheckSetup,
    source: InputSource,
    structure: InputStructure | None,
    floor: NoiseFloor,
    judgement: Judgement,
    owner: torch.Tensor,
    params: Params,
    search: SearchOutcome,
) -> IllPosed | None:
    """The input with the largest float32-vs-float64 gap of the model, when above ``ILL_POSED_GAP`` (a finding)."""
    found = [
        (floor.gap, lambda: IllPosed(floor.gap, _structure(structure), floor.gap_row, None, "random")),
        (judgement.gap, lambda: IllPosed(
            judgement.gap, _structure(structure), int(owner[judgement.gap_sample]),
            params_to_lists(params, judgement.gap_sample)[0], "random",
        )),
    ]
    if search.ill_posed is not None:
        gap, case, case_params, index = search.ill_posed
        found.append((gap, lambda: IllPosed(gap, _structure(case.structure), case.item, params_to_lists(case_params, index)[0], "search")))
    gap, make = max(found, key=lambda pair: pair[0])
    return make() if is_ill_posed(gap) else None


def _structure(structure: InputStructure | None) -> dict[str, Any] | None:
    return None if structure is None else structure.to_dict()


def _candidates(search: SearchOutcome, random_worst: Case) -> list[tuple[Case, int, str]]:
    """Every example that may be the worst: the shrunk search failure, the search's and the random phase's largest."""
    cases = [(random_worst, 0, "random")]
    if search.case is not None:
        cases.append((search.case, 0, "search"))
    if search.worst is not None:
        case, params, index, _ = search.worst
        cases.append((Case(case.structure, case.item, params), index, "search"))
    return cases


def _finish(result: CheckResult, start: float) -> CheckResult:
    result.seconds = time.perf_counter() - start
    return result
