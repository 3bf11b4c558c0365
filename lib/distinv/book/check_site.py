"""Open the built book in headless Chromium: no JavaScript error, every plotly figure rendered.

Each HTML page of the site is served from a local HTTP server (loopback only), opened in Chromium
through Playwright, and checked: uncaught JavaScript exceptions fail the page; every
``.plotly-graph-div`` must contain a rendered ``<svg>``. A full-page screenshot of each page is saved.
Redirect stubs (jupyter-book's ``index.html``, a ``<meta http-equiv="Refresh">``) are not opened (the
redirect would race the checks); their target must exist.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["PageReport", "check_site", "find_chromium", "redirect_target"]

_REFRESH = re.compile(r"""<meta\s+http-equiv=["']refresh["']\s+content=["']\s*\d+\s*;\s*url=([^"']+)["']""",
                      re.IGNORECASE)

_CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass
class PageReport:
    """What one page showed."""

    page: str
    plotly_divs: int = 0
    plotly_rendered: int = 0
    js_errors: list[str] = field(default_factory=list)
    screenshot: str = ""
    redirect_to: str = ""
    redirect_found: bool = True

    @property
    def ok(self) -> bool:
        return not self.js_errors and self.plotly_rendered == self.plotly_divs and self.redirect_found


def redirect_target(page: Path) -> str | None:
    """The URL a redirect stub sends to (``<meta http-equiv="Refresh" content="0; url=...">``), else None.

    >>> import tempfile
    >>> stub = Path(tempfile.mkdtemp()) / "index.html"
    >>> _ = stub.write_text('<meta http-equiv="Refresh" content="0; url=book/intro.html" />')
    >>> redirect_target(stub)
    'book/intro.html'
    """
    match = _REFRESH.search(page.read_text(errors="replace")[:4096])
    return match.group(1).strip() if match else None


def find_chromium() -> str:
    """Path of a Chromium executable (Debian's ``chromium`` package)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError("no Chromium found: install Debian's 'chromium' package (make check-site does)")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def check_site(html_dir: str | Path, screenshot_dir: str | Path, timeout_ms: int = 20000) -> list[PageReport]:
    """Check every page of a built site; return one report per page.

    :param str html_dir: the built site (``book/_build/html``).
    :param str screenshot_dir: folder for the screenshots (created).
    :param int timeout_ms: how long a figure may take to render.
    """
    from playwright.sync_api import sync_playwright

    html_dir, screenshot_dir = Path(html_dir).resolve(), Path(screenshot_dir).resolve()
    pages = sorted(p.relative_to(html_dir).as_posix() for p in html_dir.rglob("*.html")
                   if not any(part.startswith("_") for part in p.relative_to(html_dir).parts)
                   and p.name not in ("genindex.html", "search.html"))
    if not pages:
        raise FileNotFoundError(f"no HTML pages under {html_dir}: build the book first (make book)")
    screenshot_dir.mkdir(parents=True, exist_ok=True)
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    reports = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=find_chromium(), args=_CHROMIUM_FLAGS)
            for name in pages:
                report = PageReport(page=name)
                target = redirect_target(html_dir / name)
                if target is not None:
                    report.redirect_to = target
                    report.redirect_found = (html_dir / name).parent.joinpath(target.split("#")[0]).is_file()
                    reports.append(report)
                    continue
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.on("pageerror", lambda exc, r=report: r.js_errors.append(str(exc)))
                page.goto(base + name, wait_until="load")
                report.plotly_divs = page.locator(".plotly-graph-div").count()
                if report.plotly_divs:
                    try:
                        page.wait_for_function(
                            "n => document.querySelectorAll('.plotly-graph-div svg.main-svg').length >= n",
                            arg=report.plotly_divs, timeout=timeout_ms)
                    except Exception:  # counted below; the report says how many rendered
                        pass
                report.plotly_rendered = page.evaluate(
                    "Array.from(document.querySelectorAll('.plotly-graph-div'))"
                    ".filter(d => d.querySelector('svg')).length")
                shot = screenshot_dir / (name.replace("/", "__").removesuffix(".html") + ".png")
                page.screenshot(path=str(shot), full_page=True)
                report.screenshot = str(shot)
                reports.append(report)
                page.close()
            browser.close()
    finally:
        server.shutdown()
    return reports


def main(html_dir: str, screenshot_dir: str, min_figures: int = 1) -> int:
    """Print a JSON report; exit code 1 when a page fails or the site has fewer figures than expected."""
    reports = check_site(html_dir, screenshot_dir)
    total = sum(r.plotly_rendered for r in reports)
    print(json.dumps([{**asdict(r), "ok": r.ok} for r in reports], indent=1))
    failed = [r.page for r in reports if not r.ok]
    if failed:
        print(f"check-site: FAILED pages: {failed}")
        return 1
    if total < min_figures:
        print(f"check-site: FAILED: {total} rendered plotly figures, expected at least {min_figures}")
        return 1
    print(f"check-site: {len(reports)} pages OK, {total} plotly figures rendered, screenshots in {screenshot_dir}")
    return 0
