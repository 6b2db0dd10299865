"""LieConv's hand-written backward (PairConvolution) against plain autograd of the same math.

The reference below is the weight network and Monte-Carlo sum written with ordinary torch
ops on the valid pairs only (``F.batch_norm`` on the selected rows, an einsum for the sum):
no workspace, no masks folded into stages, no recomputation. Forward outputs, every
parameter gradient and the gradients of the pair features and neighbour values must agree
in float64 to ``RTOL`` relative to each tensor's scale (the two compute the same sums in a
different order), in training mode (batch statistics over valid pairs, running-statistic
updates) and evaluation mode, with and without BatchNorm, for the gather (``index``) and
dense (``index=None``) paths, with invalid pairs, a query scale and packed query rows.
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from eqbench.models.lieconv import weightnet
from eqbench.models.lieconv.weightnet import WeightNet
from eqbench.models.lieconv.workspace import Workspace

RTOL = 1e-9
BATCH, QUERIES, POINTS, PAIR_DIM, CHANNELS, HIDDEN, OUT, CHOUT = 2, 5, 6, 4, 3, 7, 5, 4


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def reference_convolve(
    net: WeightNet, pairs: Tensor, valid: Tensor, values: Tensor, index: Tensor | None, linear: nn.Linear,
    rows: Tensor | None, query_scale: Tensor | None,
) -> Tensor:
    """``L(s_i sum_j w(p_ij) (x) f_j)`` with autograd: the weight network run on the valid pairs alone."""
    a = pairs[valid]
    for stage, layer in enumerate(net.linears):
        z = layer(a)
        if net.norms is not None:
            norm = net.norms[stage]
            z = F.batch_norm(z, norm.running_mean, norm.running_var, norm.weight, norm.bias, net.training, norm.momentum, norm.eps)
        a = F.silu(z)
    weights = torch.zeros(*valid.shape, a.shape[-1], dtype=a.dtype).index_put((valid.nonzero(as_tuple=True)), a)
    if query_scale is not None:
        weights = weights * query_scale[..., None, None]
    if index is None:
        neighbours = values[:, None].expand(-1, valid.shape[1], -1, -1)
    else:
        neighbours = values[torch.arange(values.shape[0])[:, None, None], index]
    summed = torch.einsum("bmkw,bmkc->bmwc", weights, neighbours).reshape(-1, weights.shape[-1] * values.shape[-1])
    if rows is not None:
        summed = summed[rows]
    return linear(summed)


def make_case(dense: bool, seed: int = 0, all_valid: bool = False) -> dict:
    """Random float64 pairs, validity (some invalid pairs, one padded query; or every pair valid), values, index, rows, scale."""
    g = seeded(seed)
    k = POINTS if dense else 4
    valid = torch.rand(BATCH, QUERIES, k, generator=g) < 0.7
    valid[0, 0] = True
    valid[1, -1] = False  # a padded query: no valid pair
    if all_valid:
        valid[:] = True
    rows = valid.any(-1).reshape(-1).nonzero().squeeze(1)
    index = None if dense else torch.stack([torch.randperm(POINTS, generator=g)[:k] for _ in range(BATCH * QUERIES)]).view(BATCH, QUERIES, k)
    counts = valid.sum(-1).clamp(min=1).double()
    return {
        "pairs": torch.randn(BATCH, QUERIES, k, PAIR_DIM, generator=g, dtype=torch.float64),
        "valid": valid,
        "values": torch.randn(BATCH, POINTS, CHANNELS, generator=g, dtype=torch.float64),
        "index": index,
        "rows": rows,
        "query_scale": 1 / counts,
    }


def make_modules(bn: bool, seed: int = 1) -> tuple[WeightNet, nn.Linear]:
    torch.manual_seed(seed)
    net = WeightNet(PAIR_DIM, HIDDEN, OUT, bn).double()
    if bn:  # non-trivial affine parameters and running statistics (evaluation mode reads them)
        for norm in net.norms:
            nn.init.normal_(norm.weight, 1.0, 0.3)
            nn.init.normal_(norm.bias, 0.0, 0.3)
            norm.running_mean.normal_(0.0, 0.5)
            norm.running_var.uniform_(0.5, 2.0)
    return net, nn.Linear(OUT * CHANNELS, CHOUT).double()


def run(convolve, net: WeightNet, linear: nn.Linear, case: dict, use_rows: bool, use_scale: bool) -> tuple[Tensor, list[Tensor], Tensor]:
    """Output, gradients of every parameter and of (pairs, values) for a fixed random output cotangent."""
    pairs = case["pairs"].clone().requires_grad_(True)
    values = case["values"].clone().requires_grad_(True)
    rows = case["rows"] if use_rows else None
    scale = case["query_scale"] if use_scale else None
    out = convolve(net, pairs, case["valid"], values, case["index"], linear, rows, scale)
    cotangent = torch.randn(out.shape, generator=seeded(7), dtype=out.dtype)
    params = [*net.parameters(), *linear.parameters()]
    grads = torch.autograd.grad((out * cotangent).sum(), [*params, pairs, values])
    return out.detach(), list(grads), torch.cat([b.flatten() for b in net.buffers() if b.is_floating_point()] or [torch.zeros(0, dtype=out.dtype)])


def ours(net, pairs, valid, values, index, linear, rows, scale):
    return net.convolve(pairs, valid, values, index, linear, rows, scale, Workspace())


def assert_close_scaled(got: Tensor, want: Tensor, what: str) -> None:
    scale = want.abs().max().clamp(min=1e-300)
    error = (got - want).abs().max() / scale
    assert error <= RTOL, f"{what}: relative error {float(error):.3g} > {RTOL}"


@pytest.mark.parametrize("dense", [False, True], ids=["gather", "dense"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("bn", [True, False], ids=["bn", "nobn"])
@pytest.mark.parametrize("packed", [True, False], ids=["packed-rows", "all-rows"])
def test_pair_convolution_matches_autograd(dense, training, bn, packed):
    compare_with_autograd(dense, training, bn, packed)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("bn", [True, False], ids=["bn", "nobn"])
def test_pair_convolution_matches_autograd_in_blocks_of_rows(monkeypatch, training, bn):
    """The backward pass's stages by blocks of 3 rows (sums accumulated over blocks, a last partial block)."""
    monkeypatch.setattr(weightnet, "BLOCK_ROWS", 3)
    assert len(weightnet.row_blocks(make_case(False)["valid"].sum().item())) > 3
    compare_with_autograd(False, training, bn, True)


