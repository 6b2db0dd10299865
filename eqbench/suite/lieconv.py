"""Registrations of LieConv (Finzi et al. 2020) and LieConv + GIGP (Bujel et al. 2023), one entry per lifting group.

Every entry maps ``(pos, feat, mask)`` point clouds (``pos, one_hot, charges`` molecules) to an
invariant output and is checked against the group its lift is built for, acting on the
positions: T(2)/T(3) by translations, SO(2) and R>0 x SO(2) about the origin, SE(2), SO(3), SE(3).

**Expected verdicts.** ``exact`` where the network is a deterministic invariant function: a
deterministic lift (T(n), SO(2), R>0 x SO(2)), ``liftsamples = 1``, ``ds_frac = 1`` and every
point of the ball used (``nbhd=None``). ``approximate`` where it samples: random neighbours in
the ball (``nbhd`` below the ball size), farthest-point subsampling (``ds_frac < 1``) and
random lifts (SE(2), SO(3), SE(3) have non-trivial stabilisers). ``violated`` for the negative
controls: the trivial lift (raw coordinates as orbit coordinates) and the T(2) lift, both
checked against rotations they cannot respect.

**Monte-Carlo entries are checked with common random numbers** (:class:`CommonRandomNumbers`):
each item of a batch is evaluated alone with the network's generator re-seeded, so ``f(x)`` and
``f(g.x)`` use the same draws, the batch axis holds independent items (as the checker
requires), and the checker's float64 twin draws the same numbers as the float32 model, so
the noise floor is rounding, not sampling. Under common random numbers, ball samples and the
farthest-point start are chosen by point index from invariant distances, so on generic point
clouds they commute with the group and those entries come out ``exact`` (which meets
``approximate``); ties in distance on a pixel grid and the stabiliser samples of random lifts
do not commute, so those entries are ``approximate``. Their search is off: it hunts rare
structural failures, while a random lift's error is Monte-Carlo noise, which the random
phase bounds and ``eqbench sweep`` measures against the sample count (``--param nbhd`` or
``--param liftsamples``; :meth:`CommonRandomNumbers.monte_carlo_model` is the freely sampling
network the sweep uses).

**Calibration.** A freshly initialised LieResNet is nearly blind to geometry: its BatchNorm
running statistics (mean 0, variance 1) leave the convolution branch about 1e-3 of the
residual path, so a model that breaks the symmetry changes its output by only ~1e-3 relative.
Each factory therefore runs one training-mode pass over a calibration batch
(:func:`calibrated`): BatchNorm takes that batch's statistics and the ball radius its
``fill``-quantile, as after training; GIGP's orbit bins are fitted on the same batch and its
Phi and orbit weights drawn away from their mean-pooling initialisation (:func:`trained_gigp`).

Sizes are small (two bottleneck blocks of 16 channels, clouds of 3 to 12 points, 9 x 9
images) so that each entry checks in about a second on one CPU core.

**Tolerances** of the approximate entries are the largest error measured over seeds 0..19
(in brackets in each description), rounded up with a margin. At these sizes (six real points,
a few lift samples) a single evaluation of a random-lift network is noisy: SE(3)'s Haar
stabiliser samples leave an error of the order of the output's own spread (median 0.5, largest
2.4), so its tolerance of 3 is loose enough that it would not tell a broken model from noise.
For random lifts the telling checks are the in-distribution check
(:func:`eqbench.check.check_stochastic`, ``mode="distribution"``: exact, in the tests) and the
error's fall with the sample count (``eqbench sweep lieconv-se3 --param liftsamples``).
"""
from __future__ import annotations

import copy
from typing import Any, Callable

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch import Tensor, nn

from eqbench.actions import Dict, Invariant, Mask, Points, Scalars
from eqbench.groups import SE2, SE3, SO2, SO3, Group, ScaleRotation, Translations
from eqbench.inputs import ImageInputs, InputGenerator, InputStructure, PointCloudInputs
from eqbench.models.lieconv import ImgLieResNet, LieResNet, MolecLieResNet, image_point_cloud, lifting_group
from eqbench.registry import register_model

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


class CommonRandomNumbers(nn.Module):
    """A Monte-Carlo LieConv network evaluated item by item, each item with the network's generator seeded by ``seed``.

    ``f(x_b)`` then depends on item ``b`` alone, and ``f(x)`` and ``f(g.x)`` are computed from
    the same random numbers (common random numbers; the module docstring says why). One forward
    call per item: meant for checks of small batches, not for training.
    """

    def __init__(self, network: LieResNet, seed: int = 0) -> None:
        super().__init__()
        self.network = network
        self.network.fixed_seed = int(seed)

    def forward(self, **value: Tensor) -> Tensor:
        batch = next(iter(value.values())).shape[0]
        return torch.cat([self.network(**{key: t[b : b + 1] for key, t in value.items()}) for b in range(batch)])

    @property
    def sample_parameters(self) -> tuple[str, ...]:
        """The network's Monte-Carlo sample counts: ``nbhd`` (ball samples), and ``liftsamples`` for random lifts."""
        return ("nbhd", "liftsamples") if self.network.group.random_lift else ("nbhd",)

    def monte_carlo_model(self) -> LieResNet:
        """A copy of the network that draws from torch's global RNG at every call (what ``eqbench sweep`` varies)."""
        network = copy.deepcopy(self.network)
        network.fixed_seed, network.generator = None, None
        return network


