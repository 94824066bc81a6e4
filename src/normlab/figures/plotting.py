"""What every chapter's figures share: colours (with a light- and a dark-theme variant),
rounding and a dropdown.

Data are rounded to 4 significant digits so that stored outputs reproduce on any x86 CPU
and the pages stay small.

Figures are transparent, so a trace is seen against the page: white in the light theme,
``DARK_BG`` in the dark one. WCAG 2.1 asks non-text marks for a contrast ratio of at least
3:1 (``MIN_TRACE_CONTRAST``); several Okabe–Ito colours miss it on white (orange 2.25:1)
and black misses it on the dark page, so each theme gets its own variant of the palette
(:func:`theme_colours`): the same hue mixed towards black (light theme) or white (dark
theme) just far enough.
"""

import math
import re

# Okabe & Ito's colour-blind-safe palette, and a neutral grey.
BLUE, ORANGE, GREEN, VERMILION, PURPLE, SKY, YELLOW, BLACK = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
GREY = "#999999"
PALETTE = (BLUE, ORANGE, GREEN, VERMILION, PURPLE, SKY, YELLOW, BLACK)

# Page backgrounds behind the (transparent) figures: pydata-sphinx-theme light and dark.
LIGHT_BG, DARK_BG = "#ffffff", "#14181e"
MIN_TRACE_CONTRAST = 3.0  # WCAG 2.1 SC 1.4.11, non-text contrast
# Black stands for "the ink of the page": in the dark theme it becomes a light grey as
# readable as text there, not a mid grey that only just passes 3:1.
INK_CONTRAST = 9.0


def _rgb(colour):
    """``(r, g, b)`` in 0..255 of a ``#rrggbb`` colour."""
    if not isinstance(colour, str) or not re.fullmatch(r"#[0-9A-Fa-f]{6}", colour):
        raise ValueError(f"expected a colour like '#0072b2', got {colour!r}")
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def relative_luminance(colour):
    """WCAG relative luminance L = 0.2126 R + 0.7152 G + 0.0722 B of the linearised
    channels (c/12.92 for c ≤ 0.04045, else ((c + 0.055)/1.055)^2.4, c in 0..1)."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
              for c in (v / 255 for v in _rgb(colour))]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(a, b):
    """WCAG contrast ratio (L_lighter + 0.05) / (L_darker + 0.05), from 1 to 21."""
    high, low = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def with_contrast(colour, background, ratio=MIN_TRACE_CONTRAST):
    """``colour`` mixed towards black (light ``background``) or white (dark one) in steps
    of 1/64, as little as gives ``contrast_ratio(result, background) >= ratio``."""
    if not 1 <= ratio <= 21:
        raise ValueError(f"a contrast ratio lies in [1, 21], got {ratio}")
    target = (0, 0, 0) if relative_luminance(background) > 0.18 else (255, 255, 255)
    rgb = _rgb(colour)
    for step in range(65):
        t = step / 64
        channels = (round(c + t * (e - c)) for c, e in zip(rgb, target, strict=True))
        mixed = "#" + "".join(f"{c:02x}" for c in channels)
        if contrast_ratio(mixed, background) >= ratio:
            return mixed
    raise ValueError(f"no mix of {colour} reaches {ratio}:1 against {background}")


def theme_colours(theme):
    """``{palette colour: its variant}`` for ``theme`` "light" or "dark" (lower-case hex).

    Light: each colour of ``PALETTE`` and ``GREY`` against ``LIGHT_BG``. Dark: each *light*
    variant mapped to its dark one against ``DARK_BG`` (the site swaps the colours of a
    drawn, light-themed figure when the reader turns the dark theme on). Colours that need
    no change are left out.
    """
    if theme not in ("light", "dark"):
        raise ValueError(f"theme must be 'light' or 'dark', got {theme!r}")
    colours = (*PALETTE, GREY)
    light = {c.lower(): with_contrast(c, LIGHT_BG) for c in colours}
    if theme == "light":
        return {c: v for c, v in light.items() if c != v}
    dark = {light[c.lower()]: with_contrast(c, DARK_BG, INK_CONTRAST if c == BLACK else
                                            MIN_TRACE_CONTRAST) for c in colours}
    return {c: v for c, v in dark.items() if c != v}


def r4(values):
    """4 significant digits for plotly: a number, or nested lists of ``values``' shape
    (lists, arrays, tensors); ``None``, ``nan`` and ``inf`` become ``None`` (a gap)."""
    if values is None:
        return None
    if isinstance(values, (list, tuple)) or getattr(values, "ndim", 0) > 0:
        return [r4(v) for v in values]
    v = float(values)
    return float(f"{v:.4g}") if math.isfinite(v) else None


def recoloured(value, mapping):
    """``value`` (a figure's JSON: dicts, lists, strings) with every string that is a key
    of ``mapping`` (lower-case hex, compared case-insensitively) replaced by its value."""
    if isinstance(value, dict):
        return {k: recoloured(v, mapping) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [recoloured(v, mapping) for v in value]
    if isinstance(value, str):
        return mapping.get(value.lower(), value)
    return value


def cube_scene(lim, camera_eye, ticks=(-2, 0, 2)):
    """Layout of a 3-D figure in R³ with the axes x₁, x₂, x₃ over ``[-lim, lim]``, few
    ticks (so corner labels do not run together) and its legend in one row under the
    scene, where it covers no tick label."""
    axes = {f"{a}axis": {"title": f"x{s}", "range": [-lim, lim], "tickvals": list(ticks)}
            for a, s in zip("xyz", "₁₂₃", strict=True)}
    return {"scene": {**axes, "aspectmode": "cube", "camera": {"eye": camera_eye},
                      "domain": {"x": [0, 1], "y": [0.08, 1]}},
            "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": 0.07,
                       "yanchor": "top"}}


def dropdown(labels, n_traces_each):
    """Buttons that show the ``i``-th block of ``n_traces_each`` traces and hide the rest."""
    total = len(labels) * n_traces_each
    buttons = [{"label": label, "method": "update",
                "args": [{"visible": [i * n_traces_each <= k < (i + 1) * n_traces_each
                                      for k in range(total)]}]}
               for i, label in enumerate(labels)]
    return [{"buttons": buttons, "direction": "down", "x": 0.0, "xanchor": "left",
             "y": 1.03, "yanchor": "bottom", "showactive": True}]
