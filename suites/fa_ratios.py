"""Forward time of FA-GNN, EGNN and GNN on one n-body batch, as ratios measured in one run.

Run from the repository root (``--quick`` for a seconds-long smoke run)::

    python -m suites.fa_ratios [--quick] [--rounds 21] [--batch 100] [--particles 5] [--threads N] [--device cpu]

Setting of the n-body experiment of Puny et al. 2022 (after Satorras et al. 2021): 100 systems
of 5 charged particles (positions, velocities, charges) per batch, 4 layers, forward pass in
eval mode without gradients, each model at its paper's width: FA-GNN 60 hidden units (the
authors' ``nbody/run.sh``), EGNN and GNN 64 (Satorras et al.). FA-GNN (:class:`FAGNN`) frames the
input and, after each of its first three layers, the latent vectors: 4 PCA frames per forward,
each backbone layer run on the 8 sign-frame copies (batch 800). A fourth row times the generic
wrapper around the GNN (one frame set, the whole GNN on 800 copies) for comparison.

The forward passes alternate in the same run (:mod:`suites.timing`), and the table gives each
median and its ratio to EGNN and to GNN beside the paper's seconds per forward pass (on their
GPU; the figures are in :mod:`eqbench.reports.paper_figures`). Absolute times are not comparable
across machines or devices; the ratios are what to compare, and only on a like device: on a CPU
the 8 frame copies cost about 8x the work, on a GPU a batch of 800 costs about as much as one of
100, so a CPU run cannot reproduce the paper's ratio. On CPU, glibc also returns the large
temporaries of the 800-copy batches to the OS after every call (page faults on the next one);
the script therefore pins the allocator in-process (:func:`suites.timing.pin_allocator`;
``--allocator default`` leaves it; on the 2-core machine, 1 thread, with the equivalent
environment settings: FA-GNN / EGNN 11.6 without, 7.0 with).
On a busy machine pass ``--threads 1``: oversubscribed threads swamp the ratios.
"""
from __future__ import annotations

import argparse
from typing import Callable

import torch
from tabulate import tabulate
from torch import Tensor, nn

from eqbench.models.baselines import EGNN, NBodyGNN
from eqbench.models.frame_averaging import FrameAveraging, fa_gnn
from eqbench.reports.paper_figures import CHARGED_NBODY, FA_TABLE, FORWARD_SECONDS, paper_figure
from suites.runs import add_allocator_option, apply_allocator
from suites.timing import interleaved_medians

#: Seconds per forward pass reported by Puny et al. 2022 (Table 4, :mod:`eqbench.reports.paper_figures`); GNN has none.
PAPER_SECONDS = {
    name: figure.value
    for name, figure in (("FA-GNN", paper_figure("fa-gnn", CHARGED_NBODY, FORWARD_SECONDS, FA_TABLE)),
                         ("EGNN", paper_figure("egnn", CHARGED_NBODY, FORWARD_SECONDS, FA_TABLE)))
    if figure is not None
}
#: Hidden width of each model in its paper's n-body run.
PAPER_WIDTHS = {"FA-GNN": 60, "EGNN": 64, "GNN": 64}
WRAPPER = "FA(GNN) wrapper"


def nbody_batch(systems: int, particles: int, device: str, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Random ``(positions, velocities, charges)`` of ``systems`` systems of ``particles`` particles (float32)."""
    generator = torch.Generator().manual_seed(seed)
    positions = torch.randn(systems, particles, 3, generator=generator)
    velocities = torch.randn(systems, particles, 3, generator=generator)
    charges = torch.randint(0, 2, (systems, particles, 1), generator=generator).float() * 2 - 1
    return positions.to(device), velocities.to(device), charges.to(device)


def build_models(layers: int, device: str) -> dict[str, nn.Module]:
    """FA-GNN, EGNN and GNN at their papers' widths, and the generic FA wrapper around the GNN (width 64)."""
    torch.manual_seed(0)
    models = {
        "FA-GNN": fa_gnn(PAPER_WIDTHS["FA-GNN"], layers),
        "EGNN": EGNN(PAPER_WIDTHS["EGNN"], layers),
        "GNN": NBodyGNN(PAPER_WIDTHS["GNN"], layers),
        WRAPPER: FrameAveraging(NBodyGNN(PAPER_WIDTHS["GNN"], layers), "E", "points", ("vectors", "scalars")),
    }
    return {name: model.to(device).eval() for name, model in models.items()}


def forward_call(model: nn.Module, batch: tuple[Tensor, Tensor, Tensor], device: str) -> Callable[[], object]:
    def call() -> object:
        with torch.no_grad():
            out = model(*batch)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return out

    return call


def forward_medians(systems: int, particles: int, layers: int, rounds: int, device: str,
                    names: tuple[str, ...] | None = None) -> dict[str, float]:
    """Median seconds per forward pass of each model (all of :func:`build_models`, or ``names``), timed alternately."""
    batch = nbody_batch(systems, particles, device)
    models = build_models(layers, device)
    chosen = {name: models[name] for name in (names or tuple(models))}
    return interleaved_medians({name: forward_call(model, batch, device) for name, model in chosen.items()}, rounds, warmup=2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds (a smoke run)")
    parser.add_argument("--rounds", type=int, default=21, help="interleaved timing rounds (default 21)")
    parser.add_argument("--batch", type=int, default=100, help="systems per batch (default 100)")
    parser.add_argument("--particles", type=int, default=5, help="particles per system (default 5)")
    parser.add_argument("--layers", type=int, default=4, help="message-passing layers (default 4)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    add_allocator_option(parser)
    args = parser.parse_args(argv)
    allocator = apply_allocator(args.allocator)
    if args.threads:
        torch.set_num_threads(args.threads)
    rounds = 3 if args.quick else args.rounds

    seconds = forward_medians(args.batch, args.particles, args.layers, rounds, args.device)

    rows = []
    for name, median in seconds.items():
        paper = PAPER_SECONDS.get(name)
        rows.append(
            [
                name,
                f"{median * 1e3:.2f}",
                f"{median / seconds['EGNN']:.2f}",
                f"{median / seconds['GNN']:.2f}",
                "-" if paper is None else f"{paper:.4f}",
                "-" if paper is None else f"{paper / PAPER_SECONDS['EGNN']:.2f}",
            ]
        )
    threads = torch.get_num_threads()
    device = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else f"cpu ({threads} threads)"
    widths = ", ".join(f"{name} {width}" for name, width in PAPER_WIDTHS.items())
    print(
        f"n-body forward pass: {args.batch} systems x {args.particles} particles, {args.layers} layers, hidden {widths}; "
        f"{device}, torch {torch.__version__}, median of {rounds} interleaved rounds, {allocator}"
    )
    print(tabulate(rows, headers=["model", "ms / forward", "x EGNN", "x GNN", "paper s", "paper x EGNN"], disable_numparse=True))
    print(
        f"FA-GNN / EGNN = {seconds['FA-GNN'] / seconds['EGNN']:.2f} here vs "
        f"{PAPER_SECONDS['FA-GNN'] / PAPER_SECONDS['EGNN']:.2f} in the paper"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
