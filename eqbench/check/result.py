"""What a check reports: the verdict, the errors behind it, the worst counterexample.

:class:`CheckResult` is a plain dataclass: ``str(result)`` is a readable summary,
``result.to_record()`` a flat JSON-able dict (the row ``eqbench check --json`` writes).
:class:`EquivarianceError` is what :func:`~eqbench.check.assert_equivariant` raises.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

#: Record fields every ``--json`` record carries, whichever checker made it (``CheckResult.to_record``
#: and ``StochasticResult.to_record`` add more); :mod:`eqbench.reports.records` reads them back.
RECORD_FIELDS = (
    "model",
    "group",
    "verdict",
    "expected",
    "max_rel_error",
    "mean_rel_error",
    "noise_floor",
    "n_elements",
    "seed",
)


class Verdict(str, Enum):
    """The outcome of a check (see :mod:`eqbench.check.verdict` for the thresholds).

    * ``exact``: every error is rounding (it shrinks with precision);
    * ``approximate``: the largest error that is not rounding is within the declared tolerance;
    * ``violated``: beyond the tolerance;
    * ``error``: the model could not be checked (it raised, returned NaN or the wrong shape,
      changed its input, or gave different outputs on the same inputs).
    """

    EXACT = "exact"
    APPROXIMATE = "approximate"
    VIOLATED = "violated"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


def meets_expectation(verdict: Verdict, expected: str | None) -> bool | None:
    """Whether ``verdict`` meets ``expected`` (``None`` without an expectation).

    ``"approximate"`` is met by ``exact`` or ``approximate`` (it promises errors within the
    tolerance); ``"violated"`` (a negative control) by ``approximate`` or ``violated``: the
    point of a control is that the check notices, the tolerance only separates the two for a
    model that declares one; ``"exact"`` and ``"error"`` must be met exactly.
    """
    if expected is None:
        return None
    return verdict in MEETS[expected]


#: The verdicts that meet each expectation (:func:`meets_expectation`).
MEETS: dict[str, frozenset[Verdict]] = {
    Verdict.EXACT.value: frozenset({Verdict.EXACT}),
    Verdict.APPROXIMATE.value: frozenset({Verdict.EXACT, Verdict.APPROXIMATE}),
    Verdict.VIOLATED.value: frozenset({Verdict.APPROXIMATE, Verdict.VIOLATED}),
    Verdict.ERROR.value: frozenset({Verdict.ERROR}),
}


class EquivarianceError(AssertionError):
    """Raised by :func:`~eqbench.check.assert_equivariant`; ``.result`` is the full :class:`CheckResult`."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(str(result))
        self.result = result


@dataclass
class OutputErrors:
    """Errors of one output leaf (one named tensor of the model's output).

    ``max_rel_error`` / ``mean_rel_error`` are scale-adjusted: ``||f(g.x) - g.f(x)||``
    divided by ``scale``, the RMS norm of this output over every input and element tried.
    ``max_sample_ratio`` is the per-sample ratio ``||f(g.x) - g.f(x)|| / (||g.f(x)|| + eps)``,
    reported for reference only: it explodes for outputs that vanish by symmetry.
    """

    name: str
    max_rel_error: float
    mean_rel_error: float
    max_abs_error: float
    mean_abs_error: float
    max_sample_ratio: float
    scale: float


@dataclass
class Replay:
    """What a standalone script needs to recompute a counterexample's error (:mod:`eqbench.check.scripts`).

    ``input`` is the batch-1 input value (float64 tensors, as the model's argument(s));
    ``element`` the group element as ``Element`` parts (``matrix`` (1, d, d), ``translation``
    (1, d), ``permutation`` (1, N)), ``params`` the same as ``group.element`` parameters;
    ``dtype`` the check's precision; ``threshold`` the error above which the check calls the
    model broken for its expectation (:func:`eqbench.check.verdict.failure_threshold`).
    """

    input: Any
    params: dict[str, Any]
    element: dict[str, Any]
    group: Any
    in_action: Any
    out_action: Any
    dtype: str
    threshold: float


