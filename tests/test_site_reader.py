"""What a reader sees on the built site, checked in Chromium as a reader would use it.

* quizzes: after answering (by keyboard), right and wrong, in light and dark mode, the
  verdict is shown with a WCAG contrast of at least 4.5:1 against the colour really drawn
  behind it, and every choice's text sits beside its own radio button;
* phone width (390 px) and desktop (1366 px): the page never scrolls sideways; whatever is
  wider than its column (table, display equation, code) scrolls inside its own box, which
  shows the cue ``nl-more-right``/``nl-more-left`` (``_static/reader.js``) while content is
  hidden on that side;
* MathJax formulas are not Tab stops (a Tab walk through the whole page);
* first visit: every byte a fresh browser downloads for the page (uncompressed, as the files
  lie on disk) at most ``FIRST_VISIT_BYTES``; the longest main-thread task during load and
  the first contentful paint relative to the intro page's are reported, not asserted (times
  depend on the machine); "during load" is until MathJax is done and the figures near the
  viewport are drawn (the others are drawn when the reader scrolls near them).
  ``NORMLAB_LOAD_REPORT=file`` appends one tab-separated line per page; the numbers are
  also in the JUnit XML (``record_property``).

``NORMLAB_SCREENSHOTS=dir`` also saves a full-page screenshot of every page at 390 px.
"""

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from conftest import SITE, draw_all, pages_or_placeholder
from test_site_a11y import quiz_pages, skip_redirect

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}
MIN_TEXT_CONTRAST = 4.5
FIRST_VISIT_BYTES = 5_000_000
MAX_TAB_PRESSES = 1500


def relative_luminance(rgb):
    """WCAG 2 relative luminance of an sRGB colour given as 0-255 channels."""
    def linear(c):
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fg, bg):
    """WCAG contrast ratio (L1 + 0.05) / (L2 + 0.05) of two opaque colours, 1 to 21."""
    high, low = sorted((relative_luminance(fg), relative_luminance(bg)), reverse=True)
    return (high + 0.05) / (low + 0.05)


# Text colour of an element and the colour drawn behind it: the first ancestor with an
# opaque background, else the canvas (alpha composited over it when translucent).
DRAWN_COLOURS = """el => {
  const parse = c => { const v = c.match(/[\\d.]+/g).map(Number);
                       return [v[0], v[1], v[2], v.length > 3 ? v[3] : 1]; };
  const over = (top, under) => top.slice(0, 3).map((c, i) => c * top[3] + under[i] * (1 - top[3]));
  const layers = [];
  for (let e = el; e; e = e.parentElement) {
    const bg = parse(getComputedStyle(e).backgroundColor);
    if (bg[3] > 0) layers.push(bg);
    if (bg[3] === 1) break;
  }
  let drawn = layers.length && layers[layers.length - 1][3] === 1 ? layers.pop().slice(0, 3)
            : parse(getComputedStyle(document.documentElement).backgroundColor)[3] > 0
              ? parse(getComputedStyle(document.documentElement).backgroundColor).slice(0, 3)
              : [255, 255, 255];
  while (layers.length) drawn = over(layers.pop(), drawn);
  const fg = parse(getComputedStyle(el).color);
  return {fg: over(fg, drawn), bg: drawn};
}"""


def verdict(quiz):
    """Text of a quiz's verdict, whether it is drawn, and its contrast with what is behind."""
    result = quiz.query_selector(".nl-result")
    drawn = result.evaluate("e => e.checkVisibility({opacityProperty: true, "
                            "visibilityProperty: true}) && e.getBoundingClientRect().height > 0")
    colours = result.evaluate(DRAWN_COLOURS)
    return result.inner_text().strip(), drawn, contrast(colours["fg"], colours["bg"])


