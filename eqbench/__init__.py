"""eqbench: verify and benchmark the symmetries of PyTorch models.

Data flows one way: group -> action on inputs -> model -> action on outputs -> error -> verdict -> report.
"""
__version__ = "0.1.0"
