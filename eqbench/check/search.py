"""Property-based search for equivariance failures with hypothesis: find, steer, shrink.

Each hypothesis example draws a case input ``(structure, item)`` from the input generator's
``structure_strategy(batch=1)`` and, given its number of points, one group element from the
primitives of ``group.param_choices(num_points)`` (built once per number of points). One
``st.composite`` draws them in turn, the element's primitives directly rather than through a
nested strategy: each nesting level costs hypothesis a span and a draw, and on E(3) x S_n
point clouds drawing an example took 2.1 ms nested against 0.95 ms direct (one CPU thread,
outside the model). The example is
evaluated batched: the drawn element plus ``elements - 1`` Haar-random ones (``elements`` is the
check's ``n_elements``, so a searched input gets as many elements as a random-phase input) in one
forward pass. Drawing an example through hypothesis costs about as much as a small forward pass,
so the random elements, nearly free in the same batch, are what keeps the search's time in the
model. They are a window of :class:`Companions`, ``COMPANION_WINDOWS x (elements - 1)``
Haar-random elements sampled once per check and number of points from the check seed; the
window's position is a hash of the case (seed, input), so an example's elements are a function of
the example (memoised and replayed exactly) and building them costs one slice, not a sampling and
a group element per example.

Every example is judged by the rule of :mod:`eqbench.check.verdict`: its errors are relative to
the check's output scale pooled with the example's own outputs
(:meth:`~eqbench.check.metrics.ErrorTable.pooled`; an example whose outputs vanish by symmetry
cannot shrink it), and every sample above the check's exact threshold is re-evaluated in the
other precision (:mod:`eqbench.check.rounding`) before the example is accepted or rejected:
only an error that does not shrink with precision is *unexplained*. The drawn element's
unexplained error steers the search (``hypothesis.target``: hill-climbing on rounding would
spend the search on one corner of the input space) and decides failure: above the failure
threshold of the expectation (:func:`eqbench.check.verdict.failure_threshold`), or a model
failure. Hypothesis then shrinks the failing example (fewer points, generic configuration,
seed 0, an element nearer the identity) and replays the minimal one last.

Seeding a known failure: hypothesis does not shrink explicit ``@example``s (it reports them
as they are and stops), so a violation already found by the random phase is offered instead
as the *second* branch of ``st.one_of`` for both the input and the element (for groups that
permute points, only on inputs with the anchor's number of points); about half the drawn
inputs and elements reuse it. (Only then are the input and the element drawn through nested
strategies; the shrinker deletes and swaps whole ``one_of`` branches, which a flat choice
sequence would not let it do.) Hypothesis orders examples by the length of their choice
sequence first, so the anchor branch is padded with ``ANCHOR_PADDING`` boolean choices: a
failing drawn example with fewer choices (a point cloud structure and an E(3) x S_n element
take about 5 + 10) is simpler, and the shrinker (which also moves ``one_of`` towards its
first branch) replaces the anchor by a drawn one whenever the failure persists. The random phase's violation is
shrunk like any other. (More padding costs the shrinker time when only the anchor fails.)

Coverage: hypothesis draws the simple end of each range more often (many examples have the
fewest points allowed), so a bug confined to the largest inputs of a wide range needs more
``search_examples`` than one that any input shows.

Runs are reproducible: explicit settings (:func:`search_settings`, independent of the active
profile) and ``hypothesis.seed`` derived from the check seed, for the same loaded code:
hypothesis (6.131 on) mixes into about 5% of its draws constants read from the source of the
local (not installed) modules imported so far, so the same seed can search differently in a
process that imported other modules (measured: the naive frame-averaging control caught within
15 examples on 29 of 30 seeds with every eqbench module loaded, 30 of 30 without). A found
counterexample replays exactly in any process (its reproduction snippet names concrete values).
Evaluations are memoised per
example; after ``max_examples + SHRINK_BUDGET`` model evaluations new examples pass without
evaluation, which ends the shrinking early on slow models without making the replay flaky.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import hypothesis
import torch
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st

from eqbench.check.cases import CheckSetup, InputSource, acts_exactly, evaluate_cases
from eqbench.check.forward import ModelFailure
from eqbench.check.metrics import ErrorTable
from eqbench.check.rounding import judge_samples
from eqbench.check.verdict import failure_threshold
from eqbench.groups.base import Group, Params, cat_params
from eqbench.groups.strategies import ParamChoices
from eqbench.inputs.base import InputStructure

#: Model evaluations allowed beyond ``max_examples`` for the target and shrink phases.
SHRINK_BUDGET = 100
#: Size of the pool of random companion elements, in windows of ``elements - 1``.
COMPANION_WINDOWS = 8
#: Choices that make an anchored (random-phase) example longer than a drawn one.
ANCHOR_PADDING = 32
#: Health checks that would reject a search over a slow model or large inputs.
SUPPRESSED = (
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.filter_too_much,
    HealthCheck.large_base_example,
    HealthCheck.nested_given,
    HealthCheck.differing_executors,
)


def explicit_settings(
    *,
    max_examples: int,
    verbosity: Verbosity,
    phases: tuple[Phase, ...],
    stateful_step_count: int,
    report_multiple_bugs: bool,
    print_blob: bool,
) -> settings:
    """Hypothesis settings with every field given, so that the active profile (``ci`` included) changes nothing.

    Shared by the search and the profiles (:mod:`eqbench.check.profiles`): no database (a
    search replays from its seed, not from files), no deadline (model speed is not a bug), the
    health checks of :data:`SUPPRESSED` off, derandomisation off (the seed comes from
    ``hypothesis.seed``), the standard backend.
    """
    return settings(
        max_examples=max_examples,
        derandomize=False,
        database=None,
        verbosity=verbosity,
        phases=phases,
        stateful_step_count=stateful_step_count,
        report_multiple_bugs=report_multiple_bugs,
        suppress_health_check=SUPPRESSED,
        deadline=None,
        print_blob=print_blob,
        backend="hypothesis",
    )


def search_settings(examples: int) -> settings:
    """The checker's search: quiet, one bug reported, generate / target / shrink (:func:`explicit_settings`)."""
    return explicit_settings(
        max_examples=examples,
        verbosity=Verbosity.quiet,
        phases=(Phase.explicit, Phase.generate, Phase.target, Phase.shrink),
        stateful_step_count=1,
        report_multiple_bugs=False,
        print_blob=False,
    )


