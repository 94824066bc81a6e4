"""Shared test setup: Triton's interpreter on machines without a GPU, and the fixtures of
the browser tests (test_site.py, test_site_a11y.py).

``NORMLAB_SITE`` overrides the built site folder (default ``_build/html``).
"""

import functools
import http.server
import os
import threading
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest
import torch

# Without a GPU the Triton kernels run on CPU tensors through Triton's interpreter. The
# variable only counts if it is set before triton is first imported, whichever test module
# is collected first, so it is set here, before any of them.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

ROOT = Path(__file__).resolve().parent.parent
SITE = Path(os.environ.get("NORMLAB_SITE", ROOT / "_build" / "html")).resolve()
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Stock Sphinx pages with no book content.
STOCK_PAGES = {"search.html", "genindex.html", "py-modindex.html"}
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
TIMEOUT_MS = 15_000


def unavailable(reason):
    """Skip locally, fail in CI: CI must never pass without running the browser test."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the browser test must run)")
    pytest.skip(reason)


def site_pages():
    """Every HTML page of the built site, relative to the site root."""
    if not SITE.is_dir():
        return []
    pages = (p.relative_to(SITE).as_posix() for p in SITE.rglob("*.html"))
    return sorted(p for p in pages if p not in STOCK_PAGES and not p.startswith("_"))


def pages_or_placeholder():
    """Parameters for per-page tests; one placeholder when nothing is built yet."""
    return site_pages() or ["<no built site>"]


@pytest.fixture(scope="session")
def site_url():
    """Serve ``_build/html`` on an ephemeral localhost port for the whole session."""
    if not (SITE / "index.html").is_file():
        unavailable(f"no built site at {SITE}: run `make book` first")
    handler = functools.partial(QuietHandler, directory=str(SITE))
    server = QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Static file handler that does not log every request to stderr."""

    def log_message(self, format, *args):
        """Silence the per-request access log."""


class QuietServer(http.server.ThreadingHTTPServer):
    """Threaded server that ignores clients hanging up (the browser closes pages early)."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        """Drop broken-pipe/reset noise; report anything else as usual."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture(scope="session")
def browser():
    """Headless system Chromium."""
    if not CHROMIUM.exists():
        unavailable(f"Chromium not found at {CHROMIUM}: `apt-get install chromium`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


class PageVisit:
    """A page opened offline, with everything that went wrong while loading it."""

    def __init__(self, browser, url, color_scheme="light", width=None, init_script=None,
                 draw_all=True, **context_options):
        """``width``: viewport width in px (height 844, a phone's); ``init_script``: JS run
        before the page's own scripts; ``draw_all``: draw every figure before returning
        (else only those the page draws by itself: near the viewport);
        ``context_options`` go to ``browser.new_context``."""
        self.errors, self.foreign_requests = [], []
        self.transferred = {}  # url -> bytes received (headers + body), see page weights
        if width:
            context_options.setdefault("viewport", {"width": width, "height": 844})
        self.context = browser.new_context(color_scheme=color_scheme, **context_options)
        if init_script:
            self.context.add_init_script(init_script)
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("requestfinished", self._finished)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        self.page.goto(url, wait_until="load", timeout=TIMEOUT_MS)
        wait_until_settled(self.page, draw_all)

    def _route(self, route):
        """Let localhost through; abort and record everything else."""
        if urlparse(route.request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            self.foreign_requests.append(route.request.url)
            route.abort()

    def _finished(self, request):
        """Record the bytes a finished request transferred."""
        try:
            sizes = request.sizes()
        except Exception:  # the page was closed meanwhile
            return
        size = sizes["responseBodySize"] + sizes["responseHeadersSize"]
        self.transferred[request.url] = self.transferred.get(request.url, 0) + size

    def _console(self, message):
        if message.type == "error":
            self.errors.append(f"console error: {message.text} ({message.location})")

    def close(self):
        """Close the browser context (and its page)."""
        self.context.close()


# A figure within a screen height of the viewport: the page draws it by itself
# (normlab-figures.js observes with rootMargin "100% 0px").
IS_NEAR = """d => {
  const r = d.getBoundingClientRect();
  return r.bottom > -innerHeight && r.top < 2 * innerHeight;
}"""


def draw_all(page):
    """Ask the page to draw every figure, near the viewport or not; wait until it has."""
    page.evaluate("() => window.normlabDrawAll ? normlabDrawAll().then(() => true) : true")


def wait_until_settled(page, draw_all_figures=True):
    """Wait for MathJax to finish typesetting and the plotly figures to draw: all of them
    (``normlab-figures.js`` loads plotly.js and draws a figure when it comes near the
    viewport; ``draw_all_figures`` asks it to draw the rest too), or only those near."""
    page.evaluate(
        "() => window.MathJax && MathJax.startup && MathJax.startup.promise"
        " ? MathJax.startup.promise.then(() => true) : true"
    )
    figures = "[...document.querySelectorAll('.plotly-graph-div')]"
    try:
        if draw_all_figures:
            draw_all(page)
        else:
            figures += f".filter({IS_NEAR})"
        page.wait_for_function(f"() => {figures}.every(d => d.querySelector('.main-svg'))",
                               timeout=TIMEOUT_MS)
    except Exception:  # reported precisely by test_page
        pass


@pytest.fixture
def visit(browser, site_url):
    """Open site pages; closes every context at the end of the test."""
    opened = []

    def open_page(path, color_scheme="light", width=None, init_script=None, draw_all=True,
                  **context_options):
        """``width``: viewport width in px (default 1280); ``init_script``: JS run before
        the page's own scripts; ``draw_all``: see :class:`PageVisit`; ``context_options``
        go to ``browser.new_context``."""
        if path == "<no built site>":
            unavailable(f"no built site at {SITE}: run `make book` first")
        opened.append(PageVisit(browser, urljoin(site_url, path), color_scheme, width,
                                init_script, draw_all, **context_options))
        return opened[-1]

    yield open_page
    for page_visit in opened:
        page_visit.close()


