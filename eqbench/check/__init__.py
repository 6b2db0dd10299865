"""The equivariance checker: errors, noise floor, verdicts, property-based search, stochastic models, Lie derivative.

``check_equivariance(model, group, inputs, in_action, out_action, ...)`` returns a
:class:`CheckResult` with the verdict (``exact`` / ``approximate`` / ``violated`` / ``error``);
``assert_equivariant`` raises :class:`EquivarianceError` when the check fails. A tuple input
value is passed to the model as ``*args``, a dict as ``**kwargs``, anything else as one
positional argument. Modules, in the order data flows through them:

* :mod:`~eqbench.check.forward`: calling the model, catching its misbehaviour, its float64 twin;
* :mod:`~eqbench.check.cases`: the stacked batched evaluation of inputs and group elements;
* :mod:`~eqbench.check.metrics`: errors per output (scale-adjusted relative, absolute);
* :mod:`~eqbench.check.noise`: the per-run noise floor;
* :mod:`~eqbench.check.verdict`: thresholds and verdicts (and why);
* :mod:`~eqbench.check.search`: the hypothesis search and shrinking;
* :mod:`~eqbench.check.reproduce`: counterexamples and their reproduce snippets;
* :mod:`~eqbench.check.scripts`: counterexamples saved as standalone scripts (``save_counterexample``);
* :mod:`~eqbench.check.equivariance`: ``check_equivariance`` / ``assert_equivariant``;
* :mod:`~eqbench.check.stochastic`: Monte-Carlo models (spread, CRN, in-distribution, sweeps);
* :mod:`~eqbench.check.lie`: the Lie derivative metric (Gruver et al. 2022);
* :mod:`~eqbench.check.profiles`: hypothesis profiles ``eqbench-quick`` / ``eqbench-thorough``;
* :mod:`~eqbench.check.attribution`: which module breaks it (``explain``), by the chain rule of the Lie
  derivative (:mod:`~eqbench.check.chain_rule`) or local errors (:mod:`~eqbench.check.local_errors`),
  on hooks (:mod:`~eqbench.check.module_calls`) and inferred activation actions (:mod:`~eqbench.check.activations`);
* :mod:`~eqbench.check.symmetry_profile`: which symmetries a model has (candidate scan, Lie algebra).
"""
from eqbench.check.attribution import Attribution, ModuleAttribution, explain
from eqbench.check.equivariance import assert_equivariant, check_equivariance
from eqbench.check.forward import ModelFailure
from eqbench.check.lie import LieDerivativeResult, lie_derivative
from eqbench.check.profiles import register_hypothesis_profiles
from eqbench.check.reproduce import equivariance_error
from eqbench.check.scripts import save_counterexample
from eqbench.check.result import CheckResult, Counterexample, EquivarianceError, Float64Diagnosis, OutputErrors, Verdict
from eqbench.check.stochastic import StochasticResult, SweepResult, check_stochastic, monte_carlo_sweep
from eqbench.check.symmetry_profile import AlgebraProfile, SymmetryCheck, SymmetryProfile, profile

__all__ = [
    "AlgebraProfile",
    "Attribution",
    "ModuleAttribution",
    "SymmetryCheck",
    "SymmetryProfile",
    "explain",
    "profile",
    "CheckResult",
    "Counterexample",
    "EquivarianceError",
    "Float64Diagnosis",
    "LieDerivativeResult",
    "ModelFailure",
    "OutputErrors",
    "StochasticResult",
    "SweepResult",
    "Verdict",
    "assert_equivariant",
    "check_equivariance",
    "check_stochastic",
    "equivariance_error",
    "lie_derivative",
    "monte_carlo_sweep",
    "register_hypothesis_profiles",
    "save_counterexample",
]
