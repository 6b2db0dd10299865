"""LieConv's time and peak memory on the paper's rotMNIST and QM9 configs, as ratios to the reference LieConv.

Run from the repository root (``--quick`` for a seconds-long smoke run)::

    python -m suites.lieconv_ratios [--quick] [--rounds 9] [--threads 2] [--device cpu|cuda] [--out reports/lieconv_benchmark.md]

Workloads (issue 3; the reference's figures are in ../shared/ANCHORS.md, measured with
mfinzi/LieConv on this machine class, 2 threads, float32):

* ``rotmnist-so2``: :class:`~eqbench.models.lieconv.ImgLieResNet` with SO(2) (alpha 0.2) and
  the ``paper`` preset of :mod:`eqbench.tasks.presets` (k 128, nbhd 25, fill 0.1, total_ds 0.1,
  6 layers) on 25 random 28 x 28 images cropped at radius 15: 648 points, 441/300/204/139/95/65
  query points per layer (the script prints the counts it used);
* ``rotmnist-t2``: the same with T(2);
* ``qm9-t3-k1536``: :class:`~eqbench.models.lieconv.MolecLieResNet` with T(3) and the QM9
  ``paper`` preset (k 1536, nbhd 100, fill 1, 6 layers) on 75 molecules of 1,436 atoms in
  all, padded to 29 (sizes 10 to 29, random positions and species: the work depends only on
  the sizes, since with fill 1 and nbhd 100 > 29 every atom neighbours every other);
* ``qm9-t3-k256``: the same with k 256.

**Time**: "forward" is one evaluation-mode call without gradients; "forward + backward" is
one training-mode call (batch statistics, the adaptive ball radius updating) followed by the
backward pass of a scalar loss (the mean square of the outputs), gradients reset to ``None``
before each call as an optimiser's ``zero_grad`` does. Each model first runs one training
pass without gradients, which estimates its ball radii. All eight calls alternate in one run
(:func:`suites.timing.interleaved_medians`), so the T(2) / SO(2) ratio is measured side by
side; each figure is the median over rounds.

**Work**: the matrix-product flops of each call (``torch.utils.flop_counter``) and the
throughput they imply, beside a calibration, a plain float32 matrix product of QM9's widest
layer shape timed in the same rounds: on a shared machine its GFLOP/s shows how much of the
machine the run got, and a workload far below it is bound by something else than arithmetic.
"CPU s" is the process's CPU time per call (median), less sensitive than wall time to other
processes on the machine, but with 2 threads it includes OpenMP's spinning at barriers.
On the 2-core machine, one other busy process is enough to make 2-thread calls 3 to 25 times
slower (a torch thread sharing a core waits a time slice at every OpenMP barrier, and LieConv
runs thousands of small kernels per call): trust a run only when its calibration is near the
idle machine's (about 280 GFLOP/s measured here) and the load average stays below 2.

**Memory**: each workload runs in a fresh subprocess (two at a time), so its peaks are its
own: two forward + backward calls, then two forward calls, the peak restarted in between.
On CPU the peak is the process's peak resident set (``VmHWM``: Python, torch, the model, the
inputs and the passes), the quantity of the reference's figure; "before passes" is the
resident set after the imports, before the network is built. With ``--device cuda`` it is
``torch.cuda.max_memory_allocated`` (model, inputs and passes; no CUDA context), not
comparable with the reference's CPU figure. GB are 10^9 bytes.

Targets (issue 3): forward + backward in at most half the reference's time, at most half its
peak memory. The reference caches its lifts and subsampling after the first call; eqbench's
LieConv recomputes them every call (they must move with a rotated input).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tabulate import tabulate
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from eqbench.models.lieconv import (
    ImgLieResNet,
    MolecLieResNet,
    image_point_cloud,
    lifting_group,
)
from suites.timing import interleaved_medians

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.5
MODES = ("forward", "forward+backward")
#: Atomic numbers of QM9's elements (H, C, N, O, F) and the probabilities of the synthetic species draw.
SPECIES = (1, 6, 7, 8, 9)
SPECIES_PROBABILITIES = (0.5, 0.35, 0.06, 0.08, 0.01)


@dataclass(frozen=True)
class Reference:
    """The reference LieConv's figures on one workload (../shared/ANCHORS.md): seconds per batch, peak RSS in GB."""

    forward: float
    forward_backward: float
    peak_gb: float


