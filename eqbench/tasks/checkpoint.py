"""Checkpoints: everything a run needs to continue exactly where it stopped, written atomically.

A checkpoint holds the model, optimiser, scheduler and gradient-scaler states, the epochs done,
the metrics history and every process's random state: Python's ``random``, NumPy's global
generator, torch's CPU and CUDA generators and any ``torch.Generator`` a module keeps as an
attribute (e.g. a Monte-Carlo sampler's). The data order needs no state of its own: the
training sampler permutes by ``(seed, epoch)``. Only tensors and plain Python values are
stored, so :func:`load_checkpoint` reads with ``weights_only=True``.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from eqbench.atomic import write_atomic

FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: names the file and the problem."""


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def module_generators(model: nn.Module) -> dict[str, torch.Generator]:
    """``{"<module path>.<attribute>": generator}`` for every ``torch.Generator`` held by a submodule."""
    found = {}
    for path, module in model.named_modules():
        for attribute, value in vars(module).items():
            if isinstance(value, torch.Generator):
                found[f"{path}.{attribute}" if path else attribute] = value
    return found


def capture_rng(model: nn.Module) -> dict[str, Any]:
    """This process's random state (see module docs), as tensors and plain values."""
    _, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position), "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "modules": {name: generator.get_state() for name, generator in module_generators(model).items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], model: nn.Module) -> None:
    """Put back a state from :func:`capture_rng` (module generators matched by path)."""
    random.setstate(state["python"])
    numpy = state["numpy"]
    np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["position"], numpy["has_gauss"], numpy["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    generators = module_generators(model)
    for name, generator_state in state["modules"].items():
        if name not in generators:
            raise CheckpointError(f"checkpoint has the state of generator {name!r}, which the model does not hold")
        generators[name].set_state(generator_state)


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (plus the format version) to ``path`` atomically."""
    return write_atomic(path, lambda stream: torch.save({"format": FORMAT, **state}, stream))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` onto the CPU; unreadable files raise :class:`CheckpointError`."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for damaged or foreign files
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(error).__name__}: {error})") from error
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an eqbench checkpoint of format {FORMAT}")
    return state