def answer_by_keyboard(page, quiz, right):
    """Answer a quiz with the keyboard only; return its verdict (see ``verdict``)."""
    if "nl-numeric" in (quiz.get_attribute("class") or ""):
        box = quiz.query_selector(".nl-answer")
        answer = float(box.get_attribute("data-answer"))
        box.focus()
        page.keyboard.press("Control+A")
        page.keyboard.type(repr(answer if right else 3 * answer + 1))
        page.keyboard.press("Enter")  # Enter in the box checks
    else:
        radios = quiz.query_selector_all("input[type=radio]")
        target = next(i for i, r in enumerate(radios) if r.evaluate(
            "(r, right) => r.closest('li').classList.contains(right ? 'nl-correct' : 'nl-wrong')",
            right))
        radios[0].focus()
        page.keyboard.press("Space")  # select the first choice
        for _ in range(target):
            page.keyboard.press("ArrowDown")  # arrows move the choice within the group
        assert radios[target].is_checked(), f"{quiz.get_attribute('id')}: arrows did not select"
        page.keyboard.press("Tab")  # to the Check button
        page.keyboard.press("Enter")
    return verdict(quiz)


CHOICE_LAYOUT = """quiz => [...quiz.querySelectorAll('.nl-choices > li')].map(li => {
  const radio = li.querySelector('input[type=radio]').getBoundingClientRect();
  const label = li.querySelector('label').getBoundingClientRect();
  const beside = label.left >= radio.right - 1 && label.top <= radio.bottom
                 && label.bottom >= radio.top;
  return beside ? null : li.querySelector('label').textContent.trim().slice(0, 50);
}).filter(Boolean)"""


@pytest.mark.parametrize("width", [PHONE, DESKTOP], ids=["390px", "1366px"])
@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("page_path", quiz_pages())
def test_quiz_verdicts_readable(visit, page_path, scheme, width):
    """Every quiz, answered by keyboard, shows a readable verdict, wrong and right; every
    choice's text starts beside its radio button."""
    page = visit(page_path, color_scheme=scheme, viewport=width).page
    problems = []
    for quiz in page.query_selector_all(".nl-quiz"):
        name = quiz.get_attribute("id")
        quiz.scroll_into_view_if_needed()
        problems += [f"{name}: option not beside its radio: {t!r}"
                     for t in quiz.evaluate(CHOICE_LAYOUT)]
        for right, expected in ((False, "Not quite"), (True, "Correct!")):
            text, drawn, ratio = answer_by_keyboard(page, quiz, right)
            if not text.startswith(expected) or not drawn:
                problems.append(f"{name}: verdict {text!r} (drawn: {drawn}), expected {expected!r}")
            elif ratio < MIN_TEXT_CONTRAST:
                problems.append(f"{name}: verdict {text!r} contrast {ratio:.2f} < 4.5")
    assert not problems, f"{page_path} ({scheme}, {width['width']} px):\n" + "\n".join(problems)


# Elements wider than their box that do not scroll it: the page itself (a sideways scroll),
# or a box that scrolls without the cue, or whose cue does not follow its scroll position.
SIDEWAYS = """() => {
  const root = document.scrollingElement;
  const problems = [];
  if (root.scrollWidth > root.clientWidth + 1)
    problems.push(`page is ${root.scrollWidth} px wide in a ${root.clientWidth} px window`);
  for (const el of document.querySelectorAll('.bd-content *')) {
    const style = getComputedStyle(el);
    if (!['auto', 'scroll'].includes(style.overflowX) || !el.checkVisibility()) continue;
    if (el.scrollWidth <= el.clientWidth + 1 || el.clientWidth === 0) continue;
    if (el.closest('.js-plotly-plot')) continue;  // figures: checked by their own tests
    const name = `${el.tagName.toLowerCase()}.${[...el.classList].join('.')} ` +
                 `"${el.textContent.trim().slice(0, 40)}"`;
    const start = el.classList.contains('nl-more-right') && !el.classList.contains('nl-more-left');
    el.scrollLeft = el.scrollWidth;
    el.dispatchEvent(new Event('scroll'));
    const end = el.classList.contains('nl-more-left') && !el.classList.contains('nl-more-right');
    el.scrollLeft = 0;
    el.dispatchEvent(new Event('scroll'));
    if (!start || !end) problems.push(`scrolls without its cue: ${name}`);
    else if (el.tabIndex < 0) problems.push(`not keyboard-scrollable: ${name}`);
  }
  return problems;
}"""


