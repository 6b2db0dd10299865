"""LieConv's time and peak memory on the paper's rotMNIST and QM9 configs, as ratios to the reference LieConv.

Run from the repository root (``--quick`` for a seconds-long smoke run)::

    python -m suites.lieconv_ratios [--reference PATH --reference-python PYTHON] [--rounds 5] [--calls 5]
        [--threads 2] [--workloads NAME ...] [--quick] [--out reports/lieconv_benchmark.md]

With ``--reference PATH`` (a checkout of mfinzi/LieConv, e.g. at 93affb1, outside this
repository) the reference runs LIVE in the same run, in its own interpreter
``--reference-python`` (a virtualenv set up as ../shared/ANCHORS.md says; see
:mod:`suites.lieconv_reference`), interleaved with ours round by round. Without it, the
reference column is the reference's STORED figure from ../shared/ANCHORS.md, measured on
another day (the reference's live times ran 1.2-1.9x slower than those), and the report says so.

Workloads (issue 3; the reference's configs of ../shared/ANCHORS.md, 2 threads, float32):

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

Both implementations get the same batch (saved once, loaded by every child).

**Protocol** (:mod:`suites.lieconv_protocol`): every (workload, mode, implementation) runs in a
fresh process per round: 2 threads, ``manual_seed(0)``, one training pass without gradients
(ball radii; the reference also fills its caches), ``--warmups`` calls, then ``--calls`` timed
calls; the round's figure is the median of those calls. "forward" is one evaluation-mode
call without gradients; "forward + backward" one training-mode call and the backward pass of
the mean square of the outputs, gradients reset to ``None`` first. In every round each
(workload, mode) runs ours and the reference back to back (which goes first alternates), so
both see the same machine; the tables give the median over rounds and ``[min, max]``, and
each ratio is the median of the per-round ratios. "CPU s" is the child's process CPU time
per call (with 2 threads it includes OpenMP's spinning at barriers).

**Peak memory**: the child's peak resident set (``VmHWM``) over its timed calls, restarted
from its resident set after the warm-ups: Python, torch, the model, the batch and the passes
(the recipe's measure). Our child is :mod:`suites.lieconv_ours`, which imports only torch and
:mod:`eqbench.models.lieconv`. The peak includes what the imports hold (0.230 GB for torch
alone, 0.235 GB in our child, 0.39 GB for torch and the reference with olive-oil-ml), which
bounds the ratio from below on small workloads. QM9 at ``k = 256`` peaks at about 0.50 GB in
the reference. Our child's smaps (``/proc/self/smaps_rollup``) after its imports: 224 MiB; the
pages of torch's library that building the network and its passes touch (file-backed, clean):
12.4 MiB more; the parameters: 2.3 MiB. Those three alone are 239 MiB = 0.250 GB, half the
reference's peak, before any batch, activation or allocator cache: on this measure the ratio
cannot go under 0.5 short of running on fewer of torch's pages; it measures 0.26 GB (0.53),
down from 0.286 GB.
The run measures the first part of that floor live (a fresh interpreter that imports torch
alone) and prints it as a share of each reference peak. The second table gives the peak above
the resident set after the imports (what the network, its batch and its passes added). GB are 10^9 bytes. (The stored reference peaks of ../shared/ANCHORS.md were written as
MiB / 1000, e.g. "2.3 GB" for 2,300 MiB = 2.41 GB; they are converted here.)

**Work**: the matrix-product flops of each of our calls (``torch.utils.flop_counter``) and the
throughput they imply, beside a calibration, a plain float32 matrix product of QM9's widest
layer shape timed once per round in this process between the children: its GFLOP/s shows how
much of the machine the run got. On the 2-core machine one other busy process makes 2-thread
calls several times slower: trust a run only when the calibration is near the idle machine's
(about 280 GFLOP/s measured here) and the load average stays below 1.

Targets (issue 12): time and peak memory at most half the reference's, in every workload and
mode. The reference caches its lifts and subsampling after the first call; eqbench's LieConv
recomputes them every call (they must move with a rotated input).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from tabulate import tabulate
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from suites.lieconv_ours import Workload, our_network
from suites.lieconv_protocol import MODES, mode_call

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.5
SIDES = ("ours", "reference")
#: Atomic numbers of QM9's elements (H, C, N, O, F) and the probabilities of the synthetic species draw.
SPECIES = (1, 6, 7, 8, 9)
SPECIES_PROBABILITIES = (0.5, 0.35, 0.06, 0.08, 0.01)
MIB = 2**20
STORED_DATE = "2026-11-22"


@dataclass(frozen=True)
class StoredReference:
    """The reference LieConv's stored figures on one workload (../shared/ANCHORS.md, measured on another day).

    Seconds per batch, and the forward + backward peak resident set as written there
    (``written_peak``, in units of 1000 MiB: see :attr:`peak_bytes`).
    """

    forward: float
    forward_backward: float
    written_peak: float

    def seconds(self, mode: str) -> float:
        return self.forward if mode == "forward" else self.forward_backward

    @property
    def peak_bytes(self) -> float:
        """The forward + backward peak in bytes: the stored "GB" figures are MiB / 1000."""
        return self.written_peak * 1000 * MIB


STORED = {
    "rotmnist-so2": StoredReference(0.87, 1.30, 2.3),
    "rotmnist-t2": StoredReference(0.85, 1.38, 2.3),
    "qm9-t3-k1536": StoredReference(1.30, 3.43, 2.8),
    "qm9-t3-k256": StoredReference(0.23, 0.43, 1.35),
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


def raw_batch(workload: Workload) -> dict[str, Any]:
    """The workload's batch as both implementations take it (seeded): images, or molecules with their charge scale."""
    generator = torch.Generator().manual_seed(0)
    if workload.kind == "image":
        return {"images": torch.rand(workload.batch, 1, workload.size, workload.size, generator=generator)}
    if workload.kind == "molecule":
        pos, one_hot, charges = molecule_batch(workload, generator)
        return {"pos": pos, "one_hot": one_hot, "charges": charges, "charge_scale": float(max(SPECIES))}
    raise ValueError(f"workload {workload.name}: kind must be 'image' or 'molecule', got {workload.kind!r}")


