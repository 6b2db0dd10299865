"""The symmetry profile (``eqbench.check.profile``, ``eqbench profile``): known answers and negative controls."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import Tensor, nn

from eqbench.actions import Invariant, Points
from eqbench.check import profile
from eqbench.check.symmetry_profile import candidate_symmetries, principal_angles
from eqbench.cli.main import main
from eqbench.groups import SO3
from eqbench.groups.generated import GeneratedGroup, Mirror, rotation_generator
from eqbench.inputs import PointCloudInputs

CLOUDS = PointCloudInputs(min_points=6, max_points=6)
ROTATIONS = ("rotations-xy", "rotations-xz", "rotations-yz")
TRANSLATIONS = ("translations-x", "translations-y", "translations-z")
REFLECTIONS = ("reflections-x", "reflections-y", "reflections-z")


class PointFeatures(nn.Module):
    """``sum_i mlp(features(x)_i)`` for a fixed per-point feature map: the map decides the symmetries."""

    def __init__(self, features, width: int) -> None:
        super().__init__()
        self.features = features
        self.mlp = nn.Sequential(nn.Linear(width, 16), nn.Tanh(), nn.Linear(16, 2))

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(self.features(x)).sum(1)


def z_axis(x: Tensor) -> Tensor:
    """Distance to the z axis and height: invariant to rotations about z (and mirrors x, y) only."""
    return torch.stack([x[..., :2].norm(dim=-1), x[..., 2]], dim=-1)


def about_origin(x: Tensor) -> Tensor:
    """Norms and inner products with the centroid: O(3) x S_n invariant about the origin, not translation or scale invariant."""
    return torch.stack([x.norm(dim=-1), (x * x.mean(1, keepdim=True)).sum(-1)], dim=-1)


def chiral(x: Tensor) -> Tensor:
    """Squared distances to the centroid and the signed volume det[u_1 u_2 u_3] of the first three centred points."""
    u = x - x.mean(1, keepdim=True)
    volume = torch.linalg.det(u[:, :3]).unsqueeze(1).expand(-1, x.shape[1])
    return torch.stack([u.square().sum(-1), volume], dim=-1)


def leaking(x: Tensor) -> Tensor:
    """Distances to the centroid, plus the centroid's norm: rotation invariant, leaks the translation."""
    centroid = x.mean(1, keepdim=True)
    return torch.stack([(x - centroid).norm(dim=-1), centroid.norm(dim=-1).expand(-1, x.shape[1])], dim=-1)


def model(features) -> PointFeatures:
    torch.manual_seed(0)
    return PointFeatures(features, 2)


def verdicts(found) -> dict[str, str]:
    return {check.symmetry: check.verdict for check in found.checks}


def test_rotations_about_z_only_give_a_one_dimensional_algebra_along_the_z_generator() -> None:
    z_rotations = GeneratedGroup(rotation_generator(3, 0, 1), "SO(2)-xy", math.pi)
    found = profile(model(z_axis), CLOUDS, Points(), Invariant(), declared=z_rotations, n_inputs=2)
    assert found.algebra.dimension == 1 and found.algebra.linear_dimension == 1
    assert found.algebra.principal_angles[0] < 1e-3
    got = verdicts(found)
    assert got["rotations-xy"] == "exact"
    assert got["rotations-xz"] == got["rotations-yz"] == "violated"
    assert all(got[name] == "violated" for name in TRANSLATIONS)
    # the gap: everything else is far from zero
    assert found.algebra.singular_values[-2] > 1e3 * found.algebra.threshold


def test_an_so3_invariant_model_has_a_three_dimensional_algebra_in_gl3_matching_so3_and_breaks_scaling() -> None:
    found = profile(model(about_origin), CLOUDS, Points(), Invariant(), declared=SO3(), n_inputs=2)
    assert found.algebra.linear_dimension == 3 and found.algebra.dimension == 3
    assert max(found.algebra.principal_angles) < 1e-6
    got = verdicts(found)
    assert got["scaling"] == "violated"
    assert all(got[name] == "exact" for name in ROTATIONS + REFLECTIONS)
    assert got["permutations"] == "exact"


def test_a_chiral_model_holds_rotations_and_fails_reflections() -> None:
    got = verdicts(profile(model(chiral), CLOUDS, Points(), Invariant(), n_inputs=2))
    assert all(got[name] == "exact" for name in ROTATIONS + TRANSLATIONS)
    assert all(got[name] == "violated" for name in REFLECTIONS)


def test_a_translation_leaking_model_holds_rotations_and_fails_translations() -> None:
    found = profile(model(leaking), CLOUDS, Points(), Invariant(), declared=SO3(), n_inputs=2)
    got = verdicts(found)
    assert all(got[name] == "exact" for name in ROTATIONS + REFLECTIONS)
    assert all(got[name] == "violated" for name in TRANSLATIONS)
    assert found.algebra.dimension == 3  # so(3) only: no translation survives


def test_negative_control_a_coordinate_mlp_has_no_continuous_symmetry() -> None:
    torch.manual_seed(0)
    found = profile(PointFeatures(lambda x: x, 3), CLOUDS, Points(), Invariant(), n_inputs=2)
    assert found.algebra.dimension == 0
    got = verdicts(found)
    assert all(got[name] == "violated" for name in ROTATIONS + TRANSLATIONS + ("scaling",))
    assert got["permutations"] == "exact"


def test_candidates_follow_the_input_kind() -> None:
    x = CLOUDS(CLOUDS.default_structure(seed=0, batch=1))
    names = [name for name, _ in candidate_symmetries(Points(), x)]
    assert names == [*TRANSLATIONS, "rotations-xy", "rotations-xz", "rotations-yz", *REFLECTIONS, "scaling", "permutations"]


def test_principal_angles_of_two_lines_and_of_a_line_in_a_plane() -> None:
    line = torch.tensor([[1.0], [0.0], [0.0]], dtype=torch.float64)
    tilted = torch.tensor([[math.cos(0.3)], [math.sin(0.3)], [0.0]], dtype=torch.float64)
    plane = torch.eye(3, dtype=torch.float64)[:, 1:]
    assert principal_angles(line, tilted) == pytest.approx([0.3])
    assert principal_angles(line, plane) == pytest.approx([math.pi / 2])
    assert principal_angles(line[:, :0], plane) == []


def test_mirror_and_generated_groups_act_as_stated() -> None:
    mirror = Mirror(3, 2).elements()
    assert torch.equal(mirror.matrix[1], torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)))
    turn = GeneratedGroup(rotation_generator(3, 0, 1), "z", math.pi).exp(torch.tensor([[math.pi / 2]], dtype=torch.float64))
    assert turn.matrix[0] @ torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64) == pytest.approx(torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))


def test_cli_profile_writes_the_issue_records(tmp_path, capsys) -> None:
    path = tmp_path / "profile.json"
    assert main(["profile", "chiral-so3", "--json", str(path), "--report", str(tmp_path / "report")]) == 0
    records = json.loads(path.read_text())
    scans = {r["symmetry"]: r for r in records if "symmetry" in r}
    assert scans["reflections-x"]["verdict"] == "violated" and scans["rotations-xy"]["verdict"] == "exact"
    assert all({"symmetry", "verdict", "max_rel_error"} <= set(r) for r in scans.values())
    algebra = records[-1]
    assert algebra["algebra_dimension"] == 6 and len(algebra["singular_values"]) == 12
    assert (tmp_path / "report" / "profile-chiral-so3.png").stat().st_size > 0
    assert "symmetry algebra: dimension 6" in capsys.readouterr().out
