"""The trainer end to end on tiny presets: tables the reports read, checkpoints, refusals, schedule and the CLI."""
from __future__ import annotations


import argparse
import dataclasses
import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from eqbench.cli import UsageError
from eqbench.cli import train as train_cli
from eqbench.reports.records import load_training_rows
from eqbench.reports.training import final_results
from eqbench.tasks.checkpoint import CheckpointError, load_checkpoint
from eqbench.tasks.distributed import choose_device
from eqbench.tasks.presets import Preset, with_overrides
from eqbench.tasks.trainer import TrainConfig, _warmup_cosine, train

TINY = Preset("tiny", epochs=2, batch_size=16, lr=3e-3, eval_batch_size=64, data={"train_size": 96, "holdout": 64}, model={"hidden": (16,)})


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EQBENCH_CACHE", str(tmp_path / "cache"))


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models train faster on one thread, and the shared 2-core machine stays usable."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_run(tmp_path: Path, **changes) -> TrainConfig:
    options = {"task": "digits-rot", "model": "mlp", "preset": TINY, "out": tmp_path / "results", "progress": False, **changes}
    return TrainConfig(**options)


def test_a_run_writes_history_result_and_checkpoint_that_reports_read(tmp_path):
    config = tiny_run(tmp_path)
    result = train(config)
    assert [row["epoch"] for row in result.history] == [1, 2]
    final = result.final
    for field in ("task", "model", "preset", "seed", "device", "epochs", "seconds_per_epoch", "train_accuracy", "test_accuracy", "train_loss", "test_loss"):
        assert field in final
    assert (final["task"], final["model"], final["preset"], final["seed"], final["device"], final["epochs"]) == ("digits-rot", "mlp", "tiny", 0, "cpu", 2)
    assert final["baseline"] == "chance" and final["baseline_test_accuracy"] == pytest.approx(0.1)
    assert final["test_accuracy"] == result.history[-1]["test_accuracy"]
    run_dir = tmp_path / "results" / "digits-rot" / "mlp-tiny-seed0"
    assert result.run_dir == run_dir
    csv_rows = pd.read_csv(run_dir / "history.csv")
    json_rows = json.loads((run_dir / "history.json").read_text())
    assert list(csv_rows["epoch"]) == [1, 2] and [r["epoch"] for r in json_rows] == [1, 2]
    assert csv_rows["test_accuracy"].iloc[-1] == pytest.approx(final["test_accuracy"])
    assert json.loads((run_dir / "result.json").read_text())[0]["test_accuracy"] == final["test_accuracy"]
    # the reports package reads the folder: one run, whose final row is result.json's
    finals = final_results(load_training_rows(tmp_path / "results"))
    assert len(finals) == 1 and finals["test_accuracy"].iloc[0] == pytest.approx(final["test_accuracy"])
    checkpoint = load_checkpoint(run_dir / "checkpoint.pt")
    assert checkpoint["epoch"] == 2 and set(checkpoint) >= {"model", "optimizer", "scheduler", "scaler", "rng", "history"}
    assert not list(run_dir.glob(".*tmp"))  # atomic writes leave no temporaries


def test_training_learns_and_seeds_are_reproducible(tmp_path):
    preset = with_overrides(TINY, epochs=4)
    first = train(tiny_run(tmp_path / "a", preset=preset))
    again = train(tiny_run(tmp_path / "b", preset=preset))
    other = train(tiny_run(tmp_path / "c", preset=preset, seed=1))
    losses = [row["train_loss"] for row in first.history]
    assert losses[-1] < losses[0]
    assert first.final["test_loss"] == again.final["test_loss"]
    assert first.final["test_loss"] != other.final["test_loss"]


