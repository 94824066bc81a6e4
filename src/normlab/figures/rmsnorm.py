"""Figures and measurements of chapter 4 (RMSNorm).

Every figure is built from precomputed traces (no kernel needed on the site) with data
rounded to 4 significant digits, so stored outputs reproduce on any x86 CPU.
"""

import math
import time

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from normlab.experiments.deep_stack import DeepStack
from normlab.figures.plotting import BLUE, GREEN, GREY, ORANGE, SKY, VERMILION, cube_scene, r4
from normlab.layer_norm import layer_norm
from normlab.rms_norm import rms_norm

# u = 2^-p for p significant bits (round to nearest): half the gap between 1 and the next float.
UNIT_ROUNDOFF = {"bfloat16": 2.0**-8, "float16": 2.0**-11, "float32": 2.0**-24}


# --- where ε goes -------------------------------------------------------------------------

def eps_gap(rms, eps, d=64, seed=0):
    r"""Measured :math:`|y_\text{in}/y_\text{out} - 1|` for rows of RMS ``rms`` (float64).

    ``y_in``: ε inside the root; ``y_out``: ε added to the RMS. Shape ``rms.shape``.
    """
    g = torch.Generator().manual_seed(seed)
    row = torch.randn(d, generator=g, dtype=torch.float64)
    row = row / row.pow(2).mean().sqrt()  # RMS exactly 1
    x = torch.as_tensor(rms, dtype=torch.float64).reshape(-1, 1) * row  # (n, d)
    inside = rms_norm(x, d, eps=eps)
    outside = rms_norm(x, d, eps=eps, eps_inside_sqrt=False)
    return (inside / outside - 1).abs().amax(dim=-1).numpy()


