"""Self-contained HTML: inline CSS, images as ``data:`` URIs, no scripts, no links that leave the folder.

A page built here makes no network request when opened (the browser test in
``tests/test_report_browser.py`` asserts it), so it works offline and from a file system.
"""
from __future__ import annotations

import html
from typing import Iterable

import pandas as pd

from eqbench.reports.figures import data_uri

CSS = """
body { font-family: sans-serif; margin: 1.5em 2em; color: #222; max-width: 110em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em 0; font-size: 0.85em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #eee; }
td.family { font-weight: bold; background: #f6f6f6; }
.regressed { background: #fdd; }
.flag { color: #b71c1c; }
.pair { display: flex; gap: 1.5em; align-items: flex-start; flex-wrap: wrap; }
nav a { margin-right: 1em; }
img { max-width: 100%; }
"""


def page(title: str, body: Iterable[str]) -> str:
    """A complete HTML document with the inline stylesheet."""
    return "\n".join([
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
        f"<style>{CSS}</style></head><body>",
        *body,
        "</body></html>\n",
    ])


def cell(value: object) -> str:
    """A table cell's text: a list becomes lines; ``(!)`` and ``REGRESSED`` / ``UNEXPLAINED`` marks are highlighted."""
    lines = value if isinstance(value, list) else ["-" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)]
    rendered = []
    for line in lines:
        text = html.escape(str(line))
        flagged = any(mark in text for mark in ("(!)", "REGRESSED", "UNEXPLAINED", "several configurations"))
        rendered.append(f'<span class="flag">{text}</span>' if flagged else text)
    return "<br>".join(rendered)


def table(frame: pd.DataFrame, row_classes: Iterable[str] | None = None, first_column_class: str = "") -> str:
    """The frame as an HTML table (no index); ``row_classes`` gives each row a CSS class."""
    classes = list(row_classes) if row_classes is not None else [""] * len(frame)
    parts = ["<table><tr>", *(f"<th>{html.escape(str(c))}</th>" for c in frame.columns), "</tr>"]
    for (_, row), css in zip(frame.iterrows(), classes):
        parts.append(f'<tr class="{css}">' if css else "<tr>")
        for index, value in enumerate(row):
            attribute = f' class="{first_column_class}"' if index == 0 and first_column_class else ""
            parts.append(f"<td{attribute}>{cell(value)}</td>")
        parts.append("</tr>")
    parts.append("</table>")
    return "".join(parts)


def image(png: bytes, alt: str) -> str:
    """An ``<img>`` holding the PNG inline."""
    return f'<img src="{data_uri(png)}" alt="{html.escape(alt)}">'


def heading(level: int, text: str, anchor: str = "") -> str:
    """``<hN id=anchor>text</hN>``."""
    identifier = f' id="{html.escape(anchor)}"' if anchor else ""
    return f"<h{level}{identifier}>{html.escape(text)}</h{level}>"


def paragraph(text: str) -> str:
    """An escaped paragraph."""
    return f"<p>{html.escape(text)}</p>"


def link(href: str, text: str) -> str:
    """A link to a file of the report folder (relative ``href``)."""
    return f'<a href="{html.escape(href)}">{html.escape(text)}</a>'
