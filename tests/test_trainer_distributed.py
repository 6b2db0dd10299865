"""Two CPU processes under torchrun (gloo on loopback): the unchanged trainer trains and both ranks report the same metrics."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from eqbench.tasks.presets import Preset
from eqbench.tasks.registry import get_task
from eqbench.tasks.trainer import TrainConfig, train

pytestmark = pytest.mark.slow

TINY = Preset("tiny", epochs=2, batch_size=16, lr=1e-2, eval_batch_size=8,
              data={"train_size": 48, "valid_size": 0, "test_size": 12}, model={"hidden": 8, "layers": 1})
SCRIPT = f"""
import json, os, sys
from pathlib import Path

import torch

from eqbench.tasks.presets import Preset
from eqbench.tasks.trainer import TrainConfig, train

torch.set_num_threads(1)
result = train(TrainConfig("nbody", "egnn", {TINY!r}, out=Path(sys.argv[1]), progress=False))
Path(sys.argv[2], "rank" + os.environ["RANK"] + ".json").write_text(json.dumps(result.final))
"""


def test_two_process_run_trains_and_agrees_across_ranks(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("EQBENCH_CACHE", str(cache))
    get_task("nbody").build(TINY.data)  # simulate once here; both ranks read the cache
    script = tmp_path / "train_two.py"
    script.write_text(SCRIPT)
    (tmp_path / "ranks").mkdir()
    env = {**os.environ, "EQBENCH_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path / "out"), str(tmp_path / "ranks")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]

    ranks = [json.loads((tmp_path / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    metrics = [{k: v for k, v in row.items() if k.startswith(("train_", "test_"))} for row in ranks]
    assert metrics[0] == metrics[1] and set(metrics[0]) == {"train_mse", "test_mse"}
    assert ranks[0]["world_size"] == 2 and ranks[0]["epochs"] == 2
    run_dir = tmp_path / "out" / "nbody" / "egnn-tiny-seed0"
    assert json.loads((run_dir / "result.json").read_text())[0]["test_mse"] == metrics[0]["test_mse"]
    assert [row["epoch"] for row in json.loads((run_dir / "history.json").read_text())] == [1, 2]

    # Each global batch holds the same 16 systems split 8 + 8 and DDP averages the gradients,
    # so the two-process run follows a one-process run up to rounding.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = train(TrainConfig("nbody", "egnn", TINY, out=tmp_path / "single", progress=False)).final
    finally:
        torch.set_num_threads(threads)
    for name, value in metrics[0].items():
        assert value == pytest.approx(single[name], rel=1e-4)
