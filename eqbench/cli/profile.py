"""``eqbench profile``: which symmetries a model has, without declaring a group.

    eqbench profile chiral-so3                    # one registered model
    eqbench profile --plugin my_models.py --json profile.json --report reports/profile

Models: the named ones; else, with ``--plugin``, the plugins' models; else the default suite.
Per model, a table of candidate symmetries for its input kind (translations and rotations per
axis and plane, reflections, scaling, permutations; shifts, C4, D4 and rotations for grids),
each with the checker's verdict and largest relative error, then the dimension of the
model's Lie algebra of symmetries in aff(d) and gl(d) with the singular values and the
principal angles to the registered group's algebra (:func:`eqbench.check.profile`).
``--json`` writes ``{"model", "symmetry", "verdict", "max_rel_error"}`` records, then one
``{"model", "algebra_dimension", "singular_values", ...}`` record per model. Exit status: 0,
1 when a model could not be profiled, 2 on a usage error.
"""
from __future__ import annotations

import argparse

from typing import TYPE_CHECKING

from eqbench.cli import make_console
from eqbench.cli.explain import add_model_arguments, run_each

if TYPE_CHECKING:
    from eqbench.check.symmetry_profile import SymmetryProfile
    from eqbench.registry import ModelEntry


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "profile",
        help="scan which symmetries a model has and the dimension of its symmetry algebra",
        description=__doc__.split("\n\n")[0],
    )
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from eqbench.check.symmetry_profile import profile
    from eqbench.registry import build_model

    def compute(entry: ModelEntry) -> SymmetryProfile:
        return profile(
            build_model(entry, args.seed), entry.inputs, entry.in_action, entry.out_action, declared=entry.group,
            tolerance=entry.tolerance, stochastic=entry.stochastic, seed=args.seed, name=entry.name,
        )

    profiles, status = run_each(args, "profile", compute, show)
    if args.report is not None and profiles:
        from eqbench.reports.attribution import write_profile_report

        make_console().print(f"report: {write_profile_report(args.report, profiles)}")
    return status


def show(entry: ModelEntry, found: SymmetryProfile) -> None:
    """The table of candidate symmetries, the algebra's dimensions, singular values and principal angles, the notes."""
    from rich.markup import escape
    from rich.table import Table

    console = make_console()
    table = Table(title=f"{entry.name} (registered: {entry.group.name}, expected {entry.expected})", title_justify="left")
    for column in ("symmetry", "verdict", "max rel error"):
        table.add_column(column, justify="right" if column == "max rel error" else "left")
    for check in found.checks:
        style = "green" if check.verdict in ("exact", "approximate") else "red"
        table.add_row(check.symmetry, f"[{style}]{check.verdict}[/]", f"{check.max_rel_error:.2e}")
    console.print(table)
    algebra = found.algebra
    if algebra is not None:
        values = " ".join(f"{v:.1e}" for v in algebra.singular_values)
        angles = " ".join(f"{a:.1e}" for a in algebra.principal_angles) or "-"
        console.print(f"symmetry algebra: dimension {algebra.dimension} in aff(d), {algebra.linear_dimension} in gl(d)")
        console.print(f"singular values: {values}")
        console.print(f"principal angles to {escape(algebra.declared or 'no Lie algebra')}: {angles} rad")
    for note in found.notes:
        console.print(f"note: {escape(note)}")
