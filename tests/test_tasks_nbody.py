"""Charged n-body simulator: against a plain per-particle loop, conservation, E(3) equivariance, seeding, caching."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from eqbench.tasks import nbody

SHORT = nbody.ChargedSystemConfig(steps=600, save_every=100)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EQBENCH_CACHE", str(tmp_path / "cache"))


def loop_reference(x0: np.ndarray, v0: np.ndarray, q: np.ndarray, config: nbody.ChargedSystemConfig) -> tuple[list, list]:
    """The EGNN charged-particle integrator for one system, written particle by particle."""

    def force(x):
        f = np.zeros_like(x)
        for i in range(len(x)):
            for j in range(len(x)):
                if i != j:
                    r = x[i] - x[j]
                    f[i] += q[i] * q[j] * r / np.linalg.norm(r) ** 3
        return np.clip(f, -config.force_clip, config.force_clip)

    x, v = x0.copy(), v0 + config.dt * force(x0)
    frames_x, frames_v = [], []
    for step in range(1, config.steps):
        x = x + config.dt * v
        if step % config.save_every == 0:
            frames_x.append(x.copy())
            frames_v.append(v.copy())
        v = v + config.dt * force(x)
    return frames_x, frames_v


def test_vectorised_simulator_matches_the_particle_loop():
    rng = np.random.default_rng(0)
    systems = nbody.simulate_charged_systems(2, rng, SHORT)
    assert systems["positions"].shape == (2, SHORT.num_frames, 5, 3) == (2, 5, 5, 3)
    replay = np.random.default_rng(0)
    charges = replay.choice(np.array([-1.0, 1.0]), size=(2, 5))
    x0 = replay.standard_normal((2, 5, 3))
    directions = replay.standard_normal((2, 5, 3))
    v0 = 0.5 * directions / np.linalg.norm(directions, axis=-1, keepdims=True)
    np.testing.assert_array_equal(systems["charges"], charges)
    for s in range(2):
        frames_x, frames_v = loop_reference(x0[s], v0[s], charges[s], SHORT)
        np.testing.assert_allclose(systems["positions"][s], np.stack(frames_x), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(systems["velocities"][s], np.stack(frames_v), rtol=1e-10, atol=1e-12)


def test_momentum_is_conserved_and_initial_speeds_are_half():
    rng = np.random.default_rng(1)
    x0 = rng.standard_normal((4, 5, 3))
    v0 = rng.standard_normal((4, 5, 3))
    q = rng.choice(np.array([-1.0, 1.0]), size=(4, 5))
    out = nbody.integrate(x0, v0, q, SHORT)
    # equal and opposite pair forces: total momentum (unit masses) never changes (no force clipping here)
    np.testing.assert_allclose(out["velocities"].sum(axis=2), np.broadcast_to(v0.sum(axis=1)[:, None], (4, 5, 3)), atol=1e-9)
    sampled = nbody.simulate_charged_systems(3, np.random.default_rng(2), nbody.ChargedSystemConfig(steps=200, save_every=100))
    assert set(np.unique(sampled["charges"])) <= {-1.0, 1.0}


def test_trajectories_move_with_rotations_and_translations_of_the_initial_state():
    rng = np.random.default_rng(3)
    x0, v0 = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 5, 3))
    q = rng.choice(np.array([-1.0, 1.0]), size=(2, 5))
    rotation, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    shift = rng.standard_normal(3)
    plain = nbody.integrate(x0, v0, q, SHORT)
    moved = nbody.integrate(x0 @ rotation.T + shift, v0 @ rotation.T, q, SHORT)
    np.testing.assert_allclose(moved["positions"], plain["positions"] @ rotation.T + shift, atol=1e-9)
    # negative control: flipping one charge changes the trajectory
    flipped = q.copy()
    flipped[:, 0] *= -1
    assert np.abs(nbody.integrate(x0, v0, flipped, SHORT)["positions"] - plain["positions"]).max() > 1e-3


def test_task_tensors_are_seeded_cached_and_split_specific(tmp_path, monkeypatch):
    sizes = {"train": 6, "test": 4}
    data = nbody.charged_nbody(sizes, seed=7, config=SHORT, input_frame=1, target_frame=3)
    assert data["train"]["positions"].shape == (6, 5, 3) and data["train"]["charges"].shape == (6, 5, 1)
    assert data["train"]["target"].dtype == torch.float32
    assert not torch.equal(data["train"]["positions"][:4], data["test"]["positions"])
    assert list((tmp_path / "cache" / "nbody").glob("charged-train-6-seed7-*.npz"))

    def refuse(*args, **kwargs):
        raise AssertionError("simulated again despite the cache")

    monkeypatch.setattr(nbody, "simulate_charged_systems", refuse)
    again = nbody.charged_nbody(sizes, seed=7, config=SHORT, input_frame=1, target_frame=3)
    assert torch.equal(again["test"]["target"], data["test"]["target"])
    monkeypatch.undo()
    monkeypatch.setenv("EQBENCH_CACHE", str(tmp_path / "cache"))
    other = nbody.charged_nbody({"test": 4}, seed=8, config=SHORT, input_frame=1, target_frame=3)
    assert not torch.equal(other["test"]["positions"], data["test"]["positions"])


def test_bad_settings_are_errors():
    with pytest.raises(ValueError, match="need 0 <= input_frame < target_frame < 5"):
        nbody.charged_nbody({"train": 2}, config=SHORT, input_frame=3, target_frame=5)
    with pytest.raises(ValueError, match=r"unknown n-body splits \['val'\]"):
        nbody.charged_nbody({"val": 2}, config=SHORT, input_frame=1, target_frame=2)
    with pytest.raises(ValueError, match="must be a multiple of save_every"):
        nbody.ChargedSystemConfig(steps=550, save_every=100)
    assert nbody.ChargedSystemConfig().num_frames == 49  # 5,000 steps saved every 100, the EGNN layout
