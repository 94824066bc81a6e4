"""Notebook helpers used by every chapter: ``setup``, ``show``, ``playground``, ``show_source``,
``glue``, ``table``.

Each helper produces outputs that are identical on every run (so strict nbval can compare
them) and that render both in a live kernel (JupyterLab, Notebook, Colab) and on the static
site built by Jupyter Book, where no kernel exists. Heavy libraries are imported lazily.
"""

import inspect
import random
import re
import sys
from pathlib import Path

from normlab.nb_table import table  # noqa: F401 - chapters call nb.table(rows, headers)

PLAYGROUND_NOTE = "Interactive playground: runs live on Binder/Colab or locally."

# Plotly config shared by the site and live renderers: resize with the page, no logo.
PLOTLY_CONFIG = {"responsive": True, "displaylogo": False}

# Default text colour of every figure: a mid grey readable on white and on dark backgrounds.
# The site's CSS (``_ext/normlab_site``) recolours exactly this grey to the theme's text colour.
FONT_COLOR = "#666666"
_GRID = "rgba(128, 128, 128, 0.25)"
_GRID_3D = "rgba(128, 128, 128, 0.8)"
_LINE = "rgba(128, 128, 128, 0.6)"
_CONTROL_BG = "rgba(128, 128, 128, 0.15)"
_DIV_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def setup(seed=0):
    """Make a chapter deterministic: seed python, numpy and torch; fix print precision.

    Torch runs on one thread so float32 reductions happen in the same order on any
    machine (chapters are small, so this costs little time).
    """
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    torch.set_printoptions(precision=4, sci_mode=False)
    np.set_printoptions(precision=4, suppress=True)


def _on_colab():
    """True inside a Google Colab kernel."""
    return "google.colab" in sys.modules


_TRACES_3D = {"scatter3d", "surface", "mesh3d", "cone", "streamtube", "volume", "isosurface"}


def _theme_layout(fig):
    """Layout defaults that read well in light and dark themes (transparent backgrounds)."""
    axis = {"gridcolor": _GRID, "zerolinecolor": _LINE, "linecolor": _LINE}
    control = {"bgcolor": _CONTROL_BG, "bordercolor": _LINE}
    scene = {}
    if any(trace.type in _TRACES_3D for trace in fig.data):
        # 3D axes draw an opaque light panel by default; keep only their grid lines.
        # A 3-D grid is drawn thin and in perspective: a more opaque grey than the 2-D grid.
        axis_3d = {**axis, "gridcolor": _GRID_3D, "backgroundcolor": "rgba(0, 0, 0, 0)",
                   "showbackground": False}
        scene = {"scene": {"xaxis": axis_3d, "yaxis": axis_3d, "zaxis": axis_3d}}
    return {
        **scene,
        "paper_bgcolor": "rgba(0, 0, 0, 0)",
        "plot_bgcolor": "rgba(0, 0, 0, 0)",
        "font": {"color": FONT_COLOR},
        "xaxis": axis,
        "yaxis": axis,
        "sliderdefaults": {**control, "activebgcolor": _LINE},
        "updatemenudefaults": control,
    }


def themed(fig):
    """Return a copy of ``fig`` whose template uses the theme-neutral defaults, whose
    palette colours are their light-theme variants (``theme_colours("light")``) and whose
    log axes label every tick in full.

    Settings made on the figure itself still win over the template.
    """
    import plotly.graph_objects as go

    from normlab.figures.plotting import recoloured, theme_colours

    fig = go.Figure(fig)
    light = theme_colours("light")
    fig = go.Figure(recoloured(fig.to_plotly_json(), light))
    template = go.layout.Template(fig.layout.template)
    template.layout.update(_theme_layout(fig))
    fig.layout.template = template
    # A log axis labels its ticks in full ("20", "0.05"), not as bare mantissas, and a
    # vertical one ticks at 1, 2, 5 (not 1…9, whose full labels crowd a phone's plot); axes
    # labelled in powers of ten (10², 2×10²) keep plotly's small digits.
    for axis in [*fig.select_xaxes(), *fig.select_yaxes()]:
        if axis.type != "log" or axis.exponentformat == "power":
            continue
        if axis.plotly_name.startswith("yaxis") and axis.dtick is None:
            axis.dtick = "D2"
        try:
            axis.minorloglabels = "complete"
        except ValueError:  # plotly < 6 (Colab's 5.24) has no such option: mantissas there
            pass
    return fig


def figure_label(fig, alt=None):
    """Text alternative of a figure: ``alt``, else its title with HTML tags removed."""
    import html

    title = fig.layout.title.text if fig.layout.title else None
    text = alt or re.sub(r"<[^>]+>", " ", title or "")
    text = " ".join(html.unescape(text).split())
    if not text:
        raise ValueError("a figure needs a title or an alt= text (its text alternative)")
    return text


