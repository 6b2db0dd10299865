"""The comparison report in a real headless Chromium: no console errors, no network requests, a screenshot.

Skipped, with the reason, where Playwright (the ``dev`` extra) or a system Chromium
(``apt-get install chromium``; CI installs it in ``.ci/run``) is missing.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from eqbench.reports import build_report
from eqbench.reports.browser import chromium_path, visit
from test_reports_comparison import inputs  # noqa: F401  (fixture)

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None,
                       reason="playwright is not installed (pip install -e '.[dev]')"),
    pytest.mark.skipif(chromium_path() is None, reason="no system Chromium at /usr/bin/chromium (apt-get install chromium)"),
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_report_opens_offline_without_errors(inputs, tmp_path):  # noqa: F811  (the fixture)
    out = tmp_path / "report"
    build_report(out, **inputs)
    screenshot = tmp_path / "screenshot.png"
    seen = visit(out / "index.html", screenshot)
    assert seen.console_errors == [] and seen.page_errors == []
    assert seen.requests == []
    assert screenshot.read_bytes()[:8] == PNG_MAGIC and screenshot.stat().st_size > 10_000
    detail = visit(out / "models" / "lieconv-so2.html", tmp_path / "detail.png")
    assert detail.console_errors == [] and detail.requests == []


@pytest.mark.slow
def test_the_browser_sees_a_broken_page(tmp_path):
    """Negative control: a page that loads a remote script and throws is caught on both counts."""
    page = tmp_path / "broken.html"
    page.write_text('<html><body><img src="http://127.0.0.1:9/x.png"><script>throw new Error("boom")</script></body></html>')
    seen = visit(page, tmp_path / "broken.png")
    assert any("127.0.0.1:9" in url for url in seen.requests)
    assert any("boom" in error for error in seen.page_errors)
