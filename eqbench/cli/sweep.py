"""``eqbench sweep``: equivariance error of a Monte-Carlo model against its sample count, with the fitted rate.

    eqbench sweep lieconv-so2-mc --param nbhd --values 2 4 8 16 32 --points 128
    eqbench sweep lieconv-se3 --param liftsamples --values 1 2 4 8 --json se3.json --csv se3.csv

Which parameter to sweep: ``nbhd`` (ball samples) where the model samples its neighbourhoods
(``lieconv-so2-mc`` on clouds of ``--points 128``, whose balls are larger than the counts;
``lieconv-so2-image-mc`` on its pixels), ``liftsamples`` where the lift is random
(``lieconv-se2``, ``lieconv-se3``, ``lieconv-se3-molecule-gigp``; odd counts for
``lieconv-so3``). README.md lists the command for every registered Monte-Carlo model.

For each value ``n`` of the integer model attribute ``--param``, the registered model is run
with ``n`` samples and independent random draws for ``f(x)`` and ``f(g.x)``; the table lists the
mean and max relative error (scale-adjusted, as in ``eqbench check``), the run-to-run spread and
the seconds, and the fit ``log(err) = a + b log(n)`` gives the rate ``b`` with a 95% confidence
interval (Student's t, ``len(values) - 2`` degrees of freedom). Plain Monte-Carlo averaging gives
``b = -1/2``; stratified samples converge faster. See :func:`eqbench.check.monte_carlo_sweep`.

Which model is swept: the registered model as its factory builds it (a Monte-Carlo model
draws from torch's global RNG, which the sweep seeds per evaluation), on any integer (or
``None``) attribute; a count the model rejects when it runs (e.g. ``liftsamples`` above 1 for
a lift with trivial stabilisers) fails the sweep with the model's message. ``--points N`` draws inputs of ``N`` points (the input
generator's default structure otherwise), so that sample counts below the neighbourhood size
can be swept. ``--json`` writes the rate, its interval and the table's rows (``samples`` is
the parameter's value); ``--csv`` the table, its first column named after the parameter.

Exit status, as ``eqbench check``'s (0 the expectation met, 1 not met, 2 usage error): the
expectation of a sweep is that the error falls, so 0 when the whole confidence interval of the
rate is below 0, 1 when it is not or the model fails, 2 on usage errors (unknown model, a
parameter the model does not have, fewer than three distinct positive values, ``--points`` on
fixed-size inputs, an output path that cannot be written), reported on one line before any work.
``--json -`` / ``--csv -`` write to stdout (the table then goes to stderr); ``-q`` prints only
the rate line.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from typing import TYPE_CHECKING, Any, Callable, Sequence

from eqbench.cli import (
    SEED,
    UsageError,
    add_plugin_argument,
    int_at_least,
    load_models,
    make_console,
)
from eqbench.cli.output import emit, output_target, to_stdout
from eqbench.cli.threads import add_threads_argument, apply_threads

POSITIVE = int_at_least(1, "positive")

if TYPE_CHECKING:
    from eqbench.check import SweepResult
    from eqbench.registry import ModelEntry

MIN_VALUES = 3


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="equivariance error of a Monte-Carlo model against its sample count, with the fitted rate",
        description="Sweep a sample-count attribute of a registered Monte-Carlo model and fit error ~ n^rate.",
        epilog="Exit status: 0 the error falls with n (rate CI below 0), 1 it does not or the model failed, 2 usage error.",
    )
    parser.add_argument("model", metavar="MODEL", help="a registered model name (see `eqbench list`)")
    parser.add_argument("--param", required=True, help="the model's integer sample-count attribute (e.g. nbhd, liftsamples)")
    parser.add_argument("--values", required=True, nargs="+", type=POSITIVE, metavar="N", help="sample counts (3 or more)")
    parser.add_argument("--points", type=POSITIVE, metavar="N", help="points per input (default: the inputs' default)")
    parser.add_argument("--repeats", type=POSITIVE, default=4, metavar="R", help="independent draws per count (default 4)")
    parser.add_argument("--inputs", type=POSITIVE, default=4, metavar="N", help="inputs per count (default 4)")
    parser.add_argument("--elements", type=POSITIVE, default=8, metavar="N", help="group elements per input (default 8)")
    parser.add_argument("--seed", type=SEED, default=0, help="seed of weights, inputs, elements and draws (default 0)")
    add_plugin_argument(parser)
    parser.add_argument("--json", type=output_target, metavar="FILE", help="write the rate and the table as JSON to FILE (atomically; - for stdout)")
    parser.add_argument("--csv", type=output_target, metavar="FILE", help="write the table as CSV to FILE (atomically; - for stdout)")
    add_threads_argument(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the fitted rate")


def run(args: argparse.Namespace) -> int:
    from eqbench.check import ModelFailure
    from eqbench.registry import RegistryError, build_model, get_entry

    load_models(args.plugin)
    try:
        entry = get_entry(args.model)
    except RegistryError as error:
        raise UsageError(str(error)) from error
    values = sorted(set(args.values))
    if len(values) < MIN_VALUES:
        raise UsageError(f"--values needs at least {MIN_VALUES} distinct sample counts for a rate with a confidence interval, got {args.values}")
    if args.repeats < 2:
        raise UsageError(f"--repeats must be at least 2 (the spread needs two draws), got {args.repeats}")
    if to_stdout(args.json) and to_stdout(args.csv):
        raise UsageError("--json - and --csv - cannot both write to stdout")
    apply_threads(args.threads)
    model = sweep_target(entry, build_model(entry, args.seed), args.param)
    inputs = sweep_inputs(entry, args.points, args.seed, args.inputs)
    console = make_console(stderr=to_stdout(args.json) or to_stdout(args.csv))
    if not args.quiet:
        console.print(
            f"{entry.name}: error versus {args.param} in {values}, {args.repeats} independent draws of "
            f"{args.inputs} inputs x {args.elements} elements each (samples = {args.param})",
            markup=False, highlight=False,
        )
    try:
        result = sweep(entry, model, args.param, values, inputs, args)
    except (ModelFailure, ValueError) as error:
        console.print(f"[bold red]{entry.name}: the sweep over {args.param} failed:[/] {error}", highlight=False)
        return 1
    text = result.format()
    console.print(text.splitlines()[0] if args.quiet else text, markup=False, highlight=False)
    if args.json is not None:
        emit(args.json, json.dumps(sweep_record(result, args.param), indent=2) + "\n", "--json")
    if args.csv is not None:
        emit(args.csv, result.table.rename(columns={"samples": args.param}).to_csv(index=False), "--csv")
    if result.rate_high < 0:
        return 0
    console.print(f"[bold red]the error does not fall with {args.param}: the 95% interval of the rate reaches {result.rate_high:.3f}[/]")
    return 1


def sweep_target(entry: ModelEntry, model: Any, param: str) -> Any:
    """``model``, whose integer (or ``None``) attribute ``param`` the sweep sets; a usage error if it has no such attribute."""
    if not hasattr(model, param) or not (getattr(model, param) is None or type(getattr(model, param)) is int):
        raise UsageError(f"model {entry.name!r} has no Monte-Carlo sample-count parameter {param!r} (an integer attribute)")
    return model


def sweep_inputs(entry: ModelEntry, points: int | None, seed: int, count: int) -> Any:
    """The entry's input generator, or a concrete batch of ``count`` inputs of ``points`` points drawn from it."""
    from eqbench.inputs import InputGenerator

    if points is None:
        return entry.inputs
    if not isinstance(entry.inputs, InputGenerator):
        raise UsageError(f"--points {points}: model {entry.name!r} is registered with fixed example inputs, not an input generator")
    structure = dataclasses.replace(entry.inputs.default_structure(seed=seed, batch=count), num_points=points)
    try:
        value = entry.inputs(structure)
    except ValueError as error:
        raise UsageError(f"--points {points}: model {entry.name!r}'s inputs cannot have {points} points ({error})") from error
    drawn = entry.in_action.num_points(value)
    if drawn != points:
        raise UsageError(f"--points {points}: model {entry.name!r}'s inputs have a fixed number of points ({drawn})")
    return value


def sweep(entry: ModelEntry, model: Any, param: str, values: Sequence[int], inputs: Any, args: argparse.Namespace) -> SweepResult:
    """:func:`~eqbench.check.monte_carlo_sweep` of ``model`` with ``param`` set to each value in turn."""
    from eqbench.check import monte_carlo_sweep

    def with_samples(n: int) -> Callable[..., Any]:
        setattr(model, param, n)
        return model

    return monte_carlo_sweep(
        with_samples, values, entry.group, inputs, entry.in_action, entry.out_action,
        repeats=args.repeats, seed=args.seed, n_inputs=args.inputs, n_elements=args.elements, name=entry.name,
    )


def sweep_record(result: SweepResult, param: str) -> dict[str, Any]:
    """The JSON record: model, group, parameter, rate with its interval, fit, and one row per sample count."""
    return {
        "model": result.model,
        "group": result.group,
        "param": param,
        "rate": result.rate,
        "rate_low": result.rate_low,
        "rate_high": result.rate_high,
        "intercept": result.intercept,
        "r_squared": result.r_squared,
        "rows": result.table.to_dict(orient="records"),
    }
