"""LieConv's kernel network and Monte-Carlo sum, with a memory-lean hand-written backward.

The weight network (the reference's ``WeightNet``) maps each selected pair's features
``p = [k(log(v^-1 u)), q_u, q_v]`` through ``L`` stages

    z_l = W_l a_{l-1} + b_l,   y_l = BN(z_l),   a_l = SiLU(y_l),   a_0 = p,

where BN is batch normalisation over the *valid* pairs only (in evaluation mode the running
statistics); ``w_uv = a_L`` are the kernel weights, contracted with the neighbour values into
the Monte-Carlo sum ``S_u = sum_v w_uv (x) f_v`` (the PointConv trick), and the layer's output
is ``L(s_u S_u)`` with the per-query factor ``s_u`` (one over the number of neighbours).

This runs on every selected pair of every layer (777k pairs per rotMNIST batch), so autograd
would keep ``z_l, y_l, a_l`` for every stage plus the gathered ``(P, c_in)`` neighbour values:
most of LieConv's memory. :class:`PairConvolution` keeps only the ``(V, pair_dim)`` features of
the ``V`` valid pairs, the per-stage batch statistics, the ``(B, n, c_in)`` values, the
neighbour indices and the real queries' sums ``S`` ``(R, out c_in)`` (the input of ``L``).
Its forward pass runs without autograd and in place; its backward pass recomputes the stages
(with the saved statistics) and the gather, then applies the chain rule by hand (temporaries
live in the pass's :class:`~eqbench.models.lieconv.workspace.Workspace`). The price of the
saved memory is one more pass of the weight network during backward.

Speed and memory. The stages' time is the number of elementwise passes over ``(V, 32)``
arrays (the SiLU ones, with an ``exp`` per element, cost the most), so the passes are kept few:

* the stages run on the valid pairs alone, packed (``V`` rows; invalid pairs are padding, e.g.
  53% of a QM9 batch's dense pairs), so no stage multiplies by a validity mask; the weights are
  placed in the layout of the sum (zeros on invalid pairs) only at the end;
* ``s_u`` scales the ``(R, c_out)`` output of ``L`` before its bias, not the pair weights;
* in backward, the constant ``t`` of ``g_z`` (below) is folded into the matrix products for
  ``g_W`` and ``g_a`` instead of taking a pass over ``g_z``;
* ``S`` is kept from the forward pass rather than recomputed (a batched product with ``K = k``
  or ``K = n`` and, with padded queries, a row gather per layer): 4 B per real query and
  channel of ``S`` (87 MB per rotMNIST batch over the 6 layers, 212 MB per QM9 batch at
  ``k = 1536``) for about 7% of the forward + backward time; backward gathers the neighbour
  values once (the sum's gradient and the weights' gradient share them);
* in the dense form the weights are written straight into the ``(B, m, out, n)`` layout of the
  batched product and ``g_w`` is read straight out of it (no ``(P, out)`` copy between), and
  only the padded queries' rows of ``g_S`` are zeroed;
* the workspace is sized for backward only when a backward pass can follow.

Measured with ``suites/lieconv_ratios.py`` (2 threads), these took forward + backward from 1.08
to 0.98 s (rotMNIST, SO(2)) and from 0.33 to 0.22 s (QM9, ``k = 256``), and peak memory from
0.84 to 0.94 GB (rotMNIST) and from 0.99 to 1.15 GB (QM9, ``k = 1536``), 0.41 of the reference's.
Then (issue 12): the backward pass's stages run by cache-sized blocks of rows (recomputation
through all stages per block; per stage, one sweep for ``g_y`` and its sums, one for ``g_z``
and the products), with ``g_W`` as ``(a^T g_z)^T``; evaluation without backward convolves a
few items at a time. Interleaved in one process on one thread (CPU time, busy machine), these
and the kept workspace (:mod:`~eqbench.models.lieconv.workspace`) took rotMNIST forward +
backward to about 0.8 of its earlier time (SO(2) and T(2)) and forward to about 0.9.

Passes without backward (evaluation; a training pass without gradients, e.g. one that only
sets the ball radii and running statistics) are streamed: their queries go through the weight
network, the sum and ``L`` in chunks whose workspace fits :data:`CHUNK_BYTES` (2 MiB: a few
whole items, or a block of one item's queries; larger when that would make over
:data:`MAX_CHUNKS` chunks, or give a chunk less workspace than the bytes of ``L``'s weights, which
every chunk reads again: :meth:`WeightNet.chunk_queries`), so no pair-level tensor of the whole
batch is formed and the pass's peak is set by its point-level tensors. With BatchNorm in training the
chunks first gather the batch statistics stage by stage (:meth:`WeightNet.streamed_statistics`:
``L (L + 1) / 2`` extra stage evaluations, exact up to rounding). Such a pass keeps no ``S``.
For the QM9 ``k = 256`` evaluation (75 molecules, 63k pairs a layer) this took the peak
resident set of the measuring child over its resident set after the imports from 43 MB to
about 25 MB (``suites/lieconv_ratios.py``); one-thread CPU time was unchanged (rotMNIST, QM9
``k = 256``) or within 1% (``k = 1536``) of the earlier few-items-at-a-time chunks.

Chain rule (``n = V`` valid pairs, ``s = gamma rstd``, ``x̂`` the normalised ``z``, ``1`` a
column of ones):

    S = sum_k w (x) f:   g_w = sum_c g_S f,   g_f = sum_w g_S w   (scattered back to the points)
    g_y = SiLU'(y) g
    BN, training:    g_beta = sum g_y,  g_gamma = sum g_y x̂,  v = s g_gamma / n,  t = s g_beta / n,
                     g_z = s g_y - v x̂ - t   (formed in place as s g_y - v x̂; t enters the products),
                     g_W = (g_z + t)^T a_{l-1} - t (1^T a_{l-1}),  g_b = 0,  g_a = (g_z + t) W - 1 (t^T W)
    BN, evaluation:  g_z = s g_y,  g_W = g_z^T a_{l-1},  g_b = s g_beta,  g_a = g_z W
    no BN:           g_W = g_y^T a_{l-1},  g_b = sum g_y,  g_a = g_y W.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from eqbench.models.lieconv.groups.base import gather_points
from eqbench.models.lieconv.workspace import Workspace


#: Bytes of workspace one chunk of queries may use when a pass without backward is streamed
#: (:meth:`WeightNet.convolve_in_chunks`): stage buffers, kernel weights, gathered neighbour
#: values and Monte-Carlo sums of the chunk. 2 MiB keeps them in the processor's caches and
#: keeps the whole pass's pair-level memory at that, whatever the batch.
CHUNK_BYTES = 1 << 21
#: Most chunks a streamed pass is cut into: a chunk costs a fixed few dozen operations, so a pass of
#: thousands of queries is cut into at most this many, and its workspace is then 1/16 of the
#: unstreamed pass's.
MAX_CHUNKS = 16
#: Rows per block of the backward pass's stage computations (2 MB per block of 32 float32 channels: cache-sized).
BLOCK_ROWS = 1 << 14


class WeightNet(nn.Module):
    """The kernel MLP ``pair_dim -> hidden -> hidden -> out``, each stage Linear, masked BatchNorm (``bn``), SiLU.

    Holds the parameters; :meth:`convolve` evaluates it together with the Monte-Carlo sum.
    """

    def __init__(self, pair_dim: int, hidden: int, out: int, bn: bool = True) -> None:
        super().__init__()
        self.widths = [pair_dim, hidden, hidden, out]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(self.widths[:-1], self.widths[1:]))
        self.norms = nn.ModuleList(nn.BatchNorm1d(b) for b in self.widths[1:]) if bn else None

    def parameter_list(self) -> list[Tensor]:
        """``W, b`` per stage, followed by ``gamma, beta`` with BatchNorm (the order :class:`Stages` expects)."""
        params: list[Tensor] = []
        for index, linear in enumerate(self.linears):
            params += [linear.weight, linear.bias]
            if self.norms is not None:
                params += [self.norms[index].weight, self.norms[index].bias]
        return params

    def convolve(
        self,
        pairs: Tensor,
        valid: Tensor,
        values: Tensor,
        index: Tensor | None,
        linear: nn.Linear,
        rows: Tensor | None = None,
        query_scale: Tensor | None = None,
        workspace: Workspace | None = None,
        statistics: list[tuple[Tensor, Tensor]] | None = None,
    ) -> Tensor:
        """``L(s_i sum_j w(pairs[b, i, j]) (x) f_j)`` over valid pairs, for the real queries: ``(R, c_out)``.

        ``pairs`` ``(B, m, k, pair_dim)`` and ``valid`` ``(B, m, k)``; neighbour ``j`` is point
        ``index[b, i, j]`` of ``values`` ``(B, n, c)``, or point ``j`` itself when ``index`` is
        ``None`` (``k = n``). ``linear`` maps ``out * c -> c_out`` (input laid out ``(w, c)``);
        ``rows`` are the flat indices (into ``B m``) of the real queries, ``None`` for all.
        ``query_scale`` ``(B, m)`` (``s_i``, e.g. one over the number of neighbours) scales
        ``L``'s product before its bias.

        Without a backward pass to follow, the queries are streamed in chunks whose workspace
        fits :data:`CHUNK_BYTES` (:meth:`convolve_in_chunks`), so no pair-level temporary of
        the whole batch is ever formed: with fixed BatchNorm statistics (evaluation, or no
        BatchNorm) every query is independent; in training the batch statistics are first
        gathered chunk by chunk (:meth:`streamed_statistics`). ``statistics`` (the ``(mean,
        rstd)`` of each stage, bias excluded) replace the BatchNorm statistics of this call.
        """
        params = self.parameter_list()
        backward = torch.is_grad_enabled() and any(t.requires_grad for t in (pairs, values, linear.weight, linear.bias, *params))
        batch, m, k = valid.shape
        if not backward and statistics is None:
            span = self.chunk_queries(k, values, index is None, batch * m, linear.weight.numel())
            if span < batch * m:
                if self.norms is not None and self.training:
                    statistics = self.streamed_statistics(pairs, valid, span)
                return self.convolve_in_chunks(pairs, valid, values, index, linear, rows, query_scale, workspace, span, statistics)
        flat = pairs.reshape(-1, pairs.shape[-1])
        slots = valid.reshape(-1).nonzero().squeeze(1)
        if slots.numel() == flat.shape[0]:
            slots = None
        else:
            flat = flat.index_select(0, slots)
        scale = None
        if query_scale is not None:
            scale = query_scale.reshape(-1).to(pairs.dtype)
            scale = (scale if rows is None else scale.index_select(0, rows))[:, None]
        stages = Stages(self, flat.shape[0], Workspace() if workspace is None else workspace, statistics)
        layout = Layout(stages, values, index, tuple(valid.shape), rows, slots, scale, backward)
        return PairConvolution.apply(flat, values, layout, linear.weight, linear.bias, *params)

    def chunk_queries(self, k: int, values: Tensor, dense: bool, queries: int, weights: int) -> int:
        """Queries per chunk of a streamed pass of ``queries`` queries: as many as :data:`CHUNK_BYTES`
        holds (at least one), or more when that would cut the pass into over :data:`MAX_CHUNKS`
        chunks, or give a chunk less workspace than the ``weights`` numbers of the output linear map
        that every chunk reads again (QM9 at ``k = 1536``: 24,576 x 1,536 weights, 151 MB, read
        once per chunk, against 196 kB of workspace a query: chunks of 10 queries made the forward
        pass 1.6 times slower, memory-bound on those reads).

        A query's share of the forward workspace (:meth:`Layout.forward_shapes`), at most: two
        stage buffers and the placed weights per pair (``2 hidden + out`` numbers), the gathered
        neighbour values and scattered weights in the gather form (``c + out``), and the sum
        ``S`` with its packed copy (``2 out c``).
        """
        out, channels = self.widths[-1], values.shape[-1]
        per_pair = 2 * max(self.widths[1:]) + out + (0 if dense else channels + out)
        per_query = k * per_pair + 2 * out * channels
        query_bytes = per_query * values.element_size()
        at_least = max(-(-queries // MAX_CHUNKS), -(-weights * values.element_size() // query_bytes))
        return max(1, CHUNK_BYTES // query_bytes, at_least)

    def convolve_in_chunks(
        self,
        pairs: Tensor,
        valid: Tensor,
        values: Tensor,
        index: Tensor | None,
        linear: nn.Linear,
        rows: Tensor | None,
        query_scale: Tensor | None,
        workspace: Workspace | None,
        span: int,
        statistics: list[tuple[Tensor, Tensor]] | None = None,
    ) -> Tensor:
        """:meth:`convolve` on chunks of about ``span`` queries (:func:`query_chunks`; no backward): the same ``(R, c_out)``.

        With BatchNorm in training, ``statistics`` are the whole batch's (:meth:`streamed_statistics`).
        ``rows`` are sorted (flat indices of the real queries), so the chunks' outputs follow
        one another in the order of ``rows``.
        """
        batch, m = valid.shape[:2]
        chunks = query_chunks(batch, m, span)
        bounds = None
        if rows is not None:  # each chunk's [first, last) among the real queries' flat indices, found at once
            flat = torch.tensor([[b0 * m + q0, (b1 - 1) * m + q1] for b0, b1, q0, q1 in chunks], device=rows.device)
            bounds = torch.searchsorted(rows, flat).tolist()
        workspace = Workspace() if workspace is None else workspace
        outputs = []
        for number, (b0, b1, q0, q1) in enumerate(chunks):
            chunk_rows = None
            if bounds is not None:
                first, last = bounds[number]
                if first == last:
                    continue  # no real query in this chunk
                if last - first < (b1 - b0) * (q1 - q0):
                    chunk_rows = rows[first:last] - (b0 * m + q0)
            items, queries = slice(b0, b1), slice(q0, q1)
            outputs.append(self.convolve(
                pairs[items, queries], valid[items, queries], values[items], None if index is None else index[items, queries],
                linear, chunk_rows, None if query_scale is None else query_scale[items, queries], workspace, statistics,
            ))
        return torch.cat(outputs) if outputs else values.new_zeros(0, linear.out_features)

    def streamed_statistics(self, pairs: Tensor, valid: Tensor, span: int) -> list[tuple[Tensor, Tensor]]:
        """Training BatchNorm statistics ``(mean, rstd)`` of every stage over all valid pairs, gathered chunk by chunk.

        Stage ``l``'s statistics need the normalised outputs of the stages before it, so stage
        ``l`` is one sweep over the chunks (:func:`query_chunks`) that recomputes stages ``1..l-1``
        with their statistics (``L (L + 1) / 2`` stage evaluations in all, against ``L`` for
        one pass over the whole batch) and combines the chunks' means and variances (Chan et
        al.'s pairwise update, exact up to rounding). The running statistics are updated as by
        :func:`batch_statistics` for one batch.
        """
        batch, m = valid.shape[:2]
        chunks = [(slice(b0, b1), slice(q0, q1)) for b0, b1, q0, q1 in query_chunks(batch, m, span)]
        split = Stages(self, 0, Workspace()).split(tuple(self.parameter_list()))
        statistics: list[tuple[Tensor, Tensor]] = []
        for index, norm in enumerate(self.norms):
            count, mean, m2 = 0, None, None
            for items, queries in chunks:
                h = pairs[items, queries][valid[items, queries]]
                if h.shape[0] == 0:
                    continue
                for (weight, _, gamma, beta), (shift, rstd) in zip(split, statistics):
                    h = F.silu(torch.addcmul(beta, torch.mm(h, weight.t()).sub_(shift), gamma * rstd))
                chunk_mean, chunk_var = torch.batch_norm_update_stats(torch.mm(h, split[index][0].t()), None, None, 0.0)
                rows = h.shape[0]
                if mean is None:
                    count, mean, m2 = rows, chunk_mean.double(), chunk_var.double() * rows
                    continue
                delta = chunk_mean.double() - mean
                total = count + rows
                mean = mean + delta * (rows / total)
                m2 = m2 + chunk_var.double() * rows + delta.square() * (count * rows / total)
                count = total
            if mean is None:
                raise ValueError("BatchNorm in training mode needs at least 2 valid pairs, got 0")
            statistics.append(batch_statistics(norm, mean.to(pairs.dtype), (m2 / count).to(pairs.dtype), split[index][1], count))
        return statistics


class Stages:
    """The stage-by-stage evaluation of a :class:`WeightNet` on the ``(V, pair_dim)`` features of the valid pairs.

    :meth:`forward` records each stage's ``(mean, rstd)`` (batch statistics over the ``V``
    rows in training, running statistics otherwise) for :meth:`recompute`. Temporaries are
    views of ``workspace``.
    """

    def __init__(self, net: WeightNet, count: int, workspace: Workspace, given: list[tuple[Tensor, Tensor]] | None = None) -> None:
        self.norms = None if net.norms is None else list(net.norms)
        self.widths = net.widths
        self.training = net.training
        self.count = count
        self.workspace = workspace
        self.given = given  # statistics gathered beforehand (:meth:`WeightNet.streamed_statistics`), used as they are
        self.stats: list[tuple[Tensor, Tensor]] = []

    def split(self, params: tuple[Tensor, ...]) -> list[tuple[Tensor, Tensor, Tensor | None, Tensor | None]]:
        step = 2 if self.norms is None else 4
        groups = [params[i : i + step] for i in range(0, len(params), step)]
        return [(g[0], g[1], None, None) if self.norms is None else (g[0], g[1], g[2], g[3]) for g in groups]

    def scratch_shapes(self) -> list[tuple[int, ...]]:
        """Workspace of the backward pass: ``x̂_l`` (or ``z_l``) and ``a_l`` per stage, then two spare gradient buffers."""
        rows, hidden = self.count, self.widths[1:]
        spare = (rows * max(hidden),)
        return [(rows, c) for c in hidden] * 2 + [spare, spare]

    def forward_shapes(self) -> list[tuple[int, ...]]:
        """Workspace of :meth:`forward`: two alternating stage buffers."""
        return [(self.count * max(self.widths[1:]),)] * 2

    def forward(self, x: Tensor, params: tuple[Tensor, ...], extra: list[tuple[int, ...]]) -> tuple[Tensor, list[Tensor]]:
        """The weights ``a_L`` ``(V, out)`` (no autograd, in place, in two alternating workspace buffers), recording the statistics.

        A stage's statistics need all its rows, but its BatchNorm and SiLU are applied block by
        block (:func:`row_blocks`) as the next stage's product reads them, while the block is in cache.
        Also returns workspace tensors of the ``extra`` shapes that do not overlap the weights.
        """
        rows = x.shape[0]
        even, odd, *spare = self.workspace.views([*self.forward_shapes(), *extra], x)
        pending: tuple[Tensor, Tensor | None, Tensor | None] | None = None  # (z, shift, scale) awaiting BN and SiLU
        for index, (weight, bias, gamma, beta) in enumerate(self.split(params)):
            z = (even if index % 2 == 0 else odd)[: rows * weight.shape[0]].view(rows, weight.shape[0])
            for block in row_blocks(rows):
                h = x[block] if pending is None else activate(*pending, block)
                if self.norms is None:
                    torch.addmm(bias, h, weight.t(), out=z[block])
                else:
                    torch.mm(h, weight.t(), out=z[block])
            if self.norms is None:
                pending = (z, None, None)
            else:
                mean, rstd = self.statistics(z, self.norms[index], bias) if self.given is None else self.given[index]
                self.stats.append((mean, rstd))
                scale = gamma * rstd
                pending = (z, beta - mean * scale, scale)
            x = z
        return activate(*pending, slice(None)), spare

    def statistics(self, z: Tensor, norm: nn.BatchNorm1d, bias: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean, rstd)`` for BatchNorm of ``z + bias`` (``z = W a``, bias excluded); updates running statistics in training."""
        if self.training:
            mean, var = torch.batch_norm_update_stats(z, None, None, 0.0)
            return batch_statistics(norm, mean, var, bias, self.count)
        return norm.running_mean - bias, torch.rsqrt(norm.running_var + norm.eps)

    def recompute(self, x: Tensor, params: tuple[Tensor, ...], scratch: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Stage inputs ``[a_0, ..., a_L]`` (the last is the weights) and ``x̂_l`` (BN) or ``z_l`` per stage.

        ``scratch`` holds ``2 L`` buffers: ``x̂_1, ..., x̂_L, a_1, ..., a_L``. With the statistics
        known every row is independent, so all the stages run on one block of rows after the
        other (:func:`row_blocks`: each block's stages stay in cache).
        """
        stages = self.split(params)
        count = len(stages)
        folded = []  # per stage: the matrix and the shift giving z (no BN) or x̂ (BN) in one product
        for index, (weight, bias, _, _) in enumerate(stages):
            if self.norms is None:
                folded.append((weight.t(), bias))
            else:
                mean, rstd = self.stats[index]
                folded.append(((weight * rstd[:, None]).t(), mean * rstd))
        for block in row_blocks(x.shape[0]):
            h = x[block]
            for index, (_, _, gamma, beta) in enumerate(stages):
                first, second = scratch[index][block], scratch[count + index][block]
                matrix, shift = folded[index]
                if self.norms is None:
                    h = torch.ops.aten.silu.out(torch.addmm(shift, h, matrix, out=first), out=second)
                else:
                    z = torch.mm(h, matrix, out=first).sub_(shift)  # (addmm would copy the shift first)
                    h = F.silu(torch.addcmul(beta, z, gamma, out=second), inplace=True)
        return [x, *scratch[count:]], list(scratch[:count])

    def backward(
        self, grad: Tensor, params: tuple[Tensor, ...], inputs: list[Tensor], normalised: list[Tensor], spares: list[Tensor], input_grad: bool
    ) -> tuple[Tensor | None, list[Tensor]]:
        """Gradients ``(g_pairs, [g_W, g_b, (g_gamma, g_beta)] per stage)`` for ``grad`` ``(V, out)`` of the weights (module docstring).

        Consumes ``grad``, ``inputs[1:]`` and ``normalised``; the gradients of the stage inputs
        alternate between the two flat ``spares``. ``g_pairs`` (``None`` unless ``input_grad``) is a fresh tensor.
        Each stage takes two sweeps over blocks of rows (:func:`row_blocks`): the first forms
        ``g_y`` and its column sums (which the batch statistics' terms need), the second ``g_z``,
        the products for ``g_W`` (accumulated) and ``g_a``, so each block stays in cache.
        """
        stages = self.split(params)
        grads: list[Tensor] = []
        for index in reversed(range(len(stages))):
            weight, bias, gamma, beta = stages[index]
            a, z, free = inputs[index], normalised[index], inputs[index + 1]  # a_l (free) is no longer needed
            blocks = row_blocks(a.shape[0])
            grad_beta = grad.new_zeros(weight.shape[0])
            grad_gamma = grad.new_zeros(weight.shape[0])
            for block in blocks:  # g_y = SiLU'(y) g (in place of g), its column sums
                y = z[block] if self.norms is None else torch.addcmul(beta, z[block], gamma, out=free[block])
                gy = torch.ops.aten.silu_backward.grad_input(grad[block], y, grad_input=grad[block])
                grad_beta += gy.sum(0)
                if self.norms is not None:
                    grad_gamma += torch.mul(gy, z[block], out=free[block]).sum(0)
            scale, v, t, offset = None, None, None, None
            if self.norms is not None:
                scale = gamma * self.stats[index][1]
                if self.training:  # the batch statistics depend on z too: g_z = s g_y - v x̂ - t
                    v, t = scale * grad_gamma / self.count, scale * grad_beta / self.count
                    offset = -(t @ weight)
            produce = index > 0 or input_grad
            rows, width = a.shape
            if produce:
                out = torch.empty(rows, width, dtype=grad.dtype, device=grad.device) if index == 0 else spares[index % 2][: rows * width].view(rows, width)
            # g_W^T = a^T g_z, accumulated over the blocks: the thin operand first, which the CPU's matrix
            # product runs far better for the first stage (in = pair_dim = 4 for SO(2): 8 ms instead of 88 ms
            # for g_z^T a on a rotMNIST first layer, one thread) and as well for the others
            transposed = grad.new_zeros(width, weight.shape[0])
            for block in blocks:
                gz = grad[block]
                if scale is not None:
                    gz.mul_(scale)
                if v is not None:
                    gz.addcmul_(z[block], -v)
                transposed.addmm_(a[block].t(), gz)
                if produce:
                    product = torch.mm(gz, weight, out=out[block])
                    if offset is not None:
                        product.add_(offset)
            grad_weight = transposed.t().contiguous()
            if self.norms is None:
                grads = [grad_weight, grad_beta] + grads
            elif self.training:
                grads = [torch.addr(grad_weight, t, a.sum(0), alpha=-1), torch.zeros_like(bias), grad_gamma, grad_beta] + grads
            else:
                grads = [grad_weight, scale * grad_beta, grad_gamma, grad_beta] + grads
            if not produce:
                return None, grads
            grad = out
        return grad, grads


def activate(z: Tensor, shift: Tensor | None, scale: Tensor | None, block: slice) -> Tensor:
    """``SiLU(scale z + shift)`` (BatchNorm folded into ``scale`` and ``shift``; ``SiLU(z)`` without) on ``z[block]``, in place."""
    rows = z[block]
    if scale is not None:
        torch.addcmul(shift, rows, scale, out=rows)
    return F.silu(rows, inplace=True)


def batch_statistics(norm: nn.BatchNorm1d, mean: Tensor, var: Tensor, bias: Tensor, count: int) -> tuple[Tensor, Tensor]:
    """Training: ``(mean, rstd)`` from the ``mean`` and biased ``var`` of ``z`` over ``count`` rows; updates ``norm``'s running statistics."""
    if count < 2:
        raise ValueError(f"BatchNorm in training mode needs at least 2 valid pairs, got {count}")
    norm.num_batches_tracked.add_(1)
    # nn.BatchNorm1d's rule: exponential average, or the cumulative average when momentum is None
    momentum = 1.0 / float(norm.num_batches_tracked) if norm.momentum is None else norm.momentum
    norm.running_mean.lerp_(mean + bias, momentum)
    norm.running_var.lerp_(var * (count / (count - 1)), momentum)
    return mean, torch.rsqrt(var + norm.eps)


def query_chunks(batch: int, m: int, span: int) -> list[tuple[int, int, int, int]]:
    """Chunks ``(b0, b1, q0, q1)`` (items ``b0:b1``, queries ``q0:q1``) of about ``span`` of ``batch`` items' ``m`` queries.

    A chunk is a few whole items when ``span`` covers an item's ``m`` queries, else a block of
    at most ``span`` queries of one item: either way a contiguous range of the ``B m`` flat
    query indices, the chunks in order.
    """
    if span >= m:
        items = span // m
        return [(start, min(start + items, batch), 0, m) for start in range(0, batch, items)]
    return [(item, item + 1, first, min(first + span, m)) for item in range(batch) for first in range(0, m, span)]


def row_blocks(rows: int) -> list[slice]:
    """Consecutive slices of at most :data:`BLOCK_ROWS` rows covering ``rows`` rows."""
    return [slice(start, min(start + BLOCK_ROWS, rows)) for start in range(0, rows, BLOCK_ROWS)]


class PairConvolution(torch.autograd.Function):
    """LieConv's pair computation: kernel weights, Monte-Carlo sum and the final linear map (module docstring).

    ``apply(pairs (V, pair_dim), values, layout, L_weight, L_bias, *params) -> (R, c_out)``:
    ``pairs`` are the valid pairs' features (``layout.slots`` says where they sit among the
    ``P`` selected pairs); the output is ``L(s_u S_u)`` for the real queries of ``layout``,
    packed. ``S`` (real queries) is kept for backward, outside the workspace; the weights are
    recomputed. The backward pass works in place on workspace buffers and is not itself
    differentiable: a second derivative (e.g. training on forces) raises an error.
    """

    @staticmethod
    def forward(ctx: Any, pairs: Tensor, values: Tensor, layout: Layout, weight: Tensor, bias: Tensor, *params: Tensor) -> Tensor:
        stages = layout.stages
        weights, (scattered, summed, neighbours, dense, packed) = stages.forward(pairs, params, layout.forward_shapes())
        keep = layout.backward  # S outlives the call then: it cannot live in the workspace
        if keep and layout.rows is None:
            summed = torch.empty_like(summed)
        elif keep:
            packed = torch.empty_like(packed)
        layout.contract(layout.place(weights, scattered, dense), summed, neighbours)
        kept = layout.packed(summed, packed)
        out = layout.output(torch.mm(kept, weight.t()), bias)
        ctx.layout, ctx.summed = layout, kept if keep else None
        ctx.save_for_backward(pairs, weight, *params)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        layout, summed = ctx.layout, ctx.summed
        stages = layout.stages
        pairs, weight, *params = ctx.saved_tensors
        scratch = stages.workspace.views(layout.backward_shapes(), pairs)
        count = 2 * (len(stages.widths) - 1)
        inputs, normalised = stages.recompute(pairs, tuple(params), scratch[:count])
        spares = scratch[count : count + 2]
        scattered, grad_summed, grad_packed, neighbours, grad_weights, dense = scratch[count + 2 :]
        placed = layout.place(inputs[-1], scattered, dense)
        layout.gather_neighbours(neighbours)
        grad_bias = grad.sum(0)
        if layout.scale is not None:
            grad = grad * layout.scale
        grad_linear = grad.t() @ summed
        grad_summed = layout.unpacked(torch.mm(grad, weight, out=grad_summed if layout.rows is None else grad_packed), grad_summed)
        grad_values, grad_placed = layout.contract_backward(grad_summed, placed, neighbours, grad_weights)
        grad_weights = layout.valid_rows(grad_placed, spares[len(params) // (2 if stages.norms is None else 4) % 2])
        grad_pairs, grad_params = stages.backward(grad_weights, tuple(params), inputs, normalised, spares, ctx.needs_input_grad[0])
        return (grad_pairs, grad_values, None, grad_linear, grad_bias, *grad_params)


class Layout:
    """The Monte-Carlo sum of one :class:`PairConvolution`: shapes, workspace buffers, forward and backward.

    ``values`` ``(B, n, c)``; neighbour ``j`` of query ``i`` is point ``index[b, i, j]``
    (``index`` ``(B, m, k)``), or point ``j`` itself when ``index`` is ``None`` (``k = n``);
    ``rows`` are the flat indices (into ``B m``) of the real queries, ``None`` when all are real;
    ``slots`` the flat indices (into ``B m k``) of the valid pairs, ``None`` when all are valid;
    ``scale`` ``(R, 1)`` the per-query factor ``s_u`` of the real queries, or ``None``;
    ``backward``: whether a backward pass can follow (it sizes the workspace, and ``S`` is kept only then).
    ``S`` is stored ``(B m, out * c)``, laid out ``(w, c)``.
    """

    def __init__(
        self, stages: Stages, values: Tensor, index: Tensor | None, shape: tuple[int, int, int],
        rows: Tensor | None, slots: Tensor | None, scale: Tensor | None, backward: bool = True,
    ) -> None:
        self.stages, self.values, self.index, self.shape, self.rows = stages, values, index, shape, rows
        self.slots, self.scale, self.backward = slots, scale, backward
        self.padding: Tensor | None = None  # the padded queries' rows, found when first needed
        self.coordinates: tuple[Tensor, Tensor] | None = None  # dense form: (query, neighbour) of each valid pair
        self.batch, self.points, self.channels = values.shape
        self.pairs = math.prod(shape)
        self.queries = shape[0] * shape[1]
        self.out = stages.widths[-1]
        self.real = self.queries if rows is None else rows.numel()
        shapes = self.backward_shapes() if backward else stages.forward_shapes() + self.forward_shapes()
        stages.workspace.reserve(sum(math.prod(s) for s in shapes))

    def common_shapes(self) -> list[tuple[int, ...]]:
        """Scattered weights (gather form), ``S``, gathered neighbours (gather form), permuted weights (dense form), packed ``S``."""
        gather = self.index is not None
        scattered = (self.pairs, self.out) if gather and self.slots is not None else (0,)
        neighbours = (self.pairs, self.channels) if gather else (0,)
        dense = (0,) if gather else (self.pairs * self.out,)
        packed = (0,) if self.rows is None else (self.real, self.out * self.channels)
        return [scattered, (self.queries, self.out * self.channels), neighbours, dense, packed]

    def forward_shapes(self) -> list[tuple[int, ...]]:
        """Workspace of the forward pass after the stage buffers."""
        return self.common_shapes()

    def backward_shapes(self) -> list[tuple[int, ...]]:
        """Workspace of the backward pass: the stages', scattered weights, ``g_S``, its packed rows, neighbours, ``g_w``, dense weights."""
        scattered, summed, neighbours, dense, packed = self.common_shapes()
        return self.stages.scratch_shapes() + [scattered, summed, packed, neighbours, (self.pairs, self.out), dense]

    def place(self, weights: Tensor, scattered: Tensor, dense: Tensor) -> Tensor:
        """The valid pairs' ``(V, out)`` weights laid out for :meth:`contract`, zeros on invalid pairs.

        Gather form: ``(P, out)`` (``weights`` itself when every pair is valid, else scattered
        into ``scattered``). Dense form: ``dense`` as ``(B, m, out, k)``, written directly.
        """
        if self.index is not None:
            return weights if self.slots is None else scattered.zero_().index_copy_(0, self.slots, weights)
        batch, m, k = self.shape
        permuted = dense.view(batch, m, self.out, k)
        if self.slots is None:
            return permuted.copy_(weights.view(batch, m, k, self.out).permute(0, 1, 3, 2))
        permuted.zero_().view(batch * m, self.out, k).transpose(1, 2).index_put_(self.pair_coordinates(), weights)
        return permuted

    def pair_coordinates(self) -> tuple[Tensor, Tensor]:
        """Dense form: each valid pair's query (into ``B m``) and neighbour (into ``k``), two ``(V,)`` indices (found once)."""
        if self.coordinates is None:
            k = self.shape[2]
            self.coordinates = (torch.div(self.slots, k, rounding_mode="floor"), self.slots % k)
        return self.coordinates

    def valid_rows(self, grad_placed: Tensor, spare: Tensor) -> Tensor:
        """The valid pairs' ``(V, out)`` rows of ``g_w`` laid out as by :meth:`place` (in ``spare`` (flat), or fresh)."""
        if self.index is not None:
            if self.slots is None:
                return grad_placed
            out = spare[: self.slots.numel() * self.out].view(-1, self.out)
            return torch.index_select(grad_placed, 0, self.slots, out=out)
        batch, m, k = self.shape
        per_pair = grad_placed.view(batch * m, self.out, k).permute(0, 2, 1)
        if self.slots is None:
            return spare[: self.pairs * self.out].view(batch * m, k, self.out).copy_(per_pair).view(-1, self.out)
        return per_pair[self.pair_coordinates()]

    def output(self, product: Tensor, bias: Tensor) -> Tensor:
        """``s_u (S_u L^T) + b`` from the real queries' ``S L^T`` ``(R, c_out)``, in place."""
        if self.scale is None:
            return product.add_(bias)
        return torch.addcmul(bias, product, self.scale, out=product)

    def contract(self, placed: Tensor, summed: Tensor, neighbours: Tensor) -> None:
        """``S[b, i] = sum_j w_ij (x) f_j`` into ``summed`` from the weights laid out by :meth:`place`."""
        batch, m, k = self.shape
        if self.index is None:
            torch.bmm(placed.view(batch, m * self.out, k), self.values, out=summed.view(batch, m * self.out, self.channels))
        else:
            self.gather_neighbours(neighbours)
            gathered = neighbours.view(batch * m, k, self.channels)
            weights = placed.view(batch * m, k, self.out).transpose(1, 2)
            torch.bmm(weights, gathered, out=summed.view(batch * m, self.out, self.channels))

    def gather_neighbours(self, neighbours: Tensor) -> None:
        """The gathered ``(P, c)`` neighbour values into ``neighbours`` (gather form; nothing in the dense form)."""
        if self.index is not None:
            gather_points(self.values, self.index, out=neighbours)

    def packed(self, summed: Tensor, out: Tensor) -> Tensor:
        """The real queries' rows of ``summed`` (``summed`` itself when every query is real)."""
        return summed if self.rows is None else torch.index_select(summed, 0, self.rows, out=out)

    def unpacked(self, grad_packed: Tensor, out: Tensor) -> Tensor:
        """``g_S`` ``(B m, out c)`` from the real rows' gradient (zeros on padded queries)."""
        if self.rows is None:
            return grad_packed
        if self.padding is None:
            real = torch.zeros(self.queries, dtype=torch.bool, device=self.rows.device).index_fill_(0, self.rows, True)
            self.padding = (~real).nonzero().squeeze(1)
        return out.index_fill_(0, self.padding, 0.0).index_copy_(0, self.rows, grad_packed)

    def contract_backward(self, grad_summed: Tensor, placed: Tensor, neighbours: Tensor, grad_placed: Tensor) -> tuple[Tensor, Tensor]:
        """``(g_f (B, n, c), g_w)``, ``g_w`` written into ``grad_placed`` (``P out`` elements) laid out as ``placed``.

        In the gather form ``neighbours`` holds the gathered values (:meth:`gather_neighbours`).
        """
        batch, m, k = self.shape
        if self.index is None:
            per_batch = grad_summed.view(batch, m * self.out, self.channels)
            grad_dense = torch.bmm(per_batch, self.values.transpose(1, 2), out=grad_placed.view(batch, m * self.out, k))
            return torch.bmm(placed.view(batch, m * self.out, k).transpose(1, 2), per_batch), grad_dense
        per_query = grad_summed.view(batch * m, self.out, self.channels)
        gathered = neighbours.view(batch * m, k, self.channels)
        torch.bmm(gathered, per_query.transpose(1, 2), out=grad_placed.view(batch * m, k, self.out))
        contributions = torch.bmm(placed.view(batch * m, k, self.out), per_query, out=gathered).view(-1, self.channels)
        flat_index = (self.index + torch.arange(batch, device=self.index.device).view(batch, 1, 1) * self.points).reshape(-1)
        grad_values = torch.zeros(batch * self.points, self.channels, dtype=self.values.dtype, device=self.values.device)
        return grad_values.index_add_(0, flat_index, contributions).view(batch, self.points, self.channels), grad_placed
