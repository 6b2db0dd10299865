"""Which models train on which task: ``TRAINABLE[(task, model)]`` builds an ``nn.Module`` for a task's data.

A builder is called as ``builder(data, generator, **options)``: ``data`` is the built task
(:class:`~eqbench.tasks.datasets.TaskData`: its ``meta`` facts such as image shape, classes and
target statistics, and its splits, e.g. to fit GIGP's orbit bins on the training set),
``generator`` a seeded ``torch.Generator`` for any randomness of construction, and ``options``
the preset's ``model`` mapping (checked against the builder's keyword arguments). The module is
called with the task's input fields positionally (``images``; ``positions, velocities,
charges``; ``positions, charges, mask``) and returns logits, positions or the target.

Register your own with :func:`register_trainable`, e.g. in a ``--plugin`` file::

    @register_trainable("nbody", "my-model")
    def my_model(data, generator, *, hidden=64):
        return MyModel(hidden)
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from eqbench.tasks.datasets import TaskData
from eqbench.tasks.qm9 import ATOMIC_NUMBERS, TARGETS

ModelBuilder = Callable[..., nn.Module]
TRAINABLE: dict[tuple[str, str], ModelBuilder] = {}

DIGIT_TASKS = ("digits-rot", "digits-rot-scrambled")
IMAGE_TASKS = (*DIGIT_TASKS, "rotmnist", "rotmnist-scrambled")
QM9_TASKS = tuple(f"qm9-{target}" for target in TARGETS)


def register_trainable(tasks: str | Iterable[str], model: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator: make ``builder`` the model ``model`` of each of ``tasks``."""
    names = (tasks,) if isinstance(tasks, str) else tuple(tasks)

    def decorate(builder: ModelBuilder) -> ModelBuilder:
        for task in names:
            TRAINABLE[(task, model)] = builder
        return builder

    return decorate


def trainable_models(task: str) -> list[str]:
    """The models registered for ``task``, sorted."""
    return sorted(model for t, model in TRAINABLE if t == task)


def build_model(task: str, model: str, options: Mapping[str, Any], data: TaskData, generator: torch.Generator) -> nn.Module:
    """Build ``model`` for ``task``; unknown models or options are errors that list what exists."""
    builder = TRAINABLE.get((task, model))
    if builder is None:
        raise KeyError(f"model {model!r} is not trainable on task {task!r}; trainable there: {trainable_models(task)}")
    parameters = inspect.signature(builder).parameters
    accepted = {name for name, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    unknown = sorted(set(options) - accepted)
    if unknown and not takes_any:
        raise ValueError(f"unknown model option(s) {unknown} for {model} on {task}; known: {sorted(accepted)}")
    return builder(data, generator, **options)


class Standardized(nn.Module):
    """``mean + std * model(*inputs)``: a regression model trained on standardised targets, answering in target units."""

    def __init__(self, model: nn.Module, mean: float, std: float) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std) if std > 0 else 1.0))

    def forward(self, *inputs: Tensor) -> Tensor:
        return self.mean + self.std * self.model(*inputs).reshape(-1)