@dataclass
class Counterexample:
    """A failing input and group element, replayed alone.

    ``structure`` is the :class:`~eqbench.inputs.InputStructure` as a dict (``None`` when the
    check was given a concrete input value) and ``item`` the index within that batch;
    ``params`` the element's parameters (``group.element`` input) as Python lists, with their
    dtypes in ``param_dtypes``. ``rel_error`` and ``abs_error`` are what ``reproduce`` (a
    Python snippet using the public eqbench API) and the saved script print for this single
    input and element. ``source`` is ``"random"`` or ``"search"``; ``output`` names the worst
    output leaf; ``input_text`` and ``element_text`` describe the input (coordinates when small)
    and the element (rotation angle and axis, translation, permutation) for the console;
    ``replay`` holds the tensors and objects a standalone script needs.
    """

    structure: dict[str, Any] | None
    item: int
    params: dict[str, list]
    param_dtypes: dict[str, str]
    rel_error: float
    abs_error: float
    output: str
    source: str
    reproduce: str = ""
    failure: str = ""
    input_text: str = ""
    element_text: str = ""
    replay: Replay | None = field(default=None, repr=False, compare=False)

    def lines(self, title: str) -> list[str]:
        """The console description: ``title``, the output and error, then the input and the element."""
        error = f"model failed: {self.failure}" if self.failure else f"relative error {self.rel_error:.3g}"
        return [
            f"  {title} ({self.source}): output {self.output or '<value>'}, {error} (this input and element alone)",
            f"    input: {self.input_text or (self.structure if self.structure is not None else f'item {self.item}')}",
            f"    element: {self.element_text or self.params}",
        ]


@dataclass
class Float64Diagnosis:
    """The worst sample above the exact threshold, re-evaluated in the other precision (:mod:`eqbench.check.rounding`).

    ``kind`` is ``"numerical"`` when its error shrinks with precision (rounding, by the rule of
    :mod:`eqbench.check.verdict`), ``"structural"`` when it does not, and ``"unavailable"`` when
    the model cannot run in the other precision. ``max_rel_error`` is the sample's float64
    error, ``float32_max_rel_error`` its float32 (or lower precision) error: for a float64
    check the float32 twin gave the latter.
    """

    kind: str
    max_rel_error: float
    float32_max_rel_error: float
    detail: str = ""


@dataclass
class IllPosed:
    """An input where the model's float32 and float64 evaluations differ by more than ``ILL_POSED_GAP``.

    The model is discontinuous or ill-posed there (a finding, never counted as rounding).
    ``gap`` is the difference relative to the output scale; ``structure`` / ``item`` name the
    input like a :class:`Counterexample`; ``params`` the element (``None``: the untransformed
    input); ``source`` is ``"random"`` or ``"search"``.
    """

    gap: float
    structure: dict[str, Any] | None
    item: int
    params: dict[str, list] | None
    source: str

    def describe(self) -> str:
        where = self.structure if self.structure is not None else f"item {self.item}"
        element = "" if self.params is None else f", element {self.params}"
        return f"discontinuous or ill-posed at input {where}{element} ({self.source}): float32 and float64 differ by {self.gap:.3g}"


