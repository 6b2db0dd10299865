"""Plain ``nn.Module`` models: control models (``controls``) and reference models, one module per family.

Models here never import the checker or the registry; :mod:`eqbench.catalog` registers them.
"""
