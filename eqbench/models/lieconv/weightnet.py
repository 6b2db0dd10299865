"""LieConv's kernel network and Monte-Carlo sum, with a memory-lean hand-written backward.

The weight network (the reference's ``WeightNet``) maps each selected pair's features
``p = [k(log(v^-1 u)), q_u, q_v]`` through ``L`` stages

    z_l = W_l a_{l-1} + b_l,   y_l = BN(z_l),   a_l = SiLU(y_l),   a_0 = p,

where BN is batch normalisation over the *valid* pairs only (masked; in evaluation mode the
running statistics); ``w_uv = a_L`` are the kernel weights, contracted with the neighbour
values into the Monte-Carlo sum ``S_u = sum_v w_uv (x) f_v`` (the PointConv trick).

This runs on every selected pair of every layer (777k pairs per rotMNIST batch), so autograd
would keep ``z_l, y_l, a_l`` for every stage plus the gathered ``(P, c_in)`` neighbour values:
most of LieConv's memory. :class:`PairConvolution` keeps only the ``(P, pair_dim)`` pair
features, the per-stage batch statistics, the ``(B, n, c_in)`` values and the neighbour
indices. Its forward pass runs without autograd and in place; its backward pass recomputes
the stages (with the saved statistics) and the gather, then applies the chain rule by hand
(temporaries live in the pass's :class:`~eqbench.models.lieconv.workspace.Workspace`):

    S = sum_k w (x) f:   g_w = sum_c g_S f,   g_f = sum_w g_S w   (scattered back to the points)
    gy = SiLU'(y) g
    BN, training:    g_gamma = sum gy xhat,  g_beta = sum gy,
                     gz = gamma rstd (gy - g_beta / n - xhat g_gamma / n)     (n valid pairs)
    BN, evaluation:  gz = gamma rstd gy
    Linear:          g_W = gz^T a_{l-1},  g_b = sum gz (exactly 0 under batch statistics),  g_a = gz W.

Invalid pairs enter with zero features and are zeroed after every stage, so their rows never
reach the statistics: the masked statistics are the full-column statistics of ``W a`` rescaled
by ``P / n``. The price of the saved memory is one more pass of the weight network during
backward.
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


def masked_column_stats(z: Tensor, count: int) -> tuple[Tensor, Tensor]:
    """Mean and biased variance per column of ``z`` ``(P, C)`` over its ``count`` valid rows (the other rows are zero)."""
    mean, var = torch.batch_norm_update_stats(z, None, None, 0.0)
    rows = z.shape[0]
    if count == rows:
        return mean, var
    ratio = rows / count
    second = (var + mean * mean) * ratio
    mean = mean * ratio
    return mean, (second - mean * mean).clamp(min=0)


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
    ) -> Tensor:
        """``L(s_i sum_j w(pairs[b, i, j]) (x) f_j)`` over valid pairs, for the real queries: ``(R, c_out)``.

        ``pairs`` ``(B, m, k, pair_dim)`` and ``valid`` ``(B, m, k)``; neighbour ``j`` is point
        ``index[b, i, j]`` of ``values`` ``(B, n, c)``, or point ``j`` itself when ``index`` is
        ``None`` (``k = n``). ``linear`` maps ``out * c -> c_out`` (input laid out ``(w, c)``);
        ``rows`` are the flat indices (into ``B m``) of the real queries, ``None`` for all.
        ``query_scale`` ``(B, m)`` (``s_i``, e.g. one over the number of neighbours) is folded
        into the kernel weights.
        """
        keep = valid.reshape(-1, 1).to(pairs.dtype)
        final = keep if query_scale is None else (valid * query_scale[..., None].to(pairs.dtype)).reshape(-1, 1)
        flat = torch.where(valid.reshape(-1, 1), pairs.reshape(-1, pairs.shape[-1]), torch.zeros((), dtype=pairs.dtype, device=pairs.device))
        stages = Stages(self, int(torch.count_nonzero(valid)), Workspace() if workspace is None else workspace)
        layout = Layout(stages, values, index, tuple(valid.shape), rows)
        masks = torch.cat([keep, final], 1)
        return PairConvolution.apply(flat, masks, values, layout, linear.weight, linear.bias, *self.parameter_list())


class Stages:
    """The stage-by-stage evaluation of a :class:`WeightNet` on ``(P, pair_dim)`` flat pair features.

    ``count`` is the number of valid rows; :meth:`forward` records each stage's ``(mean, rstd)``
    (batch statistics in training, running statistics otherwise) for :meth:`recompute`.
    Temporaries are views of ``workspace``.
    """

    def __init__(self, net: WeightNet, count: int, workspace: Workspace) -> None:
        self.norms = None if net.norms is None else list(net.norms)
        self.widths = net.widths
        self.training = net.training
        self.count = count
        self.workspace = workspace
        self.stats: list[tuple[Tensor, Tensor]] = []

    def split(self, params: tuple[Tensor, ...]) -> list[tuple[Tensor, Tensor, Tensor | None, Tensor | None]]:
        step = 2 if self.norms is None else 4
        groups = [params[i : i + step] for i in range(0, len(params), step)]
        return [(g[0], g[1], None, None) if self.norms is None else (g[0], g[1], g[2], g[3]) for g in groups]

    def scratch_shapes(self, rows: int) -> list[tuple[int, ...]]:
        """Workspace the backward pass of the stages takes: ``xhat_l`` and ``a_l`` per stage, then one spare."""
        hidden = self.widths[1:]
        return [(rows, c) for c in hidden] * 2 + [(rows * hidden[-2],)]

    def forward(self, x: Tensor, masks: Tensor, params: tuple[Tensor, ...], extra: list[tuple[int, ...]]) -> tuple[Tensor, list[Tensor]]:
        """The weights ``a_L`` (no autograd, in place, in two alternating workspace buffers), recording the statistics.

        Also returns workspace tensors of the ``extra`` shapes that do not overlap the weights.
        """
        rows, widest = x.shape[0], max(self.widths[1:])
        even, odd, *spare = self.workspace.views([(rows * widest,), (rows * widest,), *extra], x)
        stages = self.split(params)
        for index, (weight, bias, gamma, beta) in enumerate(stages):
            out = (even if index % 2 == 0 else odd)[: rows * weight.shape[0]].view(rows, weight.shape[0])
            if self.norms is None:
                z = torch.addmm(bias, x, weight.t(), out=out)
            else:
                z = torch.mm(x, weight.t(), out=out)
                mean, rstd = self.statistics(z, self.norms[index], bias)
                self.stats.append((mean, rstd))
                scale = gamma * rstd
                torch.addcmul(beta - mean * scale, z, scale, out=z)
            x = F.silu(z, inplace=True).mul_(stage_mask(masks, index, len(stages)))
        return x, spare

    def statistics(self, z: Tensor, norm: nn.BatchNorm1d, bias: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean, rstd)`` for BatchNorm of ``z + bias`` (``z = W a``, bias excluded); updates running statistics in training."""
        if self.training:
            if self.count < 2:
                raise ValueError(f"BatchNorm in training mode needs at least 2 valid pairs, got {self.count}")
            mean, var = masked_column_stats(z, self.count)
            norm.num_batches_tracked.add_(1)
            # nn.BatchNorm1d's rule: exponential average, or the cumulative average when momentum is None
            momentum = 1.0 / float(norm.num_batches_tracked) if norm.momentum is None else norm.momentum
            norm.running_mean.lerp_(mean + bias, momentum)
            norm.running_var.lerp_(var * (self.count / (self.count - 1)), momentum)
        else:
            mean, var = norm.running_mean - bias, norm.running_var
        return mean, torch.rsqrt(var + norm.eps)

    def recompute(self, x: Tensor, masks: Tensor, params: tuple[Tensor, ...], scratch: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Stage inputs ``[a_0, ..., a_L]`` (the last is the weights) and ``xhat_l`` (BN) or ``z_l`` per stage.

        ``scratch`` holds ``2 L`` buffers: ``xhat_1, ..., xhat_L, a_1, ..., a_L``.
        """
        stages = self.split(params)
        inputs, normalised = [x], []
        for index, (weight, bias, gamma, beta) in enumerate(stages):
            first, second = scratch[index], scratch[len(stages) + index]
            if self.norms is None:
                z = torch.addmm(bias, x, weight.t(), out=first)
                y = second.copy_(z)
            else:
                mean, rstd = self.stats[index]
                z = torch.addmm(-mean * rstd, x, (weight * rstd[:, None]).t(), out=first)
                y = torch.addcmul(beta, z, gamma, out=second)
            normalised.append(z)
            x = F.silu(y, inplace=True).mul_(stage_mask(masks, index, len(stages)))
            inputs.append(x)
        return inputs, normalised

    def backward(self, grad: Tensor, masks: Tensor, params: tuple[Tensor, ...], inputs: list[Tensor], normalised: list[Tensor], extra: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Gradients ``(g_pairs, [g_W, g_b, (g_gamma, g_beta)] per stage)`` for ``grad`` of the weights (module docstring).

        Consumes ``grad``, ``inputs[1:]`` and ``normalised`` (their memory is reused); ``extra``
        is a free buffer of ``rows * widths[-2]`` elements. ``g_pairs`` is a fresh tensor.
        """
        stages = self.split(params)
        grads: list[Tensor] = []
        for index in reversed(range(len(stages))):
            weight, bias, gamma, beta = stages[index]
            keep = masks[:, :1]
            free = inputs[index + 1]  # this stage's output: consumed by the stage after it
            if self.norms is None:
                gz = torch.ops.aten.silu_backward.grad_input(grad, normalised[index], grad_input=grad).mul_(stage_mask(masks, index, len(stages)))
                stage_grads = [gz.t() @ inputs[index], gz.sum(0)]
            else:
                xhat = normalised[index]
                y = torch.addcmul(beta, xhat, gamma, out=free)
                gy = torch.ops.aten.silu_backward.grad_input(grad, y, grad_input=grad).mul_(stage_mask(masks, index, len(stages)))
                grad_beta = gy.sum(0)
                grad_gamma = torch.mul(gy, xhat, out=y).sum(0)
                scale = gamma * self.stats[index][1]
                gz = gy.mul_(scale)
                if self.training:  # the batch statistics depend on z too
                    gz.addcmul_(xhat, -grad_gamma * scale / self.count).sub_(grad_beta * scale / self.count).mul_(keep)
                stage_grads = [gz.t() @ inputs[index], gz.sum(0), grad_gamma, grad_beta]
            grads = stage_grads + grads
            rows, width = gz.shape[0], weight.shape[1]
            if index == 0:
                out = None
            elif normalised[index].numel() >= rows * width:
                out = normalised[index].reshape(-1)[: rows * width].view(rows, width)
            else:
                out = extra[: rows * width].view(rows, width)
            grad = torch.mm(gz, weight, out=out)
        return grad, grads


def stage_mask(masks: Tensor, index: int, stages: int) -> Tensor:
    """The ``(P, 1)`` factor applied after stage ``index``: the valid-row indicator, the output factor after the last."""
    return masks[:, 1:] if index == stages - 1 else masks[:, :1]


class PairConvolution(torch.autograd.Function):
    """LieConv's pair computation: kernel weights, Monte-Carlo sum and the final linear map (module docstring).

    ``apply(pairs (P, pair_dim), masks (P, 2), values, layout, L_weight, L_bias, *params) -> (R, c_out)``:
    ``pairs`` are zero on invalid rows; ``masks`` holds the valid-row indicator and the factor
    of the last stage's output (indicator times query scale); the output is ``L(S_u)`` for the
    real queries of ``layout``, packed. Neither ``S`` nor the weights are kept for backward:
    both are recomputed. The backward pass works in place on workspace buffers and is not
    itself differentiable: a second derivative (e.g. training on forces) raises an error.
    """

    @staticmethod
    def forward(ctx: Any, pairs: Tensor, masks: Tensor, values: Tensor, layout: Layout, weight: Tensor, bias: Tensor, *params: Tensor) -> Tensor:
        stages = layout.stages
        weights, (summed, neighbours, dense, packed) = stages.forward(pairs, masks, params, layout.forward_shapes())
        layout.contract(weights, summed, neighbours, dense)
        out = torch.addmm(bias, layout.packed(summed, packed), weight.t())
        ctx.layout = layout
        ctx.save_for_backward(pairs, masks, weight, *params)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        layout = ctx.layout
        stages = layout.stages
        pairs, masks, weight, *params = ctx.saved_tensors
        scratch = stages.workspace.views(layout.backward_shapes(), pairs)
        count = 2 * (len(stages.widths) - 1)
        inputs, normalised = stages.recompute(pairs, masks, tuple(params), scratch[:count])
        summed, grad_summed, packed, neighbours, grad_weights, dense = scratch[count:-1]
        layout.contract(inputs[-1], summed, neighbours, dense)
        packed = layout.packed(summed, packed)
        grad_linear, grad_bias = grad.t() @ packed, grad.sum(0)
        grad_summed = layout.unpacked(torch.mm(grad, weight, out=packed), grad_summed)
        grad_values = layout.contract_backward(grad_summed, inputs[-1], neighbours, grad_weights, dense)
        grad_pairs, grad_params = stages.backward(grad_weights, masks, tuple(params), inputs, normalised, scratch[-1])
        return (grad_pairs if ctx.needs_input_grad[0] else None, None, grad_values, None, grad_linear, grad_bias, *grad_params)


class Layout:
    """The Monte-Carlo sum of one :class:`PairConvolution`: shapes, workspace buffers, forward and backward.

    ``values`` ``(B, n, c)``; neighbour ``j`` of query ``i`` is point ``index[b, i, j]``
    (``index`` ``(B, m, k)``), or point ``j`` itself when ``index`` is ``None`` (``k = n``);
    ``rows`` are the flat indices (into ``B m``) of the real queries, ``None`` when all are real.
    ``S`` is stored ``(B m, out * c)``, laid out ``(w, c)``.
    """

    def __init__(self, stages: Stages, values: Tensor, index: Tensor | None, shape: tuple[int, int, int], rows: Tensor | None) -> None:
        self.stages, self.values, self.index, self.shape, self.rows = stages, values, index, shape, rows
        self.batch, self.points, self.channels = values.shape
        self.pairs = math.prod(shape)
        self.queries = shape[0] * shape[1]
        self.out = stages.widths[-1]
        self.real = self.queries if rows is None else rows.numel()
        stages.workspace.reserve(sum(math.prod(s) for s in self.backward_shapes()))

    def common_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """``S``, gathered neighbours (gather form), permuted weights (dense form), packed ``S``."""
        neighbours = (self.pairs, self.channels) if self.index is not None else (0,)
        dense = (0,) if self.index is not None else (self.pairs * self.out,)
        packed = (0,) if self.rows is None else (self.real, self.out * self.channels)
        return (self.queries, self.out * self.channels), neighbours, dense, packed

    def forward_shapes(self) -> list[tuple[int, ...]]:
        """Workspace of the forward pass after the stage buffers."""
        summed, neighbours, dense, packed = self.common_shapes()
        return [summed, neighbours, dense, packed]

    def backward_shapes(self) -> list[tuple[int, ...]]:
        """Workspace of the backward pass: the stages', ``S``, ``g_S``, packed rows, neighbours, ``g_w``, dense weights, spare."""
        stage_shapes = self.stages.scratch_shapes(self.pairs)
        summed, neighbours, dense, packed = self.common_shapes()
        gradient = (self.queries if self.rows is not None else 0, self.out * self.channels)
        extra = [summed, gradient, packed, neighbours, (self.pairs, self.out), dense]
        return stage_shapes[:-1] + extra + stage_shapes[-1:]

    def contract(self, weights: Tensor, summed: Tensor, neighbours: Tensor, dense: Tensor) -> None:
        """``S[b, i] = sum_j w_ij (x) f_j`` into ``summed`` from the ``(P, out)`` weights."""
        batch, m, k = self.shape
        if self.index is None:
            permuted = dense.view(batch, m, self.out, k).copy_(weights.view(batch, m, k, self.out).permute(0, 1, 3, 2))
            torch.bmm(permuted.view(batch, m * self.out, k), self.values, out=summed.view(batch, m * self.out, self.channels))
        else:
            gathered = gather_points(self.values, self.index, out=neighbours).view(batch * m, k, self.channels)
            weights = weights.view(batch * m, k, self.out).transpose(1, 2)
            torch.bmm(weights, gathered, out=summed.view(batch * m, self.out, self.channels))

    def packed(self, summed: Tensor, out: Tensor) -> Tensor:
        """The real queries' rows of ``summed`` (``summed`` itself when every query is real)."""
        return summed if self.rows is None else torch.index_select(summed, 0, self.rows, out=out)

    def unpacked(self, grad_packed: Tensor, out: Tensor) -> Tensor:
        """``g_S`` ``(B m, out c)`` from the real rows' gradient (zeros on padded queries)."""
        return grad_packed if self.rows is None else out.zero_().index_copy_(0, self.rows, grad_packed)

    def contract_backward(self, grad_summed: Tensor, weights: Tensor, neighbours: Tensor, grad_weights: Tensor, dense: Tensor) -> Tensor:
        """``g_w`` (written into ``grad_weights`` ``(P, out)``) and the returned ``g_f`` ``(B, n, c)``."""
        batch, m, k = self.shape
        if self.index is None:
            per_batch = grad_summed.view(batch, m * self.out, self.channels)
            grad_dense = torch.bmm(per_batch, self.values.transpose(1, 2)).view(batch, m, self.out, k)
            grad_weights.view(batch, m, k, self.out).copy_(grad_dense.permute(0, 1, 3, 2))
            return torch.bmm(dense.view(batch, m * self.out, k).transpose(1, 2), per_batch)
        per_query = grad_summed.view(batch * m, self.out, self.channels)
        gathered = gather_points(self.values, self.index, out=neighbours).view(batch * m, k, self.channels)
        torch.bmm(gathered, per_query.transpose(1, 2), out=grad_weights.view(batch * m, k, self.out))
        contributions = torch.bmm(weights.view(batch * m, k, self.out), per_query, out=gathered).view(-1, self.channels)
        flat_index = (self.index + torch.arange(batch, device=self.index.device).view(batch, 1, 1) * self.points).reshape(-1)
        grad_values = torch.zeros(batch * self.points, self.channels, dtype=self.values.dtype, device=self.values.device)
        return grad_values.index_add_(0, flat_index, contributions).view(batch, self.points, self.channels)
