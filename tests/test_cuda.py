"""CUDA paths (marked ``cuda``; skipped without a CUDA device): checks, noise floor with TF32 off, training with AMP, LieConv.

``python -m suites.gpu_smoke`` runs exactly these (``pytest -m cuda``) on a lent GPU.
"""
from __future__ import annotations

import pytest
import torch

from eqbench.check import check_equivariance
from eqbench.check.forward import full_float32
from eqbench.registry import build_model, get_entry, load_builtin
from eqbench.tasks.presets import Preset
from eqbench.tasks.trainer import TrainConfig, train

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
CUDA = torch.device("cuda")


def check_on_cuda(name: str):
    load_builtin()
    entry = get_entry(name)
    model = build_model(entry).to(CUDA)
    return entry, check_equivariance(model, entry.group, entry.inputs, entry.in_action, entry.out_action, expected=entry.expected,
                                     tolerance=entry.tolerance, **{**entry.check_options, "device": CUDA})


@pytest.mark.parametrize("name", ["egnn-nbody", "fa-gnn-nbody", "gnn-nbody-rotations", "lieconv-so2-image"])
def test_registered_models_meet_their_expectation_on_cuda(name):
    entry, result = check_on_cuda(name)
    assert entry.matches(result.verdict), result.message
    if entry.expected == "exact":
        assert result.noise_floor < 1e-4  # float32 rounding, not TF32's 2^-11


def test_the_float32_twin_runs_without_tf32_and_restores_the_flags():
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    a = torch.randn(512, 512, device=CUDA)
    exact = (a.double() @ a.double()).float()
    with full_float32():
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        product = a @ a
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert ((product - exact).abs().max() / exact.abs().max()).item() < 1e-5


def test_training_on_cuda_with_mixed_precision_learns(tmp_path):
    preset = Preset("tiny", epochs=3, batch_size=16, lr=3e-3, data={"train_size": 96, "holdout": 64}, model={"hidden": (16,)})
    result = train(TrainConfig("digits-rot", "mlp", preset, device="cuda", out=tmp_path, progress=False, track_equivariance="C4"))
    assert result.final["device"] == "cuda"
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert all(row["equivariance_verdict"] == "violated" for row in result.history)
