"""Sphinx extension for the normlab site: everything the pages load is served by the site.

* plotly.js is copied from the installed ``plotly`` package into ``_static``, beside
  plotly.js's own partial bundles of the same version (``basic``: scatter, bar, pie, 1.2 MB;
  ``cartesian``; ``gl3d``: 3-D traces), downloaded once from the npm registry and checked
  against their pinned sha512; on the pages that contain a figure stored by
  ``normlab.nb.show``, ``static/normlab-figures.js`` (a deferred script) loads, after the
  first paint, the smallest bundle that draws every trace type on the page, draws the
  figures as they come near the viewport, and ``static/normlab-figures.css`` styles the
  figures' keyboard controls and dark theme;
* MathJax 3 is copied from the ``django-static-mathjax`` wheel into ``_static/mathjax``
  (``mathjax_path`` in ``_config.yml`` points there);
* ``static/normlab.css`` makes figure text follow the light/dark theme and styles the
  playground note;
* sphinx-thebe's inline configuration script is dropped: thebe is disabled and its
  ``const THEBE_JS_URL`` declaration throws in the browser when emitted twice;
* a script or stylesheet linked twice on a page is linked once.
"""

import base64
import hashlib
import io
import json
import re
import shutil
import tarfile
import urllib.request
from importlib import resources
from pathlib import Path

from sphinx.errors import ExtensionError

STATIC = Path(__file__).parent / "static"
CSS = "normlab.css"
PLOTLY_JS = "plotly.min.js"
FIGURES_JS = "normlab-figures.js"
FIGURES_CSS = "normlab-figures.css"
FIGURE_MARKER = 'class="plotly-graph-div"'
# plotly.js's partial bundles (npm ``plotly.js-<name>-dist-min``, smallest first): the trace
# types each registers, and npm's ``integrity`` of its tarball per plotly.js version. A
# plotly upgrade fails the build here until the new version's hashes are added.
PARTIAL_BUNDLES = {
    "basic": ("scatter", "bar", "pie"),
    "cartesian": ("scatter", "bar", "box", "heatmap", "histogram", "histogram2d",
                  "histogram2dcontour", "contour", "scatterternary", "violin", "image", "pie"),
    "gl3d": ("scatter", "scatter3d", "surface", "isosurface", "volume", "mesh3d", "cone",
             "streamtube"),
}
BUNDLE_INTEGRITY = {
    "4.1.1": {
        "basic": "sha512-1oNF8PeQx2hv/y7tqEVWKD3JGwn/MGEMQ8mL9HUwsaqG9FGy/OU5FHUHvzqbqxN4mnwZG"
                 "I9abTiE775C4kkjMQ==",
        "cartesian": "sha512-o8GrFeusncwBIxbBynRJpY4pkgVB6caM+JLpwrLYbbsO7dZ8FJ+SVN2Fr+L7kiG/Z"
                     "6w4P5O0Jus/Qr5EefHVeg==",
        "gl3d": "sha512-HNdhOi/mVr29u6BbzJvz1kAjEzCxwfaZNLipjNCxg33JE3RmRHhPDUd0LCuQMDcRR5LLF"
                "FfaSMMdtOWl0bERZA==",
    },
}
NPM_TARBALL = ("https://registry.npmjs.org/plotly.js-{name}-dist-min/-/"
               "plotly.js-{name}-dist-min-{version}.tgz")
# Downloaded bundles survive `make book` (which removes only _build/html and the doctrees).
BUNDLE_CACHE = Path(__file__).resolve().parents[1] / "_build" / "plotly-bundles"
# MathJax files the tex-chtml component loads lazily: TeX extensions, fonts, menu, a11y.
MATHJAX_KEEP = ("tex-chtml.js", "input", "output", "ui", "a11y")
MATHJAX_SKIP = ("svg", "svg.js")


def plotly_js_source():
    """Path of the plotly.js bundle that ships inside the installed plotly package."""
    return Path(str(resources.files("plotly") / "package_data" / PLOTLY_JS))


def plotly_js_version():
    """The plotly.js version of the installed plotly package's bundle (its banner)."""
    with plotly_js_source().open(encoding="utf-8") as bundle:
        return re.search(r"plotly\.js v(\S+)", bundle.read(500)).group(1)


def bundle_file(name):
    """File name of partial bundle ``name`` (as npm ships it and the site serves it)."""
    return f"plotly-{name}.min.js"


def partial_bundle(name, version):
    """Path of plotly.js partial bundle ``name`` at ``version``: from the cache, or
    downloaded from the npm registry and checked against ``BUNDLE_INTEGRITY``."""
    path = BUNDLE_CACHE / version / bundle_file(name)
    if path.exists():
        return path
    if version not in BUNDLE_INTEGRITY:
        raise ExtensionError(
            f"plotly.js {version} (installed plotly package) has no pinned partial bundles: "
            f"add npm's integrity of plotly.js-{{{','.join(PARTIAL_BUNDLES)}}}-dist-min@"
            f"{version} to BUNDLE_INTEGRITY in {__file__}")
    url = NPM_TARBALL.format(name=name, version=version)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            tarball = response.read()
    except OSError as error:
        raise ExtensionError(f"cannot download {url}: {error}") from error
    digest = "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    if digest != BUNDLE_INTEGRITY[version][name]:
        raise ExtensionError(f"{url}: sha512 {digest} is not the pinned "
                             f"{BUNDLE_INTEGRITY[version][name]}")
    with tarfile.open(fileobj=io.BytesIO(tarball)) as archive:
        script = archive.extractfile(f"package/{bundle_file(name)}").read()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(script)
    return path


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
    the first paint: no render-blocking script in ``<head>``; ``data-bundles`` lists the
    partial bundles it may pick from) and its stylesheet.

    Also drop thebe's scripts and duplicates: Jupyter Book links every file in ``_static``
    and an extension may add the same file again (e.g. ``quiz.js``).
    """
    if FIGURE_MARKER in context.get("body", ""):
        bundles = [[bundle_file(n), list(types)] for n, types in PARTIAL_BUNDLES.items()]
        app.add_js_file(FIGURES_JS, defer="defer", **{"data-bundles": json.dumps(bundles)})
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
    """Copy our CSS, plotly.js (full and partial bundles) and MathJax into ``_static``.

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
    version = plotly_js_version()
    for name in PARTIAL_BUNDLES:
        shutil.copyfile(partial_bundle(name, version), static / bundle_file(name))
    shutil.copytree(
        mathjax_source(), static / "mathjax", ignore=_ignore_unused_mathjax, dirs_exist_ok=True
    )


def setup(app):
    """Sphinx entry point."""
    app.connect("builder-inited", add_stylesheet)
    app.connect("html-page-context", add_page_scripts)
    app.connect("build-finished", copy_assets)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
