"""Sphinx extension: pages do not load Font Awesome's JavaScript (1.5 MB).

pydata-sphinx-theme links ``scripts/fontawesome.js`` from every page "so that users can add
custom icons": it swaps each ``<i class="fa-...">`` for an inline SVG. The theme's stylesheet
already draws the same icons with the Font Awesome web fonts, and this book adds no custom
icon, so the script is dead weight on a first visit. The theme writes the ``<script>`` tag
straight into its template (no Sphinx asset to remove), hence it is taken out of the HTML
files once they are written.
"""

import re
from pathlib import Path

FONTAWESOME_JS = re.compile(
    r'[ \t]*<script\b[^>]*\bsrc="[^"]*_static/scripts/fontawesome\.js[^"]*"[^>]*>\s*</script>\n?'
)


def without_fontawesome_js(html):
    """The page's HTML without its ``<script>`` tag for Font Awesome's JavaScript."""
    return FONTAWESOME_JS.sub("", html)


def strip_fontawesome_js(app, exception):
    """Remove the Font Awesome script tag from every HTML page of the build."""
    if exception is not None or app.builder.format != "html":
        return
    for page in Path(app.outdir).rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        lean = without_fontawesome_js(html)
        if lean != html:
            page.write_text(lean, encoding="utf-8")


def setup(app):
    """Sphinx entry point."""
    app.connect("build-finished", strip_fontawesome_js)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
