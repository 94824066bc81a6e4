"""Figures of chapter 3 (adaptive LayerNorm).

Every figure is built from precomputed traces (its sliders and buttons need no kernel)
with data rounded to 4 significant digits, so stored outputs reproduce on any x86 CPU.
"""

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from normlab.adaptive import ada_norm
from normlab.figures.plotting import BLUE, GREY, ORANGE, SKY, VERMILION, r4
from normlab.layer_norm import layer_norm

ARM_COLORS = {"adaln": BLUE, "adaln_default": SKY, "concat": ORANGE, "none": GREY}
ARM_NAMES = {"adaln": "adaLN-Zero", "adaln_default": "adaLN", "concat": "concatenate",
             "none": "no condition"}


def blog_formula(x, C=1.0, k=0.1, eps=1e-5):
    """The blog article's variant (Machine Learning Mastery, 2025), kept only to compare:
    ``C (1 − k x) ⊙ LN(x)``, with the *raw* ``x`` in the gain where the paper has the
    normalised ``y``."""
    return C * (1 - k * x) * layer_norm(x, x.shape[-1], eps=eps)


def adanorm_vs_blog_figure(x, shifts, C=1.0, k=0.1):
    """Output of AdaNorm (paper) and of the blog article's formula for the input ``x + b``; a
    slider picks ``b``. ``x``: one row ``(d,)``."""
    idx = list(range(x.numel()))
    fig = go.Figure()
    for b in shifts:
        visible = b == shifts[0]
        fig.add_trace(go.Scatter(x=idx, y=r4(ada_norm(x + b, x.numel(), C, k)), visible=visible,
                                 mode="lines+markers", line={"color": BLUE},
                                 name="AdaNorm (paper): C(1 − k·y) ⊙ y"))
        fig.add_trace(go.Scatter(x=idx, y=r4(blog_formula(x + b, C, k)), visible=visible,
                                 mode="lines+markers", line={"color": VERMILION, "dash": "dot"},
                                 marker={"symbol": "x"}, name="blog article: C(1 − k·x) ⊙ y"))
    steps = [{"method": "update", "label": f"{b:g}",
              "args": [{"visible": [j // 2 == i for j in range(2 * len(shifts))]}]}
             for i, b in enumerate(shifts)]
    fig.update_layout(
        title=f"Same normalised input, different gain: input x + b (C = {C:g}, k = {k:g})",
        xaxis_title="feature index i", yaxis_title="output z_i", height=480,
        legend={"orientation": "h", "y": 1.1, "x": 0},
        sliders=[{"active": 0, "steps": steps, "currentvalue": {"prefix": "offset b = "},
                  "pad": {"t": 50}}])
    return fig


def histogram(values, edges):
    """Probability density of ``values`` on fixed bin ``edges`` (so frames are comparable)."""
    counts, _ = np.histogram(np.asarray(values, dtype=np.float64), bins=edges, density=True)
    return counts


def conditioning_figure(h_by_class, h_plain, n_features=16):
    """How the condition moves the normalised activations of one adaLN-Zero block.

    ``h_by_class``: ``(K, B, D)`` modulated activations ``h`` for each class ``k``;
    ``h_plain``: ``(B, D)`` the same block's ``LN(x)`` before modulation. Left: density
    of all ``h`` values; right: per-feature mean ± std of ``h`` for the first
    ``n_features`` features. A slider picks the class.
    """
    h_by_class, h_plain = np.asarray(h_by_class), np.asarray(h_plain)
    lim = float(np.quantile(np.abs(h_by_class), 0.995))
    edges = np.linspace(-lim, lim, 61)
    centres = r4((edges[:-1] + edges[1:]) / 2)
    feats = list(range(n_features))
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=(
        "density of all activations", f"per feature (first {n_features}): mean ± std"))
    fig.add_trace(go.Scatter(x=centres, y=r4(histogram(h_plain, edges)), mode="lines",
                             line={"color": GREY, "dash": "dash", "width": 3},
                             name="LN(x), before modulation"), row=1, col=1)
    fig.add_trace(go.Scatter(x=feats, y=r4(h_plain[:, :n_features].mean(0)), mode="markers",
                             marker={"color": GREY, "symbol": "circle-open", "size": 9},
                             error_y={"array": r4(h_plain[:, :n_features].std(0))},
                             showlegend=False, name="LN(x)"), row=1, col=2)
    for k, h in enumerate(h_by_class):
        fig.add_trace(go.Bar(x=centres, y=r4(histogram(h, edges)), visible=k == 0,
                             marker_color=BLUE,  # opaque: 3:1 against the page
                             name="h = modulate(LN(x), shift(c), scale(c))"), row=1, col=1)
        fig.add_trace(go.Scatter(x=feats, y=r4(h[:, :n_features].mean(0)), mode="markers",
                                 marker={"color": BLUE, "size": 9}, visible=k == 0,
                                 error_y={"array": r4(h[:, :n_features].std(0))},
                                 showlegend=False, name=f"class {k}"), row=1, col=2)
    n = len(h_by_class)
    steps = [{"method": "update", "label": str(k),
              "args": [{"visible": [True, True] + [j // 2 == k for j in range(2 * n)]}]}
             for k in range(n)]
    fig.update_layout(
        title="adaLN-Zero: the class moves the distribution of the normalised activations",
        height=520, bargap=0,  # legend above the subplot titles
        legend={"orientation": "h", "x": 0, "y": 1.13, "yanchor": "bottom"},
        margin={"t": 140},
        sliders=[{"active": 0, "steps": steps, "currentvalue": {"prefix": "class c = "},
                  "pad": {"t": 50}}])
    fig.update_xaxes(title_text="activation value", row=1, col=1)
    fig.update_yaxes(title_text="density", row=1, col=1)
    fig.update_xaxes(title_text="feature index", row=1, col=2)
    fig.update_yaxes(title_text="h (mean ± std over the batch)", row=1, col=2)
    return fig


def loss_curves_figure(results, every=10):
    """Training loss of the three students; buttons switch the teacher.

    ``results``: ``{task: {arm: {"curve": [...], "params": int}}}``, one seed. Curves are
    averaged over windows of ``every`` steps (less minibatch noise, smaller output).
    """
    fig = go.Figure()
    tasks = list(results)
    for t, task in enumerate(tasks):
        for arm, r in results[task].items():
            curve = np.asarray(r["curve"])
            curve = curve[: len(curve) // every * every].reshape(-1, every).mean(1)
            fig.add_trace(go.Scatter(
                x=[every * (i + 1) for i in range(len(curve))], y=r4(curve), visible=t == 0,
                mode="lines", line={"color": ARM_COLORS[arm], "width": 3},
                name=f"{ARM_NAMES[arm]} ({r['params']:,} parameters)"))
    n = len(results[tasks[0]])
    buttons = [{"method": "update", "label": f"{task} teacher",
                "args": [{"visible": [j // n == t for j in range(n * len(tasks))]}]}
               for t, task in enumerate(tasks)]
    fig.update_layout(
        title={"text": "Training loss (mean squared error on standardised targets)",
               "y": 0.97, "yanchor": "top"},
        xaxis_title="training step", yaxis_title="train MSE (log scale)", yaxis_type="log",
        height=520, legend={"orientation": "h", "x": 0, "y": -0.2, "yanchor": "top"},
        updatemenus=[{"type": "buttons", "direction": "right", "buttons": buttons,
                      "x": 0, "y": 1.02, "xanchor": "left", "yanchor": "bottom"}],
        margin={"t": 110})
    return fig


@torch.no_grad()
def block_activations(model, x):
    """``(h_by_class, h_plain)`` for :func:`conditioning_figure`, from the first block of a
    trained adaLN-Zero :class:`normlab.experiments.conditioning.CondNet` on inputs ``x``:
    ``(B, d_in)``.

    The block's input ``inp(x)`` does not depend on the class, so ``LN(inp(x))`` is one
    reference for every class.
    """
    ada = model.blocks[0].norm
    h = model.inp(x)  # (B, hidden)
    classes = torch.arange(model.embed.num_embeddings)
    h_by_class = torch.stack([ada(h, model.embed(k.expand(len(x))))[0] for k in classes])
    return h_by_class.numpy(), layer_norm(h, h.shape[-1], eps=ada.eps).numpy()
