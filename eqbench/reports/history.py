"""Benchmark history from asv's result files: every value over commits in git-ancestry order, regressions marked.

asv's own objects read the files: :func:`asv.results.iter_results` loads each
``<machine>/<commit>-<env>.json`` and :func:`asv.commands.compare.unroll_result` names each
parameter combination exactly as ``asv compare`` prints it (``bench.Class.time_x('SO(3)')``),
so this page and ``eqbench bench compare`` agree on names and values. Commits are placed by
:func:`eqbench.bench.history.ancestry_order` (``git rev-list --topo-order``), never by date.

A point *regresses* when its value exceeds the previous recorded commit's value of the same
series (machine, environment, benchmark) by more than ``factor`` (asv's 1.10 by default): for
``time_``, ``peakmem_`` and the ``track_`` ratios of :mod:`suites.bench_ratios`, lower is better.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from eqbench.bench.history import DEFAULT_FACTOR, HistoryError, ancestry_order
from eqbench.reports.files import ReportInputError, read_json
from eqbench.reports.figures import new_figure, png_bytes
from eqbench.reports.tables import markdown_table

SERIES = ["machine", "env", "benchmark"]
TIME_UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns"))
BYTE_UNITS = ((2.0**30, "GiB"), (2.0**20, "MiB"), (2.0**10, "KiB"), (1.0, "B"))


def load_history(results_dir: Path | str, repo: Path | str = ".") -> pd.DataFrame:
    """One row per (machine, env, commit, benchmark with parameters): ``value``, ``unit``, ``position``.

    ``position`` is the commit's index in ancestry order (0 = oldest recorded); ``key`` is the
    benchmark's asv name without parameters and ``params`` the parameter values, as asv prints them.
    """
    from asv.commands.compare import unroll_result
    from asv.results import iter_results

    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ReportInputError(f"{results_dir}: asv results folder does not exist (run `eqbench bench record` first)")
    described = results_dir / "benchmarks.json"
    units = {name: meta.get("unit", "") for name, meta in read_json(described).items() if isinstance(meta, dict)} \
        if described.exists() else {}
    rows = []
    try:
        results = list(iter_results(str(results_dir)))
    except Exception as error:  # asv raises its own UserError / ValueError / KeyError on a damaged file
        raise ReportInputError(f"{results_dir}: asv cannot read a result file ({error})") from error
    for result in results:
        for key in result.get_all_result_keys():
            params = result.get_result_params(key)
            value = result.get_result_value(key, params)
            stats = result.get_result_stats(key, params)
            samples = result.get_result_samples(key, params)
            for name, number, _, _ in unroll_result(key, params, value, stats, samples):
                rows.append({
                    "machine": result.params.get("machine", ""), "env": result.env_name, "commit": result.commit_hash,
                    "benchmark": name, "key": key, "params": name[len(key):].strip("()") if name != key else "",
                    "unit": units.get(key, ""), "value": float("nan") if number is None else float(number),
                })
    if not rows:
        raise ReportInputError(f"{results_dir}: no asv result files (expected <machine>/<commit>-<env>.json)")
    frame = pd.DataFrame(rows)
    try:
        order = ancestry_order(Path(repo), sorted(frame["commit"].unique()))
    except HistoryError as error:
        raise ReportInputError(str(error)) from error
    frame["position"] = frame["commit"].map({commit: index for index, commit in enumerate(order)})
    return frame.sort_values([*SERIES, "position"], ignore_index=True)


def mark_regressions(history: pd.DataFrame, factor: float = DEFAULT_FACTOR) -> pd.DataFrame:
    """``history`` with ``previous`` (the series' value at its previous recorded commit), ``ratio`` and ``regressed``."""
    frame = history.sort_values([*SERIES, "position"], ignore_index=True)
    frame["previous"] = frame.groupby(SERIES, sort=False)["value"].shift(1)
    frame["ratio"] = frame["value"] / frame["previous"]
    frame["regressed"] = frame["ratio"] > factor
    return frame


def newest_vs_previous(marked: pd.DataFrame) -> pd.DataFrame:
    """Per series: the newest commit's value beside the previous recorded commit's, their ratio and whether it regressed."""
    newest = marked.groupby(SERIES, sort=True).tail(1)
    return newest[[*SERIES, "key", "params", "unit", "commit", "value", "previous", "ratio", "regressed"]].reset_index(drop=True)


def newest_value(history: pd.DataFrame, key: str, params: str = "") -> float:
    """The newest recorded value of one benchmark (asv key, parameters as asv prints them); NaN when never recorded."""
    series = history[(history["key"] == key) & (history["params"] == params) & history["value"].notna()]
    return float(series.sort_values("position")["value"].iloc[-1]) if len(series) else float("nan")


def format_quantity(value: float, unit: str) -> str:
    """A value in asv's unit (``seconds``, ``bytes`` or a ``track_`` unit) with a readable prefix: ``3.1 ms``."""
    if pd.isna(value):
        return "-"
    scales = {"seconds": TIME_UNITS, "bytes": BYTE_UNITS}.get(unit)
    if scales is None:
        return f"{value:.3g}" + (f" {unit}" if unit and unit != "unit" else "")
    for factor, name in scales:
        if abs(value) >= factor:
            return f"{value / factor:.3g} {name}"
    return f"{value / scales[-1][0]:.3g} {scales[-1][1]}"


def comparison_table(newest: pd.DataFrame) -> pd.DataFrame:
    """The newest-vs-previous rows as display strings (``REGRESSED`` where the ratio exceeds the factor)."""
    return pd.DataFrame({
        "benchmark": newest["benchmark"],
        "newest": [f"{format_quantity(v, u)} ({c[:8]})" for v, u, c in zip(newest["value"], newest["unit"], newest["commit"])],
        "previous": [format_quantity(v, u) for v, u in zip(newest["previous"], newest["unit"])],
        "ratio": ["-" if pd.isna(r) else f"{r:.2f}" for r in newest["ratio"]],
        "change": ["REGRESSED" if flag else "" for flag in newest["regressed"]],
    })


def history_markdown(marked: pd.DataFrame, plots: dict[str, str]) -> str:
    """Markdown: per benchmark, its plot (``plots`` maps asv key -> image path) and its newest-vs-previous table."""
    sections = []
    newest = newest_vs_previous(marked)
    for key, rows in newest.groupby("key", sort=True):
        image = f"![{key}]({plots[key]})\n\n" if key in plots else ""
        sections.append(f"### {key}\n\n{image}{markdown_table(comparison_table(rows))}\n")
    return "\n".join(sections)


def plot_benchmark(marked: pd.DataFrame, key: str) -> bytes:
    """PNG of one benchmark's values over commits (ancestry order), one line per parameter set; red rings on regressions."""
    rows = marked[marked["key"] == key]
    commits = rows.drop_duplicates("position").sort_values("position")
    figure = new_figure(6.4, 3.0)
    axis = figure.subplots()
    for (params, machine, env), line in rows.groupby(["params", "machine", "env"], sort=True):
        axis.plot(line["position"], line["value"], marker="o", label=params or key.rsplit(".", 1)[-1])
        bad = line[line["regressed"]]
        axis.scatter(bad["position"], bad["value"], s=160, facecolors="none", edgecolors="#c62828", linewidths=2, zorder=3)
    axis.set_xticks(list(commits["position"]), [c[:8] for c in commits["commit"]], rotation=30, ha="right", fontsize="small")
    axis.set_xlabel("commit (git ancestry order, oldest left)")
    unit = rows["unit"].iloc[0]
    axis.set_ylabel(unit or "value")
    if rows["value"].gt(0).all() and rows["value"].max() / max(rows["value"].min(), 1e-300) > 100:
        axis.set_yscale("log")
    axis.set_title(key, fontsize="small")
    if rows["params"].nunique() > 1:
        axis.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return png_bytes(figure)