# ------------------------------------------------------------------------------ registration
#: Small LieResNets: two bottleneck blocks of 16 channels (4 in the convolution), ball fill 1/2.
NETWORK = {"k": 16, "num_layers": 2, "fill": 0.5}
EXACT_CHECK = {"n_inputs": 2, "n_elements": 8, "search_examples": 10}
#: Eight inputs (two elements each): the output scale that relative errors divide by is then an
#: RMS over eight outputs, not two, one of which may sit near zero by chance.
MONTE_CARLO_CHECK = {"n_inputs": 8, "n_elements": 2, "search_examples": 0}
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
    tolerance: float = 1e-2,
) -> Callable[[Callable[[], nn.Module]], Callable[[], nn.Module]]:
    """``register_model`` for a LieConv network: the inputs' action in, an invariant out; Monte-Carlo settings
    (``expected="approximate"``) get :data:`MONTE_CARLO_CHECK`, the others :data:`EXACT_CHECK`."""
    check = MONTE_CARLO_CHECK if expected == "approximate" else EXACT_CHECK
    return register_model(
        name, group=group, in_action=inputs.action, out_action=Invariant(), inputs=inputs, expected=expected,
        tolerance=tolerance, description=description, check_options=check,
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
# Tolerances: the largest relative error of the check over seeds 0..19 (in brackets), rounded up
# with a margin (module docstring). SO(3) takes an odd number of lift samples: with an even number,
# samples j and j + L/2 of one point differ by a half turn, where the axis-angle logarithm that
# the weight network reads is discontinuous, so rounding picks its sign (float32 and float64 then
# disagree by up to 0.45 relative, and the noise floor measures that instead of rounding).
@lieconv_model(
    "lieconv-so2-mc",
    group=SO2(),
    inputs=CLOUDS_2D,
    expected="approximate",
    tolerance=0.1,
    description="LieConv, SO(2) lift, 3 points sampled from each ball (Monte-Carlo; exact under common random numbers)",
)
def lieconv_so2_mc() -> CommonRandomNumbers:
    return CommonRandomNumbers(cloud_network("SO2", CLOUDS_2D, nbhd=3))


@lieconv_model(
    "lieconv-so2-image-mc",
    group=SO2(),
    inputs=PIXELS,
    expected="approximate",
    tolerance=1.0,
    description="image LieConv, SO(2) lift, 8 ball samples, farthest points 1/2 per layer (Monte-Carlo; grid ties) [0.64]",
)
def lieconv_so2_image_mc() -> CommonRandomNumbers:
    return CommonRandomNumbers(image_network("SO2", total_ds=0.25, nbhd=8))


@lieconv_model(
    "lieconv-se2",
    group=SE2(),
    inputs=CLOUDS_2D,
    expected="approximate",
    tolerance=0.3,
    description="LieConv, SE(2) lift with 8 stratified stabiliser samples (Monte-Carlo) [0.16]",
)
def lieconv_se2() -> CommonRandomNumbers:
    return CommonRandomNumbers(cloud_network("SE2", CLOUDS_2D, liftsamples=8))


@lieconv_model(
    "lieconv-so3",
    group=SO3(),
    inputs=CLOUDS_3D,
    expected="approximate",
    tolerance=1.0,
    description="LieConv, SO(3) lift with 7 stratified stabiliser samples (Monte-Carlo) [0.55]",
)
def lieconv_so3() -> CommonRandomNumbers:
    return CommonRandomNumbers(cloud_network("SO3", CLOUDS_3D, liftsamples=7))


@lieconv_model(
    "lieconv-se3",
    group=SE3(),
    inputs=CLOUDS_3D,
    expected="approximate",
    tolerance=3.0,
    description="LieConv, SE(3) lift with 8 Haar stabiliser samples (Monte-Carlo; error of the output's order) [2.4]",
)
def lieconv_se3() -> CommonRandomNumbers:
    return CommonRandomNumbers(cloud_network("SE3", CLOUDS_3D, liftsamples=8))


@lieconv_model(
    "lieconv-se3-molecule-gigp",
    group=SE3(),
    inputs=MOLECULES,
    expected="approximate",
    tolerance=3.0,
    description="molecule LieConv + GIGP over distances to the centroid, SE(3) lift with 8 samples (Monte-Carlo) [2.1]",
)
def lieconv_se3_molecule_gigp() -> CommonRandomNumbers:
    return CommonRandomNumbers(molecule_network("SE3", liftsamples=8, pool="gigp", orbit_labels="centroid", gigp_bins=8))


# --------------------------------------------------------------------------- negative controls
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
