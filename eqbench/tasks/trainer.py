"""One trainer for every (task, model): seeded, resumable, mixed precision on GPU, DDP under torchrun.

Per run (:func:`train`):

1. join the process layout (:mod:`eqbench.tasks.distributed`), seed everything, build the
   task's data and the model (``torch.Generator`` seeded by the run seed), reseed with
   ``seed + rank``;
2. Adam with the preset's lr and weight decay; per-step schedule: linear warm-up over the
   preset's ``warmup`` fraction, then cosine decay to 0 (``lr_t = lr (1 + cos(pi s)) / 2``);
   mixed precision (``torch.autocast`` float16 + ``GradScaler``) on CUDA only;
3. each epoch: shuffle by ``(seed, epoch)`` (``DistributedSampler``; the global batch is split
   over processes), train, evaluate the ``valid`` and ``test`` splits, all-reduce the metric
   sums, append a row to the history, write a checkpoint and the tables (rank 0);
4. at the end, write the final row: the last epoch's metrics, mean seconds per epoch (training
   pass), the parameter count and the trivial baseline's test metric.

With ``track_equivariance`` (a group name), each epoch's row also gets the checker's
equivariance error on a fixed probe set (:mod:`eqbench.tasks.tracking`) and its cost relative
to the epoch; the final row keeps the last epoch's and the mean cost over epochs.

Training metrics are the running means over the epoch's batches (model in training mode).
``resume=True`` continues from the run's checkpoint; because the model, optimiser, schedule,
scaler and every random state are restored and the data order depends only on
``(seed, epoch)``, it reaches the same final metrics as an uninterrupted run.
"""
from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

from eqbench.tasks.checkpoint import CheckpointError, capture_rng, load_checkpoint, restore_rng, save_checkpoint, seed_everything
from eqbench.tasks.datasets import TaskData, TensorDictDataset
from eqbench.tasks.distributed import Runtime, all_gather_objects, all_reduce_sum, barrier, start_runtime, stop_runtime
from eqbench.tasks.objectives import Objective, summed
from eqbench.tasks.presets import Preset
from eqbench.tasks.registry import Task, get_task
from eqbench.tasks.results import write_history, write_result
from eqbench.tasks.trainable import build_model
from eqbench.tasks.tracking import PREFIX as TRACKING, EquivarianceTracker

CHECKPOINT_FILE = "checkpoint.pt"
EVAL_SPLITS = ("valid", "test")
#: Called after every training batch with ``(epoch, batch)`` (0-based); tests use it to interrupt a run.
BatchHook = Callable[[int, int], None]


