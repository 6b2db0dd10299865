"""Equivariance tracked through training: every epoch's row, unchanged training, equivariant floor vs baseline, errors."""
from __future__ import annotations

import argparse
import math

import pandas as pd
import pytest
import torch

from eqbench.cli import UsageError
from eqbench.cli import train as train_cli
from eqbench.tasks.presets import Preset
from eqbench.tasks.registry import get_task
from eqbench.tasks.tracking import EquivarianceTracker, task_actions
from eqbench.tasks.trainer import TrainConfig, train
from test_trainer import one_thread, private_cache  # noqa: F401  (autouse fixtures: a private data cache, one thread)

TINY_DIGITS = Preset("tiny", epochs=3, batch_size=16, lr=3e-3, eval_batch_size=64, data={"train_size": 96, "holdout": 64}, model={"channels": 4})
TINY_NBODY = Preset("tiny", epochs=2, batch_size=20, lr=1e-3, data={"train_size": 40, "valid_size": 0, "test_size": 20}, model={"hidden": 8, "layers": 1})


def run(tmp_path, name: str, **changes):
    options = {"task": "digits-rot", "model": "cnn", "preset": TINY_DIGITS, "out": tmp_path / name, "progress": False, **changes}
    return train(TrainConfig(**options))


def test_every_epoch_records_the_checkers_error_and_its_cost_without_changing_training(tmp_path):
    tracked = run(tmp_path, "tracked", track_equivariance="C4")
    plain = run(tmp_path, "plain")
    assert [row["epoch"] for row in tracked.history] == [1, 2, 3]
    for row in tracked.history:
        assert row["equivariance_group"] == "C4" and row["equivariance_verdict"] == "violated"  # a CNN is not rotation invariant
        assert 1e-3 < row["equivariance_mean_rel_error"] <= row["equivariance_max_rel_error"]
        assert row["equivariance_noise_floor"] < 1e-5
        assert row["equivariance_seconds"] > 0 and row["equivariance_cost"] == pytest.approx(
            row["equivariance_seconds"] / (row["seconds_per_epoch"] + row["eval_seconds"]), rel=0.5)
    # the probe forks every RNG: the tracked run trains exactly as the untracked one
    assert [r["train_loss"] for r in tracked.history] == [r["train_loss"] for r in plain.history]
    assert tracked.final["test_loss"] == plain.final["test_loss"]
    assert "equivariance_cost" not in plain.final
    assert tracked.final["equivariance_cost"] == pytest.approx(sum(r["equivariance_cost"] for r in tracked.history) / 3)
    history = pd.read_csv(tracked.run_dir / "history.csv")
    assert history["equivariance_mean_rel_error"].notna().all()


def test_an_equivariant_model_stays_at_the_floor_and_a_baseline_does_not(tmp_path):
    egnn = run(tmp_path, "egnn", task="nbody", model="egnn", preset=TINY_NBODY, track_equivariance="E3")
    gnn = run(tmp_path, "gnn", task="nbody", model="gnn", preset=TINY_NBODY, track_equivariance="E3")
    for row in egnn.history:
        assert row["equivariance_verdict"] == "exact" and row["equivariance_max_rel_error"] < 1e-5
    for row in gnn.history:  # negative control: raw coordinates are not E(3) equivariant
        assert row["equivariance_verdict"] == "violated" and row["equivariance_mean_rel_error"] > 1e-2


def test_the_probe_set_and_elements_are_fixed(tmp_path):
    data = get_task("digits-rot").build({"train_size": 32, "holdout": 40})
    tracker = EquivarianceTracker.for_task("digits-rot", data, "SO2", torch.device("cpu"))
    assert torch.equal(tracker.probe, data.splits["test"].tensors["images"][:8])
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(144, 10))
    first, second = tracker.measure(model, 1.0), tracker.measure(model, 1.0)
    assert first["equivariance_mean_rel_error"] == second["equivariance_mean_rel_error"]
    assert math.isfinite(first["equivariance_cost"]) and model.training  # the model's mode is restored


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    train_cli.add_parser(parser.add_subparsers(dest="command"))
    return train_cli.run(parser.parse_args(["train", *argv]))


def test_bad_groups_and_tasks_without_actions_are_usage_errors():
    with pytest.raises(UsageError, match="unknown group 'SO7'"):
        cli("digits-rot", "--model", "cnn", "--track-equivariance", "SO7")
    with pytest.raises(ValueError, match="no symmetry actions known for task 'pendulum'"):
        task_actions("pendulum")
    with pytest.raises(ValueError, match="at least one example"):
        EquivarianceTracker.for_task("digits-rot", get_task("digits-rot").build({"train_size": 8, "holdout": 8}), "C4", torch.device("cpu"), probe_size=0)


class NumpyNoise(torch.nn.Module):
    """An invariant that draws from NumPy's global generator in its forward pass (even in eval mode)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import numpy as np

        return x.flatten(1).sum(dim=1, keepdim=True) + 0.0 * float(np.random.rand())


@pytest.mark.parametrize(("model", "moves"), [(torch.nn.Flatten(), False), (NumpyNoise(), True)], ids=["quiet", "numpy"])
def test_the_global_random_states_are_restored_whenever_the_first_probe_moved_them(model, moves):
    import random

    import numpy as np

    from eqbench.groups.names import group_from_name

    tracker = EquivarianceTracker(group_from_name("C4"), torch.randn(2, 1, 6, 6), *task_actions("digits-rot"), torch.device("cpu"))
    for _ in range(3):
        python_state, numpy_state = random.getstate(), np.random.get_state()
        tracker.measure(model, 1.0)
        assert random.getstate() == python_state
        after = np.random.get_state()
        assert np.array_equal(after[1], numpy_state[1]) and after[2] == numpy_state[2]
        assert tracker.moves_global_random is moves  # found on the first probe


class ModeSpy(torch.nn.Module):
    """An invariant of images with dropout inside, that records whether each call ran in training mode."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.5))
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training or self.inner[1].training)
        return self.inner(x).sum(dim=1, keepdim=True)


@pytest.mark.parametrize(("training", "dropout_training"), [(True, True), (False, False), (False, True)], ids=["train", "eval", "mixed"])
def test_the_probe_runs_in_eval_mode_and_leaves_the_model_s_mode_as_it_found_it(training, dropout_training):
    """A model in eval mode throughout is probed as it is; any submodule in training mode puts the whole model in eval mode."""
    from eqbench.groups.names import group_from_name

    tracker = EquivarianceTracker(group_from_name("C4"), torch.randn(2, 1, 6, 6), *task_actions("digits-rot"), torch.device("cpu"))
    model = ModeSpy().train(training)
    model.inner[1].train(dropout_training)  # "mixed": the root in eval mode, its dropout not
    for _ in range(2):
        row = tracker.measure(model, 1.0)
        assert row["equivariance_verdict"] == "exact"  # dropout off: a sum of pixels is rotation invariant
        assert model.modes and not any(model.modes)
        assert all(module.training is training for module in model.modules())
        model.modes.clear()
