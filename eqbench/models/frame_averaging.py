"""Frame Averaging (Puny, Atzmon, Ben-Hamu, Misra, Grover, Smith, Lipman, ICLR 2022) with degeneracy handling.

A frame is a set-valued map ``F(X) ⊂ G`` with ``F(gX) = g F(X)``. Averaging any backbone ``Phi``
over it gives an invariant or equivariant model (the paper's frame-averaging operators):

    invariant:    <Phi>(X) = 1/|F(X)| sum_{g in F(X)} Phi(g^-1 X)
    equivariant:  <Phi>(X) = 1/|F(X)| sum_{g in F(X)} g . Phi(g^-1 X)

with ``g = (R, t)`` acting as ``x -> R x + t`` on points, ``v -> R v`` on vectors and trivially on
scalars. The paper's PCA frame: ``t`` is the centroid (E(d), SE(d); 0 for O(d), SO(d)),
``C = 1/n sum_i (x_i - t)(x_i - t)^T`` and ``R = [±e_1 ... ±e_d]`` with ``e_k`` its eigenvectors,
eigenvalues in decreasing order: all ``2^d`` sign choices for O(d) and E(d), the ``2^(d-1)``
with ``det R = +1`` for SO(d) and SE(d).

Degeneracy. The PCA frame is a frame only when the eigenvalues are distinct: a repeated
eigenvalue (a regular polygon, a square prism, any point set with a rotational symmetry of
order >= 3) has an eigenspace with no preferred basis, and ``eigh`` returns one that depends on
rounding, so the naive model silently loses its symmetry. Here eigenvalues are grouped into
clusters whose relative gaps ``(lambda_k - lambda_{k+1}) / tr C`` fall below ``gap_tolerance``,
and each cluster is handled by what it is:

* a single eigenvalue: its eigenvector, up to sign (the paper's frame);
* a null cluster (``lambda <= null_tolerance tr C``, no extent: collinear or coplanar clouds,
  coincident points): any orthonormal basis of it. The framed input has no component there,
  and the sign choices average an output's component there to zero, which is what
  equivariance demands (the reflections across the null space fix the input);
* a degenerate cluster of dimension ``m >= 2`` with extent (the multiplicity-aware frame):
  axes are built from the data. The first axis points at the point whose projection onto the
  cluster is longest, the next at the longest residual after removing the axes so far, and
  the last completes the basis. Every point whose norm ties with the longest (relative
  ``tie_tolerance``) starts its own candidate, so the frame is the finite set of all of them,
  each with all sign choices. Because points, projections, norms and ties move with ``g``,
  ``F(gX) = g F(X)`` holds exactly, and averaging over the set keeps the model equivariant
  (for a symmetric input the ties are the symmetry orbit).

``degeneracy="naive"`` gives the paper's frame without these checks (a control that the
checker's search breaks); ``degeneracy="raise"`` raises :class:`DegenerateFrameError` instead of
handling a degenerate cluster. :class:`PCAFrames` computes the frames (``Frames.degenerate``
reports which items were degenerate), in float64 from detached inputs (no gradient flows
through ``R``). :class:`FrameAveraging` wraps any backbone (outputs invariant of any shape,
vectors or points with the last axis ``d``); :class:`FAGNN` is the paper's n-body model, which
averages in every layer.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from eqbench.models.baselines import NBodyGNN, PointNet, charge_products, check_system, squared_distances

#: name -> (subtract the centroid, keep only det +1 frames)
FRAME_GROUPS: dict[str, tuple[bool, bool]] = {"O": (False, False), "SO": (False, True), "E": (True, False), "SE": (True, True)}
FIELD_KINDS = ("points", "vectors", "scalars")
OUTPUT_KINDS = ("invariant", "vectors", "points")
DEGENERACY_MODES = ("multiplicity", "naive", "raise")


class DegenerateFrameError(ValueError):
    """A point cloud's covariance has a repeated eigenvalue and ``degeneracy="raise"`` was asked for."""


@dataclass(frozen=True)
class Frames:
    """The frames of a batch, flattened: frame ``f`` belongs to item ``owner[f]``.

    ``rotations`` ``(T, d, d)`` (columns are the axes), ``translations`` ``(T, d)``, ``owner``
    ``(T,)``, ``counts`` ``(B,)`` frames per item, ``degenerate`` ``(B,)`` items that had a
    degenerate cluster, ``centres`` ``(B, d)`` each item's translation (the centroid, or 0 for
    O(d) and SO(d)). All float64 / int64 / bool on the input's device.
    """

    rotations: Tensor
    translations: Tensor
    owner: Tensor
    counts: Tensor
    degenerate: Tensor
    centres: Tensor


