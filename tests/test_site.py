"""The built site works offline in a real browser (Chromium driven by Playwright).

Every HTML page of ``_build/html`` is served from localhost and loaded with every request
to another host aborted. A page fails on: a console error or uncaught exception, a request
or ``<script>``/stylesheet/image to another host, a broken internal link or ``#anchor``, a
plotly figure that did not render, math that MathJax did not typeset, a figure whose slider
or buttons do not change it, a solution visible before its "Show solution" toggle is opened.

Locally the test skips when Chromium or the build is missing; with ``CI=true`` that is a
failure. Set ``NORMLAB_SCREENSHOTS=dir`` to save light and dark screenshots of each page.
"""

import functools
import json
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from conftest import LOCAL_HOSTS, ROOT, SITE, pages_or_placeholder


def foreign_assets(page):
    """``src``/``href`` of scripts, stylesheets, images and iframes on another host."""
    urls = page.eval_on_selector_all(
        "script[src], link[rel=stylesheet][href], img[src], iframe[src]",
        "els => els.map(e => e.src || e.href)",
    )
    return [u for u in urls if urlparse(u).hostname not in LOCAL_HOSTS]


def unrendered_figures(page):
    """Ids of plotly divs without the SVG that plotly.js draws."""
    return page.eval_on_selector_all(
        ".plotly-graph-div", "ds => ds.filter(d => !d.querySelector('.main-svg')).map(d => d.id)"
    )


def untypeset_math(page):
    """Math elements that hold no MathJax output, or hold a TeX error."""
    return page.eval_on_selector_all(
        ".math",
        "els => els.filter(e => !e.querySelector('mjx-container') || e.querySelector('mjx-merror'))"
        ".map(e => e.textContent.slice(0, 60))",
    )


@functools.cache
def anchors_in(path):
    """All ``id``/``name`` targets of a built HTML file."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    return {t.get("id") for t in soup.find_all(id=True)} | {
        t.get("name") for t in soup.find_all("a", attrs={"name": True})
    }


def broken_links(page_path):
    """Local ``<a href>`` whose target file or ``#anchor`` does not exist."""
    from bs4 import BeautifulSoup

    source = SITE / page_path
    soup = BeautifulSoup(source.read_text(encoding="utf-8"), "html.parser")
    broken = []
    for a in soup.find_all("a", href=True):
        url = urlparse(a["href"])
        if url.scheme or url.netloc or a["href"].startswith("mailto:"):
            continue
        target = (source.parent / unquote(url.path)).resolve() if url.path else source
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            broken.append(a["href"])
        elif url.fragment and target.suffix == ".html":
            if unquote(url.fragment) not in anchors_in(target):
                broken.append(a["href"])
    return broken


def exposed_solutions(page):
    """Solution cells (nbgrader's ``### BEGIN SOLUTION``) shown before their "Show solution"
    toggle is clicked, or not shown after it."""
    return page.eval_on_selector_all(
        "div.cell_input pre",
        """els => els.filter(e => e.textContent.includes('### BEGIN SOLUTION')).map(e => {
            const toggle = e.closest('details');
            const label = e.textContent.trim().split('\\n')[0].slice(0, 50);
            if (!toggle || e.checkVisibility()) return 'visible: ' + label;
            if (!toggle.querySelector('summary').textContent.includes('Show solution'))
                return 'toggle not labelled "Show solution": ' + label;
            toggle.querySelector('summary').click();
            const shown = e.checkVisibility();
            toggle.querySelector('summary').click();
            return shown ? null : 'not revealed by its toggle: ' + label;
        }).filter(Boolean)""",
    )


def missing_solutions(page, page_path):
    """For a chapter page: its notebook's solution cells that the page does not show at all."""
    notebook = ROOT / Path(page_path).with_suffix(".ipynb")
    if not page_path.startswith("chapters/") or not notebook.is_file():
        return []
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    expected = sum(1 for c in cells if c["metadata"].get("nbgrader", {}).get("solution"))
    shown = page.eval_on_selector_all(
        "div.cell_input pre", "els => els.filter(e => e.textContent.includes("
        "'### BEGIN SOLUTION')).length")
    return [f"{expected} in the notebook, {shown} on the page"] if shown != expected else []


