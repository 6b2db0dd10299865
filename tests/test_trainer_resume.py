"""A run interrupted mid-epoch and resumed reaches the same final metrics as an uninterrupted one."""
from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from eqbench.tasks import trainer
from eqbench.tasks.presets import Preset
from eqbench.tasks.trainable import TRAINABLE
from eqbench.tasks.trainer import TrainConfig, train

PRESET = Preset("tiny", epochs=3, batch_size=8, lr=1e-2, eval_batch_size=16, data={"train_size": 40, "valid_size": 0, "test_size": 10})
METRICS = ("train_mse", "test_mse")


class NoisyDropoutNet(nn.Module):
    """Positions plus a learnt step, with dropout (global RNG) and input noise from a generator the module holds."""

    def __init__(self, generator: torch.Generator) -> None:
        super().__init__()
        self.step = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Dropout(0.3), nn.Linear(16, 3))
        self.noise = torch.Generator().manual_seed(int(torch.randint(2**31, (), generator=generator)))

    def forward(self, positions: Tensor, velocities: Tensor, charges: Tensor) -> Tensor:
        features = torch.cat([positions, velocities], dim=-1)
        if self.training:
            features = features + 0.1 * torch.randn(features.shape, generator=self.noise)
        return positions + self.step(features)


class Interrupt(Exception):
    pass


def interrupt_at(epoch: int, batch: int):
    def hook(current_epoch: int, current_batch: int) -> None:
        if (current_epoch, current_batch) == (epoch, batch):
            raise Interrupt

    return hook


@pytest.fixture(autouse=True)
def setup(tmp_path, monkeypatch):
    monkeypatch.setenv("EQBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(TRAINABLE, ("nbody", "noisy"), lambda data, generator: NoisyDropoutNet(generator))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def config(folder, resume: bool = False) -> TrainConfig:
    return TrainConfig("nbody", "noisy", PRESET, seed=5, out=folder, resume=resume, progress=False)


def interrupted_then_resumed(folder) -> dict:
    with pytest.raises(Interrupt):
        train(config(folder), on_batch_end=interrupt_at(epoch=1, batch=2))  # mid-way through the second epoch
    checkpoint = trainer.load_checkpoint(config(folder).checkpoint_path)
    assert checkpoint["epoch"] == 1
    return train(config(folder, resume=True)).final


def test_resumed_run_matches_the_uninterrupted_run(tmp_path):
    straight = train(config(tmp_path / "straight"))
    resumed = interrupted_then_resumed(tmp_path / "resumed")
    for metric in METRICS:
        assert resumed[metric] == pytest.approx(straight.final[metric], abs=1e-6, rel=0)
    history = train(config(tmp_path / "resumed", resume=True)).history
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert [row["test_mse"] for row in history] == pytest.approx([row["test_mse"] for row in straight.history], abs=1e-6)


def test_the_comparison_catches_a_resume_that_forgets_the_random_state(tmp_path, monkeypatch):
    straight = train(config(tmp_path / "straight")).final
    monkeypatch.setattr(trainer, "restore_rng", lambda state, model: None)
    forgetful = interrupted_then_resumed(tmp_path / "forgetful")
    assert max(abs(forgetful[m] - straight[m]) for m in METRICS) > 1e-6
