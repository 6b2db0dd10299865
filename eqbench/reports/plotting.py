"""Figures drawn on their own Agg canvas, and atomic PNG writes.

The figures are :class:`matplotlib.figure.Figure` objects made directly, not through
``pyplot``: they need no backend, so importing or using :mod:`eqbench.reports` never changes
the caller's matplotlib backend (``matplotlib.use``) or its pyplot figure list.
"""
from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from eqbench.reports.files import write_atomic


def new_figure(width: float, height: float, ncols: int = 1) -> tuple[Figure, list]:
    """A figure on an Agg canvas with ``ncols`` side-by-side axes (always returned as a list)."""
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, ncols, squeeze=False)
    return figure, list(axes[0])


def save_png(figure: Figure, path: Path) -> Path:
    """Save ``figure`` as PNG at ``path`` atomically."""
    figure.tight_layout()
    return write_atomic(path, lambda stream: figure.savefig(stream, format="png", dpi=110))
