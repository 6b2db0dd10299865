"""asv benchmarks of eqbench's LieConv: forward and forward + backward on the paper's rotMNIST and QM9 configs.

Run from the repository root (see asv.conf.json)::

    eqbench bench record --quick --bench bench_lieconv     # recorded for HEAD in the shared history (README)

The workloads, networks, batches and calls are those of :mod:`suites.lieconv_ratios` (which
prints them as ratios to the reference LieConv's figures): ImgLieResNet with SO(2) or T(2) on
25 rotMNIST-sized images (648 points), MolecLieResNet with T(3) at k 1536 or 256 on 75
QM9-sized molecules (1,436 atoms padded to 29). "forward" is an evaluation-mode call without
gradients; "forward_backward" a training-mode call and the backward pass of the mean square
of the outputs. Two torch threads, as the reference's figures (../shared/ANCHORS.md).
``peakmem_`` is asv's peak resident set of the benchmark process (set-up included: imports,
the network, its batch and one radius-estimating pass without gradients).
"""
from __future__ import annotations

import torch

from suites.lieconv_ratios import build, call, workloads

THREADS = 2
WORKLOADS = {workload.name: workload for workload in workloads(quick=False)}


class LieConvPasses:
    """One forward or forward + backward call of a workload's network on its batch."""

    params = [list(WORKLOADS)]
    param_names = ["workload"]
    timeout = 600.0
    # a call takes about a second: time one call at a time, 2 to 5 samples
    number = 1
    repeat = (2, 5, 30.0)
    rounds = 1
    warmup_time = 0.0

    def setup(self, name: str) -> None:
        torch.set_num_threads(THREADS)
        model, inputs = build(WORKLOADS[name], "cpu")
        self.forward = call(model, inputs, "forward")
        self.forward_backward = call(model, inputs, "forward+backward")

    def time_forward(self, name: str) -> None:
        self.forward()

    def time_forward_backward(self, name: str) -> None:
        self.forward_backward()

    def peakmem_forward(self, name: str) -> None:
        self.forward()

    def peakmem_forward_backward(self, name: str) -> None:
        self.forward_backward()
