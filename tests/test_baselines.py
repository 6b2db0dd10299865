"""Baselines of the Frame Averaging paper: each has exactly the symmetry it deserves, and FA-GNN adds E(3).

PointNet and the message-passing GNN read raw coordinates (S_n only; the checker catches the
rotations), EGNN and FA-GNN are exact under E(3) x S_n. Also: the split edge MLP equals an MLP
on the concatenated pair features, and the n-body models refuse malformed systems.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from eqbench.actions import Invariant, Points, Scalars
from eqbench.check import check_equivariance
from eqbench.groups import E3, SO3, Symmetric, Translations
from eqbench.inputs import NBodyInputs, PointCloudInputs
from eqbench.models.baselines import EGNN, NBodyGNN, PairMLP, PointNet
from eqbench.models.controls import mlp
from eqbench.models.frame_averaging import fa_gnn

CHECK = {"n_inputs": 2, "n_elements": 8, "search_examples": 5}
CLOUDS = PointCloudInputs(max_points=10)
SYSTEMS = NBodyInputs()


def verdict(model: nn.Module, group, inputs, in_action, out_action) -> str:
    return str(check_equivariance(model, group, inputs, in_action, out_action, **CHECK).verdict)


def seeded(build):
    torch.manual_seed(0)
    return build()


def test_pointnet_is_permutation_invariant_but_not_rotation_invariant():
    classifier = seeded(lambda: PointNet(3, 4, (32, 32)))
    assert verdict(classifier, Symmetric(), CLOUDS, CLOUDS.action, Invariant()) == "exact"
    assert verdict(classifier, SO3(), CLOUDS, CLOUDS.action, Invariant()) == "violated"
    segmenter = seeded(lambda: PointNet(3, 5, (32, 32), per_point=True))
    assert verdict(segmenter, Symmetric(), CLOUDS, CLOUDS.action, Scalars()) == "exact"


@pytest.mark.parametrize(
    "group, expected", [(Symmetric(), "exact"), (SO3(), "violated"), (Translations(3), "violated")], ids=["S_n", "SO3", "T3"]
)
def test_message_passing_gnn_has_only_the_permutation_symmetry(group, expected):
    assert verdict(seeded(lambda: NBodyGNN(hidden=16, layers=2)), group, SYSTEMS, SYSTEMS.action, Points()) == expected


@pytest.mark.parametrize("build", [lambda: EGNN(hidden=16, layers=2), lambda: fa_gnn(hidden=15, layers=2)], ids=["EGNN", "FA-GNN"])
def test_egnn_and_fa_gnn_are_exact_under_e3_and_permutations(build):
    assert verdict(seeded(build), E3() * Symmetric(), SYSTEMS, SYSTEMS.action, Points()) == "exact"


def test_egnn_moves_positions_by_the_input_velocities_in_every_layer():
    """Eq. 7 of Satorras et al.: v_i^(l+1) = phi_v(h_i) v_i^init + ...; with phi_x = 0 and phi_v = 2, two layers move x by 4 v."""
    model = EGNN(hidden=8, layers=2)
    with torch.no_grad():
        for coordinate, velocity in zip(model.coordinates, model.velocities):
            coordinate[-1].weight.zero_()
            velocity[-1].weight.zero_()
            velocity[-1].bias.fill_(2.0)
    positions, velocities, charges = (t.float() for t in SYSTEMS(SYSTEMS.default_structure(batch=2)))
    assert torch.allclose(model(positions, velocities, charges), positions + 4 * velocities, atol=1e-5, rtol=0)


def test_split_edge_mlp_equals_an_mlp_on_concatenated_pair_features():
    torch.manual_seed(0)
    split, reference = PairMLP(4, 2, 8, 3), nn.Sequential(*mlp(2 * 4 + 2, 8, 3), nn.SiLU())
    with torch.no_grad():
        reference[0].weight.copy_(torch.cat([split.source.weight, split.target.weight, split.edge.weight], dim=1))
        reference[0].bias.copy_(split.source.bias)
        reference[2].load_state_dict(split.out.state_dict())
    h, edges = torch.randn(2, 5, 4), torch.randn(2, 5, 5, 2)
    pairs = torch.cat([h[:, :, None].expand(-1, -1, 5, -1), h[:, None].expand(-1, 5, -1, -1), edges], dim=-1)
    assert torch.allclose(split(h, edges), reference(pairs), atol=1e-5, rtol=0)  # ends with SiLU, as the reference edge MLPs


def test_nbody_models_predict_positions_and_refuse_malformed_systems():
    positions, velocities, charges = SYSTEMS(SYSTEMS.default_structure(batch=3))
    for model in (NBodyGNN(16, 1), EGNN(16, 1), fa_gnn(15, 1)):
        assert model(positions.float(), velocities.float(), charges.float()).shape == (3, 5, 3)
        with pytest.raises(ValueError, match=r"charges \(B, N, 1\)"):
            model(positions.float(), velocities.float(), charges[..., 0].float())
    with pytest.raises(ValueError, match=r"\(B, N >= 1, 3\)"):
        PointNet()(torch.randn(4, 2))
