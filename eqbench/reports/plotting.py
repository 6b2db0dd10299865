"""Matplotlib on the non-interactive Agg backend, and atomic PNG writes."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.figure import Figure  # noqa: E402

from eqbench.reports.files import write_atomic  # noqa: E402


def new_figure(width: float, height: float, ncols: int = 1) -> tuple[Figure, list]:
    """A figure with ``ncols`` side-by-side axes (always returned as a list)."""
    figure, axes = plt.subplots(1, ncols, figsize=(width, height), squeeze=False)
    return figure, list(axes[0])


def save_png(figure: Figure, path: Path) -> Path:
    """Save ``figure`` as PNG at ``path`` atomically and close it."""
    try:
        figure.tight_layout()
        return write_atomic(path, lambda stream: figure.savefig(stream, format="png", dpi=110))
    finally:
        plt.close(figure)
