"""Matplotlib figures for the comparison report, built on :class:`matplotlib.figure.Figure` directly.

No pyplot and no backend switch: a bare ``Figure`` renders through the Agg canvas it creates
for ``savefig``, so building a report never changes the caller's matplotlib state.
"""
from __future__ import annotations

import base64
from io import BytesIO

from matplotlib.figure import Figure


def new_figure(width: float, height: float) -> Figure:
    """An empty figure of ``width`` x ``height`` inches (add axes with ``figure.subplots()``)."""
    return Figure(figsize=(width, height))


def png_bytes(figure: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes, laid out tightly."""
    buffer = BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI, so an HTML page shows the image without loading a file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