def _figure_html(fig, div_id, label):
    """Deterministic ``<div>`` + script; plotly.js is loaded by the page, not the output.

    The script only queues the figure (``window.normlabFigures``): the site loads plotly.js
    deferred, after the text is painted, and ``normlab-figures.js`` draws the queue (and
    adds the keyboard controls, the narrow-screen layout and the dark-theme colours, whose
    ``theme_colours("dark")`` map travels with each figure). On Colab, which has neither,
    plotly's own HTML loads plotly.js from its CDN and draws at once.

    The plotly div gets ``role="figure"`` and ``aria-label`` (the figure's text
    alternative). Not ``role="img"``: its children are presentational, which would hide
    the mode bar, sliders and buttons plotly draws inside (axe: nested-interactive).
    """
    import html
    import json

    from normlab.figures.plotting import theme_colours

    height = fig.layout.height or 450
    attrs = f'role="figure" aria-label="{html.escape(label, quote=True)}" '
    if _on_colab():
        return fig.to_html(
            full_html=False, include_plotlyjs="cdn", div_id=div_id, config=PLOTLY_CONFIG,
            default_width="100%", default_height=f"{height}px",
        ).replace(f'<div id="{div_id}" ', f'<div id="{div_id}" {attrs}', 1)
    spec = (f'{{"id": {json.dumps(div_id)}, "figure": {fig.to_json()}, '
            f'"config": {json.dumps(PLOTLY_CONFIG)}, '
            f'"dark": {json.dumps(theme_colours("dark"), sort_keys=True)}}}')
    spec = spec.replace("</", "<\\/")  # no "</script>" inside the script
    return (f'<div id="{div_id}" {attrs}class="plotly-graph-div" '
            f'style="height:{height}px; width:100%;"></div>\n'
            f'<script type="text/javascript">(window.normlabFigures = window.normlabFigures'
            f' || []).push({spec}); window.normlabDrawFigures && normlabDrawFigures();'
            f'</script>')


def show(fig, div_id, alt=None):
    """Display a plotly figure so it renders live in Jupyter and statically on the site.

    The output bundle holds ``text/html`` (used by the site and by Colab, with a fixed
    ``div_id`` so the stored output is reproducible) and ``application/vnd.plotly.v1+json``
    (rendered natively by JupyterLab, Notebook 7 and VS Code). The figure's text
    alternative (``aria-label``) is ``alt`` or, by default, its title without HTML.
    """
    import json

    from IPython.display import display

    if not _DIV_ID.match(div_id):
        raise ValueError(f"div_id must look like 'ch01-short-name', got {div_id!r}")
    label = figure_label(fig, alt)
    fig = themed(fig)
    spec = json.loads(fig.to_json())
    spec["config"] = PLOTLY_CONFIG
    bundle = {
        "text/html": _figure_html(fig, div_id, label),
        "application/vnd.plotly.v1+json": spec,
        "text/plain": f"<plotly figure '{div_id}'>",
    }
    display(bundle, raw=True)


def playground(fn, **widgets):
    """A live ipywidgets playground for ``fn``; the static site shows a short note instead.

    ``widgets`` are ipywidgets controls or ``interact`` abbreviations, e.g.
    ``playground(plot, eps=(1e-6, 1e-2, 1e-4))``. The cell's output bundle carries the widget
    view (preferred by live frontends) plus an HTML/plain note (preferred by the site, which
    has no kernel). ``fn``'s own output is captured and written into the widget's state,
    never to the cell, so the stored cell output is identical however the notebook runs
    (nbclient routes widget output into widget state, nbval would see it as cell output).
    """
    import functools

    from IPython.display import display
    from ipywidgets import Output, VBox, interactive

    # interactive() turns abbreviations into controls; the stub keeps fn's signature.
    controls = interactive(functools.wraps(fn)(lambda **kwargs: None), **widgets).kwargs_widgets
    out = Output()

    def refresh(change=None):
        out.outputs = _captured_outputs(fn, {c._kwarg: c.value for c in controls}, change)

    for control in controls:
        control.observe(refresh, "value")
    refresh()
    bundle = {
        "application/vnd.jupyter.widget-view+json": widget_view(VBox([*controls, out])),
        "text/html": f'<p class="normlab-playground-note">{PLAYGROUND_NOTE}</p>',
        "text/plain": PLAYGROUND_NOTE,
    }
    display(bundle, raw=True)