@pytest.mark.parametrize("width", [PHONE, DESKTOP], ids=["390px", "1366px"])
@pytest.mark.parametrize("page_path", pages_or_placeholder())
def test_nothing_scrolls_the_page_sideways(visit, page_path, width):
    """The page is never wider than the window; a wide box scrolls itself, with a cue."""
    skip_redirect(page_path)
    page = visit(page_path, viewport=width).page
    page.wait_for_function("() => document.readyState === 'complete'")
    if width is PHONE:
        save_phone_screenshot(page, page_path)
    problems = page.evaluate(SIDEWAYS)
    assert not problems, f"{page_path} at {width['width']} px:\n" + "\n".join(problems)


def save_phone_screenshot(page, page_path):
    """With NORMLAB_SCREENSHOTS=dir, save a full-page screenshot at phone width."""
    folder = os.environ.get("NORMLAB_SCREENSHOTS")
    if folder:
        stem = Path(folder) / page_path.replace("/", "__").removesuffix(".html")
        stem.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=f"{stem}-390px.png", full_page=True)


# Walk the Tab order from the top of the page; the formulas focused on the way. A wide
# display formula that must scroll sideways (nl-scrolls) may be focused to scroll it.
FOCUSED_FORMULA = """() => {
  const el = document.activeElement;
  const math = el && el.closest('mjx-container');
  return {key: el ? el.outerHTML.slice(0, 200) + el.getBoundingClientRect().top : '',
          formula: math && !math.classList.contains('nl-scrolls')
                   ? math.textContent.trim().slice(0, 40) || '(formula)' : null};
}"""


@pytest.mark.parametrize("page_path", pages_or_placeholder())
def test_formulas_are_not_tab_stops(visit, page_path):
    """Tabbing through the whole page never stops on a MathJax formula."""
    skip_redirect(page_path)
    page = visit(page_path).page
    formulas, seen = [], set()
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    for _ in range(MAX_TAB_PRESSES):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED_FORMULA)
        if focused["key"] in seen:  # back at the start: the walk is complete
            break
        seen.add(focused["key"])
        if focused["formula"]:
            formulas.append(focused["formula"])
    assert page.evaluate("() => document.querySelectorAll('mjx-container').length") == 0 \
        or seen, f"{page_path}: nothing focusable"
    assert not formulas, f"{page_path}: {len(formulas)} formulas are Tab stops: {formulas[:5]}"


def first_visit_bytes(transferred):
    """Uncompressed bytes of everything loaded: each local file's size on disk."""
    total = 0
    for url, wire_bytes in transferred.items():
        path = SITE / unquote(urlparse(url).path).lstrip("/")
        if path.is_dir():
            path = path / "index.html"
        total += path.stat().st_size if path.is_file() else wire_bytes
    return total


# Long tasks are buffered by Chromium from navigation on; first contentful paint likewise.
LOAD_TIMES = """() => new Promise(done => {
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  const paint = fcp ? Math.round(fcp.startTime) : null;
  new PerformanceObserver((list, observer) => {
    observer.disconnect();
    const longest = Math.max(0, ...list.getEntries().map(e => e.duration));
    done({longest_task_ms: Math.round(longest), first_paint_ms: paint});
  }).observe({type: 'longtask', buffered: true});
  setTimeout(() => done({longest_task_ms: 0, first_paint_ms: paint}), 500);  // no long task
})"""


FIRST_PAINT = """() => new Promise(done => new PerformanceObserver(list => {
  const fcp = list.getEntriesByName('first-contentful-paint')[0];
  if (fcp) done(fcp.startTime);
}).observe({type: 'paint', buffered: true}))"""
PAINT_PAIRS = 3  # first paints of (intro, page), alternately; the ratio of their medians