def build(workload: Workload, device: str) -> tuple[nn.Module, tuple[Tensor, ...]]:
    """Our network and batch, the ball radii estimated by one training pass without gradients (evaluation needs them)."""
    model, inputs = our_network(workload, raw_batch(workload), device)
    with torch.no_grad():
        model.train()(*inputs)
    return model, inputs


def call(model: nn.Module, inputs: tuple[Tensor, ...], mode: str) -> Callable[[], None]:
    """One forward (evaluation, no gradient) or forward + backward (training) call of our network on ``inputs``."""
    return mode_call(model, lambda: model(*inputs), mode)


def points_per_layer(model: nn.Module, inputs: tuple[Tensor, ...]) -> list[int]:
    """``[points, queries of layer 1, ..., of layer L]`` (points counted per item, padding included)."""
    return model.query_sizes(inputs[0].shape[1])  # type: ignore[operator]


# ---------------------------------------------------------------------------------- rounds
@dataclass(frozen=True)
class Sides:
    """How to start a measuring child of each implementation: our interpreter, or the reference's with its checkout."""

    reference: Path | None = None
    reference_python: str = sys.executable

    def command(self, side: str, request: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        """The child's command line and environment for ``side`` (``ours`` or ``reference``)."""
        if side == "ours":
            return [sys.executable, "-m", "suites.lieconv_ours", json.dumps(request)], {"PYTHONPATH": str(ROOT)}
        if self.reference is None:
            raise ValueError("no --reference checkout was given")
        request = {**request, "reference": str(self.reference)}
        return [self.reference_python, "-m", "suites.lieconv_reference", json.dumps(request)], {"PYTHONPATH": str(ROOT)}


def run_child(sides: Sides, side: str, request: dict[str, Any], timeout: float = 1800) -> dict[str, Any]:
    """One measuring child (:mod:`suites.lieconv_protocol`) of ``side``; its JSON result, or an error with its stderr."""
    command, extra = sides.command(side, request)
    environment = {**os.environ, **extra, "OMP_NUM_THREADS": str(request["threads"])}
    completed = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=timeout, check=False)
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"{side} child for {request['workload']['name']} {request['mode']} failed "
                           f"(exit {completed.returncode}):\n{completed.stderr[-4000:]}")
    return json.loads(lines[-1])


