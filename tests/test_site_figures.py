"""What a reader sees of the figures on the built site (Chromium, offline).

* at phone width (390 px), and at 1366 px, every figure fits the viewport and no two texts
  inside it overlap or are cut off by its edges;
* in the light and the dark theme every trace has contrast >= 3:1 against the page behind
  the (transparent) figure, and every button label >= 4.5:1 against its button, plotly's
  own buttons (active and inactive) and the native ones;
* every slider and button group has a native control that Tab reaches, with a visible
  focus ring and an accessible name, and arrow keys / Enter / Space change the figure;
* plotly.js is never a parser-blocking script; a page loads one of plotly.js's partial
  bundles (each registers the trace types the site picks it for), and only when a figure
  comes near the viewport; it draws only the figures near the viewport;
* load timings (first contentful paint, longest main-thread task, figures drawn) of the
  intro page and of each figure page, side by side, are reported as data (printed, and
  appended to ``NORMLAB_FIGURE_TIMINGS=file`` as TSV), not asserted.

``NORMLAB_SCREENSHOTS=dir`` also saves, per figure page, a 390 px full-page screenshot and
one screenshot of each figure at 1366 px in both themes and at 390 px.
"""

import os
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
from conftest import IS_NEAR, SITE, draw_all, pages_or_placeholder

from normlab.figures.plotting import MIN_TRACE_CONTRAST, contrast_ratio

PHONE, DESKTOP = 390, 1366
MIN_TEXT_CONTRAST = 4.5
SLOW_MS = 10_000  # a figure's redraw on a busy CI machine
OVERLAP_PX = 1.5  # texts may touch; overlapping by more than this in x and y is a collision


def figure_pages():
    """Pages with at least one stored figure (placeholder when nothing is built)."""
    pages = [p for p in pages_or_placeholder() if p == "<no built site>"
             or 'class="plotly-graph-div' in (SITE / p).read_text(encoding="utf-8")]
    return pages or ["<no built site>"]


def screenshot_folder():
    folder = os.environ.get("NORMLAB_SCREENSHOTS")
    return Path(folder) if folder else None


def save_figure_shots(page, page_path, tag):
    """With NORMLAB_SCREENSHOTS, one PNG per figure (with its native controls)."""
    folder = screenshot_folder()
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    stem = page_path.replace("/", "__").removesuffix(".html")
    for figure in page.query_selector_all(".js-plotly-plot"):
        figure.scroll_into_view_if_needed()
        box = figure.evaluate_handle("d => d.closest('.cell_output') || d.parentElement")
        box.as_element().screenshot(path=str(folder / f"{stem}--{figure.get_attribute('id')}"
                                                      f"-{tag}.png"))


# --- phone width: fit and no colliding texts ---------------------------------------------------

FIGURE_TEXTS = """d => {
  const fig = d.getBoundingClientRect();
  const texts = [...d.querySelectorAll('svg text')].filter(t => {
    if (!t.textContent.trim() || !t.checkVisibility({opacityProperty: true,
                                                     visibilityProperty: true})) return false;
    const r = t.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  }).map(t => {
    // The text's own box, mapped through its transform (rotated tick labels stay rotated).
    const b = t.getBBox(), m = t.getScreenCTM();
    const corners = [[b.x, b.y], [b.x + b.width, b.y], [b.x + b.width, b.y + b.height],
                     [b.x, b.y + b.height]].map(([x, y]) => [m.a * x + m.c * y + m.e,
                                                             m.b * x + m.d * y + m.f]);
    return {text: t.textContent.trim().slice(0, 40), corners};
  });
  return {id: d.id, box: {x0: fig.left, x1: fig.right, y0: fig.top, y1: fig.bottom},
          viewport: document.documentElement.clientWidth, texts};
}"""


def _axes(quad):
    """Unit normals of a quadrilateral's edges (the separating axes to try)."""
    normals = []
    for (x0, y0), (x1, y1) in zip(quad, quad[1:] + quad[:1], strict=True):
        length = ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5
        if length > 0:
            normals.append(((y0 - y1) / length, (x1 - x0) / length))
    return normals


def penetration(a, b):
    """How deep two convex quads overlap (px): the smallest overlap of their projections
    over every edge normal of both (separating axis theorem); <= 0 when apart."""
    depth = float("inf")
    for nx, ny in _axes(a) + _axes(b):
        pa = [x * nx + y * ny for x, y in a]
        pb = [x * nx + y * ny for x, y in b]
        depth = min(depth, min(max(pa), max(pb)) - max(min(pa), min(pb)))
    return depth