@dataclass(frozen=True)
class TrainConfig:
    """What to train and where: results go to ``out/<task>/<model>-<preset>-seed<seed>/``, the checkpoint beside them unless ``checkpoints`` is given."""

    task: str
    model: str
    preset: Preset
    seed: int = 0
    device: str | None = None
    out: Path = Path("runs/training")
    checkpoints: Path | None = None
    resume: bool = False
    data: Path | None = None
    progress: bool = True
    track_equivariance: str | None = None

    @property
    def run_name(self) -> str:
        return f"{self.model}-{self.preset.name}-seed{self.seed}{self.preset.run_suffix()}"

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / self.task / self.run_name

    @property
    def checkpoint_path(self) -> Path:
        root = Path(self.checkpoints) / self.task / self.run_name if self.checkpoints else self.run_dir
        return root / CHECKPOINT_FILE

    def identity(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed by this config."""
        return {"task": self.task, "model": self.model, "seed": self.seed, "preset": self.preset.as_dict()}


@dataclass
class TrainResult:
    """The final row, the per-epoch rows, where they were written, and whether this process wrote them (rank 0)."""

    final: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    run_dir: Path = Path()
    is_main: bool = True


def train(config: TrainConfig, *, on_batch_end: BatchHook | None = None) -> TrainResult:
    """Train ``config.model`` on ``config.task`` (see module docs); returns the final row and history."""
    runtime = start_runtime(config.device)
    try:
        return _Run(config, runtime, on_batch_end).execute()
    finally:
        stop_runtime(runtime)


class _Run:
    """The state of one run on one process."""

    def __init__(self, config: TrainConfig, runtime: Runtime, on_batch_end: BatchHook | None) -> None:
        self.config, self.runtime, self.on_batch_end = config, runtime, on_batch_end
        preset = config.preset
        seed_everything(config.seed)
        self.task: Task = get_task(config.task)
        self.objective: Objective = self.task.objective
        self.data: TaskData = self.task.build(preset.data, config.data)
        generator = torch.Generator().manual_seed(config.seed)
        self.model: nn.Module = build_model(config.task, config.model, preset.model, self.data, generator).to(runtime.device)
        self.tracker = EquivarianceTracker.for_task(config.task, self.data, config.track_equivariance, runtime.device) if config.track_equivariance else None
        seed_everything(config.seed + runtime.rank)
        self.network: nn.Module = self.model
        if runtime.distributed:
            device_ids = [runtime.device.index] if runtime.device.type == "cuda" else None
            # Some models leave parameters out of the loss (e.g. a last layer's unused node update).
            self.network = DistributedDataParallel(self.model, device_ids=device_ids, find_unused_parameters=True)
        self.amp = preset.amp and runtime.device.type == "cuda"
        self.train_batches = self._train_batches()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=preset.lr, weight_decay=preset.weight_decay)
        total_steps = preset.epochs * len(self.train_batches)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _warmup_cosine(total_steps, preset.warmup))
        self.scaler = torch.amp.GradScaler(runtime.device.type, enabled=self.amp)
        self.history: list[dict[str, Any]] = []
        self.start_epoch = 0

    # -------------------------------------------------------------- the run
    def execute(self) -> TrainResult:
        self._resume_or_refuse()
        config, preset = self.config, self.config.preset
        with _progress(self.runtime.is_main and config.progress) as progress:
            for epoch in range(self.start_epoch, preset.epochs):
                self.train_order.set_epoch(epoch)
                started = time.perf_counter()
                train_metrics = self._train_epoch(epoch, progress)
                seconds = time.perf_counter() - started
                eval_metrics = {
                    f"{split}_{name}": value
                    for split in EVAL_SPLITS
                    if split in self.data.splits
                    for name, value in self._evaluate(self.data.splits[split]).items()
                }
                row = {
                    **self._run_fields(),
                    "epoch": epoch + 1,
                    "seconds_per_epoch": seconds,
                    "eval_seconds": time.perf_counter() - started - seconds,
                    "lr": self.scheduler.get_last_lr()[0],
                    **{f"train_{name}": value for name, value in train_metrics.items()},
                    **eval_metrics,
                }
                if self.tracker is not None:
                    row.update(self.tracker.measure(self.model, time.perf_counter() - started))
                self.history.append(row)
                self._save(epoch + 1)
                self._log(row)
        final = self._final_row()
        if self.runtime.is_main:
            write_result(config.run_dir, final)
        return TrainResult(final, list(self.history), config.run_dir, self.runtime.is_main)

    def _train_epoch(self, epoch: int, progress: Any) -> dict[str, float]:
        self.network.train()
        sums: dict[str, Tensor] = {}
        count = 0
        task_bar = progress.add_task(f"epoch {epoch + 1}/{self.config.preset.epochs}", total=len(self.train_batches)) if progress else None
        for index, batch in enumerate(self.train_batches):
            inputs, target = self._unpack(batch)
            with torch.autocast(self.runtime.device.type, dtype=torch.float16, enabled=self.amp):
                output = self.network(*inputs)
            loss = self.objective.loss(output, target)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            for name, value in summed(self.objective.per_example(output.detach(), target)).items():
                sums[name] = sums.get(name, 0.0) + value
            count += target.shape[0]
            if task_bar is not None:
                progress.advance(task_bar)
            if self.on_batch_end is not None:
                self.on_batch_end(epoch, index)
        if task_bar is not None:
            progress.remove_task(task_bar)
        metrics = self._reduce(sums, count)
        if not all(math.isfinite(v) for v in metrics.values()):
            raise FloatingPointError(f"{self.config.model} on {self.config.task}: non-finite training metrics in epoch {epoch + 1}: {metrics}")
        return metrics

    @torch.no_grad()
    def _evaluate(self, split: TensorDictDataset) -> dict[str, float]:
        self.network.eval()
        shard = range(self.runtime.rank, len(split), self.runtime.world_size)
        sums: dict[str, Tensor] = {}
        count = 0
        for batch in DataLoader(split, sampler=BatchSampler(shard, self.config.preset.eval_batch_size, drop_last=False), batch_size=None):
            inputs, target = self._unpack(batch)
            with torch.autocast(self.runtime.device.type, dtype=torch.float16, enabled=self.amp):
                output = self.model(*inputs)
            for name, value in summed(self.objective.per_example(output, target)).items():
                sums[name] = sums.get(name, 0.0) + value
            count += target.shape[0]
        return self._reduce(sums, count)

    # -------------------------------------------------------------- pieces
    def _train_batches(self) -> DataLoader:
        train_set = self.data.splits["train"]
        per_process = math.ceil(self.config.preset.batch_size / self.runtime.world_size)
        self.train_order = DistributedSampler(train_set, num_replicas=self.runtime.world_size, rank=self.runtime.rank, shuffle=True, seed=self.config.seed)
        return DataLoader(
            train_set,
            sampler=BatchSampler(self.train_order, per_process, drop_last=False),
            batch_size=None,
            generator=torch.Generator().manual_seed(self.config.seed),
        )

    def _unpack(self, batch: dict[str, Tensor]) -> tuple[list[Tensor], Tensor]:
        device = self.runtime.device
        inputs = [batch[name].to(device, non_blocking=True) for name in self.data.inputs]
        return inputs, batch[self.data.target].to(device, non_blocking=True)

    def _reduce(self, sums: dict[str, Tensor], count: int) -> dict[str, float]:
        """Means over all processes of the per-example metric sums."""
        names = sorted(sums)
        totals = torch.stack([torch.as_tensor(sums[n], dtype=torch.float64, device=self.runtime.device) for n in names] + [torch.tensor(float(count), dtype=torch.float64, device=self.runtime.device)])
        totals = all_reduce_sum(totals, self.runtime).cpu()
        return {name: float(totals[i] / totals[-1]) for i, name in enumerate(names)}

    def _run_fields(self) -> dict[str, Any]:
        config = self.config
        return {
            "task": config.task,
            "model": config.model,
            "preset": config.preset.name,
            "seed": config.seed,
            "device": self.runtime.device.type,
            "world_size": self.runtime.world_size,
            "dataset": self.data.meta.get("dataset", config.task),
        }

    def _final_row(self) -> dict[str, Any]:
        last = self.history[-1]
        metrics = {k: v for k, v in last.items() if k.startswith(("train_", "valid_", "test_"))}
        return {
            **self._run_fields(),
            "epochs": self.config.preset.epochs,
            "seconds_per_epoch": sum(row["seconds_per_epoch"] for row in self.history) / len(self.history),
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "batch_size": self.config.preset.batch_size,
            "lr": self.config.preset.lr,
            **metrics,
            "baseline": self.task.baseline_name,
            f"baseline_test_{self.objective.headline}": self.task.baseline(self.data),
            **self._tracking_summary(),
        }

    def _tracking_summary(self) -> dict[str, Any]:
        """The last epoch's equivariance columns, with the cost averaged over the epochs (empty when untracked)."""
        tracked = [row for row in self.history if f"{TRACKING}cost" in row]
        if not tracked:
            return {}
        return {**{k: v for k, v in tracked[-1].items() if k.startswith(TRACKING)}, f"{TRACKING}cost": sum(row[f"{TRACKING}cost"] for row in tracked) / len(tracked)}

    # -------------------------------------------------------------- checkpoints
    def _save(self, epochs_done: int) -> None:
        rng = all_gather_objects(capture_rng(self.model), self.runtime)
        if self.runtime.is_main:
            save_checkpoint(
                self.config.checkpoint_path,
                {
                    "identity": self.config.identity(),
                    "epoch": epochs_done,
                    "world_size": self.runtime.world_size,
                    "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "scaler": self.scaler.state_dict(),
                    "rng": rng,
                    "history": self.history,
                },
            )
            write_history(self.config.run_dir, self.history)
        barrier(self.runtime)

    def _resume_or_refuse(self) -> None:
        path = self.config.checkpoint_path
        if not path.exists():
            return
        if not self.config.resume:
            raise FileExistsError(f"{path} exists: pass --resume to continue that run, or choose another --out")
        state = load_checkpoint(path)
        if state["identity"] != self.config.identity():
            differences = "; ".join(differing_keys(state["identity"], self.config.identity()))
            raise CheckpointError(f"{path}: checkpoint of a different run ({differences})")
        if state["world_size"] != self.runtime.world_size:
            raise CheckpointError(f"{path}: written by {state['world_size']} process(es), resumed by {self.runtime.world_size}; resume with the same layout")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        restore_rng(state["rng"][self.runtime.rank], self.model)
        self.history = list(state["history"])
        self.start_epoch = int(state["epoch"])

    def _log(self, row: dict[str, Any]) -> None:
        if not self.runtime.is_main or not self.config.progress:
            return
        shown = " ".join(f"{k}={v:.4g}" for k, v in row.items() if k.startswith(("train_", "valid_", "test_")))
        if f"{TRACKING}cost" in row:
            shown += f" {TRACKING}mean_rel_error={row[f'{TRACKING}mean_rel_error']:.3g} (probe {100 * row[f'{TRACKING}cost']:.1f}% of the epoch)"
        print(f"[{self.config.task} {self.config.model}] epoch {row['epoch']}/{self.config.preset.epochs} {shown} ({row['seconds_per_epoch']:.1f} s)", file=sys.stderr, flush=True)


def differing_keys(saved: Mapping[str, Any], wanted: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``"key: checkpoint A, this run B"`` for each (dotted, nested) key whose value differs between two run identities."""
    lines = []
    for key in sorted(set(saved) | set(wanted), key=str):
        before, after = saved.get(key, "<absent>"), wanted.get(key, "<absent>")
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            lines += differing_keys(before, after, f"{prefix}{key}.")
        elif before != after:
            lines.append(f"{prefix}{key}: checkpoint {before!r}, this run {after!r}")
    return lines


def _warmup_cosine(total_steps: int, warmup: float) -> Callable[[int], float]:
    """Learning-rate factor at step ``s``: ``s / W`` during the ``W = warmup * total`` warm-up steps, then ``(1 + cos(pi t)) / 2`` with ``t`` from 0 to 1."""
    warmup_steps = int(warmup * total_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


@contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    """A rich progress bar on stderr when it is a terminal and ``enabled``; ``None`` otherwise."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console, transient=True) as progress:
        yield progress