class PCAFrames:
    """The PCA frames of Puny et al. for ``group`` with degeneracy handling: ``frames(points) -> Frames``.

    Args:
        group: ``"O"``, ``"SO"``, ``"E"`` or ``"SE"`` (of the dimension of the points).
        degeneracy: ``"multiplicity"`` (default), ``"naive"`` or ``"raise"`` (see module docs).
        gap_tolerance, null_tolerance, tie_tolerance: relative thresholds (see module docs).
        max_frames: most frames one item may need; more raises :class:`DegenerateFrameError`.
    """

    def __init__(
        self,
        group: str = "E",
        *,
        degeneracy: str = "multiplicity",
        gap_tolerance: float = 1e-2,
        null_tolerance: float = 1e-8,
        tie_tolerance: float = 1e-4,
        max_frames: int = 4096,
    ) -> None:
        _require_choice("group", group, tuple(FRAME_GROUPS))
        _require_choice("degeneracy", degeneracy, DEGENERACY_MODES)
        if not 0 < null_tolerance < gap_tolerance < 1 or not 0 < tie_tolerance < 1 or max_frames < 1:
            raise ValueError(
                "need 0 < null_tolerance < gap_tolerance < 1, 0 < tie_tolerance < 1 and max_frames >= 1; got "
                f"{null_tolerance}, {gap_tolerance}, {tie_tolerance}, {max_frames}"
            )
        self.group = group
        self.centred, self.proper = FRAME_GROUPS[group]
        self.degeneracy = degeneracy
        self.gap_tolerance, self.null_tolerance, self.tie_tolerance = gap_tolerance, null_tolerance, tie_tolerance
        self.max_frames = max_frames

    def __repr__(self) -> str:
        return f"PCAFrames(group={self.group!r}, degeneracy={self.degeneracy!r})"

    def __call__(self, points: Tensor) -> Frames:
        """The frames of every item of ``points`` ``(B, N, d)`` (see :class:`Frames` and the module docs)."""
        if points.dim() != 3 or points.shape[1] < 1 or not points.is_floating_point():
            raise ValueError(f"FrameAveraging expects floating points of shape (B, N >= 1, d), got {tuple(points.shape)} {points.dtype}")
        if not torch.isfinite(points).all():
            raise ValueError("FrameAveraging got NaN or infinite points")
        x = points.detach().to(torch.float64)
        batch, _, dim = x.shape
        centre = x.mean(dim=1) if self.centred else torch.zeros(batch, dim, dtype=x.dtype, device=x.device)
        centred = x - centre[:, None, :]
        covariance = centred.transpose(1, 2) @ centred / x.shape[1]
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        eigenvalues, eigenvectors = eigenvalues.flip(-1), eigenvectors.flip(-1)  # decreasing
        signs = _sign_choices(dim, self.proper, x.device)
        relative = eigenvalues / eigenvalues.sum(-1, keepdim=True).clamp_min(torch.finfo(eigenvalues.dtype).tiny)
        if self.degeneracy == "naive":
            degenerate = torch.zeros(batch, dtype=torch.bool, device=x.device)
        else:
            degenerate = self._degenerate_items(relative)
        if self.degeneracy == "raise" and bool(degenerate.any()):
            item = int(torch.nonzero(degenerate)[0])
            raise DegenerateFrameError(
                f"item {item}: the covariance has a repeated eigenvalue (eigenvalues {eigenvalues[item].tolist()}); "
                "use degeneracy='multiplicity' for a frame that stays equivariant"
            )
        if bool(degenerate.any()):
            bases = [
                self._multiplicity_bases(centred[item], relative[item], eigenvectors[item])
                if degenerate[item]
                else eigenvectors[item : item + 1]
                for item in range(batch)
            ]
            per_item = torch.tensor([len(b) for b in bases], device=x.device)
            stacked = torch.cat(bases)
        else:
            per_item, stacked = torch.ones(batch, dtype=torch.long, device=x.device), eigenvectors
        counts = per_item * signs.shape[0]
        if int(counts.max()) > self.max_frames:
            raise DegenerateFrameError(f"an item needs {int(counts.max())} frames, more than max_frames={self.max_frames}")
        rotations = (_with_positive_determinant(stacked)[:, None] * signs[None, :, None, :]).flatten(0, 1)
        owner = torch.repeat_interleave(torch.arange(batch, device=x.device), counts)
        return Frames(rotations, centre[owner], owner, counts, degenerate, centre)

    def _degenerate_items(self, relative: Tensor) -> Tensor:
        """``(B,)`` items with a cluster of ``>= 2`` eigenvalues above the null threshold (eigenvalues over their sum)."""
        close = (relative[:, :-1] - relative[:, 1:]) < self.gap_tolerance
        extended = relative[:, :-1] > self.null_tolerance
        return (close & extended).any(dim=1)

    def _multiplicity_bases(self, centred: Tensor, relative: Tensor, eigenvectors: Tensor) -> Tensor:
        """``(K, d, d)`` candidate bases of one degenerate item (``relative``: eigenvalues over their sum): the product of each cluster's candidates."""
        per_cluster = []
        for start, stop in _clusters(relative, self.gap_tolerance):
            basis = eigenvectors[:, start:stop]
            if stop - start == 1 or relative[start] <= self.null_tolerance:
                per_cluster.append([basis])
            else:
                axes = _anchored_axes(centred @ basis, self.tie_tolerance, self.max_frames)
                per_cluster.append([basis @ a for a in axes])
        return torch.stack([torch.cat(choice, dim=1) for choice in itertools.product(*per_cluster)])


