"""asv benchmarks of the checker and of group sampling.

Run from the repository root (see asv.conf.json)::

    eqbench bench record --quick --bench bench_checker     # recorded for HEAD in the shared history (README)
    eqbench bench compare HEAD~1 HEAD                      # asv's table; exit 1 on a regression

Checks use registered models (:mod:`eqbench.catalog.controls`) with the registry's group,
actions and inputs, but explicit checker sizes so that a benchmark measures the same work
whatever the registration's settings become: ``distance-mlp`` (exact, E(3) x S_n, invariant
output), ``egnn-layer`` (exact, E(3) x S_n, a tuple of points and features out) and
``coordinate-mlp`` (violated: adds the counterexample, its shrinking and the float64 diagnosis).
"""
from __future__ import annotations

import torch

from eqbench import registry
from eqbench.check import check_equivariance
from eqbench.groups import E3, O3, SE3, SO2, SO3, Dihedral, Symmetric

CHECKED_MODELS = ["distance-mlp", "egnn-layer", "coordinate-mlp"]
#: Random phase (inputs x elements) and hypothesis search size of every benchmarked check.
N_INPUTS, N_ELEMENTS, SEARCH_EXAMPLES = 4, 16, 20
GROUPS = {
    "SO(2)": SO2,
    "D(8)": lambda: Dihedral(8),
    "SO(3)": SO3,
    "O(3)": O3,
    "SE(3)": SE3,
    "E(3) x S_n": lambda: E3() * Symmetric(),
}
SAMPLES = 4096
POINTS = 32


class CheckEquivariance:
    """``check_equivariance`` on registered models: random phase alone and with the search."""

    params = [CHECKED_MODELS]
    param_names = ["model"]
    timeout = 300.0
    # a check is long enough to time one call at a time: 2 to 5 samples, one process
    number = 1
    repeat = (2, 5, 20.0)
    rounds = 1
    warmup_time = 0.0

    def setup(self, name: str) -> None:
        registry.load_builtin()
        self.entry = registry.get_entry(name)
        self.model = registry.build_model(self.entry, seed=0)

    def check(self, search_examples: int) -> None:
        entry = self.entry
        check_equivariance(
            self.model, entry.group, entry.inputs, entry.in_action, entry.out_action,
            expected=entry.expected, tolerance=entry.tolerance, seed=0,
            n_inputs=N_INPUTS, n_elements=N_ELEMENTS, search_examples=search_examples,
        )

    def time_random_phase(self, name: str) -> None:
        self.check(0)

    def time_with_search(self, name: str) -> None:
        self.check(SEARCH_EXAMPLES)

    def peakmem_with_search(self, name: str) -> None:
        self.check(SEARCH_EXAMPLES)


class GroupSampling:
    """Haar sampling of ``SAMPLES`` elements (parameters and their concrete Element) per group."""

    params = [list(GROUPS)]
    param_names = ["group"]

    def setup(self, name: str) -> None:
        self.group = GROUPS[name]()
        self.generator = torch.Generator()

    def time_sample(self, name: str) -> None:
        self.generator.manual_seed(0)
        self.group.sample(SAMPLES, self.generator, num_points=POINTS)

    def peakmem_sample(self, name: str) -> None:
        self.generator.manual_seed(0)
        self.group.sample(SAMPLES, self.generator, num_points=POINTS)