def first_paint_ratio(browser, site_url, page_path):
    """Median first contentful paint of ``page_path`` over the intro page's, each loaded
    ``PAINT_PAIRS`` times alternately in fresh contexts of one browser (load noise hits
    both alike)."""
    from statistics import median

    def first_paint(path):
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(site_url + path, wait_until="load")
            return page.evaluate(FIRST_PAINT)
        finally:
            context.close()

    pairs = [(first_paint("intro.html"), first_paint(page_path)) for _ in range(PAINT_PAIRS)]
    return round(median(p for _, p in pairs) / median(i for i, _ in pairs), 2)


@pytest.mark.parametrize("page_path", pages_or_placeholder())
def test_first_visit_weight(visit, browser, site_url, record_property, page_path):
    """A first visit downloads at most 5 MB (uncompressed); load times are reported.

    Times: the page loads as a reader's does, figures near the viewport are drawn, the others
    wait until the reader scrolls near them (``draw_all=False``). Bytes: after every figure
    is drawn too (the reader has scrolled through the whole page).
    """
    skip_redirect(page_path)
    page_visit = visit(page_path, draw_all=False)
    page_visit.page.wait_for_timeout(300)  # late requests: fonts, MathJax's lazy parts
    times = page_visit.page.evaluate(LOAD_TIMES)
    draw_all(page_visit.page)
    weight = first_visit_bytes(page_visit.transferred)
    ratio = first_paint_ratio(browser, site_url, page_path)
    heaviest = sorted(page_visit.transferred, key=lambda u: -first_visit_bytes({u: 0}))[:3]
    report = {"first_visit_bytes": weight, **times, "first_paint_vs_intro": ratio,
              "heaviest": " ".join(re.sub(r"\?.*", "", Path(urlparse(u).path).name)
                                   for u in heaviest)}
    for key, value in report.items():
        record_property(key, value)
    if os.environ.get("NORMLAB_LOAD_REPORT"):
        with open(os.environ["NORMLAB_LOAD_REPORT"], "a", encoding="utf-8") as out:
            out.write("\t".join([page_path, *(str(v) for v in report.values())]) + "\n")
    print(page_path, report)
    assert weight <= FIRST_VISIT_BYTES, (
        f"{page_path}: first visit downloads {weight} bytes > {FIRST_VISIT_BYTES} ({report})")


@pytest.mark.parametrize("page_path", pages_or_placeholder())
def test_no_fontawesome_javascript(page_path):
    """No page links Font Awesome's 1.5 MB script (``_ext/lean_pages.py``; CSS draws icons)."""
    if page_path == "<no built site>":
        pytest.skip("no built site")
    html = (SITE / page_path).read_text(encoding="utf-8")
    assert "scripts/fontawesome.js" not in html, f"{page_path} still loads fontawesome.js"


# Emoji that need an emoji font (the checkers printed ✅): pictographs, dingbat marks.
EMOJI = re.compile("[\u2705\u274c\u274e\u2757\u26a0\U0001f300-\U0001faff]")
SETUP_OR_GLUE = re.compile(r"%pip|nb\.setup\(\)|^\s*glue4?\(", re.MULTILINE)


@pytest.mark.parametrize("page_path", pages_or_placeholder())
def test_no_setup_glue_or_emoji_on_the_page(page_path):
    """The setup cell and the ``glue`` calls stay in the notebook (nbval runs them) but
    are not shown on the page; no text needs an emoji font."""
    if page_path == "<no built site>":
        pytest.skip("no built site")
    from bs4 import BeautifulSoup

    soup = BeautifulSoup((SITE / page_path).read_text(encoding="utf-8"), "html.parser")
    shown = [pre.get_text()[:60] for pre in soup.select("div.cell_input pre")
             if SETUP_OR_GLUE.search(pre.get_text())]
    emoji = sorted(set(EMOJI.findall(soup.select_one("main").get_text() if soup.main else "")))
    assert not shown, f"{page_path}: setup or glue cells shown: {shown}"
    assert not emoji, f"{page_path}: text needs an emoji font: {emoji}"
    notebook = SITE.parent.parent / Path(page_path).with_suffix(".ipynb")
    if notebook.is_file():  # still in the notebook, so nbval still runs them
        assert SETUP_OR_GLUE.search(notebook.read_text(encoding="utf-8"))