class FrameAveraging(nn.Module):
    """Wrap ``backbone`` so that it becomes invariant or equivariant under ``group`` by frame averaging.

    Args:
        backbone: called once per forward on all framed copies stacked on the batch axis,
            with the same positional fields as this module; it must treat batch items
            independently.
        group: ``"O"``, ``"SO"``, ``"E"`` or ``"SE"`` (of the dimension of the points).
        output: ``"invariant"``, ``"vectors"`` or ``"points"`` (see module docs).
        fields: kinds of the positional inputs after the points: ``"points"``, ``"vectors"``
            (rotated into the frame) or ``"scalars"`` (passed through).
        frame_options: ``degeneracy``, ``gap_tolerance``, ``null_tolerance``, ``tie_tolerance``,
            ``max_frames`` of :class:`PCAFrames`.

    ``forward(points (B, N, d), *fields)``; every field has the batch axis first.
    """

    def __init__(
        self,
        backbone: nn.Module,
        group: str = "E",
        output: str = "invariant",
        fields: tuple[str, ...] = (),
        **frame_options: Any,
    ) -> None:
        super().__init__()
        _require_choice("output", output, OUTPUT_KINDS)
        for kind in fields:
            _require_choice("field kind", kind, FIELD_KINDS)
        self.frames = PCAFrames(group, **frame_options)
        self.backbone = backbone
        self.group, self.output, self.fields = group, output, tuple(fields)

    def extra_repr(self) -> str:
        return f"group={self.group!r}, output={self.output!r}, fields={self.fields}, degeneracy={self.frames.degeneracy!r}"

    def forward(self, points: Tensor, *fields: Tensor) -> Tensor:
        if len(fields) != len(self.fields):
            raise ValueError(f"FrameAveraging({self.group}) expects points and {len(self.fields)} fields {self.fields}, got {len(fields)}")
        frames = self.frames(points)
        framed = [to_frame(points, frames, "points")]
        framed += [to_frame(field, frames, kind) for field, kind in zip(fields, self.fields)]
        out = self.backbone(*framed)
        if not isinstance(out, Tensor) or out.shape[0] != frames.owner.shape[0]:
            raise ValueError(f"the backbone must return one tensor with the batch axis first, got {type(out).__name__}")
        return frame_mean(from_frame(out, frames, self.output), frames).to(out.dtype)


