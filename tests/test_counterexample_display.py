"""How a counterexample reads on the console: the worst example (not the shrunk, sub-tolerance one), a small
input as coordinates, the element as a rotation angle and axis; and what a saved script holds."""
from __future__ import annotations

import math

import pytest
import torch

from eqbench.actions import Invariant, Points
from eqbench.check import check_equivariance, save_counterexample
from eqbench.check.reproduce import describe_element, describe_input
from eqbench.groups import SO3
from eqbench.groups.element import Element
from eqbench.inputs import PointCloudInputs

CLOUDS = PointCloudInputs(max_points=6)


def reads_x_axis(x: torch.Tensor) -> torch.Tensor:
    return x[..., 0].sum(dim=1, keepdim=True)


def test_the_console_shows_the_worst_example_beyond_the_tolerance_with_coordinates_and_angle_axis():
    result = check_equivariance(reads_x_axis, SO3(), CLOUDS, Points(), Invariant(), expected="exact", n_inputs=2,
                                n_elements=8, search_examples=20)
    worst, simplest = result.worst_example, result.counterexample
    assert simplest.source == "search"  # the shrunk example stays available...
    assert worst.rel_error >= simplest.rel_error and worst.rel_error > result.tolerance  # ...but the worst is shown
    text = str(result)
    assert f"relative error {worst.rel_error:.3g} (this input and element alone)" in text
    assert "input: [[" in text and "element: rotation by" in text and "deg about [" in text
    assert "reproduce with: eqbench check reads_x_axis --seed 0 --save-counterexamples DIR" in text


def test_elements_read_as_angles_axes_reflections_translations_and_permutations():
    quarter = torch.tensor([[[0.0, -1.0], [1.0, 0.0]]])
    assert describe_element(Element(matrix=quarter)) == "rotation by 90 deg"
    mirror = torch.tensor([[[1.0, 0.0], [0.0, -1.0]]])
    assert describe_element(Element(matrix=mirror)) == "reflection across the line at 0 deg"
    angle = 0.7
    about_z = torch.tensor([[[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0], [0.0, 0.0, 1.0]]])
    assert describe_element(Element(matrix=about_z)) == f"rotation by {math.degrees(angle):.4g} deg about [0.0, 0.0, 1.0]"
    assert describe_element(Element(matrix=-about_z)).startswith("inversion x -> -x after rotation by")
    moved = Element(translation=torch.tensor([[1.0, 2.0, 3.0]]), permutation=torch.tensor([[1, 0, 2]]))
    assert describe_element(moved) == "permutation [1, 0, 2], then translation [1.0, 2.0, 3.0]"
    assert describe_element(Element(permutation=torch.tensor([[0, 1, 2]]))) == "identity"


def test_small_inputs_read_as_coordinates_and_large_ones_as_shapes():
    assert describe_input(torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])) == "[[1.0, 2.0], [3.0, 4.0]]"
    named = describe_input({"pos": torch.zeros(1, 2, 3), "mask": torch.ones(1, 2, dtype=torch.bool)})
    assert named == "pos [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]; mask [True, True]"
    assert describe_input(torch.zeros(1, 100, 3), {"num_points": 100}) == "(1, 100, 3) from {'num_points': 100}"


def test_a_saved_script_holds_the_input_and_the_element_parts(tmp_path):
    result = check_equivariance(reads_x_axis, SO3(), CLOUDS, Points(), Invariant(), expected="exact", n_inputs=2,
                                n_elements=8, search_examples=0, name="x reader")
    script = save_counterexample(result, tmp_path / "cx", model=reads_x_axis)
    assert script.name == "xreader-SO3.py" and result.script == str(script)
    saved = torch.load(script.with_suffix(".pt"), weights_only=False)
    assert set(saved["element"]) == {"matrix"} and saved["element"]["matrix"].shape == (1, 3, 3)
    assert saved["error"] == result.worst_example.rel_error and saved["threshold"] == result.exact_threshold
    assert torch.equal(saved["input"], result.worst_example.replay.input)
    exact = check_equivariance(lambda x: x.norm(dim=-1).sum(dim=1, keepdim=True), SO3(), CLOUDS, Points(), Invariant(),
                               n_inputs=2, n_elements=8, search_examples=0)
    with pytest.raises(ValueError, match="no counterexample to save"):
        save_counterexample(exact, tmp_path, model=None)