def eps_placement_figure(eps_values, rms=None):
    """Relative difference of the two ε placements vs the input's RMS; a slider picks ε."""
    rms = np.logspace(-7, 2, 91) if rms is None else rms
    fig = go.Figure()
    dashes = {"bfloat16": "dot", "float16": "dashdot", "float32": "longdash"}
    for name, u in UNIT_ROUNDOFF.items():  # traces 0-2, always shown
        fig.add_trace(go.Scatter(x=r4([rms[0], rms[-1]]), y=r4([u, u]), mode="lines",
                                 line={"dash": dashes[name], "color": GREY, "width": 1.5},
                                 name=f"{name} rounding unit {u:.3g}"))
    for i, eps in enumerate(eps_values):
        visible = i == 0
        fig.add_trace(go.Scatter(x=r4(rms), y=r4(eps_gap(rms, eps)), mode="lines",
                                 line={"color": BLUE, "width": 3}, visible=visible,
                                 name="|y_inside / y_outside − 1|"))
        fig.add_trace(go.Scatter(x=r4([math.sqrt(eps)] * 2), y=[1e-12, 1], mode="lines",
                                 line={"color": VERMILION, "dash": "dash"}, visible=visible,
                                 name="RMS = √ε"))
    steps = [{"method": "update", "label": f"{eps:.3g}",
              "args": [{"visible": [True] * 3
                                   + [j // 2 == i for j in range(2 * len(eps_values))]}]}
             for i, eps in enumerate(eps_values)]
    fig.update_layout(
        title="ε inside vs outside the square root: relative difference of the outputs",
        xaxis={"title": "RMS of the input row", "type": "log", "exponentformat": "power"},
        yaxis={"title": "relative difference", "type": "log", "range": [-12, 0.2],
               "exponentformat": "power"},
        sliders=[{"active": 0, "steps": steps, "currentvalue": {"prefix": "ε = "}}],
        height=540, legend={"orientation": "h", "y": -0.45})
    return fig


# --- what it keeps and what it drops --------------------------------------------------------

def _norms(x):
    d = x.shape[-1]
    return x, rms_norm(x, d, eps=1e-6), layer_norm(x, d, eps=1e-6)


def invariance_figure(x, scales, shifts):
    """Input, RMSNorm and LayerNorm side by side; a menu picks rescaling ``a·x`` or shifting
    ``x + b``, a slider picks ``a`` or ``b``. Dashed: the untransformed ``x``."""
    titles = ("input x′", "RMSNorm(x′)", "LayerNorm(x′)")
    fig = make_subplots(rows=1, cols=3, subplot_titles=titles, horizontal_spacing=0.06)
    idx = list(range(1, x.numel() + 1))
    for col, ref in enumerate(_norms(x), start=1):  # traces 0-2: reference, always shown
        fig.add_trace(go.Scatter(x=idx, y=r4(ref), mode="lines+markers", showlegend=col == 1,
                                 line={"color": GREY, "dash": "dash"}, name="untransformed x"),
                      row=1, col=col)
    modes = {"rescale a·x": [(a, a * x) for a in scales],
             "shift x + b": [(b, x + b) for b in shifts]}
    colours = {"rescale a·x": BLUE, "shift x + b": ORANGE}
    sliders, buttons = [], []
    for m, (mode, cases) in enumerate(modes.items()):
        first = 3 + 3 * m  # traces of this mode: 3 + 3m … 5 + 3m
        start = len(cases) // 2 if m else 0
        for col, y in enumerate(_norms(cases[start][1]), start=1):
            fig.add_trace(go.Scatter(x=idx, y=r4(y), mode="lines+markers", visible=m == 0,
                                     showlegend=col == 1, name=mode,
                                     line={"color": colours[mode]}), row=1, col=col)
        steps = [{"method": "restyle", "label": f"{v:.3g}",
                  "args": [{"y": [r4(y) for y in _norms(xt)]}, [first, first + 1, first + 2]]}
                 for v, xt in cases]
        sliders.append({"active": start, "steps": steps, "visible": m == 0, "pad": {"t": 60},
                        "currentvalue": {"prefix": f"{mode.split()[0]}: " + ("a = " if m == 0
                                                                           else "b = ")}})
        visible = [True] * 3 + [k // 3 == m for k in range(3 * len(modes))]
        buttons.append({"label": mode, "method": "update",
                        "args": [{"visible": visible},
                                 {f"sliders[{k}].visible": k == m for k in range(len(modes))}]})
    fig.update_yaxes(range=[-3.5, 3.5], col=2)
    fig.update_yaxes(range=[-3.5, 3.5], col=3)
    fig.update_xaxes(title="feature i")
    fig.update_layout(title="Rescaling vs shifting the input: RMSNorm keeps only the first",
                      yaxis_title="value", sliders=sliders, height=480,
                      updatemenus=[{"buttons": buttons, "type": "buttons", "direction": "right",
                                    "x": 0, "y": 1.3, "xanchor": "left"}],
                      legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.3,
                              "yanchor": "top"}, margin={"t": 130, "b": 150})
    return fig


def sphere_figure(points, shifts, eps=1e-6):
    """d = 3: RMSNorm maps x to the sphere of radius √3; LayerNorm to its great circle
    ⟂ (1, 1, 1). A slider adds ``c·(1, 1, 1)`` to every input point."""
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, 37), np.linspace(0, np.pi, 19))
    radius = math.sqrt(3)
    fig = go.Figure(go.Surface(
        x=r4(radius * np.cos(u) * np.sin(v)), y=r4(radius * np.sin(u) * np.sin(v)),
        z=r4(radius * np.cos(v)), opacity=0.15, showscale=False, hoverinfo="skip",
        colorscale=[[0, SKY], [1, SKY]], name="sphere ‖y‖ = √3"))
    t = np.linspace(0, 2 * np.pi, 73)  # the circle: orthonormal basis of the plane ⟂ 1
    e1, e2 = np.array([1, -1, 0]) / math.sqrt(2), np.array([1, 1, -2]) / math.sqrt(6)
    circle = radius * (np.outer(np.cos(t), e1) + np.outer(np.sin(t), e2))
    fig.add_trace(go.Scatter3d(x=r4(circle[:, 0]), y=r4(circle[:, 1]), z=r4(circle[:, 2]),
                               mode="lines", line={"color": ORANGE, "width": 5},
                               name="circle: ‖y‖ = √3, Σy = 0"))

    def clouds(c):
        x = points + c
        return [x, rms_norm(x, 3, eps=eps), layer_norm(x, 3, eps=eps)]

    styles = [("input x", GREY, 3), ("RMSNorm(x)", BLUE, 4), ("LayerNorm(x)", VERMILION, 4)]
    for (name, colour, size), cloud in zip(styles, clouds(shifts[0]), strict=True):
        fig.add_trace(go.Scatter3d(x=r4(cloud[:, 0]), y=r4(cloud[:, 1]), z=r4(cloud[:, 2]),
                                   mode="markers", name=name,
                                   marker={"color": colour, "size": size}))
    steps = []
    for c in shifts:
        xyz = [[r4(cloud[:, k]) for cloud in clouds(c)] for k in range(3)]
        steps.append({"method": "restyle", "label": f"{c:.2g}",
                      "args": [{"x": xyz[0], "y": xyz[1], "z": xyz[2]}, [2, 3, 4]]})
    fig.update_layout(
        title="d = 3: RMSNorm projects onto a sphere, LayerNorm onto a circle on it",
        # oblique: looking along (1, 1, 1) the circle would hide the sphere's outline
        **cube_scene(3.2, {"x": 1.25, "y": -1.1, "z": 0.62}),
        sliders=[{"active": 0, "steps": steps, "currentvalue": {"prefix": "shift c = "}}],
        height=700, margin={"t": 60})
    return fig


# --- "RMSNorm preserves the mean", made precise ----------------------------------------------

def trained_stream(width=64, depth=4, steps=100, batch=128, offset=0.0, seed=0):
    """Inputs of the RMSNorms of a residual :class:`~normlab.experiments.deep_stack.DeepStack`
    (pre-norm, ReLU) briefly trained with Adam to imitate a random tanh stack.

    Inputs are ``𝒩(offset, 1)``; ``offset`` adds a component shared by all features.
    Returns ``[(x_l, weight_l)]`` for each block: rows ``(batch, width)`` and its γ.
    """
    # float64: 100 optimiser steps amplify last-bit differences between CPUs; in float64
    # they stay far below the 4 digits the figure shows.
    f64 = torch.float64
    stack = DeepStack(width, depth, norm="rmsnorm", seed=seed, dtype=f64)
    teacher = DeepStack(width, depth, activation="tanh", seed=seed + 1, dtype=f64)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(stack.parameters(), lr=1e-2)
    for _ in range(steps):
        x = torch.randn(batch, width, generator=g, dtype=f64) + offset
        loss = (stack(x) - teacher(x).detach()).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = torch.randn(batch, width, generator=g, dtype=f64) + offset
    out = []
    with torch.no_grad():
        for block in stack.blocks:
            out.append((x, block.norm.weight.detach().clone()))
            x = block(x)
    return out


def mean_to_rms(x):
    r""":math:`\mu(x)/\mathrm{RMS}(x)` per row, the cosine between ``x`` and ``(1, …, 1)``."""
    return x.mean(-1) / x.pow(2).mean(-1).sqrt()


def normalized_means(x, weight, eps=1e-6):
    """μ/RMS of each row before and after each norm: a dict of ``(rows,)`` tensors."""
    d = x.shape[-1]
    return {"input x": mean_to_rms(x),
            "RMSNorm, γ = 1": mean_to_rms(rms_norm(x, d, eps=eps)),
            "RMSNorm, trained γ": mean_to_rms(rms_norm(x, d, weight, eps=eps)),
            "LayerNorm, γ = 1": mean_to_rms(layer_norm(x, d, eps=eps))}


def sign_agreement(before, after, tol=1e-6):
    """Fraction of rows whose mean keeps its sign (a mean within ``tol`` of 0 counts as 0)."""
    def sign(t):
        return torch.where(t.abs() < tol, torch.zeros_like(t), t.sign())
    return (sign(before) == sign(after)).double().mean().item()


def mean_figure(stream):
    """Scatter of μ/RMS after vs before each norm; a slider picks the block."""
    markers = [{"color": BLUE, "symbol": "circle-open", "size": 9},  # ring around green dots
               {"color": GREEN, "symbol": "circle", "size": 5},
               {"color": VERMILION, "symbol": "x", "size": 6}]
    fig = go.Figure()
    per_layer = [normalized_means(x, w) for x, w in stream]
    for (name, after), marker in zip(list(per_layer[0].items())[1:], markers, strict=True):
        fig.add_trace(go.Scatter(x=r4(per_layer[0]["input x"]), y=r4(after), mode="markers",
                                 name=name, marker=marker))
    steps = []
    for layer, means in enumerate(per_layer):
        before, afters = means["input x"], list(means.values())[1:]
        steps.append({"method": "restyle", "label": str(layer),
                      "args": [{"x": [r4(before)] * 3, "y": [r4(a) for a in afters]}]})
    fig.update_layout(
        title="Row mean (relative to RMS) before vs after the norm, trained residual stack",
        xaxis_title="μ(x) / RMS(x) of the norm's input row",
        yaxis_title="μ(y) / RMS(y) of the output row", height=500,
        sliders=[{"active": 0, "steps": steps, "currentvalue": {"prefix": "block "}}])
    return fig


# --- cost ----------------------------------------------------------------------------------

def median_time(fn, repeats=30, warmup=3):
    """Median wall-clock seconds of ``fn()`` over ``repeats`` calls (after ``warmup``)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def time_norms(shape=(4096, 1024), repeats=30, seed=0):
    """Median forward time (s) of the from-scratch and the PyTorch norms on one float32 input."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    d = shape[-1]
    w, b = torch.ones(d), torch.zeros(d)
    calls = {"normlab.layer_norm": lambda: layer_norm(x, d, w, b),
             "normlab.rms_norm": lambda: rms_norm(x, d, w),
             "F.layer_norm": lambda: torch.nn.functional.layer_norm(x, (d,), w, b),
             "F.rms_norm": lambda: torch.nn.functional.rms_norm(x, (d,), w)}
    with torch.no_grad():
        return {name: median_time(fn, repeats) for name, fn in calls.items()}
