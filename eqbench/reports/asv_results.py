"""An offline summary of airspeed-velocity (asv) results.

asv's own HTML report loads its scripts from CDNs, so it is blank without a network. This
module reads asv's result files directly and writes a markdown table and a self-contained
HTML page (inline CSS, no scripts) of the newest result of every benchmark on every
machine and environment, beside the result of the commit before it and their ratio.

asv layout (result format version 2): ``<results>/benchmarks.json`` describes each
benchmark (``type``, ``unit``, ``param_names``); ``<results>/<machine>/<commit>-<env>.json``
holds ``results[name] = [values, params, ...]`` with the columns named in
``result_columns``; for a parameterised benchmark ``values`` runs over the Cartesian
product of ``params`` in order.
"""
from __future__ import annotations

import html
import itertools
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from eqbench.reports.files import ReportInputError, read_json
from eqbench.reports.tables import markdown_table

TIME_UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns"))
BYTE_UNITS = ((2.0**30, "GiB"), (2.0**20, "MiB"), (2.0**10, "KiB"), (1.0, "B"))
CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 2em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; }
th { background: #eee; }
td.slower { background: #fdd; }
td.faster { background: #dfd; }
"""
#: A ratio past 1 +- this is highlighted in the HTML page (asv's default regression factor is 1.1).
HIGHLIGHT = 0.1


def load_asv_results(results_dir: Path | str) -> pd.DataFrame:
    """Tidy rows ``machine, env, commit, date, benchmark, params, type, unit, value, spread`` for every result.

    ``spread`` is half the interquartile range of the samples (``stats_q_25`` / ``stats_q_75``),
    as asv prints after ``+-``; NaN where asv kept no statistics (memory benchmarks).
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ReportInputError(f"{results_dir}: asv results folder does not exist (run `asv run` first)")
    benchmarks = read_json(results_dir / "benchmarks.json") if (results_dir / "benchmarks.json").exists() else {}
    rows = []
    for path in sorted(results_dir.glob("*/*.json")):
        if path.name == "machine.json":
            continue
        rows.extend(_result_rows(path, read_json(path), benchmarks))
    if not rows:
        raise ReportInputError(f"{results_dir}: no asv result files (expected <machine>/<commit>-<env>.json)")
    return pd.DataFrame(rows)


def latest_comparison(rows: pd.DataFrame) -> pd.DataFrame:
    """Per machine, env, benchmark and params: the newest value, the previous commit's value and their ratio."""
    ordered = rows.sort_values("date")
    keys = ["machine", "env", "benchmark", "params"]
    out = []
    for key, history in ordered.groupby(keys, sort=True):
        latest = history.iloc[-1]
        earlier = history[history["commit"] != latest["commit"]]
        previous = earlier.iloc[-1]["value"] if len(earlier) else float("nan")
        out.append(
            {
                **dict(zip(keys, key)),
                "commit": latest["commit"][:8],
                "type": latest["type"],
                "unit": latest["unit"],
                "value": latest["value"],
                "spread": latest["spread"],
                "previous": previous,
                "ratio": latest["value"] / previous if previous and pd.notna(previous) else float("nan"),
            }
        )
    return pd.DataFrame(out)


def asv_markdown(comparison: pd.DataFrame) -> str:
    """The comparison as markdown, one table per machine / environment."""
    sections = ["# Benchmarks (asv)\n\nNewest result per benchmark; `ratio` = newest / previous commit (> 1 is slower or larger).\n"]
    for (machine, env), frame in comparison.groupby(["machine", "env"], sort=True):
        sections.append(f"## {machine} / {env}\n\n{markdown_table(_display(frame))}\n")
    return "\n".join(sections)


def asv_html(comparison: pd.DataFrame) -> str:
    """A self-contained HTML page (inline CSS, no scripts, no external links) of the comparison."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>eqbench benchmarks</title>',
        f"<style>{CSS}</style></head><body>",
        "<h1>Benchmarks (asv)</h1>",
        "<p>Newest result per benchmark; ratio = newest / previous commit (&gt; 1 is slower or larger).</p>",
    ]
    for (machine, env), frame in comparison.groupby(["machine", "env"], sort=True):
        shown = _display(frame)
        parts.append(f"<h2>{html.escape(str(machine))} / {html.escape(str(env))}</h2><table><tr>")
        parts.extend(f"<th>{html.escape(c)}</th>" for c in shown.columns)
        parts.append("</tr>")
        for (_, row), ratio in zip(shown.iterrows(), frame["ratio"]):
            parts.append("<tr>")
            for column, value in row.items():
                parts.append(f"<td{_ratio_class(ratio) if column == 'ratio' else ''}>{html.escape(str(value))}</td>")
            parts.append("</tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def format_quantity(value: float, unit: str) -> str:
    """A value in asv's unit (``seconds`` or ``bytes``) with a readable prefix: ``3.10 ms``, ``234.0 MiB``."""
    if pd.isna(value):
        return "failed"
    scales = {"seconds": TIME_UNITS, "bytes": BYTE_UNITS}.get(unit)
    if scales is None:
        return f"{value:.4g} {unit}"
    for factor, name in scales:
        if abs(value) >= factor or factor == scales[-1][0]:
            return f"{value / factor:.3g} {name}"
    raise AssertionError("unreachable: the last scale always matches")


# ------------------------------------------------------------------ helpers
def _result_rows(path: Path, data: object, benchmarks: dict) -> list[dict]:
    if not isinstance(data, dict) or "results" not in data or "result_columns" not in data:
        raise ReportInputError(f"{path}: not an asv result file (needs 'results' and 'result_columns')")
    columns = data["result_columns"]
    rows = []
    for name, entry in data["results"].items():
        fields = dict(zip(columns, entry))
        meta = benchmarks.get(name, {})
        params = fields.get("params") or []
        names = meta.get("param_names") or [f"p{i}" for i in range(len(params))]
        combinations = list(itertools.product(*params)) or [()]
        values = fields.get("result")
        if values is None:
            values = [None] * len(combinations)
        if len(values) != len(combinations):
            raise ReportInputError(
                f"{path}: benchmark {name} has {len(values)} results for {len(combinations)} parameter combinations"
            )
        low = fields.get("stats_q_25") or [None] * len(values)
        high = fields.get("stats_q_75") or [None] * len(values)
        for combination, value, a, b in zip(combinations, values, low, high):
            rows.append(
                {
                    "machine": path.parent.name,
                    "env": data.get("env_name", ""),
                    "commit": data.get("commit_hash", ""),
                    "date": datetime.fromtimestamp(data.get("date", 0) / 1000, tz=timezone.utc),
                    "benchmark": name,
                    "params": ", ".join(f"{n}={v}" for n, v in zip(names, combination)),
                    "type": meta.get("type", name.rsplit(".", 1)[-1].split("_", 1)[0]),
                    "unit": meta.get("unit", ""),
                    "value": float("nan") if value is None else float(value),
                    "spread": float("nan") if a is None or b is None else (float(b) - float(a)) / 2,
                }
            )
    return rows


def _display(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "benchmark": frame["benchmark"],
            "params": frame["params"].replace("", "-"),
            "value": [format_quantity(v, u) for v, u in zip(frame["value"], frame["unit"])],
            "+- (IQR/2)": [format_quantity(s, u) if pd.notna(s) else "-" for s, u in zip(frame["spread"], frame["unit"])],
            "previous": [format_quantity(p, u) if pd.notna(p) else "-" for p, u in zip(frame["previous"], frame["unit"])],
            "ratio": ["-" if pd.isna(r) else f"{r:.2f}" for r in frame["ratio"]],
            "commit": frame["commit"],
        }
    )


def _ratio_class(ratio: float) -> str:
    if pd.isna(ratio) or abs(ratio - 1) <= HIGHLIGHT:
        return ""
    return ' class="slower"' if ratio > 1 else ' class="faster"'