def torch_alone_bytes() -> int:
    """The resident set of a fresh interpreter that imports torch and nothing else: the floor under every torch-based child's peak."""
    command = [sys.executable, "-c", "import torch; from suites.lieconv_protocol import resident_bytes; print(resident_bytes())"]
    completed = subprocess.run(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, check=True)
    return int(completed.stdout.split()[-1])


def floor_line(floor: int, results: dict[tuple[str, str, str], list[dict[str, float]]], names: list[str], live: bool, device: str) -> str:
    """The report's line on the torch-alone ``floor`` (bytes): on a live CPU run, its share of each reference peak,
    the bound under every ratio of the peak table."""
    line = f"floor: a fresh interpreter that imports torch and nothing else holds {floor / 1e9:.3f} GB"
    if device != "cpu":
        return line + " of host memory (the peaks above are the GPU's, which it does not bound)"
    if not live:
        return line + ", under every peak of the table"
    shares = ", ".join(
        f"{name} {mode} {floor / statistics.median(r['peak'] for r in results[(name, mode, 'reference')]):.2f}"
        for name in names for mode in MODES
    )
    return f"{line}, as a share of the reference's median peak: {shares}; no torch-based implementation can go below these ratios"


def round_figures(result: dict[str, Any]) -> dict[str, float]:
    """A child's figures for one round: median seconds and CPU seconds of its timed calls, and bytes.

    Bytes: the peak, the resident set before the timed calls, after the imports, the peak
    above the imports (what the network, its batch and its passes added), and the GPU peak.
    """
    figures = {"seconds": statistics.median(result["seconds"]), "cpu": statistics.median(result["cpu"])}
    figures.update({key: float(result[key]) for key in ("peak", "before", "imported", "device_peak") if key in result})
    if "imported" in figures:
        figures["above imports"] = figures["peak"] - figures["imported"]
    return figures


def measure_rounds(
    chosen: list[Workload], sides: Sides, rounds: int, calls: int, warmups: int, threads: int,
    batches: dict[str, Path], device: str = "cpu", between: Callable[[], None] = lambda: None, progress: Callable[[str], None] = lambda _: None,
) -> dict[tuple[str, str, str], list[dict[str, float]]]:
    """``{(workload, mode, side): [figures of round 1, ...]}``, the sides interleaved (module docstring).

    Every round runs each (workload, mode) with ours and, when ``sides.reference`` is set, the
    reference back to back, the first of them alternating from round to round and the order
    of the (workload, mode) pairs rotating; ``between`` runs once per round (the calibration).
    """
    live = SIDES if sides.reference is not None else SIDES[:1]
    pairs = [(workload, mode) for workload in chosen for mode in MODES]
    results: dict[tuple[str, str, str], list[dict[str, float]]] = {}
    for index in range(rounds):
        shift = index % len(pairs)
        for workload, mode in pairs[shift:] + pairs[:shift]:
            order = live if index % 2 == 0 else live[::-1]
            for side in order:
                request = {"workload": asdict(workload), "mode": mode, "calls": calls, "warmups": warmups,
                           "threads": threads, "batch": str(batches[workload.name]), "device": device}
                figures = round_figures(run_child(sides, side, request))
                results.setdefault((workload.name, mode, side), []).append(figures)
                progress(f"round {index + 1}/{rounds} {workload.name} {mode} {side}: {figures['seconds']:.3f} s, "
                         f"{figures['peak'] / 1e9:.2f} GB")
        between()
    return results


def spread(values: list[float], digits: int = 3) -> str:
    """``median [min, max]`` of ``values`` (the median alone for one value)."""
    middle = f"{statistics.median(values):.{digits}f}"
    return middle if len(values) == 1 else f"{middle} [{min(values):.{digits}f}, {max(values):.{digits}f}]"


def ratios(ours: list[dict[str, float]], reference: list[dict[str, float]] | float, key: str) -> list[float]:
    """Per-round ratios of ours over the reference's figure ``key`` (paired by round), or over a stored number."""
    if isinstance(reference, (int, float)):
        return [round_[key] / reference for round_ in ours]
    return [a[key] / b[key] for a, b in zip(ours, reference)]