@dataclass(frozen=True)
class Workload:
    """One benchmarked network and batch, as plain JSON-able values (sent to the memory subprocesses).

    ``kind`` ``"image"`` (``size`` x ``size`` images cropped at ``crop_radius``) or
    ``"molecule"`` (``atoms`` real atoms padded to ``size`` per molecule); ``group`` a
    :func:`~eqbench.models.lieconv.lifting_group` name; ``model`` the network's keyword options.
    """

    name: str
    kind: str
    group: str
    model: dict[str, Any]
    batch: int
    size: int
    atoms: int = 0
    crop_radius: float | None = None
    points_per_layer: tuple[int, ...] = field(default=())


REFERENCES = {
    "rotmnist-so2": Reference(0.87, 1.30, 2.3),
    "rotmnist-t2": Reference(0.85, 1.38, 2.3),
    "qm9-t3-k1536": Reference(1.30, 3.43, 2.8),
    "qm9-t3-k256": Reference(0.23, 0.43, 1.35),
}


def workloads(quick: bool) -> list[Workload]:
    """The four workloads of the module docstring, with the ``paper`` presets; ``quick`` shrinks them to a smoke run."""
    from eqbench.tasks.presets import (
        LIECONV_IMAGE_PAPER,
        LIECONV_MOLECULE_PAPER,
        MNIST_CROP,
    )

    image = Workload("rotmnist-so2", "image", "SO2", dict(LIECONV_IMAGE_PAPER), batch=25, size=28,
                     crop_radius=MNIST_CROP["crop_radius"], points_per_layer=(648, 441, 300, 204, 139, 95, 65))
    molecule = Workload("qm9-t3-k1536", "molecule", "T3", dict(LIECONV_MOLECULE_PAPER), batch=75, size=29, atoms=1436)
    if quick:
        image = replace(image, model={**image.model, "k": 16, "nbhd": 8, "num_layers": 2}, batch=2, size=12, points_per_layer=())
        molecule = replace(molecule, model={**molecule.model, "k": 16, "num_layers": 2}, batch=3, size=12, atoms=30)
    return [
        image,
        replace(image, name="rotmnist-t2", group="T2"),
        molecule,
        replace(molecule, name="qm9-t3-k256", model={**molecule.model, "k": 16 if quick else 256}),
    ]


# ------------------------------------------------------------------------ inputs and models
def molecule_sizes(molecules: int, atoms: int, max_atoms: int) -> Tensor:
    """``molecules`` sizes in ``[1, max_atoms]`` summing to ``atoms``, spread evenly around the mean (largest ``max_atoms`` when possible)."""
    if not molecules <= atoms <= molecules * max_atoms:
        raise ValueError(f"{atoms} atoms cannot fill {molecules} molecules of 1 to {max_atoms} atoms")
    base, extra = divmod(atoms, molecules)
    spread = max(0, min(base - 1, max_atoms - base - 1))
    half = molecules // 2
    steps = torch.linspace(spread, 0, half).round().long()
    sizes = torch.full((molecules,), base, dtype=torch.long)
    sizes[molecules - extra:] += 1
    sizes[:half] -= steps  # move atoms from molecule i to molecule (molecules - 1 - i): the total is unchanged
    sizes[molecules - half:] += steps.flip(0)
    return sizes


