"""Report sections for ``eqbench explain`` (shares per module) and ``eqbench profile`` (verdicts and spectrum).

Each section is Markdown with a PNG beside it: a bar chart of the largest shares of the
equivariance error (:class:`~eqbench.check.attribution.Attribution`), or the singular values of the
Lie-derivative operator on a log scale with the threshold that counts the symmetry algebra
(:class:`~eqbench.check.symmetry_profile.SymmetryProfile`). Figures are plain
``matplotlib.figure.Figure`` objects (no pyplot state, no backend switch); files are written
atomically.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from matplotlib.figure import Figure

from eqbench.atomic import write_atomic, write_text_atomic

if TYPE_CHECKING:
    from eqbench.check.attribution import Attribution
    from eqbench.check.symmetry_profile import SymmetryProfile

#: Modules shown in a share chart.
TOP_MODULES = 10


def attribution_figure(attribution: Attribution, top: int = TOP_MODULES) -> Figure:
    """Horizontal bars: the ``top`` largest shares of the equivariance error, largest on top."""
    shown = attribution.modules[:top][::-1]
    figure = Figure(figsize=(7.0, 0.4 * max(len(shown), 2) + 1.2))
    axes = figure.add_subplot()
    axes.barh([m.module for m in shown], [m.share for m in shown], color="tab:red")
    axes.set_xlim(0.0, 1.0)
    axes.set_xlabel("share of the equivariance error")
    axes.set_title(f"{attribution.model} under {attribution.group} ({attribution.method})", fontsize=9)
    figure.tight_layout()
    return figure


def spectrum_figure(profile: SymmetryProfile) -> Figure:
    """Singular values of the Lie-derivative operator over aff(d) (log scale) and the algebra threshold."""
    figure = Figure(figsize=(6.0, 3.2))
    axes = figure.add_subplot()
    algebra = profile.algebra
    if algebra is not None:
        floor = algebra.threshold * 1e-6
        values = [max(v, floor) for v in algebra.singular_values]
        axes.semilogy(range(1, len(values) + 1), values, "o-")
        axes.axhline(algebra.threshold, color="tab:gray", linestyle="--", label=f"threshold {algebra.threshold:g}")
        axes.set_title(f"{profile.model}: symmetry algebra of dimension {algebra.dimension}", fontsize=9)
        axes.legend(fontsize=8)
    axes.set_xlabel("singular value index")
    axes.set_ylabel("relative Lie derivative")
    figure.tight_layout()
    return figure


def save_figure(figure: Figure, path: Path) -> Path:
    """Write ``figure`` as a PNG at ``path`` atomically."""
    return write_atomic(path, lambda stream: figure.savefig(stream, format="png", dpi=110))


def attribution_section(attribution: Attribution, image: str) -> str:
    """Markdown: the ranked modules (contribution, share, local error, actions), total, residual and the chart."""
    lines = [
        f"### {attribution.model} under {attribution.group}",
        "",
        f"Method: {attribution.method}; total {attribution.total:.3g}, additivity residual {attribution.residual:.3g}.",
        "",
        "| module | contribution | share | local error | actions |",
        "|---|---:|---:|---:|---|",
    ]
    lines += [f"| `{m.module}` | {m.contribution:.3g} | {m.share:.1%} | {m.local_error:.3g} | {m.actions} |" for m in attribution.modules[:TOP_MODULES]]
    lines += ["", f"![shares]({image})", ""]
    return "\n".join(lines)


def profile_section(profile: SymmetryProfile, image: str) -> str:
    """Markdown: one row per candidate symmetry, the algebra dimension and principal angles, and the spectrum plot."""
    lines = [f"### {profile.model}", "", "| symmetry | verdict | max rel error |", "|---|---|---:|"]
    lines += [f"| {c.symmetry} | {c.verdict} | {c.max_rel_error:.3g} |" for c in profile.checks]
    algebra = profile.algebra
    if algebra is not None:
        angles = ", ".join(f"{a:.2g}" for a in algebra.principal_angles) or "-"
        lines += [
            "",
            f"Symmetry algebra: dimension {algebra.dimension} in aff(d), {algebra.linear_dimension} in gl(d); "
            f"principal angles to {algebra.declared or 'no declared algebra'}: {angles} rad.",
            "",
            f"![spectrum]({image})",
        ]
    lines += [f"*{note}*" for note in profile.notes]
    return "\n".join(lines + [""])


def write_attribution_report(folder: Path, attributions: Sequence[Attribution]) -> Path:
    """``folder/explain.md`` with one section and one share chart per model; returns the Markdown path."""
    return _write_page(folder, "explain", "Where equivariance breaks", attributions, attribution_figure, attribution_section)


def write_profile_report(folder: Path, profiles: Sequence[SymmetryProfile]) -> Path:
    """``folder/profile.md`` with one section and one spectrum plot per model; returns the Markdown path."""
    return _write_page(folder, "profile", "Which symmetries the models have", profiles, spectrum_figure, profile_section)


def _write_page(
    folder: Path, stem: str, title: str, results: Sequence[Any], figure: Callable[[Any], Figure], section: Callable[[Any, str], str]
) -> Path:
    """``folder/STEM.md``: a title, then per result its PNG (``STEM-MODEL.png``) and its section."""
    sections = [f"# {title}", ""]
    for result in results:
        image = f"{stem}-{_slug(result.model)}.png"
        save_figure(figure(result), folder / image)
        sections.append(section(result, image))
    return write_text_atomic(folder / f"{stem}.md", "\n".join(sections))


def _slug(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]+", "-", name).strip("-") or "model"
