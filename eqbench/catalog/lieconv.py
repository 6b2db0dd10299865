"""Registrations of LieConv (Finzi et al. 2020) and LieConv + GIGP (Bujel et al. 2023), one entry per lifting group.

Every entry maps ``(pos, feat, mask)`` point clouds (``pos, one_hot, charges`` molecules) to an
invariant output and is checked against the group its lift is built for, acting on the
positions: T(2)/T(3) by translations, SO(2) and R>0 x SO(2) about the origin, SE(2), SO(3), SE(3).

**Expected verdicts.** ``exact`` where the network is a deterministic invariant function: a
deterministic lift (T(n), SO(2), R>0 x SO(2)), ``liftsamples = 1``, ``ds_frac = 1`` and every
point of the ball used (``nbhd=None``). ``approximate`` where it samples: random neighbours in
the ball (``nbhd`` below the ball size), farthest-point subsampling (``ds_frac < 1``) and
random lifts (SE(2), SO(3), SE(3) have non-trivial stabilisers); the checks below give these
``exact`` when the sampling is invariant (which meets ``approximate``). ``violated`` for the
negative controls: the trivial lift (raw coordinates as orbit coordinates) and the T(2) lift,
checked against rotations they cannot respect, deterministic and Monte-Carlo.

**Monte-Carlo entries are checked by** :func:`eqbench.check.check_stochastic` (``stochastic=`` in
the registration). Their networks draw from torch's global RNG, which the checker seeds per
evaluation; every draw is per batch row, so the rows of one evaluation are independent draws.

* **in distribution** (``"distribution"``) for the random lifts (SE(2), SO(3), SE(3); the lift of
  a point is a Haar sample of its stabiliser coset, so ``f(g.x)`` and ``f(x)`` have the same
  distribution but not the same value) and for the pixel clouds, whose farthest-point start
  and ball samples move with the input but break ties on the grid by index: ``repeats``
  independent evaluations of ``f(g.x)`` and of ``f(x)``, compared in the mean. ``exact`` means
  the mean difference sits within sampling noise (pooled ``z <= 3``);
* **with common random numbers** (``"crn"``) for ``lieconv-so2-mc``, whose ball samples are
  chosen by point index from invariant distances and so commute with rotations: ``f(x)`` and
  ``f(g.x)`` from the same draws, so only rounding may separate them (``exact``).

**Tolerances** come from the measured run-to-run spread ``s`` (the relative RMS deviation of one
evaluation, :attr:`~eqbench.check.StochasticResult.spread`): :func:`monte_carlo_tolerance` is
``sqrt(2 / repeats) s``, the standard error of the mean difference of ``repeats`` independent
pairs of draws, i.e. the bias the in-distribution check can just resolve, with ``s`` the largest
spread measured over seeds 0..19 (in brackets in each description; :data:`MEASURED_SPREAD`).
A model is ``violated`` when a row's mean difference, less three of its own standard errors,
exceeds it (``bias_bound``); under common random numbers the error itself is held to the same
bound. Each Monte-Carlo entry has a negative control ``<name>-control``, checked exactly as its
entry (same group, inputs, mode, repeats and tolerance): the same kind of network with the
trivial lift (raw coordinates as orbit coordinates), so Monte-Carlo through its ball samples,
which no rotation leaves invariant. Over seeds 0..19 (``repeats = 32``) every entry met
``approximate`` (119 of 120 runs ``exact``, one ``approximate`` at ``z = 3.1``; largest ``bias_bound`` 0.037, about
half its tolerance) and every control was ``violated`` with ``bias_bound`` at least 3.8 times
the tolerance (SE(3) 3.8, molecules 4.8, pixels 6.2, common random numbers 6.2, SO(3) 8.8,
SE(2) 9.3).

Sample counts are small for speed (at most 96 lifted points per cloud), which makes single
evaluations noisy (spread up to about 1 for the molecules); repeats average it down.
``eqbench sweep`` measures the error against ``nbhd`` or ``liftsamples``.

**Calibration.** A freshly initialised LieResNet is nearly blind to geometry: its BatchNorm
running statistics (mean 0, variance 1) leave the convolution branch about 1e-3 of the
residual path, so a model that breaks the symmetry changes its output by only ~1e-3 relative.
Each factory therefore runs one training-mode pass over a calibration batch
(:func:`calibrated`): BatchNorm takes that batch's statistics and the ball radius its
``fill``-quantile, as after training; GIGP's orbit bins are fitted on the same batch and its
Phi and orbit weights drawn away from their mean-pooling initialisation (:func:`trained_gigp`).

Sizes are small (two bottleneck blocks of 16 channels, clouds of 3 to 12 points, 9 x 9
images) so that each entry checks in about a second on one CPU core.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch import Tensor, nn

from eqbench.actions import Dict, Invariant, Mask, Points, Scalars
from eqbench.groups import SE2, SE3, SO2, SO3, Group, ScaleRotation, Translations
from eqbench.inputs import ImageInputs, InputGenerator, InputStructure, PointCloudInputs
from eqbench.models.lieconv import (
    ImgLieResNet,
    LieResNet,
    MolecLieResNet,
    image_point_cloud,
    lifting_group,
)
from eqbench.registry import get_entry, register_model

#: Atomic numbers of QM9's species H, C, N, O, F (the molecule front end's one-hot order).
QM9_CHARGES = (1, 6, 7, 8, 9)


# ----------------------------------------------------------------------------------- inputs
class ImagePointClouds(InputGenerator):
    """Smooth random images as LieConv pixel clouds: ``{"pos" (B, n, 2), "feat" (B, n, C), "mask" (B, n)}``.

    Images come from :class:`~eqbench.inputs.ImageInputs` (``size x size``, ``channels``) and are
    cut to the pixels within ``radius`` of the centre by
    :func:`~eqbench.models.lieconv.image_point_cloud` (the centre is the origin, the centre of
    rotation). Rotations move the pixel positions off the grid: the network sees a rotated point
    cloud, exactly. Only the seed varies.
    """

    def __init__(self, size: int = 9, channels: int = 1, radius: float = 4.5) -> None:
        self.images = ImageInputs(size=size, channels=channels)
        self.radius = float(radius)
        self.num_points = int(image_point_cloud(torch.zeros(1, channels, size, size), self.radius)[0].shape[1])

    def __repr__(self) -> str:
        return f"ImagePointClouds({self.images.size}x{self.images.size}, radius={self.radius:g}, points={self.num_points})"

    @property
    def action(self) -> Dict:
        return Dict(pos=Points(dim=2), feat=Scalars(), mask=Mask())

    def __call__(self, structure: InputStructure) -> dict[str, Tensor]:
        pos, feat, mask = image_point_cloud(self.images(structure), self.radius)
        return {"pos": pos.contiguous(), "feat": feat, "mask": mask}

    def structure_strategy(self, batch: int = 1) -> Any:
        return st.builds(self.default_structure, seed=st.integers(0, 2**31 - 1), batch=st.just(batch))

    def default_structure(self, seed: int = 0, batch: int = 1) -> InputStructure:
        return InputStructure(seed=seed, batch=batch, num_points=self.num_points)


class MoleculeInputs(InputGenerator):
    """Random molecules for :class:`~eqbench.models.lieconv.MolecLieResNet`: ``{"pos", "one_hot", "charges"}``.

    Positions and padding come from :class:`~eqbench.inputs.PointCloudInputs` (3-D, masked,
    generic and degenerate configurations); each real atom is one of QM9's species H, C, N, O, F
    with equal odds, ``one_hot`` ``(B, n, 5)`` and ``charges`` ``(B, n)`` (atomic numbers, float64)
    are zero on padded atoms, which is how the front end recognises them.
    """

    def __init__(self, min_atoms: int = 3, max_atoms: int = 12) -> None:
        self.clouds = PointCloudInputs(dim=3, min_points=min_atoms, max_points=max_atoms, mask=True)

    def __repr__(self) -> str:
        return f"MoleculeInputs(atoms={self.clouds.min_points}..{self.clouds.max_points})"

    @property
    def action(self) -> Dict:
        return Dict(pos=Points(dim=3), one_hot=Scalars(), charges=Scalars())

    def __call__(self, structure: InputStructure) -> dict[str, Tensor]:
        generator = self.generator(structure)
        pos, mask = self.clouds.positions(structure, generator)
        species = torch.randint(len(QM9_CHARGES), mask.shape, generator=generator)
        one_hot = F.one_hot(species, len(QM9_CHARGES)).to(torch.float64) * mask[..., None]
        charges = torch.tensor(QM9_CHARGES, dtype=torch.float64)[species] * mask
        return {"pos": pos, "one_hot": one_hot, "charges": charges}

    def structure_strategy(self, batch: int = 1) -> Any:
        return self.clouds.structure_strategy(batch)

    def draw_structure(self, draw: Any, batch: int = 1) -> InputStructure:
        return self.clouds.draw_structure(draw, batch)

    def default_structure(self, seed: int = 0, batch: int = 1) -> InputStructure:
        return self.clouds.default_structure(seed, batch)


def real_points(value: dict[str, Tensor]) -> Tensor:
    """The ``(B, n)`` mask of real points of a point-cloud value (``mask``) or a molecule (``charges > 0``)."""
    return value["mask"] if "mask" in value else value["charges"] > 0


# --------------------------------------------------------------------- preparing networks
CALIBRATION_SEED = 2**20
CALIBRATION_BATCH = 8


def as_float32(value: dict[str, Tensor]) -> dict[str, Tensor]:
    """``value`` with its floating tensors cast to float32 (the dtype the networks run in)."""
    return {key: t.float() if t.is_floating_point() else t for key, t in value.items()}


@torch.no_grad()
def calibrated(network: LieResNet, inputs: InputGenerator) -> LieResNet:
    """``network`` after one training-mode pass over a calibration batch, in evaluation mode (module docstring).

    BatchNorm momentum is 1 during the pass, so every running mean and variance becomes the
    calibration batch's; the ball radius starts at the ``fill``-quantile of its distances and
    takes one adaptation step. GIGP bins are fitted on the batch first (:func:`trained_gigp`).
    """
    value = as_float32(inputs(inputs.default_structure(seed=CALIBRATION_SEED, batch=CALIBRATION_BATCH)))
    if network.pool is not None:
        trained_gigp(network, value["pos"], real_points(value))
    norms = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.momentum = 1.0
    network.train()
    network(**value)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    return network.eval()


@torch.no_grad()
def trained_gigp(network: LieResNet, pos: Tensor, mask: Tensor) -> None:
    """Fit GIGP's orbit bins on ``pos`` and draw Phi's last layer and the orbit weights ``w_k`` as after training.

    At initialisation GIGP is global mean pooling exactly (Phi's last layer zero, ``w_k = 1``),
    which would leave the orbit bins out of the check; here ``Phi`` gets ``N(0, 0.5^2)`` output
    weights and ``w_k`` is uniform on ``[0.5, 1.5]`` (torch's global RNG, seeded by the registry).
    """
    network.fit_orbit_bins(pos, mask)
    nn.init.normal_(network.pool.phi[-1].weight, std=0.5)
    nn.init.uniform_(network.pool.orbit_weights, 0.5, 1.5)


# ------------------------------------------------------------------------------ registration
#: Small LieResNets: two bottleneck blocks of 16 channels (4 in the convolution), ball fill 1/2.
NETWORK = {"k": 16, "num_layers": 2, "fill": 0.5}
EXACT_CHECK = {"n_inputs": 2, "n_elements": 8, "search_examples": 10}
CLOUDS_2D = PointCloudInputs(dim=2, features=2, mask=True, min_points=3, max_points=12)
CLOUDS_3D = PointCloudInputs(dim=3, features=2, mask=True, min_points=3, max_points=12)
PIXELS = ImagePointClouds()
MOLECULES = MoleculeInputs()


def lieconv_model(
    name: str,
    *,
    group: Group,
    inputs: InputGenerator,
    description: str,
    expected: str = "exact",
) -> Callable[[Callable[[], nn.Module]], Callable[[], nn.Module]]:
    """``register_model`` for a deterministic LieConv network (:data:`EXACT_CHECK`): the inputs' action in, an invariant out."""
    return register_model(
        name, group=group, in_action=inputs.action, out_action=Invariant(), inputs=inputs, expected=expected,
        description=description, check_options=EXACT_CHECK,
    )


def cloud_network(lift: str, inputs: InputGenerator, **options: Any) -> LieResNet:
    """A calibrated :data:`NETWORK`-sized LieResNet on ``inputs`` (2 features) with the lifting group ``lift``."""
    return calibrated(LieResNet(2, 1, group=lifting_group(lift), **{**NETWORK, **options}), inputs)


def image_network(lift: str, total_ds: float = 1.0, nbhd: int | None = None, **options: Any) -> ImgLieResNet:
    """A calibrated two-layer image LieResNet on :data:`PIXELS` (ball fill 1/4, 16 channels, one output)."""
    network = ImgLieResNet(
        total_ds=total_ds, num_layers=2, group=lifting_group(lift), fill=0.25, k=16, nbhd=nbhd, num_targets=1, **options
    )
    return calibrated(network, PIXELS)


def molecule_network(lift: str, **options: Any) -> MolecLieResNet:
    """A calibrated :data:`NETWORK`-sized molecule LieResNet on :data:`MOLECULES` (charges scaled by 9, powers 0..2)."""
    network = MolecLieResNet(len(QM9_CHARGES), max(QM9_CHARGES), group=lifting_group(lift), **{**NETWORK, **options})
    return calibrated(network, MOLECULES)


# ---------------------------------------------------------------------------- exact entries
@lieconv_model("lieconv-t2", group=Translations(2), inputs=CLOUDS_2D, description="LieConv, T(2) lift, every ball point (exact)")
def lieconv_t2() -> LieResNet:
    return cloud_network("T2", CLOUDS_2D)


@lieconv_model("lieconv-so2", group=SO2(), inputs=CLOUDS_2D, description="LieConv, SO(2) lift, every ball point (exact)")
def lieconv_so2() -> LieResNet:
    return cloud_network("SO2", CLOUDS_2D)


@lieconv_model(
    "lieconv-rxso2", group=ScaleRotation(), inputs=CLOUDS_2D, description="LieConv, R>0 x SO(2) lift, every ball point (exact)"
)
def lieconv_rxso2() -> LieResNet:
    return cloud_network("RxSO2", CLOUDS_2D)


@lieconv_model("lieconv-t3", group=Translations(3), inputs=CLOUDS_3D, description="LieConv, T(3) lift, every ball point (exact)")
def lieconv_t3() -> LieResNet:
    return cloud_network("T3", CLOUDS_3D)


@lieconv_model(
    "lieconv-t2-image", group=Translations(2), inputs=PIXELS, description="image LieConv (pixels as points), T(2) lift, no subsampling (exact)"
)
def lieconv_t2_image() -> ImgLieResNet:
    return image_network("T2")


@lieconv_model(
    "lieconv-so2-image", group=SO2(), inputs=PIXELS, description="image LieConv (pixels as points), SO(2) lift, no subsampling (exact)"
)
def lieconv_so2_image() -> ImgLieResNet:
    return image_network("SO2")


@lieconv_model("lieconv-so2-gigp", group=SO2(), inputs=PIXELS, description="image LieConv + GIGP over pixel radii, SO(2) lift (exact)")
def lieconv_so2_gigp() -> ImgLieResNet:
    return image_network("SO2", pool="gigp", gigp_bins=8)


@lieconv_model("lieconv-t3-molecule", group=Translations(3), inputs=MOLECULES, description="molecule LieConv, T(3) lift (exact)")
def lieconv_t3_molecule() -> MolecLieResNet:
    return molecule_network("T3")


@lieconv_model(
    "lieconv-t3-molecule-gigp",
    group=Translations(3),
    inputs=MOLECULES,
    description="molecule LieConv + GIGP over distances to the centroid, T(3) lift (exact)",
)
def lieconv_t3_molecule_gigp() -> MolecLieResNet:
    return molecule_network("T3", pool="gigp", orbit_labels="centroid", gigp_bins=8)


# ---------------------------------------------------------------------- Monte-Carlo entries
#: Independent evaluations of each side in a Monte-Carlo check (two times 32 forward passes).
MONTE_CARLO_REPEATS = 32
#: Eight inputs, one element each: the output scale that relative errors divide by is an RMS
#: over eight outputs, and each row's mean difference has 32 draws on each side.
MONTE_CARLO_CHECK = {"repeats": MONTE_CARLO_REPEATS, "n_inputs": 8, "n_elements": 1}
#: Largest run-to-run spread of each Monte-Carlo entry over seeds 0..19 (``spread`` of the
#: check record, rounded up to two digits): ``eqbench check NAME --seed S --json FILE``.
MEASURED_SPREAD = {
    "lieconv-so2-mc": 0.32,
    "lieconv-so2-image-mc": 0.29,
    "lieconv-se2": 0.24,
    "lieconv-so3": 0.24,
    "lieconv-se3": 0.69,
    "lieconv-se3-molecule-gigp": 0.99,
}


def monte_carlo_tolerance(spread: float, repeats: int = MONTE_CARLO_REPEATS) -> float:
    """``sqrt(2 / repeats) * spread``: the standard error of the relative mean difference of ``repeats``
    independent pairs of evaluations with run-to-run spread ``spread`` (module docstring)."""
    return math.sqrt(2.0 / repeats) * spread


def monte_carlo_model(
    name: str, *, group: Group, inputs: InputGenerator, mode: str, description: str, expected: str = "approximate"
) -> Callable[[Callable[[], nn.Module]], Callable[[], nn.Module]]:
    """``register_model`` for a Monte-Carlo LieConv network checked by ``check_stochastic`` in ``mode``
    (:data:`MONTE_CARLO_CHECK`), with the tolerance :func:`monte_carlo_tolerance` of its measured spread."""
    return register_model(
        name, group=group, in_action=inputs.action, out_action=Invariant(), inputs=inputs, expected=expected,
        tolerance=monte_carlo_tolerance(MEASURED_SPREAD[name]), description=f"{description} [{MEASURED_SPREAD[name]}]",
        check_options=MONTE_CARLO_CHECK, stochastic=mode,
    )


def control_of(name: str, description: str) -> Callable[[Callable[[], nn.Module]], Callable[[], nn.Module]]:
    """``register_model`` for the negative control ``<name>-control`` of a Monte-Carlo entry: its group,
    inputs, mode, options and tolerance, expected ``violated``."""
    entry = get_entry(name)
    return register_model(
        f"{name}-control", group=entry.group, in_action=entry.in_action, out_action=entry.out_action,
        inputs=entry.inputs, expected="violated", tolerance=entry.tolerance, description=f"negative control of {name}: {description}",
        check_options=entry.check_options, stochastic=entry.stochastic,
    )


# SO(3) takes an odd number of lift samples: with an even number, samples j and j + L/2 of one
# point differ by a half turn, where the axis-angle logarithm that the weight network reads is
# discontinuous, so rounding picks its sign.
@monte_carlo_model(
    "lieconv-so2-mc",
    group=SO2(),
    inputs=CLOUDS_2D,
    mode="crn",
    description="LieConv, SO(2) lift, 3 points sampled from each ball (Monte-Carlo; common random numbers)",
)
def lieconv_so2_mc() -> LieResNet:
    return cloud_network("SO2", CLOUDS_2D, nbhd=3)


@monte_carlo_model(
    "lieconv-so2-image-mc",
    group=SO2(),
    inputs=PIXELS,
    mode="distribution",
    description="image LieConv, SO(2) lift, 8 ball samples, farthest points 1/2 per layer (Monte-Carlo; in distribution)",
)
def lieconv_so2_image_mc() -> ImgLieResNet:
    return image_network("SO2", total_ds=0.25, nbhd=8)


@monte_carlo_model(
    "lieconv-se2",
    group=SE2(),
    inputs=CLOUDS_2D,
    mode="distribution",
    description="LieConv, SE(2) lift with 8 stratified stabiliser samples (Monte-Carlo; in distribution)",
)
def lieconv_se2() -> LieResNet:
    return cloud_network("SE2", CLOUDS_2D, liftsamples=8)


@monte_carlo_model(
    "lieconv-so3",
    group=SO3(),
    inputs=CLOUDS_3D,
    mode="distribution",
    description="LieConv, SO(3) lift with 3 stratified stabiliser samples (Monte-Carlo; in distribution)",
)
def lieconv_so3() -> LieResNet:
    return cloud_network("SO3", CLOUDS_3D, liftsamples=3)


@monte_carlo_model(
    "lieconv-se3",
    group=SE3(),
    inputs=CLOUDS_3D,
    mode="distribution",
    description="LieConv, SE(3) lift with 2 Haar stabiliser samples (Monte-Carlo; in distribution)",
)
def lieconv_se3() -> LieResNet:
    return cloud_network("SE3", CLOUDS_3D, liftsamples=2)


@monte_carlo_model(
    "lieconv-se3-molecule-gigp",
    group=SE3(),
    inputs=MOLECULES,
    mode="distribution",
    description="molecule LieConv + GIGP over distances to the centroid, SE(3) lift with 2 samples (Monte-Carlo; in distribution)",
)
def lieconv_se3_molecule_gigp() -> MolecLieResNet:
    return molecule_network("SE3", liftsamples=2, pool="gigp", orbit_labels="centroid", gigp_bins=8)


# ------------------------------------------------------------- Monte-Carlo negative controls
@control_of("lieconv-so2-mc", "the trivial lift, 3 ball samples, under common random numbers")
def lieconv_so2_mc_control() -> LieResNet:
    return cloud_network("trivial2", CLOUDS_2D, nbhd=3)


@control_of("lieconv-so2-image-mc", "the trivial lift on pixels, 8 ball samples, farthest points 1/2 per layer")
def lieconv_so2_image_mc_control() -> ImgLieResNet:
    return image_network("trivial2", total_ds=0.25, nbhd=8)


@control_of("lieconv-se2", "the trivial lift, 3 ball samples")
def lieconv_se2_control() -> LieResNet:
    return cloud_network("trivial2", CLOUDS_2D, nbhd=3)


@control_of("lieconv-so3", "the trivial lift, 3 ball samples")
def lieconv_so3_control() -> LieResNet:
    return cloud_network("trivial3", CLOUDS_3D, nbhd=3)


@control_of("lieconv-se3", "the trivial lift, 3 ball samples")
def lieconv_se3_control() -> LieResNet:
    return cloud_network("trivial3", CLOUDS_3D, nbhd=3)


@control_of("lieconv-se3-molecule-gigp", "molecule LieConv + GIGP with the trivial lift, 3 ball samples")
def lieconv_se3_molecule_gigp_control() -> MolecLieResNet:
    return molecule_network("trivial3", nbhd=3, pool="gigp", orbit_labels="centroid", gigp_bins=8)


# ------------------------------------------------------------- deterministic negative controls
@lieconv_model(
    "lieconv-trivial",
    group=SO2(),
    inputs=CLOUDS_2D,
    expected="violated",
    description="negative control: LieConv with the trivial lift (raw coordinates) checked against rotations",
)
def lieconv_trivial() -> LieResNet:
    return cloud_network("trivial2", CLOUDS_2D)


@lieconv_model(
    "lieconv-t2-rotations",
    group=SO2(),
    inputs=CLOUDS_2D,
    expected="violated",
    description="negative control: the T(2) lift (translation invariant only) checked against rotations",
)
def lieconv_t2_rotations() -> LieResNet:
    return cloud_network("T2", CLOUDS_2D)
