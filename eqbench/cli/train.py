"""``eqbench train TASK --model NAME``: train a registered model on a task (see :mod:`eqbench.tasks.trainer`).

Runs the same under ``torchrun --nproc_per_node N -m eqbench.cli.main train ...`` (one process
per device, DistributedDataParallel). Results go to ``OUT/TASK/MODEL-PRESET-seedSEED/``
(``history.csv``, ``history.json``, ``result.json``), which ``eqbench report --training OUT`` reads.

Exit status: 0 when the run finished; 1 when a data file or checkpoint cannot be used, the run
exists without ``--resume``, or the loss became non-finite (one ``error:`` line); 2 on usage errors.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eqbench.cli import SEED, UsageError, add_plugin_argument, int_at_least, load_models

POSITIVE = int_at_least(1, "positive")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model on a task (rotated digits/MNIST, QM9, charged n-body)",
        description="Train a model on a task with a preset's hyperparameters; resumable, and distributed under torchrun.",
    )
    parser.add_argument("task", help="task name (e.g. digits-rot, digits-rot-scrambled, nbody, rotmnist, qm9-homo)")
    parser.add_argument("--model", required=True, help="model name (e.g. lieconv-so2, lieconv-so2-gigp, lconv, cnn, mlp, fa-gnn, egnn, gnn)")
    parser.add_argument("--preset", default="small", help="hyperparameter preset: paper (published settings) or small (minutes on a CPU); default small")
    parser.add_argument("--epochs", type=POSITIVE, help="override the preset's number of epochs")
    parser.add_argument("--batch-size", type=POSITIVE, help="override the preset's (global) batch size")
    parser.add_argument("--lr", type=float, help="override the preset's learning rate")
    parser.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                        help="override a preset entry: data.KEY=VALUE, model.KEY=VALUE or a top-level field (repeatable)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="device (default: CUDA when present)")
    parser.add_argument("--no-amp", action="store_true", help="no mixed precision on GPU")
    parser.add_argument("--threads", type=POSITIVE, help="CPU threads for torch (default: torch's choice; 1 is fastest for small models on a busy machine)")
    parser.add_argument("--seed", type=SEED, default=0, help="training seed (default 0)")
    parser.add_argument("--out", type=Path, default=Path("runs/training"), help="results folder (default runs/training)")
    parser.add_argument("--checkpoints", type=Path, help="checkpoint folder (default: the run's results folder)")
    parser.add_argument("--resume", action="store_true", help="continue the run from its checkpoint")
    parser.add_argument("--data", type=Path, help="data path for tasks on user files (rotmnist: folder of .amat files; qm9-*: xyz folder/archive, qm9pack .whl/CSV folder)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    parser.add_argument("--track-equivariance", metavar="GROUP",
                        help="after every epoch, record the checker's equivariance error under GROUP (e.g. C4, SO2, E3) on a fixed probe set in the history")
    add_plugin_argument(parser)


def run(args: argparse.Namespace) -> int:
    import torch

    from eqbench.tasks.checkpoint import CheckpointError
    from eqbench.tasks.datafiles import DataFileError
    from eqbench.tasks.presets import get_preset, with_overrides
    from eqbench.tasks.registry import get_task
    from eqbench.tasks.trainable import trainable_models
    from eqbench.tasks.trainer import TrainConfig, train

    if args.plugin:
        load_models(args.plugin)
    try:
        task = get_task(args.task)
        if args.model not in trainable_models(args.task):
            raise UsageError(f"model {args.model!r} is not trainable on {args.task!r}; trainable there: {', '.join(trainable_models(args.task))}")
        preset = with_overrides(
            get_preset(args.task, args.model, args.preset),
            args.option,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            amp=False if args.no_amp else None,
        )
        task.validate_options(preset.data)
        if args.track_equivariance is not None:
            from eqbench.groups.names import group_from_name
            from eqbench.tasks.tracking import task_actions

            group_from_name(args.track_equivariance)
            task_actions(args.task)
    except (KeyError, ValueError) as error:
        raise UsageError(str(error).strip("'\"")) from error
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    config = TrainConfig(
        task=args.task, model=args.model, preset=preset, seed=args.seed, device=args.device, out=args.out,
        checkpoints=args.checkpoints, resume=args.resume, data=args.data, progress=not args.quiet,
        track_equivariance=args.track_equivariance,
    )
    try:
        result = train(config)
    except (DataFileError, FileExistsError, CheckpointError, FloatingPointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    shown = ", ".join(f"{k}={v:.4g}" for k, v in result.final.items() if k.startswith(("test_", "baseline_test_")))
    if not args.quiet and result.is_main:
        print(f"{args.task} {args.model} ({preset.name}, seed {args.seed}): {shown}; results in {result.run_dir}")
    return 0
