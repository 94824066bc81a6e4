"""What every chapter's figures share: colours, rounding and a dropdown.

Data are rounded to 4 significant digits so that stored outputs reproduce on any x86 CPU
and the pages stay small.
"""

import math

# Okabe & Ito's colour-blind-safe palette, and a neutral grey.
BLUE, ORANGE, GREEN, VERMILION, PURPLE, SKY, YELLOW, BLACK = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
GREY = "#999999"
PALETTE = (BLUE, ORANGE, GREEN, VERMILION, PURPLE, SKY, YELLOW, BLACK)


def r4(values):
    """4 significant digits for plotly: a number, or nested lists of ``values``' shape
    (lists, arrays, tensors); ``None``, ``nan`` and ``inf`` become ``None`` (a gap)."""
    if values is None:
        return None
    if isinstance(values, (list, tuple)) or getattr(values, "ndim", 0) > 0:
        return [r4(v) for v in values]
    v = float(values)
    return float(f"{v:.4g}") if math.isfinite(v) else None


def dropdown(labels, n_traces_each):
    """Buttons that show the ``i``-th block of ``n_traces_each`` traces and hide the rest."""
    total = len(labels) * n_traces_each
    buttons = [{"label": label, "method": "update",
                "args": [{"visible": [i * n_traces_each <= k < (i + 1) * n_traces_each
                                      for k in range(total)]}]}
               for i, label in enumerate(labels)]
    return [{"buttons": buttons, "direction": "down", "x": 0.0, "xanchor": "left",
             "y": 1.03, "yanchor": "bottom", "showactive": True}]
