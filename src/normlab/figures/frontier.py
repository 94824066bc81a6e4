"""Figures of chapter 8, built from the committed grids (``normlab/data/frontier_*.json``).

Every seed is drawn (thin lines or single markers), so the spread between seeds is on the
figure next to any difference between configurations. Controls are precomputed traces.
"""

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from normlab.experiments.frontier import final_loss, variant
from normlab.figures.plotting import (
    BLACK,
    BLUE,
    GREEN,
    GREY,
    ORANGE,
    PURPLE,
    SKY,
    VERMILION,
    dropdown,
    r4,
)

QK_COLORS = {"none": VERMILION, "head": BLUE, "projection": GREEN}
QK_LABELS = {"none": "no QK-norm", "head": "QK-norm per head (Qwen3, Gemma 3)",
             "projection": "QK-norm over the projection (OLMo 2)"}


VARIANT_COLORS = {"post": VERMILION, "deepnorm": ORANGE, "pre": BLUE, "pre+LNS": PURPLE,
                  "peri": GREEN, "olmo2": SKY}
DASHES = {"deepnorm": "dash", "pre+LNS": "dot"}  # drawn over post / pre without hiding them
VARIANT_LABELS = {"post": "post-norm", "deepnorm": "DeepNorm (post)", "pre": "pre-norm",
                  "pre+LNS": "pre-norm + LayerNorm Scaling", "peri": "peri / sandwich",
                  "olmo2": "OLMo 2 (norm after sub-layer)"}


def qk_logit_figure(results):
    """Largest attention logit during training, one line per run; a slider picks the LR."""
    lrs = sorted({r["config"]["lr"] for r in results["runs"]})
    fig = go.Figure()
    for k, lr in enumerate(lrs):
        for r in (r for r in results["runs"] if r["config"]["lr"] == lr):
            qk, seed = r["config"]["qk_norm"], r["config"]["seed"]
            fig.add_trace(go.Scatter(
                x=r["probe_steps"], y=r4(r["max_logit"]), mode="lines", visible=k == 0,
                name=QK_LABELS[qk], legendgroup=qk, showlegend=seed == 0, meta=lr,
                line={"color": QK_COLORS[qk], "width": 2 if seed == 0 else 1}))
    steps = [{"method": "update", "label": f"{lr:g}",
              "args": [{"visible": [t.meta == lr for t in fig.data]}]} for lr in lrs]
    fig.update_layout(
        title="Largest attention logit during training",
        xaxis={"title": "training step"},
        yaxis={"title": "max attention logit (log scale)", "type": "log"},
        sliders=[{"active": 0, "steps": steps, "currentvalue": {"prefix": "learning rate: "},
                  "pad": {"t": 50}}],
        legend={"orientation": "h", "x": 0, "y": -0.45, "yanchor": "top"}, height=640,
        margin={"b": 160})
    return fig


QK_OFFSETS = {"none": 0.9, "head": 1.0, "projection": 1.11}  # side by side on the log axis


def qk_loss_figure(results, unigram=None):
    """Final training loss against learning rate, one marker per seed (variants side by
    side), on a log axis; diverged runs are drawn as crosses on the top edge. Dashed lines:
    the loss at step 0 (mean over runs) and, if given, the ``unigram`` loss (letter
    frequencies only)."""
    fig = go.Figure()
    lrs = sorted({r["config"]["lr"] for r in results["runs"]})
    losses = [final_loss(r) for r in results["runs"]]
    top = max(v for v in losses if v is not None) * 1.05
    for qk in QK_LABELS:
        runs = [(r, v) for r, v in zip(results["runs"], losses, strict=True)
                if r["config"]["qk_norm"] == qk]
        ok = [(r["config"]["lr"] * QK_OFFSETS[qk], v) for r, v in runs if v is not None]
        bad = [r["config"]["lr"] * QK_OFFSETS[qk] for r, v in runs if v is None]
        fig.add_trace(go.Scatter(x=[lr for lr, _ in ok], y=r4([v for _, v in ok]),
                                 mode="markers", name=QK_LABELS[qk], legendgroup=qk,
                                 marker={"color": QK_COLORS[qk], "size": 9}))
        if bad:
            fig.add_trace(go.Scatter(x=bad, y=[r4(top)] * len(bad), mode="markers",
                                     name=QK_LABELS[qk] + ": diverged", legendgroup=qk,
                                     marker={"color": QK_COLORS[qk], "symbol": "x",
                                             "size": 12}))
    start = sum(r["train_loss"][0] for r in results["runs"]) / len(results["runs"])
    ends = [lrs[0] * 0.7, lrs[-1] * 1.4]
    for value, name, color, dash in ((start, "loss at step 0", GREY, "dash"),
                                     (unigram, "letter frequencies only (unigram)", BLACK,
                                      "dot")):
        if value is not None:
            fig.add_trace(go.Scatter(x=ends, y=[r4(value)] * 2, mode="lines", name=name,
                                     line={"color": color, "dash": dash, "width": 1.5}))
    fig.update_layout(
        title="Final training loss vs learning rate",
        xaxis={"title": "learning rate (log scale)", "type": "log", "tickvals": lrs,
               "ticktext": [f"{lr:g}" for lr in lrs]},
        yaxis={"title": "training loss, last 10 steps (nats/char, log scale)", "type": "log",
               "dtick": "D2"},
        legend={"orientation": "h", "x": 0, "y": -0.2, "yanchor": "top"}, height=560)
    return fig


