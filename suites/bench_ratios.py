"""asv ``track_*`` benchmarks of the side-by-side ratios, so that their history is kept with the rest.

Each ratio is measured inside one benchmark call, both sides timed alternately
(:func:`suites.timing.interleaved_medians`), by the same functions as the ratio scripts
(``python -m suites.<script>`` prints the full tables): lower is better for every ratio here.

* ``CheckerOverhead.track_overhead``: ``check_equivariance``'s time over the part of it spent in the
  model's forward passes (:mod:`suites.checker_overhead`'s in-check split; DistanceMLP, 256
  hidden units, 32 points, E(3) x S_n);
* ``E3nnComparison.track_e3nn_per_eqbench``: e3nn's ``assert_equivariant`` elements per second over
  eqbench's, i.e. the inverse of eqbench's speed-up (:mod:`suites.e3nn_comparison`, target <= 1/5);
* ``LieConvReference.track_time``: eqbench's LieConv seconds per batch over the reference
  LieConv's STORED figure for the same workload (:mod:`suites.lieconv_ratios`,
  ../shared/ANCHORS.md, another day; ``python -m suites.lieconv_ratios --reference PATH`` times
  the reference live), and ``track_peak_memory`` the peak resident set of a fresh process
  doing forward + backward over the reference's stored peak (target <= 0.5 for both);
* ``FrameAveragingSpeed.track_fa_gnn_per_egnn``: FA-GNN's forward time over EGNN's on 100 n-body
  systems of 5 particles (:mod:`suites.fa_ratios`; the paper's figure is 0.66 on a GPU).

The allocator is pinned as the scripts pin it (:func:`suites.timing.pin_allocator`).
"""
from __future__ import annotations

import statistics

import torch

from suites import checker_overhead, e3nn_comparison, fa_ratios, lieconv_ratios
from suites.timing import interleaved_medians, paired_ratios, pin_allocator

LIECONV_WORKLOADS = {workload.name: workload for workload in lieconv_ratios.workloads(quick=False)}
LIECONV_THREADS = 2
E3NN_CASES = ("TensorProduct", "Gate network", "cartesian_points harmonics")


class RatioBenchmark:
    """asv settings shared by the ratio benchmarks: one call per sample, a unitless value."""

    unit = "ratio"
    number = 1
    repeat = 1
    rounds = 1
    warmup_time = 0.0
    timeout = 900.0

    def setup(self, *params: object) -> None:
        pin_allocator()


class CheckerOverhead(RatioBenchmark):
    """The checker's time over its time inside the model's forward passes (target 1.1, defect above 1.3)."""

    params = [[0, 40]]
    param_names = ["search_examples"]
    ROUNDS = 7

    def setup(self, search_examples: int) -> None:
        super().setup(search_examples)
        self.model, self.model64, self.instrument = checker_overhead.instrumented_model(hidden=256)
        (self.check,) = checker_overhead.build_checks(self.model, 32, [search_examples]).values()

    def track_overhead(self, search_examples: int) -> float:
        _, _, samples = checker_overhead.measure_overhead(self.check, self.model, self.model64, self.instrument, self.ROUNDS)
        return statistics.median(paired_ratios(samples["check"], samples["inside"]))


class E3nnComparison(RatioBenchmark):
    """e3nn's group elements checked per second over eqbench's (random phase) on the same model."""

    params = [list(E3NN_CASES)]
    param_names = ["model"]
    ROUNDS = 9

    def setup(self, name: str) -> None:
        super().setup(name)
        cases = e3nn_comparison.build_cases(points=32, cloud_points=100)
        self.case = cases[E3NN_CASES.index(name)]

    def track_e3nn_per_eqbench(self, name: str) -> float:
        rate = e3nn_comparison.elements_per_second(e3nn_comparison.throughput(self.case, self.ROUNDS, search_examples=0))
        return rate["e3nn"] / rate["eqbench"]


class LieConvReference(RatioBenchmark):
    """eqbench's LieConv over the reference LieConv's figures, per paper workload (2 threads, CPU)."""

    params = [list(LIECONV_WORKLOADS), list(lieconv_ratios.MODES)]
    param_names = ["workload", "mode"]
    ROUNDS = 3

    def setup(self, name: str, mode: str) -> None:
        super().setup(name, mode)
        torch.set_num_threads(LIECONV_THREADS)
        model, inputs = lieconv_ratios.build(LIECONV_WORKLOADS[name], "cpu")
        self.call = lieconv_ratios.call(model, inputs, mode)

    def track_time(self, name: str, mode: str) -> float:
        seconds = interleaved_medians({"eqbench": self.call}, self.ROUNDS)["eqbench"]
        return seconds / lieconv_ratios.reference_seconds(name, mode)


class LieConvReferenceMemory(RatioBenchmark):
    """Peak resident set of a fresh process doing LieConv forward + backward, over the reference's peak."""

    params = [list(LIECONV_WORKLOADS)]
    param_names = ["workload"]

    def track_peak_memory(self, name: str) -> float:
        figures = lieconv_ratios.measure_in_subprocess(LIECONV_WORKLOADS[name], "forward+backward", LIECONV_THREADS)
        return figures["peak"] / lieconv_ratios.STORED[name].peak_bytes


class FrameAveragingSpeed(RatioBenchmark):
    """FA-GNN's forward time over EGNN's, 100 systems of 5 particles, 4 layers (Puny et al. 2022 setting)."""

    ROUNDS = 21

    def setup(self) -> None:
        super().setup()
        torch.set_num_threads(1)

    def track_fa_gnn_per_egnn(self) -> float:
        seconds = fa_ratios.forward_medians(100, 5, 4, self.ROUNDS, "cpu", names=("FA-GNN", "EGNN"))
        return seconds["FA-GNN"] / seconds["EGNN"]
