"""A run killed mid-epoch and resumed reaches the same final metrics as an uninterrupted one.

The kill is real: a child process trains and sends itself ``SIGKILL`` in the middle of its
second epoch (no exception handlers, ``finally`` blocks or exit hooks run), then this process
resumes from the checkpoint the child left on disk.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

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


@pytest.fixture(autouse=True)
def setup(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("EQBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "resume-cache"))  # simulated once, shared
    monkeypatch.setitem(TRAINABLE, ("nbody", "noisy"), lambda data, generator: NoisyDropoutNet(generator))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def config(folder, resume: bool = False) -> TrainConfig:
    return TrainConfig("nbody", "noisy", PRESET, seed=5, out=folder, resume=resume, progress=False)


KILLED_CHILD = """
import os, signal, sys
from pathlib import Path

import torch

sys.path.insert(0, sys.argv[2])
import test_trainer_resume as case
from eqbench.tasks.trainable import TRAINABLE
from eqbench.tasks.trainer import train

torch.set_num_threads(1)
TRAINABLE[("nbody", "noisy")] = lambda data, generator: case.NoisyDropoutNet(generator)


def kill_mid_second_epoch(epoch, batch):
    if (epoch, batch) == (1, 2):
        os.kill(os.getpid(), signal.SIGKILL)


train(case.config(Path(sys.argv[1])), on_batch_end=kill_mid_second_epoch)
"""


def killed_mid_epoch(folder: Path) -> None:
    """Train ``config(folder)`` in a child process that SIGKILLs itself at batch 3 of epoch 2."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.run([sys.executable, "-c", KILLED_CHILD, str(folder), str(Path(__file__).parent)], env=env, capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]


@pytest.fixture
def straight_and_killed(tmp_path):
    """An uninterrupted run, and the folder of the same run SIGKILLed in its second epoch."""
    straight = train(config(tmp_path / "straight"))
    killed_mid_epoch(tmp_path / "killed")
    return straight, tmp_path / "killed"


def test_a_run_killed_mid_epoch_resumes_to_the_uninterrupted_metrics(straight_and_killed, monkeypatch):
    straight, killed = straight_and_killed
    run_dir = config(killed).run_dir
    assert trainer.load_checkpoint(config(killed).checkpoint_path)["epoch"] == 1
    assert not (run_dir / "result.json").exists() and not list(run_dir.glob(".*.tmp"))
    with pytest.raises(FileExistsError, match="pass --resume"):
        train(config(killed))
    shutil.copytree(killed, killed.with_name("forgetful"))
    resumed = train(config(killed, resume=True))
    for metric in METRICS:
        assert resumed.final[metric] == pytest.approx(straight.final[metric], abs=1e-6, rel=0)
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]
    assert [row["test_mse"] for row in resumed.history] == pytest.approx([row["test_mse"] for row in straight.history], abs=1e-6)
    # negative control: a resume that forgets the random state does not reproduce the run
    monkeypatch.setattr(trainer, "restore_rng", lambda state, model: None)
    forgetful = train(config(killed.with_name("forgetful"), resume=True)).final
    assert max(abs(forgetful[m] - straight.final[m]) for m in METRICS) > 1e-6
