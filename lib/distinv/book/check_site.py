"""Open the built book in headless Chromium, offline: no JavaScript error, every figure and equation rendered.

Each HTML page of the site is served from a local HTTP server (loopback only), opened in Chromium
through Playwright, and checked: uncaught JavaScript exceptions fail the page; every
``.plotly-graph-div`` must contain a rendered ``<svg>``; once MathJax has typeset the page, no raw
``\\(``, ``\\[``, ``$$`` or ``\\begin{`` may be left in its visible text (outside code) and no
equation may show a TeX error; a request that leaves the loopback server (a CDN, a font service) fails
the page and is refused, so the page renders as a reader offline would see it, and so does a file the
site lacks (a 404 from the loopback server: a script's font, say). A full-page screenshot
of each page is saved. Redirect stubs (jupyter-book's ``index.html``, a ``<meta http-equiv="Refresh">``)
are not opened (the redirect would race the checks); their target must exist.
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
from urllib.parse import urlsplit

__all__ = ["PageReport", "check_site", "find_chromium", "redirect_target", "find_raw_math", "find_raw_glue",
           "is_loopback"]

_REFRESH = re.compile(r"""<meta\s+http-equiv=["']refresh["']\s+content=["']\s*\d+\s*;\s*url=([^"']+)["']""",
                      re.IGNORECASE)

#: TeX left as text: MathJax did not typeset it (``$$`` and environments included).
_RAW_MATH = re.compile(r"\\\(|\\\[|\$\$|\\begin\{")
_RAW_GLUE = re.compile(r"\{glue:\w*\}`")
_CODE_BLOCK = re.compile(r"<pre[ >].*?</pre>", re.S)
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}

#: Visible text of a page outside code, once MathJax (if the page loads it) has typeset it.
_VISIBLE_TEXT_JS = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const skip = "pre, code, script, style, textarea, mjx-container, .highlight, [hidden]";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const texts = [];
  while (walker.nextNode()) {
    const parent = walker.currentNode.parentElement;
    if (!parent || parent.closest(skip) || parent.getClientRects().length === 0) { continue; }
    texts.push(walker.currentNode.textContent);
  }
  return {text: texts.join("\\n"), typeset: document.querySelectorAll("mjx-container").length,
          errors: document.querySelectorAll("mjx-merror").length};
}"""

_CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass
class PageReport:
    """What one page showed."""

    page: str
    plotly_divs: int = 0
    plotly_rendered: int = 0
    js_errors: list[str] = field(default_factory=list)
    equations: int = 0
    raw_math: list[str] = field(default_factory=list)
    raw_glue: list[str] = field(default_factory=list)
    math_errors: int = 0
    offsite_requests: list[str] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)
    screenshot: str = ""
    redirect_to: str = ""
    redirect_found: bool = True

    @property
    def ok(self) -> bool:
        return (not self.js_errors and self.plotly_rendered == self.plotly_divs and self.redirect_found
                and not self.raw_math and not self.raw_glue and not self.math_errors and not self.offsite_requests
                and not self.missing_files)


def find_raw_math(text: str, context: int = 40) -> list[str]:
    """Snippets of ``text`` around TeX that was left as text (``\\(``, ``\\[``, ``$$``, ``\\begin{``).

    :param str text: a page's visible text.
    :param int context: characters kept on each side.

    >>> find_raw_math("typeset: x² + y²")
    []
    >>> find_raw_math(r"raw: \\(x^2\\) stays")
    ['raw: \\\\(x^2\\\\) stays']
    """
    return [" ".join(text[max(0, m.start() - context):m.end() + context].split()) for m in _RAW_MATH.finditer(text)]


def find_raw_glue(html: str, context: int = 40) -> list[str]:
    """Snippets of a page's HTML around a myst-nb glue role that was not replaced by its value (e.g. one written
    inside ``$...$``, where roles are not parsed and MathJax typesets the role's source); code blocks are skipped.

    :param str html: the page's HTML as built.

    >>> find_raw_glue("at 512<sup>2</sup> pixels")
    []
    >>> find_raw_glue("at ({glue:text}`npix`^2) pixels")
    ['at ({glue:text}`npix`^2) pixels']
    >>> find_raw_glue("<pre>a docstring naming {glue:text}`x`</pre>")
    []
    """
    prose = _CODE_BLOCK.sub(" ", html)
    return [" ".join(prose[max(0, m.start() - context):m.end() + context].split()) for m in _RAW_GLUE.finditer(prose)]


def is_loopback(url: str) -> bool:
    """Whether a request stays on this machine (``data:``/``blob:`` URLs, or a loopback host).

    :param str url: the requested URL.

    >>> is_loopback("http://127.0.0.1:8000/_static/vendor/mathjax/es5/tex-mml-chtml.js")
    True
    >>> is_loopback("https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js")
    False
    """
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    return parts.hostname in _LOOPBACK_HOSTS


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
                report.raw_glue = find_raw_glue((html_dir / name).read_text(encoding="utf-8", errors="replace"))
                target = redirect_target(html_dir / name)
                if target is not None:
                    report.redirect_to = target
                    report.redirect_found = (html_dir / name).parent.joinpath(target.split("#")[0]).is_file()
                    reports.append(report)
                    continue
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.on("pageerror", lambda exc, r=report: r.js_errors.append(str(exc)))
                page.route("**/*", functools.partial(_stay_offline, report))
                page.on("response", lambda response, r=report: _record_missing(r, response, base))
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
                shown = page.evaluate(_VISIBLE_TEXT_JS)
                report.equations, report.math_errors = shown["typeset"], shown["errors"]
                report.raw_math = find_raw_math(shown["text"])
                shot = screenshot_dir / (name.replace("/", "__").removesuffix(".html") + ".png")
                page.screenshot(path=str(shot), full_page=True)
                report.screenshot = str(shot)
                reports.append(report)
                page.close()
            browser.close()
    finally:
        server.shutdown()
    return reports


def _stay_offline(report: PageReport, route) -> None:
    """Serve loopback requests; refuse and record the others (a reader offline gets nothing from them)."""
    url = route.request.url
    if is_loopback(url):
        route.continue_()
    else:
        report.offsite_requests.append(url)
        route.abort()


def _record_missing(report: PageReport, response, base: str) -> None:
    if response.status >= 400 and is_loopback(response.url):
        report.missing_files.append(f"{response.status} /{response.url.removeprefix(base)}")


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
    equations = sum(r.equations for r in reports)
    print(f"check-site: {len(reports)} pages OK, {total} plotly figures and {equations} equations rendered "
          f"offline, screenshots in {screenshot_dir}")
    return 0