PROFILE_VIEWS = (("rms", "init", "stream RMS at init"), ("rms", "final", "stream RMS, trained"),
                 ("grad", "init", "grad norm at init"), ("grad", "final", "grad norm, trained"),
                 ("update", "init", "block update at init"),
                 ("update", "final", "block update, trained"))
GRAD_NORM = "‖∂L/∂W<sub>out</sub>‖<sub>F</sub>"
PROFILE_AXES = {"rms": "RMS of the stream after block ℓ (log scale)",
                "grad": f"{GRAD_NORM} of block ℓ's MLP (log scale)",
                "update": "‖x_ℓ − x_ℓ₋₁‖ / ‖x_ℓ₋₁‖ (log scale)"}


def profile_figure(results):
    """Per-layer profiles of the placement grid; a menu picks the quantity and the time
    (at initialization or after training). One line per seed."""
    runs = [r for r in results["runs"] if not r["diverged"]]
    fig = go.Figure()
    for i, (metric, when, _) in enumerate(PROFILE_VIEWS):
        for r in runs:
            name, seed = variant(r["config"]), r["config"]["seed"]
            values = r[when][metric]
            fig.add_trace(go.Scatter(
                x=list(range(1, len(values) + 1)), y=r4(values), mode="lines+markers",
                name=VARIANT_LABELS[name], legendgroup=name, showlegend=seed == 0,
                visible=i == 0, line={"color": VARIANT_COLORS[name], "dash": DASHES.get(name),
                                      "width": 2 if seed == 0 else 1}))
    fig.update_layout(
        title="Per-layer profile, 8 layers",
        xaxis={"title": "block ℓ (1 = next to the embeddings)", "dtick": 1},
        yaxis={"title": "value (log scale; the menu says which)", "type": "log"},
        updatemenus=dropdown([label for _, _, label in PROFILE_VIEWS], len(runs)),
        legend={"orientation": "h", "x": 0, "y": -0.2, "yanchor": "top"}, height=560)
    return fig