def compare_with_autograd(dense: bool, training: bool, bn: bool, packed: bool) -> None:
    """Output, parameter, pair and value gradients (and running statistics) of ours against the autograd reference."""
    case = make_case(dense)
    net, linear = make_modules(bn)
    twin_net, twin_linear = copy.deepcopy(net), copy.deepcopy(linear)
    net.train(training)
    twin_net.train(training)
    out, grads, buffers = run(ours, net, linear, case, packed, use_scale=packed)
    want_out, want_grads, want_buffers = run(reference_convolve, twin_net, twin_linear, case, packed, use_scale=packed)
    assert_close_scaled(out, want_out, "output")
    names = [n for n, _ in net.named_parameters()] + [f"linear.{n}" for n, _ in linear.named_parameters()] + ["pairs", "values"]
    for name, got, want in zip(names, grads, want_grads):
        if training and bn and name.startswith("linears.") and name.endswith("bias"):
            # under batch statistics the Linear bias cancels: both gradients are rounding noise
            assert got.abs().max() <= 1e-12 * grads[0].abs().max() and want.abs().max() <= 1e-12 * grads[0].abs().max()
            continue
        assert_close_scaled(got, want, name)
    if bn:
        assert_close_scaled(buffers, want_buffers, "running statistics")


@pytest.mark.parametrize("dense", [False, True], ids=["gather", "dense"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_pair_convolution_matches_autograd_when_every_pair_is_valid(dense, training):
    """No pair to drop: the stages run on the pairs in place, and the weights go straight to the sum's layout."""
    case = make_case(dense, seed=2, all_valid=True)
    net, linear = make_modules(bn=True)
    twin_net, twin_linear = copy.deepcopy(net), copy.deepcopy(linear)
    net.train(training)
    twin_net.train(training)
    out, grads, _ = run(ours, net, linear, case, use_rows=False, use_scale=True)
    want_out, want_grads, _ = run(reference_convolve, twin_net, twin_linear, case, use_rows=False, use_scale=True)
    assert_close_scaled(out, want_out, "output")
    for got, want in zip(grads, want_grads):
        if want.abs().max() > 1e-12 * want_grads[0].abs().max():  # skip the Linear biases cancelled by batch statistics
            assert_close_scaled(got, want, "gradient")


def test_invalid_pairs_get_no_gradient_and_do_not_move_the_output():
    case = make_case(dense=False)
    net, linear = make_modules(bn=True)
    pairs = case["pairs"].clone().requires_grad_(True)
    out = net.convolve(pairs, case["valid"], case["values"], case["index"], linear, case["rows"], case["query_scale"])
    out.sum().backward()
    assert bool((pairs.grad[~case["valid"]] == 0).all())
    assert pairs.grad[case["valid"]].abs().max() > 0
    moved = case["pairs"].clone()
    moved[~case["valid"]] = 1e3  # garbage on invalid pairs
    again = net.convolve(moved, case["valid"], case["values"], case["index"], linear, case["rows"], case["query_scale"])
    assert torch.allclose(again, out.detach(), rtol=0, atol=1e-12)
    # negative control: the same garbage on a valid pair does move it
    moved[case["valid"].nonzero()[0].unbind()] = 1e3
    changed = net.convolve(moved, case["valid"], case["values"], case["index"], linear, case["rows"], case["query_scale"])
    assert (changed - out.detach()).abs().max() > 1e-3


class Convolution(nn.Module):
    """``WeightNet.convolve`` with a fixed selection, as a module (so ``functional_call`` can swap its parameters)."""

    def __init__(self, net: WeightNet, linear: nn.Linear, case: dict) -> None:
        super().__init__()
        self.net, self.linear, self.case = net, linear, case

    def forward(self, pairs: Tensor, values: Tensor) -> Tensor:
        case = self.case
        return self.net.convolve(pairs, case["valid"], values, case["index"], self.linear, case["rows"], case["query_scale"])


@pytest.mark.parametrize("dense, training", [(False, True), (True, False)], ids=["gather-train", "dense-eval"])
def test_pair_convolution_gradcheck(dense, training):
    """Finite differences of every input and parameter on a tiny case (training: running statistics frozen)."""
    case = make_case(dense, seed=3)
    net, linear = make_modules(bn=True)
    net.train(training)
    for norm in net.norms:  # gradcheck evaluates many times: keep the running statistics fixed
        norm.momentum = 0.0
    module = Convolution(net, linear, case)
    names = [name for name, _ in module.named_parameters()]

    def function(pairs: Tensor, values: Tensor, *params: Tensor) -> Tensor:
        return torch.func.functional_call(module, dict(zip(names, params)), (pairs, values))

    inputs = (case["pairs"], case["values"], *(p.detach() for p in module.parameters()))
    inputs = tuple(t.clone().requires_grad_(True) for t in inputs)
    assert torch.autograd.gradcheck(function, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_second_derivatives_are_refused_rather_than_wrong():
    """The backward pass is in place and not differentiable: double backward must raise, not return garbage."""
    case = make_case(dense=False)
    net, linear = make_modules(bn=True)
    pairs = case["pairs"].clone().requires_grad_(True)
    out = net.convolve(pairs, case["valid"], case["values"], case["index"], linear, case["rows"], case["query_scale"])
    (grad,) = torch.autograd.grad(out.square().sum(), pairs, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|differentiate twice"):
        grad.sum().backward()


def test_cumulative_running_statistics_when_momentum_is_none():
    """``momentum=None`` means nn.BatchNorm1d's cumulative average: compare with the modules themselves."""
    net, linear = make_modules(bn=True)
    twin = copy.deepcopy(net)
    for norm in [*net.norms, *twin.norms]:
        norm.momentum = None
        norm.reset_running_stats()
    net.train()
    twin.train()
    for seed in (0, 1, 2):
        case = make_case(dense=False, seed=seed)
        ours(net, case["pairs"], case["valid"], case["values"], case["index"], linear, None, None)
        a = case["pairs"][case["valid"]]
        for layer, norm in zip(twin.linears, twin.norms):
            a = F.silu(norm(layer(a)))
    for got, want in zip(net.norms, twin.norms):
        assert int(got.num_batches_tracked) == int(want.num_batches_tracked) == 3
        assert_close_scaled(got.running_mean, want.running_mean, "cumulative running mean")
        assert_close_scaled(got.running_var, want.running_var, "cumulative running variance")


@pytest.mark.parametrize("dense", [False, True], ids=["gather", "dense"])
@pytest.mark.parametrize("bn, training", [(True, False), (False, True), (True, True)], ids=["bn-eval", "nobn-train", "bn-train"])
@pytest.mark.parametrize("span", [1, 2, QUERIES, 2 * QUERIES], ids=["1-query", "2-queries", "1-item", "2-items"])
@pytest.mark.parametrize("skip_item", [False, True], ids=["real-queries", "an-item-all-padding"])
def test_streamed_chunks_without_backward(monkeypatch, dense, bn, training, span, skip_item):
    """Without a backward pass the queries are streamed in chunks of ``span`` and give the same output.

    Chunks are blocks of queries within an item (1 or 2 of the 5: uneven blocks) or whole
    items. With BatchNorm in training the whole batch's statistics are gathered chunk by chunk
    first: the output and the running statistics must equal the unchunked reference's (per-chunk
    statistics would not, which the reference catches).
    """
    monkeypatch.setattr(WeightNet, "chunk_queries", lambda self, k, values, dense, queries, weights: span)
    calls = []
    chunks = WeightNet.convolve_in_chunks
    monkeypatch.setattr(WeightNet, "convolve_in_chunks", lambda self, *a: calls.append(a[8]) or chunks(self, *a))
    case = make_case(dense)
    rows = case["rows"][case["rows"] >= QUERIES] if skip_item else case["rows"]  # item 0 all padding, or not
    net, linear = make_modules(bn)
    twin_net, twin_linear = copy.deepcopy(net), copy.deepcopy(linear)
    net.train(training)
    twin_net.train(training)
    with torch.no_grad():
        got = ours(net, case["pairs"], case["valid"], case["values"], case["index"], linear, rows, case["query_scale"])
        want = reference_convolve(twin_net, case["pairs"], case["valid"], case["values"], case["index"], twin_linear, rows,
                                  case["query_scale"])
    assert calls == ([span] if span < BATCH * QUERIES else [])
    assert got.shape == (rows.numel(), CHOUT)
    assert_close_scaled(got, want, "output")
    ours_buffers = dict(net.named_buffers())
    for name, buffer in twin_net.named_buffers():  # F.batch_norm (the reference) leaves num_batches_tracked alone
        if buffer.is_floating_point():
            assert_close_scaled(ours_buffers[name], buffer, name)
        else:
            assert int(ours_buffers[name]) == int(bn and training), name


def test_chunk_size_follows_the_byte_budget(monkeypatch):
    """:meth:`WeightNet.chunk_queries`: as many queries as ``CHUNK_BYTES`` holds by the workspace formula, at least
    one, never more than ``MAX_CHUNKS`` chunks a pass, never less workspace than the output map's weights."""
    net = WeightNet(PAIR_DIM, HIDDEN, OUT)
    values = torch.zeros(1, POINTS, CHANNELS)  # float32
    per_query = 4 * (4 * (2 * HIDDEN + OUT + CHANNELS + OUT) + 2 * OUT * CHANNELS)  # gather form, k = 4
    monkeypatch.setattr(weightnet, "CHUNK_BYTES", 10 * per_query + 3)
    few = 5 * weightnet.MAX_CHUNKS  # a pass this short is cut by bytes alone
    assert net.chunk_queries(4, values, dense=False, queries=few, weights=1) == 10
    assert net.chunk_queries(4, values.double(), dense=False, queries=few, weights=1) == 5
    assert net.chunk_queries(4, values, dense=True, queries=few, weights=1) > 10  # no gathered values or scattered weights
    many = 1000 * weightnet.MAX_CHUNKS  # bytes alone would make 1,600 chunks: MAX_CHUNKS of 1,000 queries instead
    assert net.chunk_queries(4, values, dense=False, queries=many, weights=1) == 1000
    assert net.chunk_queries(4, values, dense=False, queries=many + 1, weights=1) == 1001
    # a chunk's workspace at least the weights' bytes: 30 queries' worth of weights -> 30 queries a chunk
    assert net.chunk_queries(4, values, dense=False, queries=few, weights=30 * per_query // 4) == 30
    monkeypatch.setattr(weightnet, "CHUNK_BYTES", 1)
    assert net.chunk_queries(4, values, dense=False, queries=1, weights=1) == 1
