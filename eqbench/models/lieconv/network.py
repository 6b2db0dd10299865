"""LieResNet: the generic LieConv network of Finzi et al. 2020 (Fig. 5), on point clouds with features.

Forward pass on ``pos`` ``(B, n, d)``, ``feat`` ``(B, n, chin)``, ``mask`` ``(B, n)``:

1. embed the features (``Linear(chin, k_0)``, per point) and lift the points to ``N = n *
   liftsamples`` group elements (the ``lifting`` module, :mod:`eqbench.models.lieconv.lifting`,
   which draws the stabiliser samples), repeating the features and mask per lift sample;
2. invariant distances between all lifted points, ``(B, N, N)`` (no gradient; ``4 B N^2``
   bytes in float32, e.g. 42 MB for 25 images of 648 pixels), and, when the layers
   downsample (``ds_frac < 1``), ONE farthest-point order from a seeded start
   (:mod:`eqbench.models.lieconv.sampling`); every per-point tensor is put in that order, so
   layer ``l`` queries the first ``m_l = round(ds_frac * m_{l-1})`` points, and the
   distances are recomputed in that order for the ``m_1`` queries (``(B, m_1, N)``, after the
   ``(B, N, N)`` ones are freed); both are formed by blocks of rows (:func:`blockwise_distances`);
3. ``num_layers`` bottleneck blocks (:mod:`eqbench.models.lieconv.blocks`), each with a LieConv
   whose neighbourhoods are chosen from the ``(B, m, n)`` distances and whose pair
   representation is formed for the chosen ``(B, m, nbhd)`` pairs only;
4. masked BatchNorm, SiLU, ``Linear(k_L, num_outputs)`` per point, then global mean pooling
   over the real lifted points (averaging over lift samples too), or GIGP
   (:mod:`eqbench.models.gigp`) with ``pool="gigp"``.

Nothing computed from an input is kept between calls: lifts, distances and subsampling are
recomputed from each input, so they move with a transformed input (the reference caches its
image lift and FPS indices after the first call). Only the layers' scratch memory is reused
from call to call (:mod:`eqbench.models.lieconv.workspace`), overwritten by every pass.

Randomness (random lifts, the FPS start, ball samples) comes from ``generator`` (torch's
global RNG when ``None``), or, with ``fixed_seed`` set, from a generator re-seeded with it at
every call: the same Monte-Carlo draws on every call, which makes the network a deterministic
function of its input (handy for reproducing one draw, or for checking a subsampled network as
an ordinary deterministic model).
All draws are made in float32, so a float64 copy of the network draws the same numbers.

Exactly invariant settings: a deterministic lift (T(n), SO(2), R>0 x SO(2)), ``liftsamples = 1``,
``ds_frac = 1`` and every ball point used (``nbhd=None``, or ``nbhd >= n``), or k-nearest
neighbours on inputs without distance ties; in evaluation mode (batch statistics of training
mode couple the items of a batch). Farthest-point subsampling (``ds_frac < 1``) keeps the
invariance under the group when the start is drawn from the same generator state
(``fixed_seed``): distances are invariant, so the same points are picked; it is not invariant
to permuting the points, whose start then moves.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from eqbench.models.gigp import GIGP, centroid_distance_orbits
from eqbench.models.lieconv.blocks import BottleneckBlock, masked_mean
from eqbench.models.lieconv.conv import LiftedCloud
from eqbench.models.lieconv.groups.base import Lift, LiftingGroup, gather_points
from eqbench.models.lieconv.lifting import Lifting
from eqbench.models.lieconv.pointwise import batch_norm, pack, real_rows, silu, unpack
from eqbench.models.lieconv.sampling import farthest_point_order
from eqbench.models.lieconv.workspace import WorkspacePool

POOLS = ("mean", "gigp")
#: Elements per block of :func:`blockwise_distances` (4 MB of float32).
DISTANCE_BLOCK = 1 << 20
ORBIT_LABELS = ("lift", "centroid")


def per_layer(value: float | int | Sequence, count: int, name: str) -> list:
    """``value`` repeated ``count`` times, or the given sequence after checking its length."""
    if isinstance(value, (int, float)):
        return [value] * count
    values = list(value)
    if len(values) != count:
        raise ValueError(f"{name} needs {count} values (one per layer), got {len(values)}")
    return values


def check_group(group: object) -> LiftingGroup:
    """``group`` if it is a lifting-group instance; a clear ``TypeError`` for a class or anything else."""
    if isinstance(group, type):
        raise TypeError(f"pass a lifting group instance such as {group.__name__}(), not the class {group.__name__}")
    if not isinstance(group, LiftingGroup):
        raise TypeError(f"group must be a LieConv lifting group (eqbench.models.lieconv.groups), got {group!r}")
    return group


class LieResNet(nn.Module):
    """LieConv network (module docstring). Arguments as in the reference's ``LieResNet``:

    ``chin`` input channels; ``num_outputs``; ``group`` a lifting-group instance; ``k`` channel
    width (or ``num_layers + 1`` widths); ``nbhd`` Monte-Carlo neighbourhood size (``None``:
    every ball point); ``fill`` target ball fraction (or one per layer); ``ds_frac`` per-layer
    downsampling; ``liftsamples``; ``knn``; ``bn``; ``mean`` (average, not sum, over
    neighbours); ``radius`` initial ball radius (``None``: estimated on the first training
    batch). ``pool``: ``"mean"`` or ``"gigp"`` (``gigp_bins`` bins, aggregation ``gigp_width``
    bin spacings, ``orbit_labels`` ``"lift"`` (the lift's orbit coordinate ``q``, for SO(2) and
    SO(3)) or ``"centroid"`` (distance to the centroid)). ``generator``/``fixed_seed``: see the
    module docstring.
    """

    def __init__(
        self,
        chin: int,
        num_outputs: int = 1,
        *,
        group: LiftingGroup,
        k: int | Sequence[int] = 1536,
        num_layers: int = 6,
        nbhd: int | None = None,
        fill: float | Sequence[float] = 1 / 4,
        ds_frac: float = 1.0,
        liftsamples: int = 1,
        knn: bool = False,
        bn: bool = True,
        mean: bool = True,
        radius: float | None = None,
        pool: str = "mean",
        gigp_bins: int = 50,
        gigp_width: float = 1.0,
        orbit_labels: str = "lift",
        generator: torch.Generator | None = None,
        fixed_seed: int | None = None,
    ) -> None:
        super().__init__()
        self.group = check_group(group)
        if not 0.0 < ds_frac <= 1.0:
            raise ValueError(f"ds_frac must be in (0, 1], got {ds_frac!r}")
        self.group.check_samples(liftsamples)
        if pool not in POOLS or orbit_labels not in ORBIT_LABELS:
            raise ValueError(f"pool must be one of {POOLS} and orbit_labels one of {ORBIT_LABELS}, got {pool!r}, {orbit_labels!r}")
        if pool == "gigp" and orbit_labels == "lift" and group.orbit_dim != 1:
            raise ValueError(
                f"orbit_labels='lift' reads the lift's 1-dimensional orbit coordinate, which {group.name} does not have "
                "(SO(2) and SO(3) do); use orbit_labels='centroid'"
            )
        widths = per_layer(k, num_layers + 1, "k")
        fills = per_layer(fill, num_layers, "fill")
        self.chin, self.ds_frac, self.orbit_labels = chin, float(ds_frac), orbit_labels
        self.generator, self.fixed_seed = generator, fixed_seed
        self.lifting = Lifting(self.group, liftsamples)
        self.embed = nn.Linear(chin, widths[0])
        conv_options = {"nbhd": nbhd, "knn": knn, "mean": mean, "radius": radius}
        self.blocks = nn.ModuleList(
            BottleneckBlock(widths[i], widths[i + 1], group, bn, fill=fills[i], **conv_options) for i in range(num_layers)
        )
        self.head_norm = batch_norm(widths[-1], bn)
        self.head = nn.Linear(widths[-1], num_outputs)
        self.pool = GIGP(num_outputs, gigp_bins, gigp_width) if pool == "gigp" else None
        self.workspaces = WorkspacePool()  # scratch memory kept between passes (not state: see workspace.py)

    # ------------------------------------------------------------ Monte-Carlo knobs
    @property
    def nbhd(self) -> int | None:
        """The Monte-Carlo neighbourhood size of every layer (settable, e.g. for sweeps)."""
        return self.blocks[0].conv.nbhd

    @nbhd.setter
    def nbhd(self, value: int | None) -> None:
        if value is not None and value < 1:
            raise ValueError(f"nbhd must be a positive integer or None, got {value!r}")
        for block in self.blocks:
            block.conv.nbhd = value

    @property
    def liftsamples(self) -> int:
        """The number of lift samples per point (settable, e.g. for sweeps; the ``lifting`` module's)."""
        return self.lifting.samples

    @liftsamples.setter
    def liftsamples(self, value: int) -> None:
        self.group.check_samples(value)
        self.lifting.samples = value

    def call_generator(self, device: torch.device) -> torch.Generator | None:
        """The generator of one forward pass (see the module docstring)."""
        if self.fixed_seed is not None:
            return torch.Generator(device=device).manual_seed(int(self.fixed_seed))
        return self.generator

    def query_sizes(self, points: int) -> list[int]:
        """``[N, m_1, ..., m_L]`` with ``m_l = round(ds_frac * m_{l-1})`` (at least 1)."""
        sizes = [points]
        for _ in self.blocks:
            sizes.append(max(1, round(self.ds_frac * sizes[-1])))
        return sizes

    # ------------------------------------------------------------------- forward
    def forward(self, pos: Tensor, feat: Tensor, mask: Tensor | None = None) -> Tensor:
        """``(B, num_outputs)`` invariant outputs for points ``pos`` ``(B, n, d)`` with features ``feat`` ``(B, n, chin)``."""
        mask = self.checked_mask(pos, feat, mask)
        samples = self.liftsamples
        generator = self.call_generator(pos.device)
        lift = self.lifting(pos, generator=generator)
        point_rows = real_rows(mask)
        embedded = self.embed(pack(feat, point_rows))  # packed (R, c) rows of the real points
        labels = None if self.pool is None else self.point_orbit_labels(pos, mask)
        if samples > 1:
            mask = mask.repeat_interleave(samples, 1)
            labels = None if labels is None else labels.repeat_interleave(samples, 1)
        sizes = self.query_sizes(lift.size)
        with torch.no_grad():
            detached = Lift(lift.elements.detach(), lift.orbits.detach())
            subsample = sizes[1] < sizes[0]
            distances = blockwise_distances(self.group, detached, detached)
            if subsample:
                order = farthest_point_order(distances, mask, sizes[1], generator)
                del distances  # the ordered distances are recomputed rather than gathered: one (B, N, N) tensor at a time
                detached = detached.take(order)
                distances = blockwise_distances(self.group, detached.head(sizes[1]), detached)
        if samples > 1 or subsample:  # the lifted points' rows differ from the input points': through the padded layout
            values = unpack(embedded, point_rows, feat.shape[0], feat.shape[1])
            values = values.repeat_interleave(samples, 1) if samples > 1 else values
        if subsample:
            lift, values, mask = lift.take(order), gather_points(values, order), gather_points(mask[..., None], order)[..., 0]
            labels = None if labels is None else gather_points(labels[..., None], order)[..., 0]
        workspace = self.workspaces.current()
        workspace.begin()
        cloud = LiftedCloud(self.group, lift, mask, distances, workspace)
        values = pack(values, cloud.rows(sizes[0])) if samples > 1 or subsample else embedded
        for block, inputs, queries in zip(self.blocks, sizes[:-1], sizes[1:]):
            values = block(cloud, values, inputs, queries, generator)
        last = mask[:, : sizes[-1]]
        out = unpack(self.head(silu(self.head_norm(values))), cloud.rows(sizes[-1]), mask.shape[0], sizes[-1])
        if self.pool is None:
            return masked_mean(out, last)
        return self.pool(out, labels[:, : sizes[-1]], last)

    def checked_mask(self, pos: Tensor, feat: Tensor, mask: Tensor | None) -> Tensor:
        """Validate the inputs' shapes and dtypes; returns the mask (all True when ``None``)."""
        d = self.group.space_dim
        if not (isinstance(pos, Tensor) and pos.dim() == 3 and pos.shape[-1] == d and pos.is_floating_point()):
            raise ValueError(f"{type(self).__name__}: pos must be a floating tensor (B, n, {d}), got {_describe(pos)}")
        if not (isinstance(feat, Tensor) and feat.shape == (*pos.shape[:2], self.chin) and feat.is_floating_point()):
            raise ValueError(f"{type(self).__name__}: feat must be a floating tensor {(*pos.shape[:2], self.chin)}, got {_describe(feat)}")
        if mask is None:
            return torch.ones(pos.shape[:2], dtype=torch.bool, device=pos.device)
        if not (isinstance(mask, Tensor) and mask.dtype == torch.bool and mask.shape == pos.shape[:2]):
            raise ValueError(f"{type(self).__name__}: mask must be a bool tensor {tuple(pos.shape[:2])}, got {_describe(mask)}")
        return mask

    # ---------------------------------------------------------------------- GIGP
    def point_orbit_labels(self, pos: Tensor, mask: Tensor) -> Tensor:
        """GIGP orbit labels per input point ``(B, n)``: the lift's orbit coordinate or the distance to the centroid."""
        if self.orbit_labels == "centroid":
            return centroid_distance_orbits(pos, mask)
        return self.group.lift(pos, 1, torch.Generator(device=pos.device)).orbits[..., 0]

    @torch.no_grad()
    def fit_orbit_bins(self, pos: Tensor, mask: Tensor | None = None) -> None:
        """Fit GIGP's orbit bins on the training points ``pos`` ``(B, n, d)`` (real points of ``mask``)."""
        if self.pool is None:
            raise RuntimeError("fit_orbit_bins needs a network built with pool='gigp'")
        mask = torch.ones(pos.shape[:2], dtype=torch.bool, device=pos.device) if mask is None else mask
        self.pool.fit_bins(self.point_orbit_labels(pos, mask), mask)


def blockwise_distances(group: LiftingGroup, u: Lift, v: Lift) -> Tensor:
    """``group.pair_distances(u, v)`` ``(B, m, n)``, computed a block at a time into one output.

    The closed forms hold a few ``(B, m, n)`` temporaries (products, angles, radii); by
    blocks of about :data:`DISTANCE_BLOCK` elements they hold those of a block only (and stay
    in cache). A block is a few whole items (a contiguous slice of the output), or a few
    rows of every item when one item exceeds the block. Each distance is a function of its
    pair alone, so the blocks change nothing (beyond rounding where a closed form uses matrix
    products, e.g. SO(3)).
    """
    batch, m, n = u.elements.shape[0], u.size, v.size
    items = DISTANCE_BLOCK // max(1, m * n)
    if items >= batch or batch * m <= 1:
        return group.pair_distances(u, v)
    if items >= 1:
        blocks = [(slice(start, start + items), slice(None)) for start in range(0, batch, items)]
    else:
        rows = max(1, DISTANCE_BLOCK // max(1, batch * n))
        blocks = [(slice(None), slice(start, start + rows)) for start in range(0, m, rows)]
    out: Tensor | None = None
    for item_block, row_block in blocks:
        block = group.pair_distances(
            Lift(u.elements[item_block, row_block], u.orbits[item_block, row_block]),
            Lift(v.elements[item_block], v.orbits[item_block]),
        )
        out = block.new_empty(batch, m, n) if out is None else out
        out[item_block, row_block] = block
    return out


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"{value.dtype} tensor of shape {tuple(value.shape)}"
    return repr(type(value).__name__)