class FAGNN(nn.Module):
    """FA-GNN for charged n-body (Puny et al. 2022, Sec. 5.3): a GNN made E(3) x S_n equivariant by frame averaging in every layer.

    The construction of the authors' n-body code: the backbone is the benchmark's GNN
    (:class:`~eqbench.models.baselines.NBodyGNN`, ``hidden`` a multiple of 3) with edge
    attributes ``(q_i q_j, |x_i - x_j|^2)``.

    1. Frames ``F`` of the positions (PCA frames of ``group``); the nodes' inputs are the framed
       positions and velocities, ``[R^T (x_i - t), R^T v_i]``, one copy per frame.
    2. After each message-passing layer but the last, the hidden state of node ``i`` is read as
       ``hidden / 3`` vectors of R^3 in the frame's coordinates and mapped out and averaged,
       ``u_i = 1/|F| sum_{(R, t)} R h_i^{(R, t)}``: equivariant latent vectors. New frames are
       computed from the cloud of all ``N * hidden / 3`` latent vectors (centred on their mean for
       E(d) and SE(d)), and the latent vectors are framed again for the next layer.
    3. The decoder's output ``y`` in the last frames is averaged as points: ``1/|F| sum R y + c``
       with ``c`` the centroid of the input positions (the latent vectors do not move with
       translations, so the output does).

    Every step maps ``g``-transformed inputs to ``g``-transformed outputs, so the predicted
    positions are E(3) x S_n equivariant (O(3) x S_n, SO(3), SE(3) for the other groups);
    degenerate clouds, input or latent, get the multiplicity-aware frames of :class:`PCAFrames`.
    ``forward(positions (B, N, 3), velocities (B, N, 3), charges (B, N, 1)) -> (B, N, 3)``.
    """

    def __init__(self, hidden: int = 60, layers: int = 4, *, group: str = "E", **frame_options: Any) -> None:
        super().__init__()
        if hidden % 3:
            raise ValueError(f"FA-GNN reads hidden states as 3-vectors, so hidden must be a multiple of 3, got {hidden}")
        self.gnn = NBodyGNN(hidden, layers, edge_features=2)
        self.frames = PCAFrames(group, **frame_options)

    def extra_repr(self) -> str:
        return f"frames={self.frames!r}"

    def forward(self, positions: Tensor, velocities: Tensor, charges: Tensor) -> Tensor:
        check_system(positions, velocities, charges)
        batch, num_points, _ = positions.shape
        frames = self.frames(positions)
        centres = frames.centres
        attributes = torch.cat([charge_products(charges), squared_distances(positions)], dim=-1)
        h = self.gnn.embed(torch.cat([to_frame(positions, frames, "points"), to_frame(velocities, frames, "vectors")], dim=-1))
        last = len(self.gnn.edges) - 1
        for layer in range(last + 1):
            h = self.gnn.propagate(layer, h, attributes[frames.owner])
            if layer < last:
                latent = frame_mean(from_frame(h.unflatten(-1, (-1, 3)), frames, "vectors"), frames).flatten(1, 2)
                frames = self.frames(latent)
                h = to_frame(latent, frames, "points").reshape(-1, num_points, h.shape[-1]).to(h.dtype)
        out = frame_mean(from_frame(self.gnn.decode(h), frames, "vectors"), frames) + centres[:, None, :]
        return out.to(positions.dtype)


# ------------------------------------------------------------------ the paper's models
def fa_pointnet(
    num_classes: int = 10,
    *,
    normals: bool = False,
    group: str = "E",
    widths: Sequence[int] = (64, 128),
    degeneracy: str = "multiplicity",
) -> FrameAveraging:
    """FA-PointNet: :class:`~eqbench.models.baselines.PointNet` averaged over the PCA frame of ``group``.

    ``normals=False``: invariant class logits ``(B, num_classes)``; ``normals=True``: per-point
    equivariant vectors ``(B, N, 3)`` (normal estimation, as in Puny et al.).
    """
    if normals:
        return FrameAveraging(PointNet(3, 3, widths, per_point=True), group, "vectors", degeneracy=degeneracy)
    return FrameAveraging(PointNet(3, num_classes, widths), group, "invariant", degeneracy=degeneracy)


def fa_gnn(hidden: int = 60, layers: int = 4, *, group: str = "E", degeneracy: str = "multiplicity") -> FAGNN:
    """FA-GNN for charged n-body (Puny et al. 2022): :class:`FAGNN` with the authors' width (60) and depth (4)."""
    return FAGNN(hidden, layers, group=group, degeneracy=degeneracy)


# --------------------------------------------------------------------------- helpers
def _require_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; known: {choices}")


def _sign_choices(dim: int, proper: bool, device: torch.device) -> Tensor:
    """``(S, d)`` sign vectors: all ``2^d``, or those with product +1 (rotations) when ``proper``."""
    signs = torch.tensor(list(itertools.product((1.0, -1.0), repeat=dim)), dtype=torch.float64, device=device)
    return signs[signs.prod(dim=1) > 0] if proper else signs


def _with_positive_determinant(bases: Tensor) -> Tensor:
    """Flip the last axis of every basis with ``det < 0`` (the sign choices restore both orientations for O(d))."""
    flip = torch.ones(bases.shape[0], bases.shape[-1], dtype=bases.dtype, device=bases.device)
    flip[:, -1] = torch.sign(torch.linalg.det(bases))
    return bases * flip[:, None, :]


