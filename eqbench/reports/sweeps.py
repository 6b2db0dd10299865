"""Monte-Carlo sweeps: ``eqbench sweep --json`` records, the error against the sample count and its fitted rate.

Each record holds the mean relative equivariance error of single evaluations at each sample
count ``n`` and the least-squares fit ``log(err) = a + b log(n)`` with a 95% interval for ``b``
(:func:`eqbench.check.monte_carlo_sweep`); plain Monte-Carlo averaging gives ``b = -1/2``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import pandas as pd

from eqbench.reports.figures import new_figure, png_bytes
from eqbench.reports.files import ReportInputError, read_json
from eqbench.reports.lineup import canonical_name


def load_sweeps(paths: Sequence[Path | str]) -> list[dict]:
    """``eqbench sweep --json`` records (model, group, param, rate, rate_low, rate_high, rows)."""
    records = []
    for path in map(Path, paths):
        record = read_json(path)
        missing = [key for key in ("model", "param", "rate", "rate_low", "rate_high", "intercept", "rows") if not isinstance(record, dict) or key not in record]
        if missing:
            raise ReportInputError(f"{path}: not an `eqbench sweep --json` record (lacks {missing})")
        records.append({**record, "source": str(path)})
    return records


def sweep_rows(sweeps: Sequence[dict]) -> pd.DataFrame:
    """One row per sweep: canonical model, entry, parameter, sample counts, rate and interval, errors at both ends."""
    rows = []
    for sweep in sweeps:
        table = pd.DataFrame(sweep["rows"])
        rows.append({
            "canonical": canonical_name(sweep["model"]), "model": sweep["model"], "group": sweep.get("group", ""),
            "param": sweep["param"], "samples": ", ".join(str(int(n)) for n in table["samples"]),
            "rate": sweep["rate"], "rate_low": sweep["rate_low"], "rate_high": sweep["rate_high"],
            "first_error": table["mean_rel_error"].iloc[0], "last_error": table["mean_rel_error"].iloc[-1],
        })
    return pd.DataFrame(rows)


def plot_sweep(sweep: dict) -> bytes:
    """PNG: mean relative error against the sample count (log-log) with the fitted line ``exp(a) n^b``."""
    table = pd.DataFrame(sweep["rows"])
    figure = new_figure(4.8, 3.2)
    axis = figure.subplots()
    axis.loglog(table["samples"], table["mean_rel_error"], "o", label="mean relative error")
    fitted = [math.exp(sweep["intercept"]) * n ** sweep["rate"] for n in table["samples"]]
    axis.loglog(table["samples"], fitted, "--", label=f"fit n^{sweep['rate']:.2f}")
    axis.set_xlabel(f"{sweep['param']} (samples)")
    axis.set_ylabel("relative error")
    axis.set_title(f"{sweep['model']} [{sweep.get('group', '')}]", fontsize="small")
    axis.legend(fontsize="small")
    return png_bytes(figure)