def dyt_alpha_figure(results):
    """DyT's α, or the fraction of its inputs with |αx| > 2, for the first DyT of each block
    during training on the whole text; a menu switches. One line per block and seed."""
    fig = go.Figure()
    runs = [r for r in results["runs"]
            if r["config"]["norm"] == "dyt" and r["config"]["train_chars"] is None]
    colors = (BLUE, ORANGE, GREEN, VERMILION, PURPLE, SKY)
    views = (("alpha", "α"), ("saturated", "saturated fraction |αx| > 2"))
    for k, (key, _) in enumerate(views):
        for r in runs:
            for layer in range(len(r["dyt"][0][key])):
                fig.add_trace(go.Scatter(
                    x=r["probe_steps"], y=r4([p[key][layer] for p in r["dyt"]]),
                    mode="lines", name=f"block {layer + 1}", legendgroup=str(layer),
                    showlegend=r["config"]["seed"] == 0, visible=k == 0,
                    line={"color": colors[layer % 6],
                          "width": 2 if r["config"]["seed"] == 0 else 1}))
    fig.update_layout(title="DyT per block during training",
                      xaxis={"title": "training step"}, yaxis={"title": "α or saturated fraction"},
                      updatemenus=dropdown([label for _, label in views], len(fig.data) // 2),
                      height=480, legend={"orientation": "h", "x": 0, "y": -0.2, "yanchor": "top"})
    return fig


def dyt_regime_figure(results):
    """Validation loss and train–validation gap for LayerNorm and DyT in the two data
    regimes; one marker per seed."""
    fig = go.Figure()
    chars = next(r["config"]["train_chars"] for r in results["runs"] if r["config"]["train_chars"])
    for norm, label, color, offset in (("layernorm", "LayerNorm", BLUE, -0.08),
                                       ("dyt", "DyT", VERMILION, 0.08)):
        runs = [r for r in results["runs"] if r["config"]["norm"] == norm]
        x = [(0 if r["config"]["train_chars"] is None else 1) + offset for r in runs]
        fig.add_trace(go.Scatter(x=x, y=r4([r["val_loss"] for r in runs]), mode="markers",
                                 name=f"{label}: validation loss",
                                 marker={"color": color, "size": 10}))
        fig.add_trace(go.Scatter(x=x, y=r4([r["train_val_loss"] for r in runs]),
                                 mode="markers", name=f"{label}: loss on its training text",
                                 marker={"color": color, "size": 9, "symbol": "circle-open"}))
    fig.update_layout(title="LayerNorm vs DyT, two data regimes",
                      xaxis={"title": "training text", "tickvals": [0, 1],
                             "ticktext": ["whole text", f"first {chars:,} chars"],
                             "range": [-0.4, 1.4], "zeroline": False},
                      yaxis={"title": "cross-entropy (nats/char)"}, height=480,
                      legend={"orientation": "h", "x": 0, "y": -0.2, "yanchor": "top"})
    return fig


DEPTH_VIEWS = (("rms", "stream RMS after block ℓ"), ("grad", f"{GRAD_NORM} of block ℓ's MLP"))


def _log_range(values, pad=1.15):
    """A log axis' range (log10 units) holding every value with a margin."""
    return [math.log10(min(values) / pad), math.log10(max(values) * pad)]


def depth_figure(results):
    """Per-layer stream RMS (top) and gradient norm (bottom) at initialization for the six
    placements; a slider picks the depth (opening at the deepest). One line per seed; the y
    axes stay fixed, so moving the slider shows how each profile changes with depth."""
    depths = sorted({r["config"]["n_layers"] for r in results["runs"]})
    shown = len(depths) - 1
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=[title for _, title in DEPTH_VIEWS])
    for k, depth in enumerate(depths):
        for r in (r for r in results["runs"] if r["config"]["n_layers"] == depth):
            name, seed = variant(r["config"]), r["config"]["seed"]
            for row, (metric, _) in enumerate(DEPTH_VIEWS, start=1):
                values = r["init"][metric]
                fig.add_trace(go.Scatter(
                    x=list(range(1, depth + 1)), y=r4(values), mode="lines+markers",
                    name=VARIANT_LABELS[name], legendgroup=name,
                    showlegend=seed == 0 and row == 1, visible=k == shown, meta=depth,
                    marker={"size": 4}, line={"color": VARIANT_COLORS[name],
                                              "dash": DASHES.get(name),
                                              "width": 2 if seed == 0 else 1}), row=row, col=1)
    steps = [{"method": "update", "label": str(depth),
              "args": [{"visible": [t.meta == depth for t in fig.data]},
                       {"xaxis2.range": [0.5, depth + 0.5]}]} for depth in depths]
    for row, (metric, _) in enumerate(DEPTH_VIEWS, start=1):
        values = [v for r in results["runs"] for v in r["init"][metric]]
        fig.update_yaxes(type="log", range=_log_range(values), dtick="D2", row=row, col=1)
    fig.update_yaxes(title_text="RMS (log scale)", row=1, col=1)
    fig.update_yaxes(title_text="grad norm (log scale)", row=2, col=1)
    fig.update_xaxes(title_text="block ℓ (1 = next to the embeddings)",
                     range=[0.5, depths[shown] + 0.5], row=2, col=1)
    fig.update_layout(
        title="Per-layer profile at initialization, by depth",
        sliders=[{"active": shown, "steps": steps, "currentvalue": {"prefix": "layers: "},
                  "pad": {"t": 60}}],
        # below the slider, as in qk_logit_figure (about 180 px under the plot area)
        legend={"orientation": "h", "x": 0, "y": -0.39, "yanchor": "top"}, height=800,
        margin={"b": 240})
    return fig
