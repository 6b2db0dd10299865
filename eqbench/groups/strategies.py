"""Small helpers shared by the groups' hypothesis strategies (floats that shrink towards 0)."""
from __future__ import annotations

import torch
from hypothesis import strategies as st
from torch import Tensor


def float_param(low: float, high: float) -> st.SearchStrategy[float]:
    """A finite float in ``[low, high]``; hypothesis shrinks it towards 0 (the identity for angles)."""
    return st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)


def batch1(value, dtype: torch.dtype = torch.float64) -> Tensor:
    """One parameter as a batch-1 tensor."""
    return torch.tensor([value], dtype=dtype)
