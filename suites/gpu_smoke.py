"""GPU smoke run: the ``cuda`` tests, a few registered models checked on the device, one epoch of each paper preset.

    python -m suites.gpu_smoke [--device cuda|cpu] [--out reports/gpu.md] [--max-batches N]

Three parts, each timed, written to ``--out`` (default ``reports/gpu.md``) with the device's name:

1. ``pytest -m cuda``: the tests marked ``cuda`` (they skip themselves without a CUDA device);
2. :data:`CHECKED_MODELS`, registered models built, moved to the device and checked there with
   the entry's settings (the float32 noise floor's float64/float32 twins run with TF32 off,
   :func:`eqbench.check.forward.full_float32`, so TF32 convolutions and matmuls do not inflate it);
   each verdict is compared with the registration's expectation;
3. one training epoch (forward, backward, Adam step; mixed precision on CUDA as the trainer
   does; after one untimed warm-up batch) of every ``paper`` preset whose data is at hand: the built-in tasks always, rotated
   MNIST and QM9 (HOMO standing for every target: the same network and molecules) when
   ``$EQBENCH_ROTMNIST`` / ``$EQBENCH_QM9`` point at their files (else the row says so). ``--max-batches N`` times only the first ``N`` batches and scales the time to the
   whole epoch (for a CPU run that must stay short); without it the whole epoch is timed.

Exit status 1 when a cuda test fails, a check misses its expectation or an epoch fails; the
report is written either way. Budget on one modern GPU: a few minutes (the paper presets'
epochs on the built-in data are the bulk).
"""
from __future__ import annotations

import argparse
import math
import platform
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from eqbench.atomic import write_text_atomic

CHECKED_MODELS = ("egnn-nbody", "fa-gnn-nbody", "gnn-nbody-rotations", "lieconv-so2-image", "lieconv-t2-image")
DEFAULT_OUT = Path("reports/gpu.md")
#: The QM9 target timed: every target trains the same network on the same molecules.
QM9_TIMED = "qm9-homo"


@dataclass(frozen=True)
class EpochTiming:
    """One paper preset's training epoch: measured batches, their time and the whole epoch's (scaled when capped)."""

    task: str
    model: str
    batches: int
    epoch_batches: int
    seconds: float
    note: str = ""

    @property
    def epoch_seconds(self) -> float:
        return self.seconds * self.epoch_batches / self.batches if self.batches else math.nan


def device_name(device: torch.device) -> str:
    """The GPU's name (``torch.cuda.get_device_name``), else the CPU's model name from ``/proc/cpuinfo``."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
    except OSError:
        match = None
    return f"CPU: {match.group(1).strip() if match else platform.processor() or platform.machine()}"


def run_cuda_tests() -> tuple[int, str, float]:
    """``pytest -m cuda -q`` in a subprocess: its exit status (5, nothing collected, counts as passing), last line and time."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", "tests"], capture_output=True, text=True)
    lines = [line for line in done.stdout.strip().splitlines() if line.strip()]
    return (0 if done.returncode == 5 else done.returncode), (lines[-1] if lines else done.stderr.strip()[-200:]), time.perf_counter() - started


def check_models(names: Sequence[str], device: torch.device) -> list[dict[str, object]]:
    """Check each registered model on ``device`` with its registration's settings; one row per model."""
    from eqbench.check import check_equivariance
    from eqbench.registry import build_model, get_entry, load_builtin

    load_builtin()
    rows = []
    for name in names:
        entry = get_entry(name)
        model = build_model(entry)
        if isinstance(model, torch.nn.Module):
            model = model.to(device)
        started = time.perf_counter()
        result = check_equivariance(
            model, entry.group, entry.inputs, entry.in_action, entry.out_action, expected=entry.expected,
            tolerance=entry.tolerance, name=name, **{**entry.check_options, "device": device},
        )
        rows.append({
            "model": name, "group": entry.group.name, "expected": entry.expected, "verdict": result.verdict.value,
            "ok": entry.matches(result.verdict), "max_rel_error": result.max_rel_error, "noise_floor": result.noise_floor,
            "seconds": time.perf_counter() - started,
        })
    return rows


def paper_epoch_timings(device: torch.device, max_batches: int | None) -> list[EpochTiming]:
    """One training epoch of every ``paper`` preset whose data is available (see the module docs)."""
    from eqbench.tasks.datafiles import DataFileError
    from eqbench.tasks.presets import PRESETS

    timings = []
    for (task, model), presets in sorted(PRESETS.items()):
        if "paper" not in presets or (task.startswith("qm9-") and task != QM9_TIMED):
            continue
        try:
            timings.append(_time_epoch(task, model, presets["paper"], device, max_batches))
        except DataFileError as missing:
            timings.append(EpochTiming(task, model, 0, 0, math.nan, f"skipped: {missing}"))
        except (RuntimeError, ValueError) as error:  # e.g. CUDA out of memory: the row says so, the run goes on
            timings.append(EpochTiming(task, model, 0, 0, math.nan, f"FAILED: {type(error).__name__}: {str(error).splitlines()[0]}"))
    return timings