def collisions(texts, overlap=OVERLAP_PX):
    """Pairs of texts whose (possibly rotated) boxes overlap by more than ``overlap`` px."""
    return [f"{a['text']!r} over {b['text']!r}"
            for i, a in enumerate(texts) for b in texts[i + 1:]
            if penetration(a["corners"], b["corners"]) > overlap]


def clipped(texts, box, slack=1.0):
    """Texts that reach outside the figure's box (cut off by its edges)."""
    return [t["text"] for t in texts
            if any(x < box["x0"] - slack or x > box["x1"] + slack
                   or y < box["y0"] - slack or y > box["y1"] + slack for x, y in t["corners"])]


@pytest.mark.parametrize("width", [PHONE, DESKTOP])
@pytest.mark.parametrize("page_path", figure_pages())
def test_figures_fit_without_colliding_texts(visit, page_path, width):
    """At 390 and 1366 px each figure fits the viewport; its texts neither overlap nor get
    cut off by the figure's edges."""
    page = visit(page_path, width=width).page
    problems = {}
    for figure in page.query_selector_all(".js-plotly-plot"):
        found = figure.evaluate(FIGURE_TEXTS)
        box = found["box"]
        issues = collisions(found["texts"]) + [f"clipped: {t!r}" for t in
                                               clipped(found["texts"], box)]
        if box["x0"] < -0.5 or box["x1"] > found["viewport"] + 0.5:
            issues.append(f"figure spans x {box['x0']:.0f}..{box['x1']:.0f}, "
                          f"viewport {found['viewport']} px")
        if issues:
            problems[found["id"]] = issues
    folder = screenshot_folder()
    if folder is not None and width == PHONE:
        folder.mkdir(parents=True, exist_ok=True)
        stem = page_path.replace("/", "__").removesuffix(".html")
        page.screenshot(path=str(folder / f"{stem}-phone.png"), full_page=True)
        save_figure_shots(page, page_path, "phone")
    assert not problems, f"{page_path} at {width} px: {problems}"


# --- contrast in both themes -----------------------------------------------------------------

TRACE_COLOURS = """d => {
  const out = [];
  const add = (c, trace, opacity) => {
    if (typeof c === 'string') out.push({trace, colour: c, opacity});
    else if (Array.isArray(c)) c.forEach(v => add(v, trace, opacity));
  };
  (d._fullData || []).forEach(t => {
    // Surfaces, meshes and heatmaps are filled areas, not marks; their colour is no trace.
    if (['heatmap', 'surface', 'mesh3d'].includes(t.type)) return;
    const name = t.name || t.type;
    const opacity = t.opacity === undefined ? 1 : t.opacity;
    if (t.mode === undefined || /lines/.test(t.mode)) add(t.line && t.line.color, name, opacity);
    if (t.mode === undefined || /markers/.test(t.mode)) {
      add(t.marker && t.marker.color, name,
          opacity * (t.marker && t.marker.opacity !== undefined ? t.marker.opacity : 1));
    }
  });
  return out;
}"""

BUTTON_COLOURS = """d => {
  const style = e => getComputedStyle(e);
  const plotly = [...d.querySelectorAll('.updatemenu-button, .updatemenu-header')]
    .filter(g => g.checkVisibility())
    .map(g => {
      const rect = g.querySelector('rect'), text = g.querySelector('text');
      return {label: text.textContent, fill: style(rect).fill,
              fillOpacity: style(rect).fillOpacity, text: style(text).fill};
    });
  const box = d.parentElement.querySelector('.nl-figure-controls');
  const native = box ? [...box.querySelectorAll('button')].map(b => ({
    label: b.textContent, fill: style(b).backgroundColor, fillOpacity: '1',
    text: style(b).color})) : [];
  return plotly.concat(native);
}"""


def parse_rgba(css):
    """(r, g, b, a) of a computed CSS colour (``rgb()``/``rgba()``/``#rrggbb``)."""
    if css.startswith("#"):
        return (*(int(css[i:i + 2], 16) for i in (1, 3, 5)), 1.0)
    numbers = [float(v) for v in re.findall(r"[\d.]+", css)]
    if len(numbers) < 3:
        raise ValueError(f"not a colour: {css!r}")
    return (*numbers[:3], numbers[3] if len(numbers) > 3 else 1.0)


