"""Sphinx extension for the normlab site: everything the pages load is served by the site.

* plotly.js is copied from the installed ``plotly`` package into ``_static``; on the pages
  that contain a figure stored by ``normlab.nb.show``, ``static/normlab-figures.js`` (a
  deferred script) loads it after the first paint and draws the figures, and
  ``static/normlab-figures.css`` styles the figures' keyboard controls and dark theme;
* MathJax 3 is copied from the ``django-static-mathjax`` wheel into ``_static/mathjax``
  (``mathjax_path`` in ``_config.yml`` points there);
* ``static/normlab.css`` makes figure text follow the light/dark theme and styles the
  playground note;
* sphinx-thebe's inline configuration script is dropped: thebe is disabled and its
  ``const THEBE_JS_URL`` declaration throws in the browser when emitted twice;
* a script or stylesheet linked twice on a page is linked once.
"""

import shutil
from importlib import resources
from pathlib import Path

STATIC = Path(__file__).parent / "static"
CSS = "normlab.css"
PLOTLY_JS = "plotly.min.js"
FIGURES_JS = "normlab-figures.js"
FIGURES_CSS = "normlab-figures.css"
FIGURE_MARKER = 'class="plotly-graph-div"'
# MathJax files the tex-chtml component loads lazily: TeX extensions, fonts, menu, a11y.
MATHJAX_KEEP = ("tex-chtml.js", "input", "output", "ui", "a11y")
MATHJAX_SKIP = ("svg", "svg.js")


def plotly_js_source():
    """Path of the plotly.js bundle that ships inside the installed plotly package."""
    return Path(str(resources.files("plotly") / "package_data" / PLOTLY_JS))


def mathjax_source():
    """Path of MathJax 3's ``es5`` folder inside the django-static-mathjax wheel."""
    return Path(str(resources.files("mathjax") / "static" / "mathjax" / "es5"))


def _ignore_unused_mathjax(folder, names):
    """``copytree`` filter: keep the CHTML component and what it loads, skip SVG output."""
    top = Path(folder) == mathjax_source()
    return [n for n in names if (top and n not in MATHJAX_KEEP) or n in MATHJAX_SKIP]


def add_stylesheet(app):
    """Link ``normlab.css`` from every page (the file is copied by ``copy_assets``)."""
    app.add_css_file(CSS)


def add_page_scripts(app, pagename, templatename, context, doctree):
    """On pages with a figure, the deferred figure script (it loads plotly.js itself, after
    the first paint: no render-blocking 4.8 MB script in ``<head>``) and its stylesheet.

    Also drop thebe's scripts and duplicates: Jupyter Book links every file in ``_static``
    and an extension may add the same file again (e.g. ``quiz.js``).
    """
    if FIGURE_MARKER in context.get("body", ""):
        app.add_js_file(FIGURES_JS, defer="defer")
        app.add_css_file(FIGURES_CSS)
    scripts = [s for s in context.get("script_files", []) if not _is_thebe(s)]
    context["script_files"] = _unique(scripts)
    context["css_files"] = _unique(context.get("css_files", []))


def _unique(assets):
    """Assets in order, each file (or inline body) once."""
    seen, kept = set(), []
    for asset in assets:
        key = getattr(asset, "filename", None) or getattr(asset, "attributes", {}).get("body")
        key = key or str(asset)
        if key not in seen:
            seen.add(key)
            kept.append(asset)
    return kept


def _is_thebe(script):
    """True for sphinx-thebe's inline config script and its loader."""
    filename = getattr(script, "filename", None) or ""
    body = getattr(script, "attributes", {}).get("body", "")
    return "THEBE_JS_URL" in body or filename.endswith("sphinx-thebe.js")


def copy_assets(app, exception):
    """Copy our CSS, plotly.js and MathJax into the HTML output's ``_static`` folder.

    Copied on every build (Sphinx does not overwrite existing static files), so an
    incremental build picks up a changed stylesheet or an upgraded plotly.
    """
    if exception is not None or app.builder.format != "html":
        return
    static = Path(app.outdir) / "_static"
    static.mkdir(parents=True, exist_ok=True)
    for name in (CSS, FIGURES_JS, FIGURES_CSS):
        shutil.copyfile(STATIC / name, static / name)
    shutil.copyfile(plotly_js_source(), static / PLOTLY_JS)
    shutil.copytree(
        mathjax_source(), static / "mathjax", ignore=_ignore_unused_mathjax, dirs_exist_ok=True
    )


def setup(app):
    """Sphinx entry point."""
    app.connect("builder-inited", add_stylesheet)
    app.connect("html-page-context", add_page_scripts)
    app.connect("build-finished", copy_assets)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