def molecule_batch(workload: Workload, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """``(pos (B, n, 3), one_hot (B, n, 5), charges (B, n))``: random molecules of :func:`molecule_sizes`, zero-padded."""
    sizes = molecule_sizes(workload.batch, workload.atoms, workload.size)
    sizes = sizes[torch.randperm(workload.batch, generator=generator)]
    mask = torch.arange(workload.size) < sizes[:, None]
    draws = torch.multinomial(torch.tensor(SPECIES_PROBABILITIES), mask.numel(), replacement=True, generator=generator)
    charges = torch.tensor(SPECIES)[draws].view(mask.shape) * mask
    pos = torch.randn(*mask.shape, 3, generator=generator) * 1.5 * mask[..., None]
    one_hot = (charges[..., None] == torch.tensor(SPECIES)).float()
    return pos, one_hot, charges.float()


def build(workload: Workload, device: str) -> tuple[nn.Module, tuple[Tensor, ...]]:
    """The workload's network (seeded initialisation, ball radii estimated) and its batch, on ``device``."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    options = dict(workload.model)
    group = lifting_group(workload.group, options.pop("alpha", 0.2))
    if workload.kind == "image":
        model: nn.Module = ImgLieResNet(chin=1, num_targets=10, group=group, **options)
        images = torch.rand(workload.batch, 1, workload.size, workload.size, generator=generator)
        inputs: tuple[Tensor, ...] = image_point_cloud(images, workload.crop_radius)
    elif workload.kind == "molecule":
        model = MolecLieResNet(len(SPECIES), charge_scale=float(max(SPECIES)), group=group, **options)
        inputs = molecule_batch(workload, generator)
    else:
        raise ValueError(f"workload {workload.name}: kind must be 'image' or 'molecule', got {workload.kind!r}")
    model = model.to(device)
    inputs = tuple(x.to(device) for x in inputs)
    with torch.no_grad():  # the first training pass estimates the ball radii (evaluation needs them)
        model.train()(*inputs)
    return model, inputs


def points_per_layer(model: nn.Module, inputs: tuple[Tensor, ...]) -> list[int]:
    """``[points, queries of layer 1, ..., of layer L]`` (points counted per item, padding included)."""
    return model.query_sizes(inputs[0].shape[1])  # type: ignore[operator]


def call(model: nn.Module, inputs: tuple[Tensor, ...], mode: str) -> Callable[[], None]:
    """One forward (evaluation, no gradient) or forward + backward (training) call, synchronised on CUDA."""
    synchronise = torch.cuda.synchronize if inputs[0].is_cuda else (lambda: None)

    def forward() -> None:
        model.eval()
        with torch.no_grad():
            model(*inputs)
        synchronise()

    def forward_backward() -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        model(*inputs).square().mean().backward()
        synchronise()

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return forward if mode == "forward" else forward_backward


def flops_of(function: Callable[[], None]) -> int:
    """Floating-point operations of one call (matrix products, counted by ``torch.utils.flop_counter``)."""
    with FlopCounterMode(display=False) as counter:
        function()
    return counter.get_total_flops()


def calibration(device: str, size: tuple[int, int, int] = (2048, 6144, 384)) -> tuple[Callable[[], None], int]:
    """A plain float32 matrix product ``(m, k) @ (k, n)`` (the shape of QM9's widest layer) and its flop count.

    Timed among the workloads, its GFLOP/s shows how much of the machine the run got.
    """
    m, k, n = size
    generator = torch.Generator().manual_seed(0)
    left, right = torch.randn(m, k, generator=generator).to(device), torch.randn(k, n, generator=generator).to(device)
    synchronise = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def product() -> None:
        torch.mm(left, right)
        synchronise()

    return product, 2 * m * k * n


# ---------------------------------------------------------------------------------- memory
def resident_bytes(field: str = "VmRSS") -> int:
    """``VmRSS`` (current resident set) or ``VmHWM`` (its peak) of this process, from ``/proc/self/status``.

    ``VmHWM`` is the peak of this process's own address space: unlike ``ru_maxrss``, which
    keeps the peak of the parent it was forked from, it starts afresh at ``exec``.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field} line")


def reset_peak_resident() -> None:
    """Restart ``VmHWM`` from the current resident set (Linux >= 4.0: write 5 to ``/proc/self/clear_refs``)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def memory_of(workload: Workload, device: str, calls: int = 2) -> dict[str, Any]:
    """Peak memory of each mode in this process (meant to be a fresh one), in bytes, and the resident set before.

    ``calls`` forward + backward calls, then ``calls`` forward calls with the peak restarted
    in between (on CPU from the resident set at that point, which includes freed memory the
    allocator kept).
    """
    cuda = device.startswith("cuda")
    before = resident_bytes()
    model, inputs = build(workload, device)
    if cuda:
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
    peaks = {}
    for mode in reversed(MODES):
        torch.cuda.reset_peak_memory_stats() if cuda else reset_peak_resident()
        for _ in range(calls):
            call(model, inputs, mode)()
        peaks[mode] = torch.cuda.max_memory_allocated() if cuda else resident_bytes("VmHWM")
    return {"before": before, **peaks, "measure": "max_memory_allocated" if cuda else "peak RSS"}


def memory_in_subprocess(workload: Workload, device: str, threads: int) -> dict[str, Any]:
    """:func:`memory_of` in a fresh Python process (``--child``), so that the peaks are this workload's alone."""
    request = json.dumps({"workload": asdict(workload), "device": device, "threads": threads})
    completed = subprocess.run(
        [sys.executable, "-m", "suites.lieconv_ratios", "--child", request],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=900, check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"memory run of {workload.name} failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run_child(request: str) -> int:
    """The ``--child`` entry: measure one workload's memory and print it as a JSON line."""
    spec = json.loads(request)
    torch.set_num_threads(spec["threads"])
    payload = spec["workload"]
    workload = Workload(**{**payload, "points_per_layer": tuple(payload["points_per_layer"])})
    print(json.dumps(memory_of(workload, spec["device"])))
    return 0


def reference_seconds(name: str, mode: str) -> float:
    """The reference LieConv's seconds per batch for workload ``name`` in ``mode`` (``forward`` or ``forward+backward``)."""
    reference = REFERENCES[name]
    return reference.forward if mode == "forward" else reference.forward_backward


# ---------------------------------------------------------------------------------- report
def ratio_cell(value: float, reference: float) -> str:
    return f"{value / reference:.2f}"


def verdict(ratio: float) -> str:
    return "yes" if ratio <= TARGET_RATIO else "no"


def seconds_table(seconds: dict[str, float], cpu: dict[str, float], names: list[str]) -> str:
    rows = []
    for name in names:
        ref, cells = REFERENCES[name], [name]
        for mode, reference in zip(MODES, (ref.forward, ref.forward_backward)):
            key = f"{name} {mode}"
            cells += [f"{seconds[key]:.3f}", f"{cpu[key]:.3f}", f"{reference:.2f}", ratio_cell(seconds[key], reference)]
        rows.append([*cells, verdict(seconds[f"{name} forward+backward"] / ref.forward_backward)])
    headers = ["workload", "forward s", "CPU s", "ref s", "x ref", "fwd+bwd s", "CPU s", "ref s", "x ref",
               f"fwd+bwd <= {TARGET_RATIO} x ref"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def with_cpu_time(function: Callable[[], None], samples: list[float]) -> Callable[[], None]:
    """``function``, appending the process CPU seconds of each call to ``samples``."""

    def timed() -> None:
        start = time.process_time()
        function()
        samples.append(time.process_time() - start)

    return timed


def work_table(seconds: dict[str, float], flops: dict[str, int], names: list[str]) -> str:
    rows = []
    for name in names:
        cells = []
        for mode in MODES:
            key = f"{name} {mode}"
            cells += [f"{flops[key] / 1e9:.2f}", f"{flops[key] / seconds[key] / 1e9:.1f}"]
        rows.append([name, *cells])
    headers = ["workload", "forward GFLOP", "forward GFLOP/s", "fwd+bwd GFLOP", "fwd+bwd GFLOP/s"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def memory_table(memory: dict[str, dict[str, Any]], names: list[str]) -> str:
    rows = []
    for name in names:
        ref, peaks = REFERENCES[name], memory[name]
        both = peaks["forward+backward"] / 1e9
        rows.append([name, f"{peaks['before'] / 1e9:.2f}", f"{peaks['forward'] / 1e9:.2f}", f"{both:.2f}",
                     f"{ref.peak_gb:.2f}", ratio_cell(both, ref.peak_gb), verdict(both / ref.peak_gb)])
    measure = memory[names[0]]["measure"]
    headers = ["workload", "before passes GB", f"forward {measure} GB", f"fwd+bwd {measure} GB", "ref GB", "x ref",
               f"<= {TARGET_RATIO} x ref"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny networks, 2 rounds: checks that the script runs")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved timing rounds (default 9)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to run (default cpu)")
    parser.add_argument("--out", type=Path, default=None, help="also write the output as markdown here (atomically)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        return run_child(args.child)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available to torch here")
    if args.threads < 1 or args.rounds < 1:
        parser.error(f"--threads and --rounds must be positive, got {args.threads} and {args.rounds}")
    torch.set_num_threads(args.threads)
    rounds = 2 if args.quick else args.rounds
    chosen = workloads(args.quick)
    names = [w.name for w in chosen]

    lines = [f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads, float32, "
             f"median of {rounds} interleaved rounds; load average before timing {os.getloadavg()[0]:.2f}"]
    candidates: dict[str, Callable[[], None]] = {}
    for workload in chosen:
        model, inputs = build(workload, args.device)
        sizes = points_per_layer(model, inputs)
        expected = "" if not workload.points_per_layer else (
            " (as the reference)" if tuple(sizes) == workload.points_per_layer else f" (REFERENCE: {list(workload.points_per_layer)})")
        parameters = sum(p.numel() for p in model.parameters())
        lines.append(f"- {workload.name}: {workload.group}, {workload.model}, batch {workload.batch}, "
                     f"{parameters:,} parameters, points per layer {sizes}{expected}")
        for mode in MODES:
            candidates[f"{workload.name} {mode}"] = call(model, inputs, mode)
    flops = {key: flops_of(function) for key, function in candidates.items()}
    candidates["calibration"], flops["calibration"] = calibration(args.device)
    cpu_samples: dict[str, list[float]] = {key: [] for key in candidates}
    timed = {key: with_cpu_time(function, cpu_samples[key]) for key, function in candidates.items()}
    seconds = interleaved_medians(timed, rounds, warmup=1)
    cpu = {key: statistics.median(samples[1:]) for key, samples in cpu_samples.items()}  # the first call is the warm-up
    lines[0] += f", after {os.getloadavg()[0]:.2f}"
    del model, inputs, candidates, timed  # free the models before the memory subprocesses start

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = pool.map(lambda workload: memory_in_subprocess(workload, args.device, args.threads), chosen)
        memory = dict(zip(names, results))

    so2, t2 = (seconds[f"{names[0]} {mode}"] for mode in MODES), (seconds[f"{names[1]} {mode}"] for mode in MODES)
    t2_over_so2 = [f"{b / a:.2f}" for a, b in zip(so2, t2)]
    ref_so2, ref_t2 = REFERENCES[names[0]], REFERENCES[names[1]]
    met_time = sum(seconds[f"{n} forward+backward"] / REFERENCES[n].forward_backward <= TARGET_RATIO for n in names)
    met_memory = sum(memory[n]["forward+backward"] / 1e9 / REFERENCES[n].peak_gb <= TARGET_RATIO for n in names)
    lines += [
        "", "## Time (seconds per batch)", "", seconds_table(seconds, cpu, names), "",
        f"T(2) / SO(2): forward {t2_over_so2[0]}, forward + backward {t2_over_so2[1]} here "
        f"(reference {ref_t2.forward / ref_so2.forward:.2f}, {ref_t2.forward_backward / ref_so2.forward_backward:.2f})",
        "", "## Work (matrix-product flops per call) and throughput", "", work_table(seconds, flops, names), "",
        f"calibration, a plain {flops['calibration'] / 1e9:.1f} GFLOP float32 matrix product (2048 x 6144 @ 6144 x 384) "
        f"timed in the same rounds: {flops['calibration'] / seconds['calibration'] / 1e9:.1f} GFLOP/s",
        "", "## Peak memory (one fresh process per workload: forward + backward calls, then forward calls, peak restarted between)", "", memory_table(memory, names), "",
        f"targets met: time {met_time}/{len(names)}, memory {met_memory}/{len(names)}",
    ]
    if args.quick:
        lines.append("quick mode: shrunken networks and batches, so the ratios to the reference mean nothing (run without --quick)")
    if args.device == "cuda":
        lines.append("GPU peaks are torch.cuda.max_memory_allocated, not comparable with the reference's CPU peak RSS")
    print("\n".join(lines))
    if args.out is not None:
        from suites.runs import write_report

        write_report(args.out, "LieConv vs the reference LieConv", "suites.lieconv_ratios", argv, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
