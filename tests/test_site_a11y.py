"""Accessibility, colour palette, page weight and quizzes of the built site (Chromium).

* axe-core (the ``axe.min.js`` bundled with axe-playwright-python, injected: no network)
  runs on every page in the light and the dark colour scheme; any "serious" or "critical"
  violation fails, except the narrowly scoped third-party ones in ``AXE_EXCLUDED``.
* every plotly figure has a non-empty accessible name (``nb.show`` sets role/aria-label);
* every trace colour drawn is Okabe–Ito (or its light/dark theme variant), grey/black/white,
  or from a continuous colourscale;
* page weight: bytes transferred for the page (HTML and every resource it loads, headers
  included) excluding the shared plotly.js bundles and MathJax, at most ``MAX_PAGE_BYTES``
  (a first visit's every byte: ``test_site_reader.py``, ``make page-weights``);
* every quiz is answered: a wrong choice says "Not quite", the right one "Correct!".
"""

import gzip
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from conftest import SITE, pages_or_placeholder

from normlab.figures.plotting import PALETTE, theme_colours

IMPACTS_THAT_FAIL = {"serious", "critical"}
MAX_PAGE_BYTES = 2_000_000
# Shared, cached across pages: not counted in a page's weight.
SHARED_ASSETS = re.compile(r"/_static/(plotly[-.\w]*\.min\.js|mathjax/)")
# (rule id, CSS selector) of third-party markup we cannot change; keep each one narrow.
AXE_EXCLUDED = {
    # sphinxcontrib-bibtex/docutils write the bibliography as <div role="list"> whose
    # children are role="doc-biblioentry", not listitem: stock markup of the extension.
    ("aria-required-children", ".citation-list"),
}

# Okabe–Ito and its light- and dark-theme variants (normlab.figures.plotting.theme_colours).
OKABE_ITO = {c.lower() for c in PALETTE} | {
    c for theme in ("light", "dark") for c in theme_colours(theme).values()}


def axe_source():
    from axe_playwright_python import sync_playwright as axe_pkg

    return (Path(axe_pkg.__file__).parent / "axe.min.js").read_text(encoding="utf-8")


AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => ({impact: n.impact, target: n.target.flat().join(' '),
                              html: n.html.slice(0, 160)}))}));
}"""


def axe_violations(page, source):
    page.add_script_tag(content=source)
    found = []
    for v in page.evaluate(AXE_RUN):
        for node in v["nodes"]:
            impact = node["impact"] or v["impact"]
            if impact not in IMPACTS_THAT_FAIL:
                continue
            if any(v["id"] == rule and node["target"] == sel for rule, sel in AXE_EXCLUDED):
                continue
            found.append(f"{v['id']} [{impact}] {node['target']}: {v['help']} -- {node['html']}")
    return found


@pytest.fixture(scope="session")
def axe():
    return axe_source()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("page_path", pages_or_placeholder())
def test_axe(visit, axe, page_path, scheme):
    """No serious or critical axe-core violation, in light and dark mode."""
    skip_redirect(page_path)
    page = visit(page_path, color_scheme=scheme).page
    violations = axe_violations(page, axe)
    assert not violations, f"{page_path} ({scheme}):\n" + "\n".join(violations)


def skip_redirect(page_path):
    """Redirect stubs (``index.html``) navigate away: test_site.py checks them."""
    path = SITE / page_path
    if path.is_file() and 'http-equiv="refresh"' in path.read_text(encoding="utf-8").lower():
        pytest.skip("redirect stub")


FIGURES = """() => [...document.querySelectorAll('.plotly-graph-div')].map(d => {
  const colors = [];
  const add = c => { if (typeof c === 'string') colors.push(c);
                     else if (Array.isArray(c)) c.forEach(add); };
  (d._fullData || []).forEach(t => {
    if (t.visible === false) return;
    add(t.line && t.line.color); add(t.fillcolor);
    if (t.marker) add(t.marker.color);  // not marker.line: the template's bar outline
  });
  const named = d.closest('[role=figure][aria-label], [role=img][aria-label]');
  return {id: d.id, name: named ? named.getAttribute('aria-label').trim() : '', colors};
})"""
NAMED = {"black": (0, 0, 0), "white": (255, 255, 255), "transparent": (0, 0, 0)}


def rgb(color):
    """(r, g, b) of a ``#rrggbb``/``#rgb``/``rgb()``/``rgba()``/named colour; alpha dropped."""
    c = color.strip().lower()
    if c in NAMED:
        return NAMED[c]
    if c.startswith("#"):
        h = c[1:] if len(c) == 7 else "".join(ch * 2 for ch in c[1:4])
        return tuple(int(h[i : i + 2], 16) for i in (0, 2, 4))
    numbers = re.findall(r"[\d.]+", c)
    return tuple(round(float(v)) for v in numbers[:3])