# ------------------------------------------------------------------ images
@register_trainable(IMAGE_TASKS, "cnn")
def cnn(data: TaskData, generator: torch.Generator, *, channels: int = 32, num_layers: int = 1, kernel_size: int = 3) -> nn.Module:
    """The L-conv paper's CNN baseline: ``num_layers`` same-padded ``kernel_size`` convolutions with ReLU, flattened, one linear classifier."""
    in_channels, height, width = data.meta["image_shape"]
    layers: list[nn.Module] = []
    for i in range(num_layers):
        layers += [nn.Conv2d(in_channels if i == 0 else channels, channels, kernel_size, padding=kernel_size // 2), nn.ReLU()]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * height * width, data.meta["num_classes"]))


@register_trainable(IMAGE_TASKS, "mlp")
def fully_connected(data: TaskData, generator: torch.Generator, *, hidden: Iterable[int] = (72,)) -> nn.Module:
    """The fully connected baseline: flattened pixels, ReLU layers of widths ``hidden``, a linear classifier."""
    widths = [int(torch.tensor(data.meta["image_shape"]).prod()), *hidden, data.meta["num_classes"]]
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers += [nn.Linear(fan_in, fan_out)] + ([nn.ReLU()] if i < len(widths) - 2 else [])
    return nn.Sequential(*layers)


@register_trainable(IMAGE_TASKS, "lconv")
def lconv(
    data: TaskData,
    generator: torch.Generator,
    *,
    hidden_channels: int = 32,
    num_layers: int = 1,
    num_generators: int = 9,
    rank: int = 8,
    readout: str = "flatten",
) -> nn.Module:
    """L-conv image classifier (Dehmamy et al. 2021) with learnable low-rank generators.

    ``readout="flatten"``: the paper's image network (``run_test-v2.py``), L-conv layers with
    ReLU on the ``H*W`` sites, flattened, one linear classifier. ``readout="mean"``:
    :class:`~eqbench.models.lconv.LConvImageClassifier`, which averages over the sites.
    """
    from eqbench.models.lconv import LConv, LConvImageClassifier

    in_channels, height, width = data.meta["image_shape"]
    if readout == "mean":
        return LConvImageClassifier(
            height, width, data.meta["num_classes"], in_channels=in_channels, hidden_channels=hidden_channels,
            num_layers=num_layers, num_generators=num_generators, rank=rank, seed_generator=generator,
        )
    if readout != "flatten":
        raise ValueError(f"unknown L-conv readout {readout!r}; known: ('flatten', 'mean')")
    widths = [in_channels] + [hidden_channels] * num_layers
    layers = [
        LConv(fan_in, fan_out, num_sites=height * width, num_generators=num_generators, rank=rank, activation=nn.ReLU(), seed_generator=generator)
        for fan_in, fan_out in zip(widths[:-1], widths[1:])
    ]
    return nn.Sequential(ImageSites(), *layers, nn.Flatten(), nn.Linear(height * width * hidden_channels, data.meta["num_classes"]))


class ImageSites(nn.Module):
    """``(B, C, H, W)`` images as ``(B, H*W, C)`` site signals (row-major sites), the layout L-conv layers read."""

    def forward(self, images: Tensor) -> Tensor:
        from eqbench.models.lconv import images_to_sites

        return images_to_sites(images)


# ------------------------------------------------------------------ n-body
@register_trainable("nbody", "fa-gnn")
def fa_gnn(data: TaskData, generator: torch.Generator, *, hidden: int = 60, layers: int = 4) -> nn.Module:
    """FA-GNN (Puny et al. 2022): the n-body GNN averaged over E(3) PCA frames."""
    from eqbench.models.frame_averaging import fa_gnn as build

    return build(hidden, layers)


@register_trainable("nbody", "egnn")
def egnn(data: TaskData, generator: torch.Generator, *, hidden: int = 64, layers: int = 4) -> nn.Module:
    """EGNN with velocities (Satorras et al. 2021); :class:`~eqbench.models.baselines.EGNN` starts its coordinate MLPs as the reference does."""
    from eqbench.models.baselines import EGNN

    return EGNN(hidden, layers)


@register_trainable("nbody", "gnn")
def gnn(data: TaskData, generator: torch.Generator, *, hidden: int = 64, layers: int = 4) -> nn.Module:
    """The message-passing GNN baseline of the n-body benchmark."""
    from eqbench.models.baselines import NBodyGNN

    return NBodyGNN(hidden, layers)


# ------------------------------------------------------------------ LieConv (+ GIGP)
class ImagePointCloudNet(nn.Module):
    """Images ``(B, C, H, W)`` as LieConv point clouds (pixels within ``crop_radius`` of the centre) fed to ``network``."""

    def __init__(self, network: nn.Module, crop_radius: float | None) -> None:
        super().__init__()
        self.network, self.crop_radius = network, crop_radius

    def point_cloud(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        from eqbench.models.lieconv.frontends import image_point_cloud

        return image_point_cloud(images, self.crop_radius)

    def forward(self, images: Tensor) -> Tensor:
        return self.network(*self.point_cloud(images))


class MoleculeNet(nn.Module):
    """QM9 batches ``(positions, charges = atomic numbers (0 pads), mask)`` fed to a LieConv molecule network as ``(pos, one_hot, charges)``."""

    def __init__(self, network: nn.Module, species: Iterable[int]) -> None:
        super().__init__()
        self.network = network
        self.register_buffer("species", torch.tensor(sorted(species)))

    def one_hot(self, charges: Tensor) -> Tensor:
        return (charges[..., None] == self.species).to(torch.get_default_dtype())

    def forward(self, positions: Tensor, charges: Tensor, mask: Tensor) -> Tensor:
        return self.network(positions, self.one_hot(charges), charges * mask)


def _lieconv_image(group: str, pool: str) -> ModelBuilder:
    def build(
        data: TaskData,
        generator: torch.Generator,
        *,
        alpha: float = 0.2,
        k: int = 128,
        nbhd: int | None = 25,
        fill: float = 0.1,
        total_ds: float = 0.1,
        num_layers: int = 6,
        liftsamples: int = 1,
        crop_radius: float | None = None,
        gigp_bins: int = 50,
    ) -> nn.Module:
        from eqbench.models.lieconv.frontends import ImgLieResNet
        from eqbench.models.lieconv.groups import lifting_group

        channels = data.meta["image_shape"][0]
        gigp = {"pool": "gigp", "gigp_bins": gigp_bins, "orbit_labels": "lift"} if pool == "gigp" else {}
        network = ImgLieResNet(
            chin=channels, total_ds=total_ds, num_layers=num_layers, group=lifting_group(group, alpha), fill=fill,
            k=k, nbhd=nbhd, num_targets=data.meta["num_classes"], liftsamples=liftsamples, **gigp,
        )
        model = ImagePointCloudNet(network, crop_radius)
        if pool == "gigp":  # orbit labels of SO(2) are pixel radii, the same grid for every image
            pos, _, mask = model.point_cloud(data.splits["train"].tensors["images"][:1])
            network.fit_orbit_bins(pos, mask)
        return model

    build.__doc__ = f"LieConv ({group}) image classifier (Finzi et al. 2020, ImgLieResnet) with {pool} pooling{' (GIGP, Bujel et al. 2023)' if pool == 'gigp' else ''}."
    return build


def _lieconv_molecule(group: str, pool: str) -> ModelBuilder:
    def build(
        data: TaskData,
        generator: torch.Generator,
        *,
        alpha: float = 0.2,
        k: int = 1536,
        nbhd: int | None = 100,
        fill: float = 1.0,
        num_layers: int = 6,
        liftsamples: int = 1,
        charge_power: int = 2,
        gigp_bins: int = 50,
    ) -> nn.Module:
        from eqbench.models.lieconv.frontends import MolecLieResNet
        from eqbench.models.lieconv.groups import lifting_group

        species = data.meta.get("species", sorted(ATOMIC_NUMBERS.values()))
        gigp = {"pool": "gigp", "gigp_bins": gigp_bins, "orbit_labels": "centroid"} if pool == "gigp" else {}
        network = MolecLieResNet(
            len(species), charge_scale=float(max(species)), charge_power=charge_power, group=lifting_group(group, alpha),
            k=k, nbhd=nbhd, fill=fill, num_layers=num_layers, liftsamples=liftsamples, **gigp,
        )
        if pool == "gigp":  # orbit labels: each atom's distance to its molecule's centroid, bins over the training set
            train = data.splits["train"].tensors
            network.fit_orbit_bins(train["positions"], train["mask"])
        return Standardized(MoleculeNet(network, species), data.meta["target_mean"], data.meta["target_std"])

    build.__doc__ = f"LieConv ({group}) molecule regressor (Finzi et al. 2020, MolecLieResNet) with {pool} pooling, on standardised targets."
    return build


for _group in ("SO2", "T2", "SE2"):
    register_trainable(IMAGE_TASKS, f"lieconv-{_group.lower()}")(_lieconv_image(_group, "mean"))
register_trainable(IMAGE_TASKS, "lieconv-so2-gigp")(_lieconv_image("SO2", "gigp"))
for _group in ("T3", "SE3"):
    register_trainable(QM9_TASKS, f"lieconv-{_group.lower()}")(_lieconv_molecule(_group, "mean"))
register_trainable(QM9_TASKS, "lieconv-t3-gigp")(_lieconv_molecule("T3", "gigp"))
