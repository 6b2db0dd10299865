"""Training objectives: the loss a task minimises and the metrics it reports.

Metrics are kept as per-example sums (plus the example count) so that they add across batches
and across processes: the trainer all-reduces the sums, then divides by the total count, which
gives every rank the same numbers and a weighted mean that does not depend on the batch size.
"""
from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor
from torch.nn import functional


class Objective(Protocol):
    """A loss (mean over the batch) and per-example metric values, all from ``(output, target)``."""

    #: The metric that summarises a run (reported with a ``test_`` prefix).
    headline: str
    #: Whether a larger headline value is better (accuracy) or worse (errors).
    higher_is_better: bool

    def loss(self, output: Tensor, target: Tensor) -> Tensor: ...

    def per_example(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        """``{metric: (B,) values}``; the reported metric is their mean over a split."""
        ...


class Classification:
    """Cross-entropy over ``(B, classes)`` logits and integer labels ``(B,)``; metrics ``loss`` and ``accuracy``."""

    headline = "accuracy"
    higher_is_better = True

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return functional.cross_entropy(output.float(), target)

    def per_example(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        logits = output.float()
        return {
            "loss": functional.cross_entropy(logits, target, reduction="none"),
            "accuracy": (logits.argmax(dim=-1) == target).float(),
        }


class MeanSquaredError:
    """Mean squared error over every predicted coordinate of an example (EGNN's n-body loss); metric ``mse``."""

    headline = "mse"
    higher_is_better = False

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return functional.mse_loss(output.float(), target)

    def per_example(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        return {"mse": (output.float() - target).pow(2).flatten(1).mean(dim=1)}


class MeanAbsoluteError:
    """L1 loss in training units (LieConv's QM9 loss); metric ``mae_<unit>``: the error times ``scale`` (e.g. eV -> meV)."""

    higher_is_better = False

    def __init__(self, unit: str, scale: float) -> None:
        self.unit, self.scale = unit, scale
        self.headline = f"mae_{unit.replace('/', '_per_').replace('^', '').replace(' ', '_')}"

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return functional.l1_loss(output.float().reshape(target.shape), target)

    def per_example(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        return {self.headline: (output.float().reshape(target.shape) - target).abs() * self.scale}


def summed(values: dict[str, Tensor]) -> dict[str, Tensor]:
    """Per-example metric values summed over the batch, in float64 (for exact-ish accumulation)."""
    return {name: value.detach().to(torch.float64).sum() for name, value in values.items()}