def allowed_colour(color):
    """Okabe–Ito, or a grey (black and white included)."""
    r, g, b = rgb(color)
    return f"#{r:02x}{g:02x}{b:02x}" in OKABE_ITO or r == g == b


@pytest.mark.parametrize("page_path", pages_or_placeholder())
def test_figures_and_weight(visit, page_path):
    """Figures are named and Okabe–Ito coloured; the page transfers at most 2 MB."""
    skip_redirect(page_path)
    page_visit = visit(page_path)
    figures = page_visit.page.evaluate(FIGURES)
    unnamed = [f["id"] for f in figures if not f["name"]]
    off_palette = {f["id"]: sorted({c for c in f["colors"] if not allowed_colour(c)})
                   for f in figures}
    off_palette = {k: v for k, v in off_palette.items() if v}
    weight = page_weight(page_visit.transferred)
    assert not unnamed, f"{page_path}: figures without an accessible name: {unnamed}"
    assert not off_palette, f"{page_path}: trace colours outside Okabe–Ito/greys: {off_palette}"
    assert weight <= MAX_PAGE_BYTES, f"{page_path}: {weight} bytes > {MAX_PAGE_BYTES}"


def page_weight(transferred):
    """Bytes of the page and every resource it loaded, without shared plotly.js and MathJax.

    The test server sends files uncompressed; a static host (GitHub Pages) gzips text, so a
    resource counts as its gzip size when that is smaller (fonts and images stay raw).
    """
    total = 0
    for url in transferred:
        path = urlparse(url).path
        if SHARED_ASSETS.search(path):
            continue
        file = SITE / unquote(path).lstrip("/")
        if file.is_dir():
            file = file / "index.html"
        if file.is_file():
            data = file.read_bytes()
            total += min(len(data), len(gzip.compress(data, 6, mtime=0)))
        else:
            total += transferred[url]
    return total


def quiz_pages():
    pages = [p for p in pages_or_placeholder() if p == "<no built site>"
             or 'class="nl-quiz' in (SITE / p).read_text(encoding="utf-8")]
    return pages or ["<no built site>"]


@pytest.mark.parametrize("page_path", quiz_pages())
def test_quizzes_answer(visit, page_path):
    """Every quiz: a wrong choice says "Not quite", the right one "Correct!" with feedback."""
    page = visit(page_path).page
    quizzes = page.query_selector_all(".nl-quiz")
    assert quizzes, f"{page_path}: no quiz found"
    for quiz in quizzes:
        quiz.scroll_into_view_if_needed()
        result = quiz.query_selector(".nl-result")
        assert result.get_attribute("aria-live") == "polite"
        if "nl-choice" in (quiz.get_attribute("class") or ""):
            wrong = quiz.query_selector(".nl-wrong input[type=radio]")
            wrong.check()
            quiz.query_selector(".nl-check").click()
            assert result.inner_text().startswith("Not quite"), quiz.get_attribute("id")
            assert quiz.query_selector(".nl-wrong .nl-feedback.nl-shown") is not None
            quiz.query_selector(".nl-correct input[type=radio]").check()
            quiz.query_selector(".nl-check").click()
            feedback = quiz.query_selector(".nl-correct .nl-feedback")
        else:
            box = quiz.query_selector(".nl-answer")
            box.fill(box.get_attribute("data-answer"))
            quiz.query_selector(".nl-check").click()
            feedback = quiz.query_selector(":scope > .nl-feedback")
        assert result.inner_text() == "Correct!", quiz.get_attribute("id")
        if feedback is not None and feedback.inner_text().strip():
            assert feedback.is_visible(), f"{quiz.get_attribute('id')}: feedback hidden"
