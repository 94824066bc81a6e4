"""Figures and measurements of chapter 2 (LayerNorm).

Every figure is built from precomputed traces (its sliders and buttons need no kernel)
with data rounded to 4 significant digits, so stored outputs reproduce on any x86 CPU.
"""

import math

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch.utils._python_dispatch import TorchDispatchMode

from normlab.figures.plotting import (
    BLACK,
    BLUE,
    GREEN,
    GREY,
    ORANGE,
    SKY,
    VERMILION,
    cube_scene,
    r4,
)
from normlab.layer_norm import layer_norm
from normlab.variance import cancellation_table

# --- invariance to a·x + b --------------------------------------------------------------------

def invariance_figure(x, shifts, scales, eps=1e-5):
    """Input ``a·x + b`` (left) and ``LayerNorm(a·x + b)`` (right) for one row ``x``.

    Two independent sliders: the scale slider only toggles which precomputed trace (one
    per ``a``) is visible, the shift slider only rewrites every trace's ``y`` for its ``b``,
    so either can move without resetting the other.
    """
    idx = list(range(x.numel()))
    a0, b0 = scales.index(1.0), shifts.index(0.0)

    def panels(b):  # [inputs for every a] + [outputs for every a]
        inputs = [a * x + b for a in scales]
        return [r4(v) for v in inputs] + [r4(layer_norm(v, x.numel(), eps=eps))
                                              for v in inputs]

    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=("input a·x + b", "output LayerNorm(a·x + b)"))
    fig.add_trace(go.Scatter(x=idx, y=r4(layer_norm(x, x.numel(), eps=eps)),
                             mode="lines", line={"color": GREY, "dash": "dash", "width": 3},
                             name="LayerNorm(x), for reference"), row=1, col=2)
    k = len(scales)
    for i, y in enumerate(panels(shifts[b0])):
        fig.add_trace(go.Scatter(x=idx, y=y, mode="lines+markers", visible=i % k == a0,
                                 showlegend=False, line={"color": BLUE if i < k else VERMILION},
                                 name=f"a = {scales[i % k]:g}"), row=1, col=1 + i // k)
    traces = list(range(1, 2 * k + 1))
    shift_steps = [{"method": "restyle", "label": f"{b:g}", "args": [{"y": panels(b)}, traces]}
                   for b in shifts]
    scale_steps = [{"method": "restyle", "label": f"{a:g}",
                    "args": [{"visible": [i % k == j for i in range(2 * k)]}, traces]}
                   for j, a in enumerate(scales)]
    fig.update_layout(
        title="Shift and scale the input: the output stays put (until a²σ² nears ε)",
        sliders=[{"active": b0, "steps": shift_steps, "y": -0.12, "len": 0.45, "x": 0,
                  "currentvalue": {"prefix": "shift b = "}},
                 {"active": a0, "steps": scale_steps, "y": -0.12, "len": 0.45, "x": 0.55,
                  "currentvalue": {"prefix": "scale a = "}}],
        height=540, legend={"orientation": "h", "y": 1.2, "x": 1, "xanchor": "right"},
        margin={"b": 130, "t": 120})
    fig.update_xaxes(title="feature i")
    fig.update_yaxes(title="value", range=[-45, 45], col=1)
    fig.update_yaxes(range=[-3, 3], col=2)
    return fig


def invariance_summary(x, shift, scale, eps):
    """Mean/std of ``a·x + b`` and of its LayerNorm, and how far the output moved (text)."""
    d = x.numel()
    z = scale * x + shift
    y = layer_norm(z, d, eps=eps)
    moved = (y - layer_norm(x, d, eps=1e-5)).abs().max().item()

    def tidy(v):  # round away last-bit noise (and its sign) so the text is the same anywhere
        return round(v.item(), 6) + 0.0

    return (f"input : mean {tidy(z.mean()):10.4g}   std {tidy(z.std(correction=0)):10.4g}\n"
            f"output: mean {tidy(y.mean()):10.4g}   std {tidy(y.std(correction=0)):10.4g}\n"
            f"max |LN(a·x+b) - LN(x)| = {moved:.3g}   (a²σ² / ε = "
            f"{(scale ** 2 * x.var(correction=0)).item() / eps:.3g})")


# --- geometry for d = 3 -----------------------------------------------------------------------

def geometry_figure(points, eps=1e-5):
    """d = 3: inputs, their centred versions (plane ⟂ 1) and LayerNorm images (circle, √3).

    ``points``: ``(n, 3)`` float64. Buttons switch the camera; one looks down (1, 1, 1).
    """
    centred = points - points.mean(-1, keepdim=True)
    normed = layer_norm(points, 3, eps=eps)
    t = np.linspace(0, 2 * np.pi, 73)
    e1, e2 = np.array([1, -1, 0]) / math.sqrt(2), np.array([1, 1, -2]) / math.sqrt(6)
    circle = math.sqrt(3) * (np.outer(np.cos(t), e1) + np.outer(np.sin(t), e2))
    grid = 3.5 * np.array([[-1, -1], [-1, 1], [1, 1], [1, -1]])
    plane = grid[:, :1] * e1 + grid[:, 1:] * e2
    fig = go.Figure(go.Mesh3d(x=r4(plane[:, 0]), y=r4(plane[:, 1]), z=r4(plane[:, 2]),
                              i=[0, 0], j=[1, 2], k=[2, 3], color=SKY, opacity=0.2,
                              hoverinfo="skip", name="plane Σx = 0", showlegend=True))
    fig.add_trace(go.Scatter3d(x=[-2.5, 2.5], y=[-2.5, 2.5], z=[-2.5, 2.5], mode="lines",
                               line={"color": BLACK, "width": 3, "dash": "dash"},
                               name="all-ones direction"))
    fig.add_trace(go.Scatter3d(x=r4(circle[:, 0]), y=r4(circle[:, 1]),
                               z=r4(circle[:, 2]), mode="lines", name="circle of radius √3",
                               line={"color": ORANGE, "width": 5}))
    path = torch.stack([points, centred, normed, torch.full_like(points, math.nan)], 1)
    path = path.reshape(-1, 3)  # input → centred → normalised, NaN breaks the line
    fig.add_trace(go.Scatter3d(x=r4(path[:, 0]), y=r4(path[:, 1]), z=r4(path[:, 2]),
                               mode="lines", line={"color": GREY, "width": 2},
                               hoverinfo="skip", name="x → x − μ → LayerNorm(x)"))
    for name, cloud, colour in (("input x", points, GREY), ("centred x − μ", centred, BLUE),
                                ("LayerNorm(x)", normed, VERMILION)):
        fig.add_trace(go.Scatter3d(x=r4(cloud[:, 0]), y=r4(cloud[:, 1]),
                                   z=r4(cloud[:, 2]), mode="markers", name=name,
                                   marker={"color": colour, "size": 4}))
    cameras = {"oblique view": {"x": 1.6, "y": -1.45, "z": 0.85},
               "look along (1, 1, 1)": {"x": 1.5, "y": 1.5, "z": 1.5},
               "side view of the plane": {"x": 1.5, "y": -1.5, "z": 0.0}}
    buttons = [{"label": k, "method": "relayout", "args": [{"scene.camera.eye": v}]}
               for k, v in cameras.items()]
    fig.update_layout(
        title="d = 3: centre (project onto Σx = 0), then scale onto the circle of radius √3",
        **cube_scene(3.5, cameras["oblique view"]),
        updatemenus=[{"buttons": buttons, "type": "buttons", "direction": "right",
                      "x": 0, "y": 1.06, "xanchor": "left"}],
        height=680, margin={"t": 90, "b": 10})
    return fig


# --- numerics ---------------------------------------------------------------------------------

CANCELLATION_CASES = {  # label: (stored dtype, accumulation dtype, offsets)
    "float32": (torch.float32, torch.float32, [1, 10, 100, 1e3, 1e4]),
    "bfloat16, accumulated in bfloat16": (torch.bfloat16, torch.bfloat16, [1, 10, 100, 1e3]),
    "bfloat16, accumulated in float32": (torch.bfloat16, torch.float32, [1, 10, 100, 1e3]),
}
ERROR_FLOOR = 1e-9  # exact results would sit at −∞ on a log axis; drawn here instead


def cancellation_tables(rows=200, d=256):
    """:func:`normlab.variance.cancellation_table` for each case of the figure."""
    return {label: cancellation_table(offsets, dtype, acc, rows=rows, d=d)
            for label, (dtype, acc, offsets) in CANCELLATION_CASES.items()}


def cancellation_figure(tables):
    """Median relative error of the variance vs the offset c of rows c + 𝒩(0, 1)."""
    fig = go.Figure()
    colours = {"one pass": VERMILION, "two pass": BLUE, "Welford": GREEN}
    for c, table in enumerate(tables.values()):
        for method, colour in colours.items():
            rows = [r for r in table if r["method"] == method]
            fig.add_trace(go.Scatter(
                x=[r["offset"] for r in rows], mode="lines+markers", name=method,
                y=r4([max(r["median_rel_error"], ERROR_FLOOR) for r in rows]),
                customdata=r4([r["negative_fraction"] for r in rows]), visible=c == 0,
                line={"color": colour, "dash": "solid" if method == "one pass" else "dot"},
                hovertemplate="offset %{x:g}<br>median rel. error %{y:.3g}<br>"
                              "negative in %{customdata:.0%} of rows"))
    fig.add_hline(y=1, line={"color": GREY, "dash": "dash"},
                  annotation_text="error = 100 % (no correct digit)",
                  annotation_position="top left")
    n = len(colours)
    buttons = [{"label": label, "method": "restyle",
                "args": [{"visible": [t // n == c for t in range(n * len(tables))]}]}
               for c, label in enumerate(tables)]
    fig.update_layout(
        title="Variance of rows c + 𝒩(0, 1): the one-pass formula loses every digit",
        xaxis={"title": "offset c (= |mean| / std)", "type": "log"},
        yaxis={"title": "median relative error of σ²", "type": "log",
               "range": [math.log10(ERROR_FLOOR) - 0.5, 4.5], "exponentformat": "power"},
        updatemenus=[{"buttons": buttons, "type": "buttons", "direction": "right",
                      "x": 0, "y": 1.14, "xanchor": "left"}],
        height=480, margin={"t": 110},
        legend={"x": 0.99, "y": 0.02, "xanchor": "right", "yanchor": "bottom"})
    return fig


# --- cost: memory traffic of the unfused reference ----------------------------------------------

class _Traffic(TorchDispatchMode):
    """Record every ATen op with the bytes it reads (tensor inputs) and writes (outputs)."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        outs = out if isinstance(out, (tuple, list)) else (out,)

        def nbytes(ts):
            return sum(t.numel() * t.element_size() for t in ts if isinstance(t, torch.Tensor))

        self.ops.append((func.overloadpacket.__name__, nbytes(args), nbytes(outs)))
        return out


def memory_traffic(fn, *args):
    """Run ``fn(*args)``; return ``[(aten op, bytes read, bytes written)]``, one per kernel.

    Each eager PyTorch op is one kernel that reads its inputs from memory and writes its
    output back, so this is the traffic of the unfused computation.
    """
    with _Traffic() as mode:
        fn(*args)
    return mode.ops
