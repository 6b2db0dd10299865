"""Cost of ``eqbench profile`` per candidate symmetry and of ``eqbench explain``, as ratios measured in one run.

Run from the repository root (``--quick`` for a seconds-long smoke run)::

    python -m suites.explain_profile_cost [--quick] [--rounds 5] [--points 256] [--threads 1] [--out FILE]

The model is a 1M-parameter point model (:class:`PointMLP`: a per-point MLP 3-512-1024-512 on raw
coordinates, max-pooled, a linear head; 1.05M parameters) on ``B = 4`` clouds. Two measures:

* **forward-equivalents, counted**: the rows the model processes (every call of its forward,
  float64 twin included, tangent passes included) divided by ``B``; and backward rows likewise.
  Counting is immune to machine load but does not price a forward-mode (dual) pass above a
  plain one;
* **wall-time ratios**: median seconds of the operation over median seconds of one plain
  float32 forward on the ``B`` clouds (``profile``) or one forward + backward of a scalar loss
  (``explain``), interleaved in the same run (:func:`suites.timing.interleaved_medians`).

Targets (issue 11): ``profile`` at most 20 forward-pass-equivalents per candidate; ``explain`` at
most 5x one backward pass. The profile's algebra part (a float64 tangent pass over the 12
generators of aff(3)) is reported per generator beside the candidate scan. ``explain`` runs in
float64 (the checker's rule: the test must never be the source of error), along 1 random algebra
direction per input, so its rows are ``B`` whatever the group.
"""
from __future__ import annotations

import argparse
from typing import Callable

import torch
from torch import Tensor, nn

from eqbench.actions import Invariant, Points
from eqbench.check import explain, profile
from eqbench.check.cases import InputSource
from eqbench.check.symmetry_profile import algebra_profile, candidate_symmetries
from eqbench.groups import SO3
from eqbench.inputs import PointCloudInputs
from suites.runs import add_allocator_option, apply_allocator, write_report
from suites.timing import interleaved_medians

BATCH = 4


class PointMLP(nn.Module):
    """``head(max_i mlp(x_i))`` with a 3-512-1024-512 per-point MLP (1.05M parameters); counts the rows it processes.

    The counters are class attributes, so the checker's float64 deep copy counts into them too.
    """

    rows = 0

    def __init__(self) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(3, 512), nn.ReLU(), nn.Linear(512, 1024), nn.ReLU(), nn.Linear(1024, 512))
        self.head = nn.Linear(512, 10)

    def forward(self, x: Tensor) -> Tensor:
        type(self).rows += x.shape[0]
        return self.head(self.mlp(x).amax(dim=1))


def counted(run: Callable[[], object]) -> float:
    """Forward-equivalents of ``run``: rows the model processed divided by :data:`BATCH`."""
    PointMLP.rows = 0
    run()
    return PointMLP.rows / BATCH


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few rounds and points: a smoke run")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default 5)")
    parser.add_argument("--points", type=int, default=256, help="points per cloud (default 256)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", help="also write the printed lines to this Markdown file")
    add_allocator_option(parser)
    args = parser.parse_args(argv)
    allocator = apply_allocator(args.allocator)
    if args.threads:
        torch.set_num_threads(args.threads)
    rounds, points = (1, 32) if args.quick else (args.rounds, args.points)
    torch.manual_seed(0)
    model = PointMLP()
    inputs = PointCloudInputs(min_points=points, max_points=points)
    x = inputs(inputs.default_structure(seed=0, batch=BATCH)).float()
    candidates = len(candidate_symmetries(Points(), x))
    group = SO3()
    k = group.lie_algebra.shape[0]

    def forward() -> None:
        with torch.no_grad():
            model(x)

    def forward_backward() -> None:
        model(x).square().sum().backward()

    def run_profile() -> None:
        profile(model, inputs, Points(), Invariant(), declared=group, n_inputs=BATCH)

    def run_algebra() -> None:
        algebra_profile(model, InputSource(inputs, Points()), Points(), Invariant(), 3, group, n_inputs=BATCH)

    def run_explain() -> None:
        explain(model, group, inputs, Points(), Invariant(), n_inputs=BATCH)

    profile_rows = counted(run_profile)
    algebra_rows = counted(run_algebra)
    explain_rows = counted(run_explain)
    medians = interleaved_medians(
        {
            "forward": forward,
            "forward+backward": forward_backward,
            "profile": run_profile,
            "algebra": run_algebra,
            "explain": run_explain,
        },
        rounds,
    )
    scan_seconds = medians["profile"] - medians["algebra"]
    parameters = sum(p.numel() for p in model.parameters())
    lines = [
        f"PointMLP, {parameters / 1e6:.2f}M parameters, {BATCH} clouds of {points} points; {allocator}; "
        f"{torch.get_num_threads()} threads; {rounds} rounds",
        "",
        f"profile scan: {candidates} candidate symmetries (float32 checks)",
        f"  counted forward-equivalents per candidate: {(profile_rows - algebra_rows) / candidates:.1f}  (target <= 20)",
        f"  wall time per candidate / one forward: {scan_seconds / candidates / medians['forward']:.1f}  (target <= 20)",
        "profile algebra: 12 generators of aff(3), one float64 tangent pass",
        f"  counted forward-equivalents per generator: {algebra_rows / 12:.1f}; "
        f"wall time per generator / one forward: {medians['algebra'] / 12 / medians['forward']:.1f}",
        f"explain under {group.name} ({k} generators; 1 random algebra direction per input, 1 probe)",
        f"  counted forward-equivalents: {explain_rows:.0f} (tangent pass + probe pass) and 1 backward on {BATCH} rows",
        f"  wall time / one forward+backward: {medians['explain'] / medians['forward+backward']:.1f}  (target <= 5)",
        "",
        "medians (s): " + ", ".join(f"{name} {seconds:.4f}" for name, seconds in medians.items()),
    ]
    print("\n".join(lines))
    if args.out:
        write_report(args.out, "Cost of eqbench profile and explain", "suites.explain_profile_cost", argv, lines)


if __name__ == "__main__":
    main()