def _clusters(relative: Tensor, gap_tolerance: float) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges of decreasing eigenvalues whose consecutive relative gaps are below ``gap_tolerance``."""
    bounds, start = [], 0
    for k in range(1, relative.shape[0]):
        if float(relative[k - 1] - relative[k]) >= gap_tolerance:
            bounds.append((start, k))
            start = k
    bounds.append((start, relative.shape[0]))
    return bounds


def _anchored_axes(projections: Tensor, tie_tolerance: float, limit: int) -> list[Tensor]:
    """Orthonormal ``(m, m)`` bases of a degenerate cluster built from the points' projections ``(n, m)``.

    Axis ``k`` is the unit residual of a point whose residual (projection minus its components
    along the axes so far) is longest, branching over every point that ties with the longest;
    the last axis completes the basis (its sign is left to the frame's sign choices).
    """
    m = projections.shape[1]
    scale = projections.norm(dim=1).max()
    bases: list[Tensor] = []

    def extend(axes: list[Tensor], residual: Tensor) -> None:
        if len(bases) > limit:
            raise DegenerateFrameError(f"a degenerate cluster has more than max_frames={limit} candidate bases")
        norms = residual.norm(dim=1)
        top = norms.max()
        if len(axes) == m - 1 or top <= 1e-12 * scale:
            bases.append(_complete_basis(axes, m, projections))
            return
        for j in torch.nonzero(norms >= (1 - tie_tolerance) * top).flatten().tolist():
            axis = residual[j] / norms[j]
            extend(axes + [axis], residual - (residual @ axis)[:, None] * axis[None, :])

    extend([], projections)
    return bases


def _complete_basis(axes: list[Tensor], m: int, like: Tensor) -> Tensor:
    """``(m, m)`` orthonormal matrix whose first columns are ``axes``, completed by Gram-Schmidt on the unit vectors."""
    columns = list(axes)
    for candidate in torch.eye(m, dtype=like.dtype, device=like.device):
        if len(columns) == m:
            break
        for column in columns:
            candidate = candidate - (candidate @ column) * column
        if candidate.norm() > 1e-6:
            columns.append(candidate / candidate.norm())
    return torch.stack(columns, dim=1)


def to_frame(field: Tensor, frames: Frames, kind: str) -> Tensor:
    """``g^-1 . field`` for every frame ``g = (R, t)`` of its item: ``R^T (x - t)``, ``R^T v`` or unchanged."""
    copies = field[frames.owner]
    if kind == "scalars":
        return copies
    dim = frames.rotations.shape[-1]
    if field.shape[-1] != dim:
        raise ValueError(f"{kind} must have the spatial axis last with size {dim}, got shape {tuple(field.shape)}")
    values = copies.to(torch.float64)
    if kind == "points":
        values = values - _broadcast(frames.translations, values)
    rotated = torch.einsum("f...i,fij->f...j", values, frames.rotations)
    return rotated.to(field.dtype)


def from_frame(out: Tensor, frames: Frames, kind: str) -> Tensor:
    """``g . out`` for every frame: ``R y + t`` (points), ``R y`` (vectors), ``y`` (invariant); float64."""
    values = out.to(torch.float64)
    if kind == "invariant":
        return values
    dim = frames.rotations.shape[-1]
    if out.shape[-1] != dim:
        raise ValueError(f"the backbone's {kind} output must have the spatial axis last with size {dim}, got shape {tuple(out.shape)}")
    moved = torch.einsum("fij,f...j->f...i", frames.rotations, values)
    if kind == "points":
        moved = moved + _broadcast(frames.translations, moved)
    return moved


def frame_mean(values: Tensor, frames: Frames) -> Tensor:
    """The average over each item's frames: ``(T, ...) -> (B, ...)``.

    An item's frames are consecutive (``owner`` is sorted), so this is a segment mean over the
    ``counts``; ``segment_reduce`` does it in one pass (``index_add`` with repeated indices is
    about 100x slower on CPU).
    """
    return torch.segment_reduce(values, "mean", lengths=frames.counts, axis=0)


def _broadcast(translations: Tensor, like: Tensor) -> Tensor:
    """``(T, d)`` reshaped to broadcast against ``(T, ..., d)``."""
    return translations.reshape((translations.shape[0],) + (1,) * (like.dim() - 2) + (translations.shape[1],))

