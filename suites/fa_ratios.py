"""Forward time of FA-GNN, EGNN and GNN on one n-body batch, as ratios measured in one run.

Run from the repository root (``--quick`` for a seconds-long smoke run)::

    python -m suites.fa_ratios [--quick] [--rounds 21] [--batch 100] [--particles 5] [--device cpu]

Setting of the n-body experiment of Puny et al. 2022 (after Satorras et al. 2021): 100 systems of 5 charged
particles (positions, velocities, charges) per batch, 4 layers of 64 hidden units, forward pass
in eval mode without gradients. FA-GNN averages the GNN over the 8 frames of E(3) (one stacked
backbone call of batch 800) plus the PCA frame itself; EGNN and GNN run once.

The three forward passes alternate in the same run (:mod:`suites.timing`), and the table
gives each median and its ratio to EGNN and to GNN beside the paper's seconds per forward
pass (FA-GNN 0.0041 s, EGNN 0.0062 s, on their GPU): the paper's FA-GNN / EGNN ratio is
0.66. Absolute times are not comparable across machines; the ratios are what to compare.

On CPU the 8x larger backbone batch of FA-GNN also pays for glibc returning its large
temporaries to the OS after every call (page faults on the next one): measured on the
2-core machine, FA-GNN / EGNN is 7.8 by default and 4.2 with
``MALLOC_MMAP_THRESHOLD_=4000000000 MALLOC_TRIM_THRESHOLD_=4000000000`` in the environment
(FA-GNN / GNN 17.5 vs 7.5, i.e. the expected ~8 frames' worth). The paper's 0.66 was measured
on a GPU, where a batch of 800 costs about as much as a batch of 100.
"""
from __future__ import annotations

import argparse
from typing import Callable

import torch
from tabulate import tabulate
from torch import Tensor, nn

from eqbench.models.baselines import EGNN, NBodyGNN
from eqbench.models.frame_averaging import fa_gnn
from suites.timing import interleaved_medians

#: Seconds per forward pass reported by Puny et al. 2022 (n-body table); GNN has no reported time.
PAPER_SECONDS = {"FA-GNN": 0.0041, "EGNN": 0.0062}


def nbody_batch(systems: int, particles: int, device: str, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Random ``(positions, velocities, charges)`` of ``systems`` systems of ``particles`` particles (float32)."""
    generator = torch.Generator().manual_seed(seed)
    positions = torch.randn(systems, particles, 3, generator=generator)
    velocities = torch.randn(systems, particles, 3, generator=generator)
    charges = torch.randint(0, 2, (systems, particles, 1), generator=generator).float() * 2 - 1
    return positions.to(device), velocities.to(device), charges.to(device)


def build_models(hidden: int, layers: int, device: str) -> dict[str, nn.Module]:
    torch.manual_seed(0)
    models = {"FA-GNN": fa_gnn(hidden, layers), "EGNN": EGNN(hidden, layers), "GNN": NBodyGNN(hidden, layers)}
    return {name: model.to(device).eval() for name, model in models.items()}


def forward_call(model: nn.Module, batch: tuple[Tensor, Tensor, Tensor], device: str) -> Callable[[], object]:
    def call() -> object:
        with torch.no_grad():
            out = model(*batch)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return out

    return call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds (a smoke run)")
    parser.add_argument("--rounds", type=int, default=21, help="interleaved timing rounds (default 21)")
    parser.add_argument("--batch", type=int, default=100, help="systems per batch (default 100)")
    parser.add_argument("--particles", type=int, default=5, help="particles per system (default 5)")
    parser.add_argument("--hidden", type=int, default=64, help="hidden units (default 64)")
    parser.add_argument("--layers", type=int, default=4, help="message-passing layers (default 4)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else args.rounds

    batch = nbody_batch(args.batch, args.particles, args.device)
    models = build_models(args.hidden, args.layers, args.device)
    seconds = interleaved_medians({name: forward_call(model, batch, args.device) for name, model in models.items()}, rounds, warmup=2)

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
    print(
        f"n-body forward pass: {args.batch} systems x {args.particles} particles, {args.layers} layers x {args.hidden} hidden, "
        f"device {args.device} ({threads} threads), median of {rounds} interleaved rounds"
    )
    print(tabulate(rows, headers=["model", "ms / forward", "x EGNN", "x GNN", "paper s", "paper x EGNN"]))
    print(
        f"FA-GNN / EGNN = {seconds['FA-GNN'] / seconds['EGNN']:.2f} here vs "
        f"{PAPER_SECONDS['FA-GNN'] / PAPER_SECONDS['EGNN']:.2f} in the paper"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
