"""Actions of group elements on data fields: how inputs and outputs transform.

``Scalars``/``Invariant`` (trivial), ``Vectors`` (``M v``, pseudo: ``det(M) M v``), ``Points``
(``M x + t``), ``Tensors`` (``M T M^T``), ``Mask`` and ``EdgeIndex`` (bookkeeping that follows
the permutation), ``GridImage`` (pixel grids), ``Irreps`` (e3nn fields), and the composites
``Tuple`` / ``Dict``. See :mod:`eqbench.actions.base` for the shared conventions.
"""
from eqbench.actions.base import Action, DataError, Leaf
from eqbench.actions.composite import Composite, Dict, Tuple
from eqbench.actions.geometric import Points, Tensors, Vectors
from eqbench.actions.graph import EdgeIndex
from eqbench.actions.image import GridImage
from eqbench.actions.irreps import Irreps
from eqbench.actions.scalars import Invariant, Mask, Scalars

__all__ = [
    "Action",
    "Composite",
    "DataError",
    "Dict",
    "EdgeIndex",
    "GridImage",
    "Invariant",
    "Irreps",
    "Leaf",
    "Mask",
    "Points",
    "Scalars",
    "Tensors",
    "Tuple",
    "Vectors",
]
