"""Figures of chapter 1 (Why normalize?).

Every control (slider, buttons) switches between precomputed traces, so the figures work
on the static site with no kernel; data are rounded to 4 significant digits so stored
outputs reproduce on any x86 CPU.
"""

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from normlab.figures.plotting import BLUE, GREEN, GREY, ORANGE, PURPLE, VERMILION, r4

NORM_STYLE = {  # colour and dash per normalization, so lines differ without colour too
    None: {"name": "no norm", "color": VERMILION, "dash": "solid"},
    "layernorm": {"name": "LayerNorm", "color": BLUE, "dash": "solid"},
    "rmsnorm": {"name": "RMSNorm", "color": GREEN, "dash": "dash"},
    "batchnorm": {"name": "BatchNorm", "color": ORANGE, "dash": "dot"},
}


def _gain_label(gain):
    return "√2" if math.isclose(gain, math.sqrt(2)) else f"{gain:g}"


# --- which axes each normalization reduces over ---------------------------------------------

AXES = {  # (is the cell in the highlighted group?, caption)
    "BatchNorm": (lambda b, t, h: h == 2,
                  "BatchNorm: one μ, σ² per hidden unit, over batch × sequence"),
    "LayerNorm": (lambda b, t, h: (b, t) == (1, 2),
                  "LayerNorm: one μ, σ² per token, over the hidden units"),
    "RMSNorm": (lambda b, t, h: (b, t) == (1, 2),
                "RMSNorm: one mean of x² per token, over the hidden units (no μ)"),
}


def norm_axes_figure(batch=3, seq=4, hidden=6):
    """A ``(batch, seq, hidden)`` tensor as ``batch`` grids; buttons pick the normalization.

    The cells that share one set of statistics with the starred cell (batch element 1,
    position 2, hidden unit 2) are coloured.
    """
    fig = make_subplots(rows=1, cols=batch, horizontal_spacing=0.04,
                        subplot_titles=[f"batch element {b}" for b in range(batch)])

    def grids(in_group):
        return [[[float(in_group(b, t, h)) for h in range(hidden)] for t in range(seq)]
                for b in range(batch)]

    first = next(iter(AXES.values()))
    scale = [[0, GREY], [0.5, GREY], [0.5, BLUE], [1, BLUE]]
    for b, z in enumerate(grids(first[0])):
        fig.add_trace(go.Heatmap(z=z, zmin=0, zmax=1, colorscale=scale, showscale=False,
                                 xgap=3, ygap=3, hoverinfo="skip"), row=1, col=b + 1)
    buttons = [{"label": name, "method": "update",
                "args": [{"z": grids(in_group)}, {"title.text": caption}]}
               for name, (in_group, caption) in AXES.items()]
    fig.add_annotation(x=2, y=2, text="★", showarrow=False, font={"color": "white", "size": 18},
                       row=1, col=2)  # the number whose statistics we highlight
    fig.update_xaxes(title_text="hidden unit", dtick=1, showgrid=False, zeroline=False)
    fig.update_yaxes(autorange="reversed", dtick=1, showgrid=False, zeroline=False)
    fig.update_yaxes(title_text="sequence position", col=1)
    fig.update_layout(
        title={"text": first[1], "y": 0.97, "yanchor": "top"}, height=420, margin={"t": 150},
        updatemenus=[{"type": "buttons", "direction": "right", "buttons": buttons,
                      "x": 0, "y": 1.42, "xanchor": "left", "yanchor": "top"}])
    return fig


# --- activation and gradient scale at initialization -----------------------------------------