def verdict(values: list[float]) -> str:
    """Whether the median ratio meets the target."""
    return "yes" if statistics.median(values) <= TARGET_RATIO else "no"


def comparison_rows(
    results: dict[tuple[str, str, str], list[dict[str, float]]], names: list[str], live: bool, key: str, scale: float, digits: int,
) -> tuple[list[list[str]], list[list[float] | None]]:
    """Table rows (workload, mode, ours, [ours CPU], reference, ratio, verdict) of figure ``key`` and each row's ratios.

    ``key`` is ``seconds`` or a memory figure (``peak``, ``above imports``, ``device_peak``);
    ``scale`` divides the figures for display (1 or 1e9). Without a live reference, the stored
    figure stands in (only seconds and the forward + backward peak were stored: else ``n/a``).
    """
    rows, all_ratios = [], []
    for name in names:
        for mode in MODES:
            ours = results[(name, mode, "ours")]
            cells = [name, mode, spread([r[key] / scale for r in ours], digits)]
            if key == "seconds":
                cells.append(spread([r["cpu"] for r in ours], digits))
            if live:
                reference = results[(name, mode, "reference")]
                cells.append(spread([r[key] / scale for r in reference], digits))
                row_ratios: list[float] | None = ratios(ours, reference, key)
            else:
                stored = STORED[name].seconds(mode) if key == "seconds" else (
                    STORED[name].peak_bytes if key == "peak" and mode == "forward+backward" else None)
                cells.append("n/a" if stored is None else f"{stored / scale:.{digits}f}")
                row_ratios = None if stored is None else ratios(ours, stored, key)
            cells += ["n/a", "n/a"] if row_ratios is None else [spread(row_ratios, 2), verdict(row_ratios)]
            rows.append(cells)
            all_ratios.append(row_ratios)
    return rows, all_ratios


def comparison_table(
    results: dict[tuple[str, str, str], list[dict[str, float]]], names: list[str], live: bool, key: str,
) -> tuple[str, list[list[float] | None]]:
    """The time (``key="seconds"``) or peak memory (``key="peak"``) table in markdown, and its rows' ratios."""
    scale, digits = (1.0, 3) if key == "seconds" else (1e9, 2)
    unit = "s" if key == "seconds" else "GB"
    reference = "reference (live)" if live else f"reference (STORED, {STORED_DATE})"
    headers = ["workload", "mode", f"ours {unit}"] + (["ours CPU s"] if key == "seconds" else []) + [
        f"{reference} {unit}", "ours / reference", f"<= {TARGET_RATIO}"]
    rows, row_ratios = comparison_rows(results, names, live, key, scale, digits)
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True), row_ratios


