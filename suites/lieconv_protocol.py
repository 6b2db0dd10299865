"""The measuring protocol shared by eqbench's LieConv and the reference LieConv in ``suites.lieconv_ratios``.

Each (workload, mode, implementation) runs in a fresh process (the recipe of
../shared/ANCHORS.md, "Running the reference LieConv live"): ``torch.set_num_threads``,
``torch.manual_seed(0)``, the network built and run once in training mode without gradients
(it estimates the adaptive ball radii; the reference also fills its lift caches), ``warmups``
calls, then ``calls`` timed ones. Wall and process CPU seconds are recorded per timed call.
Peak memory is the process's peak resident set over the timed calls: ``VmHWM`` of
``/proc/self/status`` after restarting it (writing ``5`` to ``/proc/self/clear_refs``, Linux
>= 4.0) from the resident set after the warm-ups; on a GPU also ``torch.cuda.max_memory_allocated``
over the timed calls (``device_peak``). Bytes are reported as they are.

This module needs only the standard library and torch: the reference's own interpreter
imports it (``suites.lieconv_reference``).
"""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

MODES = ("forward", "forward+backward")


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


def mode_call(model: torch.nn.Module, run: Callable[[], torch.Tensor], mode: str) -> Callable[[], None]:
    """One call of ``mode``: ``forward`` (evaluation, no gradient) or ``forward+backward`` (training).

    Forward + backward: gradients reset to ``None`` (an optimiser's ``zero_grad``), a training
    forward pass (batch statistics, adaptive radii updating), and the backward pass of the
    mean square of the outputs. ``run`` evaluates the model on its batch.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    synchronise = torch.cuda.synchronize if torch.cuda.is_available() and any(
        p.is_cuda for p in model.parameters()) else (lambda: None)

    def forward() -> None:
        model.eval()
        with torch.no_grad():
            run()
        synchronise()

    def forward_backward() -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        run().square().mean().backward()
        synchronise()

    return forward if mode == "forward" else forward_backward


def measure(model: torch.nn.Module, run: Callable[[], torch.Tensor], mode: str, calls: int, warmups: int) -> dict[str, Any]:
    """The protocol of the module docstring on a built ``model``: seconds, CPU seconds and peak bytes of ``mode``."""
    if calls < 1 or warmups < 0:
        raise ValueError(f"calls must be >= 1 and warmups >= 0, got {calls} and {warmups}")
    model.train()
    with torch.no_grad():
        run()
    function = mode_call(model, run, mode)
    for _ in range(warmups):
        function()
    cuda = any(p.is_cuda for p in model.parameters())
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    before = resident_bytes()
    reset_peak_resident()
    seconds, cpu = [], []
    for _ in range(calls):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    figures = {"seconds": seconds, "cpu": cpu, "peak": resident_bytes("VmHWM"), "before": before}
    if cuda:
        figures["device_peak"] = torch.cuda.max_memory_allocated()
    return figures


def child_main(
    build: Callable[[dict[str, Any]], tuple[torch.nn.Module, Callable[[], torch.Tensor]]],
    argv: list[str],
    prepare: Callable[[dict[str, Any]], None] = lambda request: None,
) -> int:
    """Entry of a measuring child: ``argv[0]`` is a JSON request, the result is printed as the last JSON line.

    The request holds ``threads``, ``mode``, ``calls``, ``warmups`` and what ``build`` reads
    (the workload and the path of the saved batch); ``prepare`` imports the implementation
    (when the module did not), then the resident set is recorded (``imported``: the
    interpreter, torch and the implementation's modules), then ``build`` returns the model
    and its call.
    """
    if len(argv) != 1:
        print("usage: one JSON request argument", file=sys.stderr)
        return 2
    request = json.loads(argv[0])
    torch.set_num_threads(int(request["threads"]))
    torch.manual_seed(0)
    prepare(request)
    imported = resident_bytes()
    model, run = build(request)
    figures = measure(model, run, request["mode"], int(request["calls"]), int(request["warmups"]))
    print(json.dumps({**figures, "imported": imported}))
    return 0