def over(colour, background, opacity=1.0):
    """``#rrggbb`` of ``colour`` (its alpha times ``opacity``) composited on ``background``."""
    r, g, b, a = parse_rgba(colour)
    br, bg, bb, _ = parse_rgba(background)
    a *= opacity
    return "#" + "".join(f"{round(a * c + (1 - a) * e):02x}"
                         for c, e in ((r, br), (g, bg), (b, bb)))


def page_background(page):
    return page.evaluate(
        "() => getComputedStyle(document.body).backgroundColor !== 'rgba(0, 0, 0, 0)'"
        " ? getComputedStyle(document.body).backgroundColor"
        " : getComputedStyle(document.documentElement).backgroundColor")


def low_contrast(page):
    """Trace colours < 3:1 and button labels < 4.5:1 in every figure, by figure id."""
    background = page_background(page)
    problems = {}
    for figure in page.query_selector_all(".js-plotly-plot"):
        issues = []
        for t in figure.evaluate(TRACE_COLOURS):
            seen = over(t["colour"], background, t["opacity"])
            ratio = contrast_ratio(seen, over(background, background))
            if ratio < MIN_TRACE_CONTRAST:
                issues.append(f"trace {t['trace']!r} {t['colour']}: {ratio:.2f}:1")
        for b in figure.evaluate(BUTTON_COLOURS):
            fill = over(b["fill"], background, float(b["fillOpacity"]))
            ratio = contrast_ratio(over(b["text"], fill), fill)
            if ratio < MIN_TEXT_CONTRAST:
                issues.append(f"button {b['label']!r}: {ratio:.2f}:1")
        if issues:
            problems[figure.get_attribute("id")] = sorted(set(issues))
    return problems


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("page_path", figure_pages())
def test_trace_and_button_contrast(visit, page_path, scheme):
    """Traces >= 3:1 against the page, button labels >= 4.5:1 against their buttons."""
    page = visit(page_path, color_scheme=scheme, width=DESKTOP).page
    save_figure_shots(page, page_path, scheme)
    problems = low_contrast(page)
    assert not problems, f"{page_path} ({scheme}): {problems}"


def test_theme_switch_recolours_drawn_figures(visit):
    """Switching the theme after the figures are drawn swaps the palette both ways."""
    pages = [p for p in figure_pages() if "07_" in p] or figure_pages()
    page = visit(pages[0], width=DESKTOP).page
    light = page.evaluate("() => document.querySelector('.js-plotly-plot')._fullData"
                          ".map(t => t.line && t.line.color)")
    colours = ("() => JSON.stringify([...document.querySelectorAll('.js-plotly-plot')]"
               ".map(d => d._fullData.map(t => t.line && t.line.color)))")
    for theme in ("dark", "light"):
        before = page.evaluate(colours)
        page.evaluate(f"() => document.documentElement.dataset.theme = '{theme}'")
        try:  # every figure redrawn (a busy machine may take seconds)
            page.wait_for_function(f"before => ({colours})() !== before", arg=before,
                                   timeout=SLOW_MS)
            page.wait_for_timeout(500)
        except Exception:
            pytest.fail(f"switching to {theme} recoloured no figure")
        assert not low_contrast(page), f"after switching to {theme}"
    after = page.evaluate("() => document.querySelector('.js-plotly-plot')._fullData"
                          ".map(t => t.line && t.line.color)")
    assert after == light


# --- keyboard -------------------------------------------------------------------------------

FIGURE_STATE = "d => JSON.stringify([d.data.map(t => [t.visible, t.x, t.y, t.z]), d.layout])"
CONTROL_COUNTS = """d => ({sliders: (d.layout.sliders || []).length,
  menus: (d.layout.updatemenus || []).length,
  ranges: d.parentElement.querySelectorAll('.nl-figure-controls input[type=range]').length,
  groups: d.parentElement.querySelectorAll('.nl-figure-controls .nl-buttons').length})"""
FOCUS = """e => {
  const s = getComputedStyle(e);
  const name = e.getAttribute('aria-label') || (e.labels && e.labels[0] ?
    e.labels[0].textContent : '') || e.textContent;
  return {focused: document.activeElement === e, ring: s.outlineStyle !== 'none'
          && parseFloat(s.outlineWidth) >= 2, name: name.trim()}
}"""


def focus_by_keyboard(page, element):
    """Focus ``element`` the way a keyboard user does (so ``:focus-visible`` applies)."""
    element.scroll_into_view_if_needed()
    element.focus()
    page.keyboard.press("Tab")
    page.keyboard.press("Shift+Tab")
    return element.evaluate(FOCUS)


