"""One comparison report under one folder: ``index.html`` (self-contained), ``report.md`` and CSV tables.

Sections, in the order a researcher reads them:

1. **Leaderboard**: the reference models of :data:`~eqbench.reports.lineup.LINEUP` side by side,
   grouped by family (LieConv, GIGP, L-conv, Frame Averaging, Baselines): equivariance verdicts and
   worst errors per group over seeds with the noise floor, Monte-Carlo error against the sample
   count with its fitted rate, the training metric mean +- std over seeds beside the paper's figure
   and its source, and speed / peak memory against the reference implementation (asv ratios);
2. **Models**: one detail page per model (``models/<name>.html``, and a section of ``report.md``);
3. **Benchmark history**: every asv benchmark over commits in git-ancestry order, regressions
   ringed, with its newest-vs-previous table beside the plot.

Files: ``index.html``, ``models/<name>.html``, ``report.md``, ``img/*.png`` (the Markdown's
images; the HTML embeds its own), ``leaderboard.csv``, ``checks.csv`` (every record),
``training.csv`` (per configuration), ``history.csv`` (every asv value with its ratio to the
previous commit). With training results, ``training/`` also holds the training comparison
(:func:`~eqbench.reports.training.write_training_reports`: ``training.md`` with the papers' pairs,
their 95% intervals and conclusions, equivariance through training, and its CSVs and plots).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from eqbench.bench.history import DEFAULT_FACTOR
from eqbench.reports import html
from eqbench.reports.files import write_atomic, write_text_atomic
from eqbench.reports.checks import plot_check_errors
from eqbench.reports.history import (
    comparison_table,
    history_markdown,
    load_history,
    mark_regressions,
    newest_vs_previous,
    plot_benchmark,
)
from eqbench.reports.leaderboard import equivariance_rows, leaderboard, metric_text, training_rows
from eqbench.reports.lineup import FAMILIES, LINEUP, ModelLine
from eqbench.reports.records import load_check_records, load_training_rows
from eqbench.reports.sweeps import load_sweeps, plot_sweep, sweep_rows
from eqbench.reports.training import epoch_history, final_results, plot_training, write_training_reports
from eqbench.reports.tables import markdown_table, scientific, significant, write_csv

CHECK_COLUMNS = ["model", "group", "expected", "verdicts", "matches", "runs", "max_rel_error", "noise_floor", "tolerance", "explanation"]
ERROR_FORMATS = {c: scientific for c in ("max_rel_error", "noise_floor", "tolerance")}


@dataclass
class Inputs:
    """Everything the report is built from (any part may be missing)."""

    checks: pd.DataFrame | None = None
    equivariance: pd.DataFrame | None = None
    sweeps: list[dict] | None = None
    sweep_table: pd.DataFrame | None = None
    training_rows: pd.DataFrame | None = None
    training: pd.DataFrame | None = None
    history: pd.DataFrame | None = None


def build_report(
    out: Path | str,
    *,
    checks: Sequence[Path | str] = (),
    sweeps: Sequence[Path | str] = (),
    training: Path | str | None = None,
    asv_results: Path | str | None = None,
    repo: Path | str = ".",
    factor: float = DEFAULT_FACTOR,
) -> list[Path]:
    """Write the comparison report of the given inputs under ``out``; returns the paths written."""
    if not checks and not sweeps and training is None and asv_results is None:
        raise ValueError("nothing to report: give check records, sweeps, a training results folder or an asv results folder")
    inputs = Inputs()
    if checks:
        inputs.checks = load_check_records(checks)
        inputs.equivariance = equivariance_rows(inputs.checks)
    if sweeps:
        inputs.sweeps = load_sweeps(sweeps)
        inputs.sweep_table = sweep_rows(inputs.sweeps)
    if training is not None:
        inputs.training_rows = load_training_rows(training)
        inputs.training = training_rows(inputs.training_rows)
    if asv_results is not None:
        inputs.history = mark_regressions(load_history(asv_results, repo), factor)
    written = write_report(Path(out), inputs, factor)
    if training is not None:
        written += write_training_reports(training, Path(out) / "training")
    return written


def write_report(out: Path, inputs: Inputs, factor: float) -> list[Path]:
    """Render and write every file of the report."""
    board = leaderboard(inputs.equivariance, inputs.sweep_table, inputs.training, inputs.history)
    board = board.assign(family=pd.Categorical(board["family"], FAMILIES, ordered=True)).sort_values("family", kind="stable")
    board["family"] = board["family"].astype(str)
    written: list[Path] = []
    history_plots = {key: plot_benchmark(inputs.history, key) for key in sorted(inputs.history["key"].unique())} \
        if inputs.history is not None else {}
    for key, png in history_plots.items():
        written.append(write_atomic(out / "img" / f"history-{_slug(key)}.png", lambda stream, png=png: stream.write(png)))
    pages = {line.name: model_page(line, inputs, out) for line in LINEUP}
    for name, (page_html, _, images) in pages.items():
        written.append(write_text_atomic(out / "models" / f"{name}.html", page_html))
        for file, png in images.items():
            if not (out / "img" / file).exists():  # plots drawn by checks.py / training.py are written already
                written.append(write_atomic(out / "img" / file, lambda stream, png=png: stream.write(png)))
    written.append(write_text_atomic(out / "index.html", index_html(board, inputs, history_plots, factor)))
    written.append(write_text_atomic(out / "report.md", report_markdown(board, inputs, pages, factor)))
    written.append(write_csv(out / "leaderboard.csv", board.apply(lambda column: column.map(_flat))))
    if inputs.checks is not None:
        written.append(write_csv(out / "checks.csv", _scalar_columns(inputs.checks)))
    if inputs.training is not None:
        written.append(write_csv(out / "training.csv", inputs.training))
    if inputs.history is not None:
        written.append(write_csv(out / "history.csv", inputs.history))
    return written


# ------------------------------------------------------------------------------- index
LEADERBOARD_NOTE = (
    "Equivariance: per registry entry [in brackets] and group, the verdicts over seeds against the expected one, "
    "the worst relative error and the largest noise floor; (!) marks an approximate verdict whose error exceeds its "
    "tolerance, explained on the model's page. Monte-Carlo: mean error of single draws against the sample count, "
    "rate b of err ~ n^b with its 95% interval (plain Monte-Carlo gives -0.5). Training: the task's test metric, "
    "mean +- std over seeds, one line per configuration (runs of different epochs are never averaged). "
    "Speed / memory: newest asv ratio to the reference implementation (lower is better)."
)


def index_html(board: pd.DataFrame, inputs: Inputs, history_plots: dict[str, bytes], factor: float) -> str:
    body = [
        html.heading(1, "eqbench comparison report"),
        '<nav><a href="#leaderboard">Leaderboard</a><a href="#models">Models</a><a href="#history">Benchmark history</a></nav>',
        html.heading(2, "Leaderboard", "leaderboard"),
        html.paragraph(LEADERBOARD_NOTE),
        html.table(board, first_column_class="family"),
        html.paragraph(_others_note(inputs.equivariance)),
        html.heading(2, "Models", "models"),
        "<ul>" + "".join(f"<li>{html.link(f'models/{line.name}.html', line.name)} ({line.family}): "
                         f"{line.description}</li>" for line in LINEUP) + "</ul>",
        html.heading(2, "Benchmark history", "history"),
    ]
    if inputs.history is None:
        body.append(html.paragraph("No asv results given (eqbench report --asv-results DIR)."))
    else:
        commits = inputs.history.drop_duplicates("position").sort_values("position")["commit"]
        body.append(html.paragraph(
            f"{len(commits)} commits in git-ancestry order (oldest first): {', '.join(c[:8] for c in commits)}. "
            f"A ringed point / REGRESSED row is worse than the previous commit by more than {factor}x."))
        newest = newest_vs_previous(inputs.history)
        for key, png in history_plots.items():
            rows = newest[newest["key"] == key]
            body += [html.heading(3, key), '<div class="pair">', html.image(png, f"history of {key}"),
                     html.table(comparison_table(rows), ["regressed" if r else "" for r in rows["regressed"]]), "</div>"]
    return html.page("eqbench comparison report", body)


# --------------------------------------------------------------------------- model pages
def model_page(line: ModelLine, inputs: Inputs, out: Path) -> tuple[str, str, dict[str, bytes]]:
    """The model's detail page as HTML, its Markdown section, and its images (file name under ``out/img`` -> PNG)."""
    body = [html.heading(1, f"{line.name} ({line.family})"), html.paragraph(line.description),
            '<p><a href="../index.html">back to the report</a></p>']
    markdown = [f"### {line.name} ({line.family})\n\n{line.description}\n"]
    images: dict[str, bytes] = {}

    body.append(html.heading(2, "Equivariance over seeds"))
    checks = _rows_of(inputs.equivariance, line.name)
    if checks is None or not len(checks):
        body.append(html.paragraph("not checked"))
    else:
        shown = checks[CHECK_COLUMNS]
        name = f"checks-{line.name}.png"
        images[name] = _png_of(lambda path: plot_check_errors(checks.reset_index(drop=True), path), out / "img" / name)
        body += ['<div class="pair">', html.table(shown.assign(**{c: shown[c].map(scientific) for c in ERROR_FORMATS})),
                 html.image(images[name], name), "</div>"]
        markdown.append(f"Equivariance over seeds:\n\n{markdown_table(shown, ERROR_FORMATS)}\n\n![{name}](img/{name})\n")

    body.append(html.heading(2, "Monte-Carlo error against the sample count"))
    sweeps = [s for s in inputs.sweeps or [] if s["model"] in (line.sweep, *line.checks)]
    if not sweeps:
        body.append(html.paragraph("Monte-Carlo; not swept" if line.sampling else "deterministic: nothing sampled"))
    for sweep in sweeps:
        png = plot_sweep(sweep)
        name = f"sweep-{_slug(sweep['model'])}.png"
        images[name] = png
        table = pd.DataFrame(sweep["rows"]).map(lambda v: significant(4)(v) if isinstance(v, float) else v)
        rate = f"err ~ {sweep['param']}^{sweep['rate']:.3f}, 95% interval [{sweep['rate_low']:.3f}, {sweep['rate_high']:.3f}]"
        body += [html.paragraph(f"{sweep['model']}: {rate}"), '<div class="pair">', html.image(png, name), html.table(table), "</div>"]
        markdown.append(f"Monte-Carlo sweep of {sweep['model']}: {rate}\n\n![{name}](img/{name})\n\n{markdown_table(table)}\n")

    body.append(html.heading(2, "Training"))
    trained = _training_of(line, inputs.training)
    if trained is None or not len(trained):
        body.append(html.paragraph("not trained" if line.training else "no training task"))
    else:
        shown = pd.DataFrame({
            "task": trained["task"], "dataset": trained["dataset"] if "dataset" in trained else "-",
            "result": [metric_text(row, row["task"]) for _, row in trained.iterrows()],
            "seconds/epoch": trained["seconds_per_epoch_mean"].map(significant(3)) if "seconds_per_epoch_mean" in trained else "-",
            "paper": [_paper_of(line, task) for task in trained["task"]],
        })
        body.append(html.table(shown))
        markdown.append(f"Training:\n\n{markdown_table(shown)}\n")
        for path in _training_plots(line, inputs.training_rows, out / "img" / f"training-{line.name}"):
            images[f"training-{line.name}/{path.name}"] = path.read_bytes()
            body.append(html.image(path.read_bytes(), path.name))
            markdown.append(f"![{path.name}](img/training-{line.name}/{path.name})\n")

    body.append(html.heading(2, "Speed and memory against the reference implementation"))
    series = list(line.speed)
    if not series or inputs.history is None:
        body.append(html.paragraph("no reference benchmark" if not series else "no asv history given"))
    else:
        newest = newest_vs_previous(inputs.history)
        rows = newest[newest.apply(lambda r: any(r["key"] == s.key and r["params"] == s.params for s in series), axis=1)]
        body.append(html.table(comparison_table(rows)))
        markdown.append(f"Speed / memory (asv ratios, lower is better):\n\n{markdown_table(comparison_table(rows))}\n")
    return html.page(f"{line.name}: eqbench", body), "\n".join(markdown), images