def widget_view(widget):
    """The ``application/vnd.jupyter.widget-view+json`` data that shows ``widget`` live.

    Built here rather than taken from ``widget._repr_mimebundle_()``: ipywidgets 8 has that
    method, ipywidgets 7 (Colab's 7.7.x) displays through ``_ipython_display_`` instead. Both
    generations speak widget protocol 2.0, so the same bundle works with either.
    """
    return {"version_major": 2, "version_minor": 0, "model_id": widget.model_id}


# myst-nb's mime prefix for a glued value that is stored but not shown (``display=False``).
GLUE_PREFIX = "application/papermill.record/"


def glue(name, value, display=True):
    """Store ``value`` under ``name`` for the book's ``{glue:text}`name``` roles.

    ``myst_nb.glue`` when myst-nb is installed (building the book); where it is not (Binder,
    Colab, a student's ``pip install normlab``) the same output is written here, so the
    package needs no book-building tools at run time and the stored outputs are identical.
    """
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        myst_glue = _glue
    myst_glue(name, value, display=display)


def _glue(name, value, display=True):
    """myst-nb 1.x's ``glue``: the value's display bundle, tagged with ``scrapbook`` metadata."""
    from IPython.core.formatters import format_display_data
    from IPython.display import display as ipy_display

    bundle, metadata = format_display_data(value)
    prefix = "" if display else GLUE_PREFIX
    metadata["scrapbook"] = {"name": name, "mime_prefix": prefix}
    ipy_display({prefix + k: v for k, v in bundle.items()}, raw=True, metadata=metadata)


def _captured_outputs(fn, kwargs, change):
    """Run ``fn(**kwargs)`` and return its stdout/stderr/displays as nbformat output dicts.

    The first call (``change is None``) lets exceptions propagate, so a broken playground
    fails the notebook; later calls, from a slider, show the error in the widget.
    """
    from IPython.utils.capture import capture_output

    with capture_output() as captured:
        try:
            fn(**kwargs)
        except Exception as error:
            if change is None:
                raise
            print(f"{type(error).__name__}: {error}", file=sys.stderr)
    streams = [("stdout", captured.stdout), ("stderr", captured.stderr)]
    outputs = [{"output_type": "stream", "name": n, "text": t} for n, t in streams if t]
    for rich in captured.outputs:
        data, metadata = rich.data, rich.metadata
        outputs.append({"output_type": "display_data", "data": data, "metadata": metadata})
    return tuple(outputs)


def _unwrap(obj):
    """Follow ``functools.wraps`` chains and Triton ``JITFunction.fn`` / ``Autotuner.fn``."""
    while True:
        inner = inspect.unwrap(obj)
        inner = getattr(inner, "fn", inner)
        if inner is obj:
            return obj
        obj = inner


def _relative_file(obj):
    """Source file relative to the directory that holds the top-level package."""
    module = inspect.getmodule(obj)
    top = sys.modules[module.__name__.split(".")[0]]
    root = Path(inspect.getfile(top)).resolve().parent.parent
    return Path(inspect.getsourcefile(obj)).resolve().relative_to(root).as_posix()


def source_listing(obj):
    """Markdown for the real source of ``obj``: a caption line and a python code block."""
    obj = _unwrap(obj)
    lines, start = inspect.getsourcelines(obj)
    code = "".join(lines).rstrip("\n")
    fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", code)), default=0))
    name = f"{inspect.getmodule(obj).__name__}.{obj.__qualname__}"
    end = start + len(lines) - 1
    caption = f"**`{name}`** — `{_relative_file(obj)}`, lines {start}–{end}"
    return f"{caption}\n\n{fence}python\n{code}\n{fence}\n"


def show_source(obj):
    """Display the source of a normlab function or class as a highlighted listing.

    The listing is a stored output, so strict nbval fails as soon as ``src/`` changes
    without re-executing the chapter: the book cannot drift from the package.
    """
    from IPython.display import Markdown, display

    display(Markdown(source_listing(obj)))


class PlotlyJsonMimeRenderer:
    """myst-nb mime-render plugin (entry point ``myst_nb.mime_renderers``).

    ``show`` stores each figure twice: as ``text/html`` (what the site renders) and as
    ``application/vnd.plotly.v1+json`` (for live frontends). myst-nb renders every mime type
    of a bundle before choosing one and would warn that the JSON one is unknown; this
    plugin renders it to nothing, so the site picks the ``text/html`` sibling.
    """

    mime_priority_overrides = ()

    @staticmethod
    def handle_mime(renderer, data, inline):
        """Render the plotly JSON mime type to no nodes; reject every other type."""
        if data.mime_type == "application/vnd.plotly.v1+json":
            return []
        return None