def press_changes(page, figure, key):
    before = figure.evaluate(FIGURE_STATE)
    page.keyboard.press(key)
    try:
        page.wait_for_function(f"([d, before]) => ({FIGURE_STATE})(d) !== before",
                               arg=[figure, before], timeout=SLOW_MS)
        return True
    except Exception:
        return False


def keyboard_problems(page, figure):
    counts = figure.evaluate(CONTROL_COUNTS)
    problems = []
    if (counts["ranges"], counts["groups"]) != (counts["sliders"], counts["menus"]):
        problems.append(f"native controls {counts}")
    controls = figure.evaluate_handle("d => d.parentElement.querySelector('.nl-figure-controls')")
    if controls.as_element() is None:
        return problems
    for control in controls.as_element().query_selector_all("input[type=range]"):
        if not control.is_visible():  # a slider the current view hides (chapter 4)
            continue
        state = focus_by_keyboard(page, control)
        at_end = control.evaluate("e => +e.value === +e.max")
        key = "ArrowLeft" if at_end else "ArrowRight"
        if not (state["focused"] and state["ring"] and state["name"]):
            problems.append(f"slider {state}")
        elif not press_changes(page, figure, key):
            problems.append(f"slider {state['name']!r}: {key} changed nothing")
    for group in controls.as_element().query_selector_all(".nl-buttons"):
        buttons = group.query_selector_all("button")
        pressed = [b for b in buttons if b.get_attribute("aria-pressed") == "true"]
        start = pressed[0] if pressed else buttons[0]
        state = focus_by_keyboard(page, start)
        if not (state["focused"] and state["ring"] and state["name"]):
            problems.append(f"button {state}")
            continue
        if not press_changes(page, figure, "ArrowRight"):
            problems.append(f"buttons {state['name']!r}: ArrowRight changed nothing")
        focus_by_keyboard(page, start)
        for key in ("Enter",):
            if not press_changes(page, figure, key):
                problems.append(f"button {state['name']!r}: {key} changed nothing")
        other = next((b for b in buttons if b != start), None)
        if other is not None:
            focus_by_keyboard(page, other)
            if not press_changes(page, figure, " "):
                problems.append(f"button {other.inner_text()!r}: Space changed nothing")
    return problems


@pytest.mark.parametrize("page_path", figure_pages())
def test_keyboard_operates_every_figure_control(visit, page_path):
    """Each slider and button group has a native control: Tab, focus ring, name, keys."""
    page = visit(page_path, width=DESKTOP).page
    problems = {}
    for figure in page.query_selector_all(".js-plotly-plot"):
        found = keyboard_problems(page, figure)
        if found:
            problems[figure.get_attribute("id")] = found
    assert not problems, f"{page_path}: {problems}"


# --- loading --------------------------------------------------------------------------------

@pytest.mark.parametrize("page_path", figure_pages())
def test_plotly_is_not_a_blocking_script(page_path):
    """No ``<script src=...plotly...>`` without async/defer; the figure script is deferred."""
    from bs4 import BeautifulSoup

    if page_path == "<no built site>":
        pytest.skip("no built site")
    soup = BeautifulSoup((SITE / page_path).read_text(encoding="utf-8"), "html.parser")
    scripts = soup.find_all("script", src=True)
    blocking = [s["src"] for s in scripts if "plotly" in s["src"]
                and not (s.has_attr("defer") or s.has_attr("async"))]
    assert not blocking, f"{page_path}: parser-blocking plotly script(s) {blocking}"
    figures_js = [s for s in scripts if s["src"].split("?")[0].endswith("normlab-figures.js")]
    assert figures_js and figures_js[0].has_attr("defer"), f"{page_path}: figure script"


def plotly_requests(page_visit):
    """File names of the plotly.js bundles a page downloaded."""
    names = [Path(urlparse(u).path).name for u in page_visit.transferred]
    return [n for n in names if n.startswith("plotly") and n.endswith(".js")]