@dataclass
class CheckResult:
    """The outcome of :func:`~eqbench.check.check_equivariance` (see the field names).

    ``counterexample`` is the simplest failure (the search's shrunk example, else the worst
    random one); ``worst_example`` the replayed candidate with the largest error, which the
    console shows and :func:`~eqbench.check.scripts.save_counterexample` saves; ``script``
    the path of a saved script, once there is one.
    """

    model: str
    group: str
    verdict: Verdict
    expected: str | None
    max_rel_error: float
    mean_rel_error: float
    max_abs_error: float
    mean_abs_error: float
    noise_floor: float
    exact_threshold: float
    tolerance: float
    n_elements: int
    n_inputs: int
    seed: int
    seconds: float
    dtype: str
    #: The largest error of a sample that is not rounding (0 when every sample is; the verdict reads it).
    unexplained_error: float = float("nan")
    per_output: dict[str, OutputErrors] = field(default_factory=dict)
    counterexample: Counterexample | None = None
    ill_posed: IllPosed | None = None
    float64: Float64Diagnosis | None = None
    message: str = ""
    search_examples: int = 0
    #: True when the random phase tried every element of a finite group on every input.
    exhaustive: bool = False
    worst_example: Counterexample | None = None
    script: str = ""

    @property
    def matches_expected(self) -> bool | None:
        """Whether the verdict meets the expectation (:func:`meets_expectation`)."""
        return meets_expectation(self.verdict, self.expected)

    def to_record(self) -> dict[str, Any]:
        """A flat JSON-able dict (non-finite numbers become ``None``)."""
        record: dict[str, Any] = {
            "model": self.model,
            "group": self.group,
            "verdict": self.verdict.value,
            "expected": self.expected,
            "matches_expected": self.matches_expected,
            "max_rel_error": self.max_rel_error,
            "mean_rel_error": self.mean_rel_error,
            "max_abs_error": self.max_abs_error,
            "mean_abs_error": self.mean_abs_error,
            "unexplained_error": self.unexplained_error,
            "noise_floor": self.noise_floor,
            "exact_threshold": self.exact_threshold,
            "tolerance": self.tolerance,
            "n_elements": self.n_elements,
            "n_inputs": self.n_inputs,
            "search_examples": self.search_examples,
            "exhaustive": self.exhaustive,
            "seed": self.seed,
            "seconds": self.seconds,
            "dtype": self.dtype,
            "float64_kind": self.float64.kind if self.float64 else None,
            "float64_max_rel_error": self.float64.max_rel_error if self.float64 else None,
            "counterexample": self.counterexample.reproduce if self.counterexample else None,
            "ill_posed_gap": self.ill_posed.gap if self.ill_posed else None,
            "ill_posed": self.ill_posed.describe() if self.ill_posed else None,
            "message": self.message,
        }
        return {key: json_safe(value) for key, value in record.items()}

    def __str__(self) -> str:
        expectation = ""
        if self.expected is not None:
            expectation = f" (expected {self.expected}: {'ok' if self.matches_expected else 'MISMATCH'})"
        lines = [
            f"{self.model} under {self.group}: {self.verdict.value}{expectation}",
            f"  max relative error {self.max_rel_error:.3g} (mean {self.mean_rel_error:.3g}), "
            f"max absolute error {self.max_abs_error:.3g}, unexplained by rounding {self.unexplained_error:.3g}",
            f"  noise floor {self.noise_floor:.3g}, exact threshold {self.exact_threshold:.3g}, "
            f"tolerance {self.tolerance:.3g} ({self.dtype})",
            f"  {self.n_elements} group elements{' (exhaustive)' if self.exhaustive else ''} on {self.n_inputs} inputs "
            f"(+{self.search_examples} searched), seed {self.seed}, {self.seconds:.3f} s",
        ]
        if len(self.per_output) > 1 or (self.per_output and self.verdict is not Verdict.EXACT):
            for name, errors in self.per_output.items():
                lines.append(
                    f"  output {name or '<value>'}: max rel {errors.max_rel_error:.3g}, mean rel "
                    f"{errors.mean_rel_error:.3g}, max abs {errors.max_abs_error:.3g}, scale {errors.scale:.3g}"
                )
        if self.float64 is not None:
            lines.append(
                f"  float64 re-run: {self.float64.kind} (max rel error {self.float64.max_rel_error:.3g} "
                f"vs {self.float64.float32_max_rel_error:.3g}) {self.float64.detail}".rstrip()
            )
        if self.ill_posed is not None:
            lines.append("  " + self.ill_posed.describe())
        if self.message:
            lines.append("  " + self.message.replace("\n", "\n  "))
        shown = self.worst_example or self.counterexample
        if shown is not None and self.verdict is not Verdict.EXACT:
            lines += shown.lines("counterexample")
            simplest = self.counterexample
            if simplest is not None and simplest is not shown and simplest.rel_error != shown.rel_error:
                lines.append(
                    f"  simplest failing example ({simplest.source}): relative error {simplest.rel_error:.3g}, "
                    f"input {simplest.input_text or simplest.structure}"
                )
            lines.append("  reproduce with: " + reproduce_hint(self.script, self.model, self.seed))
        return "\n".join(lines)


def reproduce_hint(script: str, model: str, seed: int) -> str:
    """How to rerun the shown counterexample on its own: the saved ``script``, or how to save one."""
    if script:
        return f"python {script}"
    return (
        f"eqbench check {model} --seed {seed} --save-counterexamples DIR (a registered model), or "
        "eqbench.check.save_counterexample(result, DIR, model=model) in Python: writes a standalone script"
    )


def json_safe(value: Any) -> Any:
    """``None`` for a non-finite float (JSON has no NaN or Inf), the value otherwise."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
