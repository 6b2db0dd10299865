"""Which symmetries does a model have? A scan of candidate symmetries and the model's Lie algebra of symmetries.

**Candidate scan.** For the model's input kind, each candidate group is checked with
:func:`~eqbench.check.check_equivariance` (random phase only: ``n_elements`` elements per input,
no search; :func:`~eqbench.check.check_stochastic` for models that sample), giving a verdict and
the largest relative error:

* points / vectors in R^d (d = 2, 3): ``translations-x`` ... (one axis each, when a field is
  points), ``rotations-xy`` ... (one coordinate plane each), ``reflections-x`` ... (one mirror
  each), ``scaling`` (uniform), ``permutations`` (S_n, when fields are per point);
* images and grid signals: ``translations-x``/``-y`` (sub-pixel shifts are interpolated),
  ``rotations-c4``, ``reflections-d4``, ``rotations-xy`` (continuous), ``permutations``, each
  only where the input action accepts it.

The one-parameter candidates are :class:`~eqbench.groups.generated.GeneratedGroup` (stated
parameter ranges there); mirrors are :class:`~eqbench.groups.generated.Mirror`.

**Lie-algebra profile** (inputs with points or vectors in R^d). The Lie derivative
``L_X f(x) = d/dt rho_out(e^{-tX}) f(rho_in(e^{tX}) x)`` is linear in ``X``
(:mod:`eqbench.check.lie`), so with the basis ``X_1 .. X_K`` of aff(d) = gl(d) + translations
(``K = d^2 + d``, :func:`~eqbench.groups.generated.affine_basis`) the matrix
``A[:, j] = L_{X_j} f(x_b)`` (all inputs ``b`` and outputs stacked, divided by
``sqrt(B) * scale``, ``scale`` the RMS output norm) has the symmetry algebra of ``f`` at these
inputs as its null space: ``L_{sum c_j X_j} f = A c``. The Gram matrix is ``A^T A``; its
singular values ``sigma_1 >= ... >= sigma_K`` are reported, and the algebra dimension is the
number with ``sigma < threshold`` (default :data:`ALGEBRA_THRESHOLD`, a relative Lie
derivative that float64 rounding stays far below and any real breaking far above); the same
count over the gl(d) columns alone is the dimension of the linear symmetry algebra. The
principal angles between that null space and the declared group's algebra (in the same
coordinates; Bjorck & Golub 1973: ``arccos`` of the singular values of ``Q_1^T Q_2``) say
whether the discovered symmetries are the declared ones. This is the null-space reading of
symmetry discovery (e.g. LieSD, Otto et al. 2023); L-conv (Dehmamy et al. 2021) compares
learned generators to the true one by cosine similarity, i.e. the cosine of this angle.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor, nn

from eqbench.actions import EdgeIndex, Mask, Points, Scalars, Tensors, Vectors
from eqbench.actions.base import Action, DataError
from eqbench.check.activations import field_actions
from eqbench.check.cases import InputSource
from eqbench.check.chain_rule import sanitized_lie_derivatives
from eqbench.check.equivariance import check_equivariance
from eqbench.check.forward import call_model, dtype_copy, model_name
from eqbench.check.metrics import TINY
from eqbench.check.stochastic import check_stochastic
from eqbench.groups import SO2, Cyclic, Dihedral, Symmetric
from eqbench.groups.base import Group
from eqbench.groups.generated import (
    AXES,
    LOG_SCALE_BOUND,
    ROTATION_BOUND,
    TRANSLATION_BOUND,
    GeneratedGroup,
    Mirror,
    affine_basis,
    affine_coordinates,
    rotation_generator,
    scaling_generator,
    translation_generator,
)

#: Field actions that the plane's motions do not act on as a grid (scalars, masks, graphs) or that the point scan covers.
PLAIN_FIELDS = (Scalars, Mask, EdgeIndex, Points, Vectors, Tensors)
#: Singular values (relative Lie derivatives) below this count as symmetries of the algebra profile.
ALGEBRA_THRESHOLD = 1e-6
#: Elements per input of each candidate check (with 4 inputs: 24 rows, 6 forward-equivalents, plus the noise floor's
#: float64 pass: within the issue's 20 forward-equivalents per candidate).
PROFILE_ELEMENTS = 6
PROFILE_INPUTS = 4
#: Constraints (inputs x output numbers) per aff(d) generator that the algebra profile asks for.
ROWS_PER_GENERATOR = 4


@dataclass
class SymmetryCheck:
    """One candidate symmetry: its name, the group checked, the verdict and the largest relative error."""

    symmetry: str
    group: str
    verdict: str
    max_rel_error: float

    def to_record(self) -> dict[str, Any]:
        return {"symmetry": self.symmetry, "verdict": self.verdict, "max_rel_error": self.max_rel_error, "group": self.group}


@dataclass
class AlgebraProfile:
    """The spectrum of the Lie-derivative operator on aff(d) and what it says (module docstring)."""

    dimension: int
    linear_dimension: int
    singular_values: list[float]
    generators: list[str]
    null_space: list[list[float]]
    threshold: float
    declared: str | None = None
    principal_angles: list[float] = field(default_factory=list)

    def to_record(self) -> dict[str, Any]:
        return {
            "algebra_dimension": self.dimension,
            "linear_algebra_dimension": self.linear_dimension,
            "singular_values": self.singular_values,
            "threshold": self.threshold,
            "generators": self.generators,
            "null_space": self.null_space,
            "declared": self.declared,
            "principal_angles": self.principal_angles,
        }


@dataclass
class SymmetryProfile:
    """The outcome of :func:`profile`: candidate checks and the algebra profile (``None`` without points or vectors)."""

    model: str
    checks: list[SymmetryCheck]
    algebra: AlgebraProfile | None
    notes: list[str] = field(default_factory=list)

    def holds(self) -> list[str]:
        """The candidate symmetries whose verdict is exact or approximate."""
        return [c.symmetry for c in self.checks if c.verdict in ("exact", "approximate")]

    def to_records(self) -> list[dict[str, Any]]:
        """One record per candidate, then the algebra record (``algebra_dimension`` 0 and no values without one)."""
        algebra = self.algebra.to_record() if self.algebra else {"algebra_dimension": 0, "singular_values": [], "notes": self.notes}
        return [c.to_record() for c in self.checks] + [algebra]

    def __str__(self) -> str:
        lines = [f"{self.model}: holds {', '.join(self.holds()) or 'nothing scanned'}"]
        lines += [f"  {c.symmetry}: {c.verdict} ({c.max_rel_error:.3g})" for c in self.checks]
        if self.algebra is not None:
            values = ", ".join(f"{v:.2g}" for v in self.algebra.singular_values)
            algebra = self.algebra
            lines.append(f"  algebra dimension {algebra.dimension} in aff(d), {algebra.linear_dimension} in gl(d); singular values {values}")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def candidate_symmetries(in_action: Action, x: Any) -> list[tuple[str, Group]]:
    """The candidate ``(name, group)`` pairs for inputs ``x`` of ``in_action`` (module docstring), those the action accepts."""
    fields = list(zip(field_actions(in_action), in_action.leaves(x)))
    spatial = [(action, leaf) for action, leaf in fields if isinstance(action, (Points, Vectors))]
    found: list[tuple[str, Group]] = []
    if spatial:
        d = spatial[0][1].tensor.shape[-1]
        if any(isinstance(action, Points) for action, _ in spatial):
            found += [(f"translations-{AXES[i]}", _translations(d, i)) for i in range(d)]
        found += [(f"rotations-{AXES[i]}{AXES[j]}", _rotations(d, i, j)) for i in range(d) for j in range(i + 1, d)]
        found += [(f"reflections-{AXES[i]}", Mirror(d, i)) for i in range(d)]
        found.append(("scaling", GeneratedGroup(scaling_generator(d), "scaling", LOG_SCALE_BOUND)))
    elif any(not isinstance(action, PLAIN_FIELDS) for action, _ in fields):  # an image or grid action: try the plane's motions
        found += [("translations-x", _translations(2, 0)), ("translations-y", _translations(2, 1))]
        found += [("rotations-c4", Cyclic(4)), ("reflections-d4", Dihedral(4)), ("rotations-xy", SO2())]
    if in_action.num_points(x) is not None:
        found.append(("permutations", Symmetric()))
    return [(name, group) for name, group in found if _accepts(in_action, group, x)]


def profile(
    model: Callable[..., Any],
    inputs: Any,
    in_action: Action,
    out_action: Action,
    *,
    declared: Group | None = None,
    tolerance: float = 1e-2,
    stochastic: str | None = None,
    seed: int = 0,
    n_inputs: int = PROFILE_INPUTS,
    n_elements: int = PROFILE_ELEMENTS,
    threshold: float = ALGEBRA_THRESHOLD,
    name: str | None = None,
) -> SymmetryProfile:
    """Scan the candidate symmetries of ``model`` and profile its Lie algebra of symmetries (module docstring).

    ``declared`` is the group the model is meant to have (principal angles to its algebra);
    ``stochastic`` a mode of :func:`~eqbench.check.check_stochastic` for a model that samples.
    """
    label = name or model_name(model)
    source = InputSource(inputs, in_action)
    _, x64 = source.random(n_inputs, seed)
    checks = []
    for symmetry, group in candidate_symmetries(in_action, x64):
        common = {"tolerance": tolerance, "seed": seed, "n_inputs": n_inputs, "n_elements": n_elements, "name": label}
        if stochastic is None:
            result = check_equivariance(model, group, inputs, in_action, out_action, search_examples=0, **common)
        else:
            result = check_stochastic(model, group, inputs, in_action, out_action, mode=stochastic, repeats=4, **common)
        checks.append(SymmetryCheck(symmetry, group.name, str(result.verdict), float(result.max_rel_error)))
    notes: list[str] = []
    algebra = None
    spatial = [leaf for action, leaf in zip(field_actions(in_action), in_action.leaves(x64)) if isinstance(action, (Points, Vectors))]
    if spatial:
        dim = spatial[0].tensor.shape[-1]
        algebra, notes = algebra_profile(model, source, in_action, out_action, dim, declared, threshold, seed, n_inputs)
    else:
        notes.append("no points or vectors in the input: no Lie-algebra profile")
    return SymmetryProfile(label, checks, algebra, notes)


def algebra_profile(
    model: Callable[..., Any],
    source: InputSource,
    in_action: Action,
    out_action: Action,
    dim: int,
    declared: Group | None = None,
    threshold: float = ALGEBRA_THRESHOLD,
    seed: int = 0,
    n_inputs: int = PROFILE_INPUTS,
) -> tuple[AlgebraProfile, list[str]]:
    """The spectrum of the Lie derivatives of ``model`` over aff(``dim``) (module docstring), and notes.

    The null space is only meaningful with at least :data:`ROWS_PER_GENERATOR` constraints (inputs
    times output numbers) per generator: with fewer, more inputs are drawn from a generator (a
    concrete input value cannot grow: the dimension is then an upper bound, and a note says so).
    """
    basis, names = affine_basis(dim)
    group = GeneratedGroup(basis, f"Aff({dim})", 0.5)
    k = basis.shape[0]
    notes: list[str] = []
    _, x = source.random(n_inputs, seed)
    numbers = _output_numbers(model, in_action.index(x, slice(0, 1)), in_action, out_action)
    if n_inputs * numbers < ROWS_PER_GENERATOR * k:
        if source.generator is not None:
            _, x = source.random(math.ceil(ROWS_PER_GENERATOR * k / max(numbers, 1)), seed)
        else:
            notes.append(f"{n_inputs * numbers} output numbers for {k} generators: the algebra dimension is an upper bound")
    derivative, outputs = _lie_rows(model, group, x, in_action, out_action, seed)
    batch = outputs.shape[0]
    scale = float(torch.sqrt(outputs.reshape(batch, -1).square().sum(dim=1).mean()))
    operator = derivative.reshape(k, -1).T / (math.sqrt(batch) * (scale + TINY))  # column j: L_{X_j} f over inputs and outputs
    sigma, null = _spectrum(operator, threshold)
    result = AlgebraProfile(
        dimension=int(null.shape[0]),
        linear_dimension=int(_spectrum(operator[:, : dim * dim], threshold)[1].shape[0]),
        singular_values=sigma.tolist(),
        generators=names,
        null_space=null.tolist(),
        threshold=threshold,
    )
    if declared is not None and declared.lie_algebra is not None and declared.space_dim == dim:
        result.declared = declared.name
        result.principal_angles = principal_angles(null.T, affine_coordinates(declared.lie_algebra).T)
    return result, notes


def _output_numbers(model: Callable[..., Any], x: Any, in_action: Action, out_action: Action) -> int:
    """How many floating numbers the model outputs for one input (one float64 forward of batch 1)."""
    twin = dtype_copy(model, torch.float64) if isinstance(model, nn.Module) else model
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        out = call_model(twin, in_action.cast(x, torch.float64))
    return sum(leaf.tensor[0].numel() for leaf in out_action.leaves(out) if leaf.tensor.is_floating_point())


def _lie_rows(model: Callable[..., Any], group: Group, x: Any, in_action: Action, out_action: Action, seed: int) -> tuple[Tensor, Tensor]:
    """The Lie derivatives per generator and the outputs (:func:`~eqbench.check.chain_rule.sanitized_lie_derivatives`)."""
    derivative, outputs, _ = sanitized_lie_derivatives(model, group, x, in_action, out_action, seed)
    return derivative, outputs


def _spectrum(operator: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """All ``K`` singular values of ``operator`` (``(rows, K)``; zeros where ``rows < K``) and its null space ``(n, K)``."""
    k = operator.shape[1]
    _, sigma, vh = torch.linalg.svd(operator, full_matrices=True)
    sigma = torch.cat([sigma, torch.zeros(k - sigma.shape[0], dtype=sigma.dtype)])
    return sigma, vh[sigma < threshold]


def principal_angles(a: Tensor, b: Tensor) -> list[float]:
    """Principal angles (radians, ascending) between the column spans of ``a`` and ``b``; ``[]`` when either is empty."""
    if a.shape[1] == 0 or b.shape[1] == 0:
        return []
    qa, _ = torch.linalg.qr(a)
    qb, _ = torch.linalg.qr(b)
    cosines = torch.linalg.svdvals(qa.T @ qb).clamp(-1.0, 1.0)
    return torch.arccos(cosines).tolist()


def _translations(dim: int, axis: int) -> GeneratedGroup:
    return GeneratedGroup(translation_generator(dim, axis), f"T-{AXES[axis]}", TRANSLATION_BOUND)


def _rotations(dim: int, i: int, j: int) -> GeneratedGroup:
    return GeneratedGroup(rotation_generator(dim, i, j), f"SO(2)-{AXES[i]}{AXES[j]}", ROTATION_BOUND)


def _accepts(in_action: Action, group: Group, x: Any) -> bool:
    """Whether ``in_action`` acts on ``x`` by elements of ``group`` (grid actions refuse some groups)."""
    try:
        num_points = in_action.num_points(x)
        g = group.sample(in_action.batch_size(x), torch.Generator().manual_seed(0), num_points)
        in_action.apply(g, x)
    except (DataError, ValueError, RuntimeError):
        return False
    return True