def is_redirect(page_path):
    """True for the stub pages Jupyter Book writes to redirect (``index.html``)."""
    html = (SITE / page_path).read_text(encoding="utf-8") if (SITE / page_path).is_file() else ""
    return 'http-equiv="refresh"' in html.lower()


def redirect_target(page_path):
    """The local page a redirect stub points to."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup((SITE / page_path).read_text(encoding="utf-8"), "html.parser")
    meta = soup.find("meta", attrs={"http-equiv": lambda v: v and v.lower() == "refresh"})
    url = meta["content"].split("url=", 1)[-1].strip()
    return (SITE / page_path).parent / urlparse(url).path


@pytest.mark.parametrize("page_path", pages_or_placeholder())
def test_page(visit, page_path):
    """The page loads offline with no errors, and every figure, formula and link works."""
    if is_redirect(page_path):
        assert redirect_target(page_path).is_file(), f"{page_path} redirects to a missing page"
        return
    page_visit = visit(page_path)
    page = page_visit.page
    problems = {
        "console/page errors": page_visit.errors,
        "requests to other hosts": page_visit.foreign_requests,
        "assets from other hosts": foreign_assets(page),
        "plotly figures not rendered": unrendered_figures(page),
        "math not typeset": untypeset_math(page),
        "broken internal links": broken_links(page_path),
        "solutions not hidden behind their toggle": exposed_solutions(page),
        "solution cells missing": missing_solutions(page, page_path),
    }
    save_screenshots(visit, page_visit, page_path)  # before the controls move
    problems["sliders/buttons that change nothing"] = unresponsive_controls(page)
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, f"{page_path}: {problems}"


def save_screenshots(visit, page_visit, page_path):
    """With NORMLAB_SCREENSHOTS=dir, save full-page light and dark screenshots."""
    folder = os.environ.get("NORMLAB_SCREENSHOTS")
    if not folder:
        return
    stem = Path(folder) / page_path.replace("/", "__").removesuffix(".html")
    stem.parent.mkdir(parents=True, exist_ok=True)
    page_visit.page.screenshot(path=f"{stem}-light.png", full_page=True)
    dark = visit(page_path, color_scheme="dark")
    dark.page.screenshot(path=f"{stem}-dark.png", full_page=True)
    assert not dark.errors, f"{page_path} (dark): {dark.errors}"


FIGURE_STATE = "d => JSON.stringify([d.data.map(t => [t.visible, t.x, t.y]), d.layout])"
CONTROLS = ".slider-container, .updatemenu-container"


def operate_controls(page, figure):
    """Move the first slider, or press a button of the first menu, away from its active item."""
    slider = figure.query_selector(".slider-rail-touch-rect")
    if slider is not None:
        at_end = figure.evaluate(
            "d => d.layout.sliders[0].active === d.layout.sliders[0].steps.length - 1"
        )
        slider.scroll_into_view_if_needed()
        box = slider.bounding_box()
        x = box["x"] + (2 if at_end else box["width"] - 2)
        page.mouse.click(x, box["y"] + box["height"] / 2)
        return
    buttons = ".updatemenu-button"
    header = figure.query_selector(".updatemenu-header")
    if header is not None:  # dropdown: open it first
        header.click()
        buttons = ".updatemenu-dropdown-button"
        figure.wait_for_selector(buttons, timeout=3_000)
    items = figure.query_selector_all(buttons)
    active = figure.evaluate("d => d.layout.updatemenus[0].active || 0")
    items[0 if active == len(items) - 1 else -1].click()


def unresponsive_controls(page):
    """Ids of figures whose slider or buttons do not change the figure when used."""
    stuck = []
    for figure in page.query_selector_all(".js-plotly-plot"):
        if figure.query_selector(CONTROLS) is None:
            continue
        before = figure.evaluate(FIGURE_STATE)
        operate_controls(page, figure)
        try:
            page.wait_for_function(
                f"([d, before]) => ({FIGURE_STATE})(d) !== before",
                arg=[figure, before],
                timeout=3_000,
            )
        except Exception:
            stuck.append(figure.get_attribute("id"))
    return stuck
