"""eqbench's own registrations: importing this package registers every model of the suite.

Each module here (``controls``, and one per model family) calls
:func:`eqbench.registry.register_model` for its models; this package imports all of them, so a
new family is added by dropping a module in this folder. The package is the builtin entry of
the ``eqbench.models`` entry point group (``builtin = "eqbench.catalog"`` in pyproject.toml).
"""
import importlib
import pkgutil

for _module in sorted(info.name for info in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")
