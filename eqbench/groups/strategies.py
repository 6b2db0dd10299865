"""Small helpers shared by the groups' hypothesis strategies (floats that shrink towards 0)."""
from __future__ import annotations

from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor


def float_param(low: float, high: float) -> st.SearchStrategy[float]:
    """A finite float in ``[low, high]``; hypothesis shrinks it towards 0 (the identity for angles)."""
    return st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)


def batch1(value: Any, dtype: torch.dtype = torch.float64) -> Tensor:
    """One parameter (a number or a list of numbers) as a batch-1 tensor."""
    return torch.tensor([value], dtype=dtype)


def bernoulli(n: int, generator: torch.Generator) -> Tensor:
    """``n`` fair coin flips in {0, 1} as int64 (the Haar measure on a two-element group)."""
    return torch.randint(0, 2, (n,), generator=generator)
