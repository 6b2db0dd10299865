"""``eqbench discover``: learn the generator of a hidden rotation with L-conv and score it.

    eqbench discover                   # 7x7 random images rotated by 3 degrees, 400 Adam steps
    eqbench discover --seed 3 --steps 1000 --angle 2

Prints the cosine similarity of the learned generator with the true rotation generator
(Dehmamy et al. 2021), beside the untrained generator's (a negative control) and the
best a first-order fit can reach. Exit status 0 (2 on bad arguments).
"""
from __future__ import annotations

import argparse
import math

from eqbench.cli import SEED, UsageError, int_at_least, make_console

POSITIVE = int_at_least(1, "positive")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "discover",
        help="learn a hidden rotation's generator with L-conv (symmetry discovery)",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--seed", type=SEED, default=0, help="seed of the data and the initial generator (default 0)")
    parser.add_argument("--steps", type=POSITIVE, default=400, help="Adam steps (default 400)")
    parser.add_argument("--size", type=POSITIVE, default=7, help="image side in pixels (default 7)")
    parser.add_argument("--angle", type=float, default=3.0, help="hidden rotation angle in degrees (default 3)")
    parser.add_argument("--samples", type=POSITIVE, default=512, help="number of random images (default 512)")


def run(args: argparse.Namespace) -> int:
    from eqbench.tasks.symmetry_discovery import DiscoveryConfig, discover_rotation

    try:
        config = DiscoveryConfig(
            size=args.size, angle=math.radians(args.angle), num_samples=args.samples, steps=args.steps, seed=args.seed
        )
    except ValueError as error:
        raise UsageError(str(error)) from error
    result = discover_rotation(config)
    console = make_console()
    console.print(
        f"L-conv symmetry discovery: {config.size}x{config.size} random images rotated by {args.angle:g} degrees, "
        f"{config.num_samples} samples, {config.steps} Adam steps, seed {config.seed}"
    )
    console.print(f"cosine similarity, learned vs true rotation generator: {result.cosine_similarity:.4f}")
    console.print(f"cosine similarity, untrained (random) generator:        {result.untrained_cosine_similarity:.4f}")
    console.print(f"ceiling of a first-order fit, (R_t - I)/t vs true:     {result.first_order_ceiling:.4f}")
    console.print(f"final mean squared error {result.final_loss:.3g}, training took {result.seconds:.2f} s")
    return 0
