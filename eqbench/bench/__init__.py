"""Benchmark history: record asv results per commit under a stable environment name, compare two commits.

``eqbench bench record`` and ``eqbench bench compare`` (:mod:`eqbench.cli.bench`) are thin over
:mod:`eqbench.bench.history`; :mod:`eqbench.bench.environment` is the asv plugin that names the
environment after the Python version alone, so every checkout and virtual environment appends
to one history.
"""