def test_existing_runs_are_not_overwritten_and_resume_checks_identity(tmp_path):
    config = tiny_run(tmp_path)
    done = train(config)
    with pytest.raises(FileExistsError, match="pass --resume"):
        train(config)
    resumed = train(tiny_run(tmp_path, resume=True))
    assert resumed.final["test_loss"] == done.final["test_loss"] and len(resumed.history) == 2
    # the same folder holding another run's checkpoint (the named preset changed): only the differing key is named
    with pytest.raises(CheckpointError, match=r"different run \(preset.lr: checkpoint 0.003, this run 0.01\)$"):
        train(tiny_run(tmp_path, resume=True, preset=dataclasses.replace(TINY, lr=1e-2)))
    (tmp_path / "results" / "digits-rot" / "mlp-tiny-seed0" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        train(tiny_run(tmp_path, resume=True))


def test_a_smoke_run_and_overridden_runs_get_their_own_folders(tmp_path):
    smoke = train(tiny_run(tmp_path, preset=with_overrides(TINY, epochs=1)))
    full = train(tiny_run(tmp_path))  # not blocked by the 1-epoch run
    other = train(tiny_run(tmp_path, preset=with_overrides(TINY, ["data.train_size=300"])))
    assert smoke.run_dir.name == "mlp-tiny-seed0-epochs1" and full.run_dir.name == "mlp-tiny-seed0"
    assert other.run_dir.name.startswith("mlp-tiny-seed0-o") and len({smoke.run_dir, full.run_dir, other.run_dir}) == 3


def test_checkpoints_can_live_apart_from_the_results(tmp_path):
    train(tiny_run(tmp_path, checkpoints=tmp_path / "ckpt"))
    assert (tmp_path / "ckpt" / "digits-rot" / "mlp-tiny-seed0" / "checkpoint.pt").is_file()
    assert not (tmp_path / "results" / "digits-rot" / "mlp-tiny-seed0" / "checkpoint.pt").exists()


def test_warmup_then_cosine_schedule():
    factor = _warmup_cosine(total_steps=100, warmup=0.1)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(10) == pytest.approx(1.0) and factor(55) == pytest.approx(0.5) and factor(100) == pytest.approx(0.0)
    plain = _warmup_cosine(total_steps=10, warmup=0.0)
    assert [round(plain(s), 6) for s in (0, 5, 10)] == [1.0, 0.5, 0.0]
    assert all(plain(s) >= plain(s + 1) for s in range(10))
    assert math.isclose(plain(3), 0.5 * (1 + math.cos(math.pi * 0.3)))


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    train_cli.add_parser(parser.add_subparsers(dest="command"))
    return train_cli.run(parser.parse_args(["train", *argv]))


def test_cli_trains_with_overrides_and_reports_usage_errors(tmp_path, capsys):
    out = tmp_path / "cli"
    tiny_egnn = ["-o", "data.train_size=20", "-o", "data.valid_size=0", "-o", "data.test_size=10", "-o", "model.hidden=8", "-o", "model.layers=1"]
    code = cli("nbody", "--model", "egnn", "--epochs", "1", *tiny_egnn, "--out", str(out), "--seed", "3", "--device", "cpu")
    assert code == 0
    (run_dir,) = (out / "nbody").glob("egnn-small-seed3-epochs1-o*")  # epochs and options name the folder
    row = json.loads((run_dir / "result.json").read_text())[0]
    assert row["epochs"] == 1 and row["seed"] == 3 and row["baseline"] == "no motion"
    assert "test_mse=" in capsys.readouterr().out
    assert cli("nbody", "--model", "egnn", "--epochs", "1", *tiny_egnn, "--out", str(out), "--seed", "3") == 1
    assert "pass --resume" in capsys.readouterr().err
    with pytest.raises(UsageError, match=r"option data.train_size='many': expected a number"):
        cli("nbody", "--model", "egnn", "-o", "data.train_size=many")
    with pytest.raises(UsageError, match=r"option data.full_files='maybe': expected True or False"):
        cli("rotmnist", "--model", "cnn", "-o", "data.full_files=maybe")
    with pytest.raises(UsageError, match="model 'resnet' is not trainable on 'nbody'; trainable there: .*egnn"):
        cli("nbody", "--model", "resnet")
    with pytest.raises(UsageError, match="unknown task 'nbodies'"):
        cli("nbodies", "--model", "egnn")
    with pytest.raises(UsageError, match=r"unknown preset 'big'"):
        cli("nbody", "--model", "egnn", "--preset", "big")
    with pytest.raises(UsageError, match="is not KEY=VALUE"):
        cli("nbody", "--model", "egnn", "-o", "epochs")
    with pytest.raises(SystemExit):  # argparse: "--threads: expected a positive integer, got 0"
        cli("nbody", "--model", "egnn", "--threads", "0")
    assert "expected a positive integer, got 0" in capsys.readouterr().err
    assert cli("rotmnist", "--model", "cnn", "--out", str(out)) == 1
    assert "pass --data PATH or set $EQBENCH_ROTMNIST" in capsys.readouterr().err


def test_eqbench_command_dispatches_train(capsys):
    from eqbench.cli.main import main

    assert main(["train", "--help"]) == 0
    assert "--resume" in capsys.readouterr().out


def test_a_users_plugin_model_trains_beside_the_reference_models(tmp_path, fresh_registry):
    """``eqbench train --plugin FILE``: a model registered with ``register_trainable`` outside eqbench."""
    from eqbench.cli.main import main

    plugin = Path(__file__).resolve().parents[1] / "examples" / "user_models.py"
    out = tmp_path / "runs"
    args = ["train", "nbody", "--model", "user-nbody-drift", "--plugin", str(plugin), "--epochs", "2", "--out", str(out), "--quiet"]
    assert main(args + ["-o", "data.train_size=500", "-o", "data.test_size=200", "-o", "data.valid_size=200"]) == 0
    (row,) = json.loads(next(out.glob("nbody/user-nbody-drift-*/result.json")).read_text())
    assert row["model"] == "user-nbody-drift" and row["epochs"] == 2
    assert row["test_mse"] < 0.8 * row["baseline_test_mse"], row


def test_non_finite_losses_stop_the_run(tmp_path):
    exploding = with_overrides(TINY, lr=1e30)
    with pytest.raises(FloatingPointError, match="non-finite training metrics in epoch"):
        train(tiny_run(tmp_path, preset=exploding))


def test_device_choice(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="--device cuda asked for, but torch sees no CUDA device"):
        choose_device("cuda")
    assert choose_device(None) == torch.device("cpu") == choose_device("cpu")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        choose_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert choose_device(None, local_rank=3) == torch.device("cuda", 1)
    assert choose_device("cpu", local_rank=3) == torch.device("cpu")
