"""Shared test fixtures and settings."""
from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    """One intra-op torch thread per test process.

    The tests run tiny tensors, where a second thread gains nothing, and under ``-n 2`` two
    workers with two threads each oversubscribe two cores: OpenMP's spinning threads then
    make small matrix products ten times slower.
    """
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch):
    """The registry module with the builtin suite loaded; registrations made in the test vanish afterwards."""
    from eqbench import registry

    registry.load_builtin()
    monkeypatch.setattr(registry, "_ENTRIES", dict(registry._ENTRIES))
    return registry
