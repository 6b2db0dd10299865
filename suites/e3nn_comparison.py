"""eqbench beside e3nn's ``assert_equivariant`` on the same e3nn models: throughput and sensitivity.

Run from the repository root (``--quick`` for a seconds-long smoke run)::

    python -m suites.e3nn_comparison [--quick] [--rounds 15] [--trials 3] [--threads N] [--out reports/e3nn_comparison.md]

Models (as in ../shared/ANCHORS.md), each an ``nn.Module`` that both tools call unchanged:

* ``o3.FullyConnectedTensorProduct`` 8x0e+8x1o (x) 8x0e+8x1o -> 8x0e+8x1o on 32 points, O(3);
* a Gate network (Linear -> Gate(16x0e silu, 8x0e sigmoid gates on 8x1o) -> Linear), 32 points, O(3);
* a ``cartesian_points`` function of 100 points: spherical harmonics (l <= 2) of each point's
  offset from the centroid, E(3) (e3nn also translates ``cartesian_points`` inputs).

**Throughput** (group elements checked per second). e3nn 0.6's ``equivariance_error``
(``e3nn/util/test.py``) runs, per call and ``ntrials=1``, one test per (parity in {0, 1}) x
(translate in {False, True} when an input is ``cartesian_points``, else {False}): each test
draws one random rotation, multiplies it by ``(-1)^parity``, and evaluates the model twice
(on the transformed and on the original input). So a call checks 2 elements (4 with
``cartesian_points``) on one input with 4 (8) forward evaluations. The script counts the
forward calls with a hook and takes elements = calls / 2, which must agree with that rule.
eqbench's count is ``CheckResult.n_elements`` (one (element, input) pair per element: 4
inputs x 16 elements in the random phase, plus 16 per search example: the drawn element and 15
random ones). Both tools are timed
alternately in one run; the ratio of elements per second is the figure (target >= 5x).

**Sensitivity**. Each model gets a symmetry-breaking term: ``f_eps(x) = f(x) + eps * x W``
with ``x`` the first input's features (or coordinates) and ``W`` a fixed random matrix with
``N(0, 1/in_dim)`` entries (a generic linear map, equivariant for no non-trivial element).
For each ``eps`` on a grid, each tool runs ``trials`` times with different seeds: e3nn flags
when ``assert_equivariant`` raises (default tolerance: 1e-3 absolute in float32), eqbench
when its verdict is not ``exact``. The smallest ``eps`` flagged in every trial is each tool's
detection limit, and ``eps = 0`` must be flagged by neither (no false alarms).
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from e3nn import nn as e3nn_nn
from e3nn import o3
from e3nn.util.test import assert_equivariant as e3nn_assert_equivariant
from hypothesis import strategies as st
from tabulate import tabulate
from torch import Tensor, nn

from eqbench.actions import Action, Irreps, Tuple
from eqbench.atomic import write_text_atomic
from eqbench.check import check_equivariance
from eqbench.groups import E3, O3
from eqbench.groups.base import Group
from eqbench.inputs import InputGenerator, InputStructure, PointCloudInputs
from suites.timing import interleaved_medians

FEATURES = "8x0e+8x1o"
HARMONICS = "1x0e+1x1o+1x2e"
TARGET_SPEEDUP = 5.0


# ----------------------------------------------------------------------------- the models
class GateNetwork(nn.Module):
    """Linear -> Gate -> Linear on 8x0e+8x1o features (per point), O(3) equivariant (e3nn's Gate)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = e3nn_nn.Gate("16x0e", [nn.functional.silu], "8x0e", [torch.sigmoid], "8x1o")
        self.first = o3.Linear(FEATURES, self.gate.irreps_in)
        self.second = o3.Linear(self.gate.irreps_out, FEATURES)

    def forward(self, x: Tensor) -> Tensor:
        return self.second(self.gate(self.first(x)))


class CentroidHarmonics(nn.Module):
    """Per-point spherical harmonics ``Y^l(x_i - mean_j x_j)``, l <= 2 (unnormalised polynomials).

    E(3) equivariant: translations cancel in the offset, and ``Y^l(R r) = D^l(R) Y^l(r)`` with
    parity ``(-1)^l`` under inversion, i.e. irreps 0e+1o+2e per point.
    """

    def forward(self, pos: Tensor) -> Tensor:
        offsets = pos - pos.mean(dim=-2, keepdim=True)
        return o3.spherical_harmonics(HARMONICS, offsets, normalize=False)


class SymmetryBreaking(nn.Module):
    """``f(*args) + eps * args[0] @ W``: a generic linear term that no non-trivial element respects."""

    def __init__(self, model: nn.Module, eps: float, in_dim: int, out_dim: int, seed: int = 1234) -> None:
        super().__init__()
        self.model, self.eps = model, eps
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("weight", torch.randn(in_dim, out_dim, generator=generator) / math.sqrt(in_dim))

    def forward(self, *args: Tensor) -> Tensor:
        return self.model(*args) + self.eps * args[0] @ self.weight.to(args[0].dtype)


class IrrepsInputs(InputGenerator):
    """``(B, N, dim)`` float64 ``N(0, 1)`` features for each irreps spec (a tuple when several), N fixed."""

    def __init__(self, specs: tuple[str, ...], num_points: int) -> None:
        self.specs, self.num_points = specs, num_points
        self.dims = [o3.Irreps(spec).dim for spec in specs]

    @property
    def action(self) -> Action:
        fields = [Irreps(spec) for spec in self.specs]
        return fields[0] if len(fields) == 1 else Tuple(*fields)

    def __call__(self, structure: InputStructure) -> Tensor | tuple[Tensor, ...]:
        generator = self.generator(structure)
        values = tuple(
            torch.randn(structure.batch, self.num_points, dim, generator=generator, dtype=torch.float64) for dim in self.dims
        )
        return values[0] if len(values) == 1 else values

    def structure_strategy(self, batch: int = 1) -> Any:
        return st.builds(InputStructure, seed=st.integers(0, 2**31 - 1), batch=st.just(batch), num_points=st.just(self.num_points))

    def default_structure(self, seed: int = 0, batch: int = 1) -> InputStructure:
        return InputStructure(seed=seed, batch=batch, num_points=self.num_points)


@dataclass
class Case:
    """One model as both tools see it: e3nn's single unbatched input and irreps, eqbench's group and actions."""

    name: str
    model: nn.Module
    e3nn_args: list[Tensor]
    e3nn_irreps_in: list[Any]
    e3nn_irreps_out: list[Any]
    group: Group
    inputs: InputGenerator
    out_action: Action
    in_dim: int
    out_dim: int

    def perturbed(self, eps: float) -> nn.Module:
        return SymmetryBreaking(self.model, eps, self.in_dim, self.out_dim)


def build_cases(points: int, cloud_points: int) -> list[Case]:
    """The three models of the module docstring, seeded."""
    torch.manual_seed(0)
    features = o3.Irreps(FEATURES)
    harmonics = o3.Irreps(HARMONICS)
    product = o3.FullyConnectedTensorProduct(features, features, features)
    return [
        Case(
            f"TensorProduct {FEATURES}, {points} points", product,
            [features.randn(points, -1), features.randn(points, -1)], [features, features], [features],
            O3(), IrrepsInputs((FEATURES, FEATURES), points), Irreps(FEATURES), features.dim, features.dim,
        ),
        Case(
            f"Gate network, {points} points", GateNetwork(),
            [features.randn(points, -1)], [features], [features],
            O3(), IrrepsInputs((FEATURES,), points), Irreps(FEATURES), features.dim, features.dim,
        ),
        Case(
            f"cartesian_points harmonics, {cloud_points} points", CentroidHarmonics(),
            [torch.randn(cloud_points, 3)], ["cartesian_points"], [harmonics],
            E3(), PointCloudInputs(min_points=cloud_points, max_points=cloud_points, degenerate=()), Irreps(HARMONICS), 3, harmonics.dim,
        ),
    ]


# ------------------------------------------------------------------------- the two tools
class CallCounter:
    """A forward pre-hook counting model calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        self.calls += 1


def e3nn_check(case: Case, model: nn.Module) -> Callable[[], bool]:
    """One ``assert_equivariant`` call with e3nn's defaults; returns True when it flags the model."""

    def run() -> bool:
        try:
            e3nn_assert_equivariant(model, args_in=case.e3nn_args, irreps_in=case.e3nn_irreps_in, irreps_out=case.e3nn_irreps_out)
        except AssertionError:
            return True
        return False

    return run


def eqbench_check(case: Case, model: nn.Module, seed: int, search_examples: int) -> Callable[[], Any]:
    """One ``check_equivariance`` call (4 inputs x 16 elements, expecting exact)."""
    inputs = case.inputs
    return lambda: check_equivariance(
        model, case.group, inputs, inputs.action, case.out_action,  # type: ignore[attr-defined]
        expected="exact", seed=seed, search_examples=search_examples,
    )


def e3nn_transforms_per_call(irreps_in: list[Any]) -> int:
    """From e3nn's source: 2 parities x (2 translation flags when an input is ``cartesian_points``)."""
    return 2 * (2 if "cartesian_points" in irreps_in else 1)


# ---------------------------------------------------------------------------- throughput
def throughput(case: Case, rounds: int, search_examples: int) -> dict[str, Any]:
    """Elements per call and median seconds per call of each tool, timed alternately."""
    counter = CallCounter()
    # a function, not the counter: eqbench's float64 twin is a deepcopy, which shares functions only
    handle = case.model.register_forward_pre_hook(lambda module, inputs: counter(module, inputs))
    e3nn_call = e3nn_check(case, case.model)
    random_phase = eqbench_check(case, case.model, seed=0, search_examples=0)
    with_search = eqbench_check(case, case.model, seed=0, search_examples=search_examples)
    counts = {}
    for label, call in (("e3nn", e3nn_call), ("eqbench", random_phase), ("eqbench+search", with_search)):
        counter.calls = 0
        outcome = call()
        forwards = counter.calls
        elements = forwards // 2 if label == "e3nn" else outcome.n_elements
        counts[label] = (elements, forwards)
    handle.remove()
    expected = e3nn_transforms_per_call(case.e3nn_irreps_in)
    if counts["e3nn"][0] != expected:
        raise AssertionError(f"{case.name}: e3nn made {counts['e3nn'][1]} forward calls, expected {2 * expected}")
    medians = interleaved_medians({"e3nn": e3nn_call, "eqbench": random_phase, "eqbench+search": with_search}, rounds=rounds)
    return {label: {"elements": counts[label][0], "forwards": counts[label][1], "seconds": medians[label]} for label in medians}


def elements_per_second(timing: dict[str, Any]) -> dict[str, float]:
    """Group elements checked per second of each tool in a :func:`throughput` result."""
    return {label: t["elements"] / t["seconds"] for label, t in timing.items()}


# --------------------------------------------------------------------------- sensitivity
def eps_grid(lowest_exponent: float, highest_exponent: float, per_decade: float) -> list[float]:
    """``0`` followed by ``10^k`` for ``k`` from ``lowest`` to ``highest`` in steps of ``1/per_decade``."""
    steps = round((highest_exponent - lowest_exponent) * per_decade)
    return [0.0] + [10 ** (lowest_exponent + i / per_decade) for i in range(steps + 1)]


def sensitivity(case: Case, grid: list[float], trials: int) -> dict[str, dict[float, int]]:
    """How many of ``trials`` runs flag the perturbed model, per tool and ``eps``."""
    flags: dict[str, dict[float, int]] = {"e3nn": {}, "eqbench": {}}
    for eps in grid:
        model = case.perturbed(eps)
        e3nn_call = e3nn_check(case, model)
        flags["e3nn"][eps] = flags["eqbench"][eps] = 0
        for trial in range(trials):
            torch.manual_seed(trial)  # e3nn draws its rotations from the global generator
            flags["e3nn"][eps] += e3nn_call()
            flags["eqbench"][eps] += eqbench_check(case, model, seed=trial, search_examples=0)().verdict.value != "exact"
    return flags


def detection_limit(flags: dict[float, int], trials: int) -> float:
    """The smallest positive eps flagged in every trial, above which every eps is flagged too (inf if none)."""
    limit = math.inf
    for eps in sorted((e for e in flags if e > 0), reverse=True):
        if flags[eps] < trials:
            break
        limit = eps
    return limit


# ----------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small inputs, few rounds and a coarse grid")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds")
    parser.add_argument("--trials", type=int, default=3, help="seeds per eps in the sensitivity sweep")
    parser.add_argument("--search-examples", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path("reports/e3nn_comparison.md"))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    points, cloud_points, grid = 32, 100, eps_grid(-8, 0, 2)
    if args.quick:
        points, cloud_points, grid = 8, 12, eps_grid(-6, 0, 0.5)
        args.rounds, args.trials, args.search_examples = 1, 1, 2

    header = f"torch {torch.__version__}, e3nn {__import__('e3nn').__version__}, {torch.get_num_threads()} threads"
    print(header)
    speed_rows, sensitivity_rows, sweep_rows = [], [], []
    for case in build_cases(points, cloud_points):
        timing = throughput(case, args.rounds, args.search_examples)
        rate = elements_per_second(timing)
        speed_rows.append([
            case.name,
            *(f"{t['elements']} / {t['forwards']} / {t['seconds'] * 1e3:.2f}" for t in timing.values()),
            *(f"{rate[label]:,.0f}" for label in timing),
            f"{rate['eqbench'] / rate['e3nn']:.1f}x", f"{rate['eqbench+search'] / rate['e3nn']:.1f}x",
        ])
        flags = sensitivity(case, grid, args.trials)
        limits = {tool: detection_limit(f, args.trials) for tool, f in flags.items()}
        false_alarms = {tool: f[0.0] for tool, f in flags.items()}
        sensitivity_rows.append([
            case.name, f"{limits['e3nn']:.1e}", f"{limits['eqbench']:.1e}",
            f"{limits['e3nn'] / limits['eqbench']:.3g}x" if math.isfinite(limits["eqbench"]) else "-",
            f"{false_alarms['e3nn']}/{args.trials}", f"{false_alarms['eqbench']}/{args.trials}",
        ])
        sweep_rows.extend([case.name, f"{eps:.1e}", f"{flags['e3nn'][eps]}/{args.trials}", f"{flags['eqbench'][eps]}/{args.trials}"] for eps in grid)
        print(f"  done: {case.name}", flush=True)

    speed = tabulate(speed_rows, headers=[
        "model", "e3nn elems / fwd / ms", "eqbench elems / fwd / ms", "eqbench+search elems / fwd / ms",
        "e3nn elems/s", "eqbench elems/s", "eqbench+search elems/s", "ratio", "ratio (search)",
    ], tablefmt="github", disable_numparse=True)
    detect = tabulate(sensitivity_rows, headers=[
        "model", "e3nn smallest eps", "eqbench smallest eps", "e3nn / eqbench", "e3nn false alarms", "eqbench false alarms",
    ], tablefmt="github", disable_numparse=True)
    sweep = tabulate(sweep_rows, headers=["model", "eps", "e3nn flags", "eqbench flags"], tablefmt="github", disable_numparse=True)
    print(f"\nThroughput (target: eqbench >= {TARGET_SPEEDUP:g}x e3nn elements/s)\n{speed}")
    print(f"\nSensitivity: smallest eps flagged in all {args.trials} trials (lower is better)\n{detect}")
    print(f"\nSweep: trials flagged per eps\n{sweep}")
    command = "python -m suites.e3nn_comparison" + (" --quick" if args.quick else "")
    report = "\n\n".join([
        "# eqbench vs e3nn `assert_equivariant`",
        f"Measured by `{command}` ({header}; rounds {args.rounds}, trials {args.trials}). "
        "See the script's docstring for how elements are counted and how the perturbation is built.",
        f"## Throughput: group elements checked per second (target >= {TARGET_SPEEDUP:g}x)",
        "Each cell `elements / forward calls / median ms per call`; eqbench: 4 inputs x 16 elements "
        f"(random phase), `+search`: plus {args.search_examples} hypothesis examples of 16 elements (the drawn one "
        "and 15 random ones).",
        speed,
        "## Sensitivity: smallest perturbation `eps` flagged in every trial",
        "`f_eps(x) = f(x) + eps * x W`; e3nn flags with its default tolerance (1e-3 absolute in float32), "
        "eqbench when its verdict is not `exact` (random phase only). Lower is better; `eps = 0` must not be flagged.",
        detect,
        "## Sweep",
        sweep,
    ]) + "\n"
    write_text_atomic(args.out, report)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