@dataclass(frozen=True)
class Case:
    """One search example: item ``item`` of ``inputs(structure)`` and one element's parameters."""

    structure: InputStructure | None
    item: int
    params: Params


@dataclass(frozen=True)
class Judge:
    """What counts as a failure: the expectation, the check's exact threshold and ``(T_lo, T_64)``, the tolerance.

    ``reference`` is the random phase's error table, whose outputs set the scale (pooled).
    """

    expected: str | None
    threshold: float
    thresholds: tuple[float, float]
    tolerance: float
    reference: ErrorTable


@dataclass(frozen=True)
class Companions:
    """The pool of Haar-random elements' parameters that join each drawn element in its forward pass (one number of points).

    Only parameters are pooled: an example builds its drawn element and its window of companions
    as one batch (:meth:`~eqbench.groups.base.Group.element` costs the same few operations for 1
    element or 30).
    """

    params: Params

    @classmethod
    def sample(cls, group: Group, size: int, seed: int, points: int | None) -> Companions:
        return cls(group.sample_params(size, torch.Generator().manual_seed((seed * 1_000_003 + (points or 0)) % 2**63), points))

    @property
    def size(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def window(self, start: int, size: int) -> Params:
        """The parameters of elements ``start .. start + size - 1`` of the pool."""
        window = slice(start, start + size)
        return {key: value[window] for key, value in self.params.items()}


@dataclass
class CaseOutcome:
    """What one evaluated example gave: the drawn element's error, or a model failure."""

    error: float
    failed: bool
    failure: ModelFailure | None = None
    #: Whether the drawn element's error is unexplained by rounding (a signal worth steering towards).
    unexplained: bool = False
    #: The drawn element's error in the other precision (NaN when it was not re-evaluated).
    other_error: float = float("nan")


class _Failure(Exception):
    def __init__(self, case: Case, outcome: CaseOutcome) -> None:
        super().__init__(f"failing case {case}")
        self.case, self.outcome = case, outcome


@dataclass
class SearchOutcome:
    """Everything the search saw (errors are relative to the check's scale pooled with each example's)."""

    evaluations: int = 0
    elements: int = 0
    max_rel_error: float = 0.0
    max_abs_error: float = 0.0
    #: The largest error of a sample that did not shrink with precision.
    unexplained_error: float = 0.0
    per_output: dict[str, tuple[float, float]] = field(default_factory=dict)
    exact_action: bool = True
    #: The minimal failing example hypothesis replayed last, and its model failure if any.
    case: Case | None = None
    failure: ModelFailure | None = None
    case_error: float = float("nan")
    case_other_error: float = float("nan")
    #: The worst sample seen (any of an example's elements; unexplained ones first): case, element batch
    #: params, index, and its error in the other precision (NaN when not re-evaluated).
    worst: tuple[Case, Params, int, float] | None = None
    worst_key: tuple[bool, float] = (False, -1.0)
    #: The largest float32-vs-float64 gap of the model on a re-evaluated sample: gap, case, params, index.
    ill_posed: tuple[float, Case, Params, int] | None = None
    #: Why a re-evaluation in the other precision could not run ("" when it could or was not needed).
    problem: str = ""


def run_search(
    setup: CheckSetup,
    source: InputSource,
    *,
    judge: Judge,
    examples: int,
    elements: int,
    seed: int,
    anchor: Case | None = None,
) -> SearchOutcome:
    """Search ``examples`` hypothesis examples of ``elements`` elements each for a failure of ``judge`` (see the module docstring)."""
    outcome = SearchOutcome()
    memo: dict[tuple, CaseOutcome] = {}
    budget = examples + SHRINK_BUDGET

    anchor_points = None if anchor is None else setup.in_action.num_points(source.item(anchor.structure, anchor.item))
    # The element's primitives per number of points, built on first use: a strategy made per
    # example costs hypothesis a fresh validation and label each time.
    element_choices: dict[int | None, ParamChoices] = {}
    anchored_elements: dict[int | None, st.SearchStrategy[Params]] = {}

    def draw_element(draw: st.DrawFn, points: int | None) -> Params:
        choices = element_choices.get(points)
        if choices is None:
            choices = element_choices[points] = setup.group.param_choices(points)
        if anchor is not None and (not setup.group.permutes_points or points == anchor_points):
            if points not in anchored_elements:
                anchored_elements[points] = anchored(choices.strategy(), anchor.params)
            return draw(anchored_elements[points])
        return choices.build([draw(primitive) for primitive in choices.strategies])

    anchored_inputs = None if anchor is None else anchored(source.strategy(), (anchor.structure, anchor.item))
    pools: dict[int | None, Companions] = {}

    def companions(points: int | None) -> Companions:
        if points not in pools:
            pools[points] = Companions.sample(setup.group, COMPANION_WINDOWS * (elements - 1), seed, points)
        return pools[points]

    @st.composite
    def cases(draw: st.DrawFn) -> Case:
        structure, item = source.draw(draw) if anchored_inputs is None else draw(anchored_inputs)
        return Case(structure, item, draw_element(draw, setup.in_action.num_points(source.batch(structure))))

    @search_settings(examples)
    @hypothesis.seed(seed)
    @given(case=cases())
    def probe(case: Case) -> None:
        params = tuple((k, str(v.dtype), v.cpu().numpy().tobytes()) for k, v in sorted(case.params.items()))
        key = (case.structure, case.item, params)
        result = memo.get(key)
        if result is None:
            if outcome.evaluations >= budget:
                return
            result = memo[key] = evaluate(setup, source, case, judge, elements, seed, outcome, companions)
        if result.unexplained:
            hypothesis.target(min(result.error, 1e300), label="relative equivariance error")
        if result.failed:
            raise _Failure(case, result)

    try:
        probe()
    except _Failure as found:
        outcome.case, outcome.failure = found.case, found.outcome.failure
        outcome.case_error, outcome.case_other_error = found.outcome.error, found.outcome.other_error
    return outcome


def anchored(drawn: st.SearchStrategy[Any], value: Any) -> st.SearchStrategy[Any]:
    """``drawn``, or ``value`` behind ``ANCHOR_PADDING`` choices (see the module docstring)."""
    padding = st.lists(st.booleans(), min_size=ANCHOR_PADDING, max_size=ANCHOR_PADDING)
    return st.one_of(drawn, st.tuples(st.just(value), padding).map(lambda pair: pair[0]))


def evaluate(
    setup: CheckSetup,
    source: InputSource,
    case: Case,
    judge: Judge,
    elements: int,
    seed: int,
    outcome: SearchOutcome,
    companions: Callable[[int | None], Companions],
) -> CaseOutcome:
    """Evaluate one example batched with ``elements - 1`` companions (a window of the pool
    ``companions(points)``); update the running ``outcome``."""
    x64 = source.item(case.structure, case.item)
    points = setup.in_action.num_points(x64)
    params = case.params
    if elements > 1:
        pool = companions(points)
        structure_seed = 0 if case.structure is None else case.structure.seed
        mixed = ((seed * 1_000_003 + structure_seed) * 10_007 + case.item) * 101 + (points or 0)
        params = cat_params([params, pool.window(mixed % (pool.size - elements + 2), elements - 1)])
    g = setup.group.element(params)
    outcome.evaluations += 1
    outcome.elements += g.batch_size
    outcome.exact_action &= acts_exactly(setup.in_action, g) and acts_exactly(setup.out_action, g)
    owner = torch.zeros(g.batch_size, dtype=torch.long)
    try:
        evaluation = evaluate_cases(setup, x64, g, owner)
        table = evaluation.table.pooled(judge.reference)
        judgement = judge_samples(setup, g, owner, evaluation, table, judge.threshold, judge.thresholds, first=0)
    except ModelFailure as failure:
        return CaseOutcome(float("inf"), True, failure)
    outcome.problem = outcome.problem or judgement.problem
    rel = table.rel
    index = judgement.worst(rel)
    # Every number the bookkeeping needs, read from the tensors at once (one synchronisation, not a dozen).
    leaf_maxima = [value for leaf in table.leaves for value in (leaf.rel.max(), leaf.abs.max())]
    picked = torch.stack([*leaf_maxima, rel[index], rel[0]]).tolist()
    for position, leaf in enumerate(table.leaves):
        seen_rel, seen_abs = outcome.per_output.get(leaf.name, (0.0, 0.0))
        outcome.per_output[leaf.name] = (max(seen_rel, picked[2 * position]), max(seen_abs, picked[2 * position + 1]))
    outcome.max_rel_error = max(outcome.max_rel_error, *picked[0 : len(leaf_maxima) : 2])
    outcome.max_abs_error = max(outcome.max_abs_error, *picked[1 : len(leaf_maxima) : 2])
    outcome.unexplained_error = max(outcome.unexplained_error, judgement.unexplained_error(rel))
    worst_error, error = picked[-2], picked[-1]
    key = (not judgement.below_threshold and bool(judgement.unexplained[index]), worst_error)
    if key > outcome.worst_key:
        outcome.worst_key = key
        outcome.worst = (case, params, index, float(judgement.other_error[index]))
    if judgement.gap > (outcome.ill_posed[0] if outcome.ill_posed else 0.0):
        outcome.ill_posed = (judgement.gap, case, params, judgement.gap_sample)
    if judgement.below_threshold:
        return CaseOutcome(error, False)
    drawn = bool(judgement.unexplained[0])
    failed = drawn and error > failure_threshold(judge.expected, judge.tolerance)
    return CaseOutcome(error, failed, unexplained=drawn, other_error=float(judgement.other_error[0]))
