"""eqbench: verify and benchmark the symmetries of PyTorch models.

Data flows one way: group -> action on inputs -> model -> action on outputs -> error -> verdict -> report.
"""
__version__ = "0.1.0"

from eqbench.declare import declare  # noqa: E402  (torch-free: imports torch only when called)

__all__ = ["__version__", "declare"]