def _time_epoch(task_name: str, model_name: str, preset, device: torch.device, max_batches: int | None) -> EpochTiming:
    from eqbench.tasks.registry import get_task
    from eqbench.tasks.trainable import build_model

    task = get_task(task_name)
    data_options = dict(preset.data)
    if task_name == "nbody":  # only the training split is timed: evaluation splits of one system each
        data_options.update(valid_size=1, test_size=1)
    data = task.build(data_options)
    model = build_model(task_name, model_name, preset.model, data, torch.Generator().manual_seed(0)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=preset.lr, weight_decay=preset.weight_decay)
    amp = preset.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    train = data.splits["train"].tensors
    count = len(next(iter(train.values())))
    epoch_batches = math.ceil(count / preset.batch_size)
    batches = min(epoch_batches, max_batches) if max_batches else epoch_batches
    order = torch.randperm(count, generator=torch.Generator().manual_seed(0))

    def step(index: int) -> None:
        rows = order[index * preset.batch_size : (index + 1) * preset.batch_size]
        inputs = [train[name][rows].to(device) for name in data.inputs]
        target = train[data.target][rows].to(device)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            output = model(*inputs)
        loss = task.objective.loss(output, target)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    step(0)  # warm-up (CUDA context, kernel selection, allocator), not timed
    _synchronize(device)
    started = time.perf_counter()
    for index in range(batches):
        step(index)
    _synchronize(device)
    return EpochTiming(task_name, model_name, batches, epoch_batches, time.perf_counter() - started)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def report(device: torch.device, tests: tuple[int, str, float], checks: list[dict[str, object]], epochs: list[EpochTiming], max_batches: int | None, command: str, total: float) -> str:
    """The markdown report (see the module docs)."""
    status, summary, test_seconds = tests
    lines = [
        "# GPU smoke run", "",
        f"Device: **{device_name(device)}** (`{device}`); torch {torch.__version__}, CUDA {torch.version.cuda or '-'}; "
        f"measured by `{command}` in {total:.0f} s.", "",
        "## Tests marked `cuda`", "",
        f"`pytest -m cuda`: {summary} ({test_seconds:.0f} s){'' if status == 0 else ' (FAILED)'}.", "",
        "## Registered models checked on the device", "",
        "Float32 checks; the noise floor's twins run with TF32 off.", "",
        "| model | group | expected | verdict | ok | max rel error | noise floor | seconds |",
        "|---|---|---|---|---|---|---|---|",
        *(f"| {r['model']} | {r['group']} | {r['expected']} | {r['verdict']} | {'yes' if r['ok'] else 'NO'} | "
          f"{r['max_rel_error']:.2e} | {r['noise_floor']:.2e} | {r['seconds']:.2f} |" for r in checks),
        "", "## One training epoch of each `paper` preset", "",
        (f"Only the first {max_batches} batch(es) of each epoch were timed; `epoch s` scales them to the whole epoch."
         if max_batches else "Whole epochs timed (training pass: forward, backward, Adam step)."), "",
        "| task | model | batches timed / epoch | seconds timed | epoch s | note |",
        "|---|---|---|---|---|---|",
        *(f"| {t.task} | {t.model} | {t.batches} / {t.epoch_batches} | {t.seconds:.3f} | {t.epoch_seconds:.2f} | {t.note} |" for t in epochs),
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="device to run on (default cuda)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report file (default reports/gpu.md)")
    parser.add_argument("--max-batches", type=int, help="time only the first N batches of each epoch (scaled to the epoch)")
    args = parser.parse_args(argv)
    if args.max_batches is not None and args.max_batches < 1:
        parser.error(f"--max-batches must be at least 1, got {args.max_batches}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device (use --device cpu for a CPU run)")
    device = torch.device(args.device)
    started = time.perf_counter()
    tests = run_cuda_tests()
    print(f"cuda tests: {tests[1]}", flush=True)
    checks = check_models(CHECKED_MODELS, device)
    for row in checks:
        print(f"check {row['model']}: {row['verdict']} (expected {row['expected']})", flush=True)
    epochs = paper_epoch_timings(device, args.max_batches)
    for timing in epochs:
        print(f"epoch {timing.task} {timing.model}: {timing.epoch_seconds:.2f} s {timing.note}", flush=True)
    command = "python -m suites.gpu_smoke " + " ".join(argv if argv is not None else sys.argv[1:])
    write_text_atomic(args.out, report(device, tests, checks, epochs, args.max_batches, command.strip(), time.perf_counter() - started))
    print(f"wrote {args.out}")
    failed = tests[0] != 0 or not all(row["ok"] for row in checks) or any(t.note.startswith("FAILED") for t in epochs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