def work_table(results: dict[tuple[str, str, str], list[dict[str, float]]], flops: dict[str, int], names: list[str]) -> str:
    """Our matrix-product GFLOP per call and the GFLOP/s they imply at the median time."""
    rows = []
    for name in names:
        cells = [name]
        for mode in MODES:
            seconds = statistics.median(r["seconds"] for r in results[(name, mode, "ours")])
            cells += [f"{flops[f'{name} {mode}'] / 1e9:.2f}", f"{flops[f'{name} {mode}'] / seconds / 1e9:.1f}"]
        rows.append(cells)
    headers = ["workload", "forward GFLOP", "forward GFLOP/s", "fwd+bwd GFLOP", "fwd+bwd GFLOP/s"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def met(row_ratios: list[list[float] | None]) -> str:
    """``k/n`` rows whose median ratio meets the target (rows without a reference figure left out)."""
    known = [r for r in row_ratios if r is not None]
    return f"{sum(statistics.median(r) <= TARGET_RATIO for r in known)}/{len(known)}"


def reference_seconds(name: str, mode: str) -> float:
    """The reference's STORED seconds per batch for workload ``name`` in ``mode`` (../shared/ANCHORS.md, another day)."""
    return STORED[name].seconds(mode)


def measure_in_subprocess(workload: Workload, mode: str, threads: int, calls: int = 2, warmups: int = 1) -> dict[str, float]:
    """One of our measuring children on ``workload`` in ``mode`` (seconds, CPU seconds, peak and before bytes)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "batch.pt"
        torch.save(raw_batch(workload), path)
        request = {"workload": asdict(workload), "mode": mode, "calls": calls, "warmups": warmups,
                   "threads": threads, "batch": str(path)}
        return round_figures(run_child(Sides(), "ours", request))


def flops_of(function: Callable[[], None]) -> int:
    """Floating-point operations of one call (matrix products, counted by ``torch.utils.flop_counter``)."""
    with FlopCounterMode(display=False) as counter:
        function()
    return counter.get_total_flops()


def calibration(device: str, size: tuple[int, int, int] = (2048, 6144, 384)) -> tuple[Callable[[], None], int]:
    """A plain float32 matrix product ``(m, k) @ (k, n)`` (the shape of QM9's widest layer) and its flop count.

    Timed between the rounds' children, its GFLOP/s shows how much of the machine the run got.
    """
    m, k, n = size
    generator = torch.Generator().manual_seed(0)
    left, right = torch.randn(m, k, generator=generator).to(device), torch.randn(k, n, generator=generator).to(device)
    synchronise = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def product() -> None:
        torch.mm(left, right)
        synchronise()

    return product, 2 * m * k * n


def describe(workload: Workload, device: str) -> tuple[str, dict[str, int]]:
    """A line naming our network (parameters, points per layer) and its matrix-product flops per mode."""
    model, inputs = build(workload, device)
    sizes = points_per_layer(model, inputs)
    expected = "" if not workload.points_per_layer else (
        " (as the reference)" if tuple(sizes) == workload.points_per_layer else f" (REFERENCE: {list(workload.points_per_layer)})")
    parameters = sum(p.numel() for p in model.parameters())
    line = (f"- {workload.name}: {workload.group}, {workload.model}, batch {workload.batch}, "
            f"{parameters:,} parameters, points per layer {sizes}{expected}")
    return line, {f"{workload.name} {mode}": flops_of(call(model, inputs, mode)) for mode in MODES}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, default=None,
                        help="checkout of mfinzi/LieConv (outside this repository): time it live, interleaved with ours")
    parser.add_argument("--reference-python", default=sys.executable,
                        help="the interpreter that can import the reference (default: this one)")
    parser.add_argument("--quick", action="store_true", help="tiny networks, 1 timed call: checks that the script runs")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--calls", type=int, default=5, help="timed calls per child (default 5)")
    parser.add_argument("--warmups", type=int, default=2, help="warm-up calls per child (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--workloads", nargs="+", default=None, help="a subset of the workloads (default all four)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where ours runs (default cpu)")
    parser.add_argument("--out", type=Path, default=None, help="also write the output as markdown here (atomically)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available to torch here")
    if args.device == "cuda" and args.reference is not None:
        parser.error("--reference runs the reference on CPU: compare with --device cpu")
    if min(args.threads, args.rounds, args.calls) < 1 or args.warmups < 0:
        parser.error("--threads, --rounds and --calls must be positive and --warmups not negative")
    if args.reference is not None and not (args.reference / "lie_conv" / "lieConv.py").is_file():
        parser.error(f"--reference {args.reference}: no lie_conv/lieConv.py there (give a checkout of mfinzi/LieConv)")
    known = [w.name for w in workloads(quick=True)]
    unknown = sorted(set(args.workloads or ()) - set(known))
    if unknown:
        parser.error(f"--workloads: unknown {unknown}; choose among {known}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    calls = 1 if args.quick else args.calls
    chosen = [w for w in workloads(args.quick) if args.workloads is None or w.name in args.workloads]
    names, live = [w.name for w in chosen], args.reference is not None
    python = args.reference_python if os.sep not in args.reference_python else str(Path(args.reference_python).absolute())
    sides = Sides(args.reference.resolve() if live else None, python)  # (children run in the repository root)

    where = f"live from {args.reference} ({args.reference_python})" if live else (
        f"STORED figures of ../shared/ANCHORS.md, measured {STORED_DATE} on another day, NOT a live run "
        "(the reference's live times ran 1.2-1.9x slower than these; pass --reference for a live comparison)")
    lines = [(f"torch {torch.__version__}, device {args.device}, {args.threads} threads, float32; each figure the median "
              f"of {calls} timed calls after {args.warmups} warm-ups in a fresh process, then median [min, max] over "
              f"{args.rounds} interleaved rounds; reference: {where}; load average before {os.getloadavg()[0]:.2f}")]
    flops: dict[str, int] = {}
    for workload in chosen:
        line, counted = describe(workload, args.device)
        lines.append(line)
        flops.update(counted)
    product, product_flops = calibration(args.device)
    throughput: list[float] = []

    def calibrate() -> None:
        start = time.perf_counter()
        product()
        throughput.append(product_flops / (time.perf_counter() - start) / 1e9)

    with tempfile.TemporaryDirectory() as folder:
        batches = {w.name: Path(folder) / f"{w.name}.pt" for w in chosen}
        for workload in chosen:
            torch.save(raw_batch(workload), batches[workload.name])
        results = measure_rounds(chosen, sides, args.rounds, calls, args.warmups, args.threads, batches, args.device, calibrate,
                                 lambda text: print(text, file=sys.stderr, flush=True))
    lines[0] += f", after {os.getloadavg()[0]:.2f}"
    memory_key = "device_peak" if args.device == "cuda" else "peak"
    time_table, time_ratios = comparison_table(results, names, live, "seconds")
    memory_table, memory_ratios = comparison_table(results, names, live, memory_key)
    above_table, above_ratios = comparison_table(results, names, live, "above imports")
    imported = {side: statistics.median(r["imported"] for (_, _, s), rounds_ in results.items() if s == side for r in rounds_)
                for side in (SIDES if live else SIDES[:1])}
    lines += ["", "## Time (seconds per batch)", "", time_table, ""]
    if {"rotmnist-so2", "rotmnist-t2"} <= set(names):
        lines.append("T(2) / SO(2) seconds: " + "; ".join(
            f"{mode} ours {ratio(results, 'rotmnist-t2', 'rotmnist-so2', mode, 'ours'):.2f}"
            + (f", reference {ratio(results, 'rotmnist-t2', 'rotmnist-so2', mode, 'reference'):.2f}" if live else "")
            for mode in MODES))
    lines += [
        "", "## Work (our matrix-product flops per call) and throughput", "", work_table(results, flops, names), "",
        (f"calibration, a plain {product_flops / 1e9:.1f} GFLOP float32 matrix product (2048 x 6144 @ 6144 x 384) "
         f"timed once per round in the parent: {spread(throughput, 1)} GFLOP/s"),
        "", "## Peak memory (GB = 10^9 bytes; peak resident set of the child over its timed calls)", "", memory_table, "",
        "## Peak memory above the imports (the peak less the child's resident set after importing torch and the implementation)",
        "", above_table, "",
        "resident set after the imports (median over the children): " + ", ".join(f"{side} {value / 1e9:.3f} GB" for side, value in imported.items()),
        "",
        floor_line(torch_alone_bytes(), results, names, live, args.device),
        "",
        (f"targets met (median ratio <= {TARGET_RATIO}): time {met(time_ratios)}, peak memory {met(memory_ratios)}, "
         f"peak memory above the imports {met(above_ratios)}"),
    ]
    if not live:
        lines.append(f"reference column: the STORED figures of ../shared/ANCHORS.md ({STORED_DATE}, another day; "
                     "memory converted from the MiB / 1000 they were written in), not a live run")
    if args.quick:
        lines.append("quick mode: shrunken networks and batches, so the ratios to the reference mean nothing (run without --quick)")
    if args.device == "cuda":
        lines.append("our GPU peaks are torch.cuda.max_memory_allocated, not comparable with the reference's CPU peak RSS")
    print("\n".join(lines))
    if args.out is not None:
        from suites.runs import write_report

        write_report(args.out, "LieConv vs the reference LieConv", "suites.lieconv_ratios", argv, lines)
    return 0


def ratio(results: dict[tuple[str, str, str], list[dict[str, float]]], top: str, bottom: str, mode: str, side: str) -> float:
    """Median seconds of workload ``top`` over those of ``bottom`` for one mode and side."""
    return (statistics.median(r["seconds"] for r in results[(top, mode, side)])
            / statistics.median(r["seconds"] for r in results[(bottom, mode, side)]))


if __name__ == "__main__":
    raise SystemExit(main())