# ------------------------------------------------------------------------------ markdown
def report_markdown(board: pd.DataFrame, inputs: Inputs, pages: dict[str, tuple[str, str, dict]], factor: float) -> str:
    parts = ["# eqbench comparison report\n", "## Leaderboard\n", LEADERBOARD_NOTE + "\n",
             markdown_table(board.apply(lambda column: column.map(lambda v: "<br>".join(v) if isinstance(v, list) else v))) + "\n",
             "## Models\n"]
    parts += [section for _, section, _ in pages.values()]
    parts.append("## Benchmark history\n")
    if inputs.history is None:
        parts.append("No asv results given.\n")
    else:
        plots = {key: f"img/history-{_slug(key)}.png" for key in inputs.history["key"].unique()}
        parts.append(f"Commits in git-ancestry order; REGRESSED: worse than the previous commit by more than {factor}x.\n")
        parts.append(history_markdown(inputs.history, plots))
    return "\n".join(parts)


# ------------------------------------------------------------------------------- helpers
def _rows_of(frame: pd.DataFrame | None, canonical: str) -> pd.DataFrame | None:
    return None if frame is None else frame[frame["canonical"] == canonical]


def _training_of(line: ModelLine, frame: pd.DataFrame | None) -> pd.DataFrame | None:
    """The rows of ``frame`` (training rows or summary) of the model's (task, training name) pairs."""
    if frame is None:
        return None
    mask = pd.Series(False, index=frame.index)
    for task, model in line.training:
        mask |= (frame["task"] == task) & (frame["model"] == model)
    return frame[mask]


