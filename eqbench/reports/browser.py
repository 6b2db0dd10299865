"""Open a report page in headless Chromium: console errors, requests made, and a full-page screenshot.

Drives the system Chromium (``/usr/bin/chromium``, or ``$EQBENCH_CHROMIUM``) through Playwright
(the ``dev`` extra; no browser is downloaded). A self-contained page makes no request other than
its own ``file://`` load: ``data:`` images are not requests.

    python -m eqbench.reports.browser reports/example/index.html reports/example/screenshot.png
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

#: Where the system package manager installs Chromium (Debian's ``chromium``).
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


@dataclass
class Visit:
    """What the browser saw: console errors, uncaught page errors and every URL requested after the page itself."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


def chromium_path() -> str | None:
    """The Chromium executable to drive, or None when none is installed."""
    candidates = [os.environ.get("EQBENCH_CHROMIUM"), *CHROMIUM_CANDIDATES, shutil.which("chromium")]
    return next((c for c in candidates if c and Path(c).is_file()), None)


def visit(page_path: Path, screenshot: Path, width: int = 1600) -> Visit:
    """Load ``page_path`` headless, wait until the network is idle, save a full-page PNG to ``screenshot``."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise FileNotFoundError(f"no Chromium at {', '.join(CHROMIUM_CANDIDATES)} (apt-get install chromium)")
    url = page_path.resolve().as_uri()
    seen = Visit()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": 1000})
            page.on("console", lambda message: seen.console_errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: seen.page_errors.append(str(error)))
            page.on("request", lambda request: seen.requests.append(request.url) if request.url != url else None)
            page.goto(url, wait_until="networkidle")
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return seen


def main(argv: list[str] | None = None) -> int:
    """``python -m eqbench.reports.browser PAGE SCREENSHOT``: exit 1 when the page logs errors or requests anything."""
    page, screenshot = (Path(a) for a in (argv if argv is not None else sys.argv[1:]))
    seen = visit(page, screenshot)
    problems = seen.console_errors + seen.page_errors + [f"request: {url}" for url in seen.requests]
    for problem in problems:
        print(problem)
    print(f"wrote {screenshot}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