def init_profile_figure(records, active=None):
    """Activation RMS and gradient RMS per layer; columns plain/residual; a slider picks (L, g).

    ``records`` come from :func:`normlab.experiments.deep_stack.init_sweep`; ``active`` is the
    ``(depth, gain)`` shown first (default: the first one).
    """
    keys = list(dict.fromkeys((r["depth"], r["gain"]) for r in records))
    first = keys.index(active) if active is not None else 0
    fig = make_subplots(rows=2, cols=2, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=["plain stack: activation RMS",
                                        "residual stack: activation RMS",
                                        "plain stack: gradient RMS",
                                        "residual stack: gradient RMS"])
    owner = []  # slider step of each trace
    for step, key in enumerate(keys):
        for r in (r for r in records if (r["depth"], r["gain"]) == key):
            style = NORM_STYLE[r["norm"]]
            col = 2 if r["residual"] else 1
            for row, values in ((1, r["act_rms"]), (2, r["grad_rms"])):
                fig.add_trace(go.Scatter(  # x defaults to 0, 1, ..., L: the layer index
                    y=r4(values), mode="lines",
                    name=style["name"], legendgroup=style["name"],
                    showlegend=row == 1 and col == 1, visible=step == first,
                    line={"color": style["color"], "dash": style["dash"], "width": 2.5}),
                    row=row, col=col)
                owner.append(step)
    steps = [{"method": "update", "label": f"L={depth}, g={_gain_label(gain)}",
              "args": [{"visible": [o == step for o in owner]}]}
             for step, (depth, gain) in enumerate(keys)]
    fig.update_yaxes(type="log", exponentformat="power")
    fig.update_xaxes(title_text="layer l", row=2)
    fig.update_layout(
        title="At initialization: RMS of the activations x<sub>l</sub> and of the gradients "
              "∂ℓ/∂x<sub>l</sub>, per layer",
        height=640, legend={"orientation": "h", "y": -0.16},
        sliders=[{"active": first, "steps": steps, "y": -0.24,
                  "currentvalue": {"prefix": "depth and gain: "}}])
    return fig


# --- a short training run -------------------------------------------------------------------

TRAIN_COLOURS = (VERMILION, PURPLE, BLUE, GREEN, ORANGE)


def training_figure(records):
    """Training loss per step for each variant; a slider picks the learning rate.

    ``records`` come from :func:`normlab.experiments.stack_training.training_sweep`.
    """
    labels = list(dict.fromkeys(r["label"] for r in records))
    lrs = list(dict.fromkeys(r["lr"] for r in records))
    fig = go.Figure()
    for r in records:
        diverged = not all(math.isfinite(v) for v in r["losses"])
        colour = TRAIN_COLOURS[labels.index(r["label"]) % len(TRAIN_COLOURS)]
        fig.add_trace(go.Scatter(
            y=r4(r["losses"]), mode="lines+markers" if diverged else "lines",
            name=r["label"] + (" (diverged)" if diverged else ""), visible=r["lr"] == lrs[0],
            line={"color": colour, "width": 2.5}))
    steps = [{"method": "update", "label": f"{lr:g}",
              "args": [{"visible": [r["lr"] == lr for r in records]}]} for lr in lrs]
    # Diverged runs reach 1e200 and beyond: keep the axis on the runs that survive.
    finite = [v for r in records for v in r["losses"] if math.isfinite(v) and v > 0]
    start = max(r["losses"][0] for r in records if math.isfinite(r["losses"][0]))
    y_range = [math.log10(min(finite)) - 0.3, math.log10(start) + 1]
    fig.update_layout(
        title="Training loss, full-batch gradient descent, same data, seed and steps",
        xaxis_title="step", yaxis={"title": "mean squared error", "type": "log",
                                   "exponentformat": "power", "range": y_range},
        height=520, margin={"b": 150},
        sliders=[{"active": 0, "steps": steps, "pad": {"t": 60},
                  "currentvalue": {"prefix": "learning rate: "}}])
    return fig


def rms_profile_figure(act_rms, title):
    """One stack's activation RMS per layer (for the live playground)."""
    fig = go.Figure(go.Scatter(y=r4(act_rms), mode="lines+markers",
                               line={"color": BLUE, "width": 2.5}))
    fig.update_layout(title=title, xaxis_title="layer l", height=360,
                      yaxis={"title": "RMS of x<sub>l</sub>", "type": "log",
                             "exponentformat": "power"})
    return fig