def _training_plots(line: ModelLine, rows: pd.DataFrame | None, folder: Path) -> list[Path]:
    """:func:`~eqbench.reports.training.plot_training` of the model's runs (final metrics and learning curves)."""
    mine = _training_of(line, rows)
    return plot_training(final_results(mine), epoch_history(mine), folder) if mine is not None and len(mine) else []


def _others_note(equivariance: pd.DataFrame | None) -> str:
    """Which checked entries belong to no reference model (the checker's own controls): they are in checks.csv."""
    if equivariance is None:
        return ""
    others = sorted(set(equivariance.loc[equivariance["canonical"].isna(), "model"]))
    return f"Also checked, not reference models (the checker's controls; see checks.csv): {', '.join(others)}." if others else ""


def _png_of(draw, path: Path) -> bytes:  # noqa: ANN001  (draw writes a PNG at the path it is given)
    return draw(path).read_bytes()


def _paper_of(line: ModelLine, task: str) -> str:
    return "; ".join(f"{p.text} ({p.source})" for p in line.papers if task in p.dataset.tasks) or "-"


def _flat(value: object) -> object:
    return "; ".join(value) if isinstance(value, list) else value


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")


def _scalar_columns(records: pd.DataFrame) -> pd.DataFrame:
    """Drop nested fields (counterexamples, per-output breakdowns) that do not fit a CSV cell."""
    nested = [c for c in records.columns if records[c].map(lambda v: isinstance(v, (dict, list))).any()]
    return records.drop(columns=nested)