def partial_bundles():
    """``{file name: trace types}`` the site's extension says each partial bundle has."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "_ext"))
    from normlab_site import PARTIAL_BUNDLES, bundle_file

    return {bundle_file(name): set(types) for name, types in PARTIAL_BUNDLES.items()}


def test_partial_bundles_have_the_listed_trace_types(browser):
    """Each partial bundle served registers exactly the trace types the figure script
    chooses it for (a wrong list would pick a bundle that cannot draw a figure)."""
    if not (SITE / "_static").is_dir():
        pytest.skip("no built site")
    wrong = {}
    for name, types in partial_bundles().items():
        page = browser.new_page()
        try:
            page.set_content("<html><body></body></html>")
            page.add_script_tag(path=str(SITE / "_static" / name))
            has = set(page.evaluate("Object.keys(Plotly.PlotSchema.get().traces)"))
        finally:
            page.close()
        if has != types:
            wrong[name] = {"listed, not in bundle": sorted(types - has),
                           "in bundle, not listed": sorted(has - types)}
    assert not wrong, wrong


FIGURE_STATES = f"""() => [...document.querySelectorAll('.plotly-graph-div')].map(d => ({{
  id: d.id, near: ({IS_NEAR})(d), drawn: !!d.querySelector('.main-svg')}}))"""


@pytest.mark.parametrize("page_path", figure_pages())
def test_figures_load_lazily_from_one_partial_bundle(visit, page_path):
    """By itself a figure page draws only the figures near the viewport (and loads no
    plotly.js when there are none); scrolling to a far figure draws it; all in all the page
    loads one plotly.js bundle, a partial one (every page's trace types fit one)."""
    page_visit = visit(page_path, width=DESKTOP, draw_all=False)
    page = page_visit.page
    figures = page.evaluate(FIGURE_STATES)
    early = [f["id"] for f in figures if f["drawn"] and not f["near"]]
    assert not early, f"{page_path}: drawn before the reader came near: {early}"
    if not any(f["near"] for f in figures):
        assert not plotly_requests(page_visit), f"{page_path}: plotly.js with no figure near"
    far = [f["id"] for f in figures if not f["near"]]
    if far:  # scrolling to a far figure draws it
        page.evaluate(f"document.getElementById('{far[-1]}').scrollIntoView()")
        page.wait_for_function(f"document.getElementById('{far[-1]}').querySelector('.main-svg')",
                               timeout=SLOW_MS)
    draw_all(page)
    bundles = plotly_requests(page_visit)
    assert len(bundles) == 1 and bundles[0] in partial_bundles(), (
        f"{page_path}: plotly bundles {bundles}, expected one of {sorted(partial_bundles())}")


LONG_TASKS = """window.__normlabLongTasks = [];
new PerformanceObserver(list => list.getEntries().forEach(
  e => window.__normlabLongTasks.push(e.duration))).observe({type: 'longtask'});"""
TIMINGS = """() => ({
  fcp: (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime,
  longestTask: Math.max(0, ...window.__normlabLongTasks),
  longTasks: window.__normlabLongTasks.length,
  slowestDraw: Math.max(0, ...performance.getEntriesByType('measure')
    .filter(m => m.name.startsWith('normlab draw')).map(m => m.duration)),
  plotlyEval: (() => { const r = performance.getEntriesByType('resource')
    .find(e => /plotly/.test(e.name)); return r ? r.responseEnd : 0; })(),
  figures: document.querySelectorAll('.js-plotly-plot').length,
  plotlyAsync: [...document.scripts].filter(s => /plotly/.test(s.src)).every(s => s.async),
})"""


def test_figure_load_timings_are_reported(visit, record_property):
    """First paint and longest task of the intro page and every figure page (data only)."""
    rows = []
    for page_path in ["intro.html", *figure_pages()]:
        page = visit(page_path, width=DESKTOP, init_script=LONG_TASKS).page
        timing = page.evaluate(TIMINGS)
        assert timing["fcp"], f"{page_path}: no first-contentful-paint entry"
        rows.append((page_path, timing))
    intro_fcp = rows[0][1]["fcp"]
    lines = [f"{p}\t{t['fcp']:.0f}\t{t['fcp'] / intro_fcp:.2f}\t{t['longestTask']:.0f}\t"
             f"{t['longTasks']}\t{t['figures']}\t{t['slowestDraw']:.0f}\t{t['plotlyEval']:.0f}"
             for p, t in rows]
    header = ("page\tfirst paint ms\tx intro\tlongest task ms\tlong tasks\tfigures\t"
              "slowest figure draw ms\tplotly.js received at ms")
    print("\n" + "\n".join([header, *lines]))
    record_property("figure_load_timings", "\n".join([header, *lines]))
    if os.environ.get("NORMLAB_FIGURE_TIMINGS"):
        with open(os.environ["NORMLAB_FIGURE_TIMINGS"], "a", encoding="utf-8") as out:
            out.write("\n".join([header, *lines]) + "\n")
    blocking = [p for p, t in rows if not t["plotlyAsync"]]
    assert not blocking, f"plotly loaded by a blocking script on {blocking}"
