"""Figures of chapter 6: gradient norms at initialization, the training grid and the seeds.

Every figure is built from the committed JSON results
(``normlab.experiments.results.load_results``) with precomputed traces and data rounded
to 4 significant digits, so it needs no kernel on the static site and its stored output
reproduces on any machine.
"""

from statistics import mean

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from normlab.experiments.seed_stats import final_losses, paired_difference, seed_comparisons
from normlab.figures.plotting import BLACK, BLUE, GREEN, GREY, VERMILION, r4

# One colour per placement, black for "no norm".
COLORS = {"post": VERMILION, "pre": BLUE, "sandwich": GREEN, "none": BLACK}
DASHES = {"layernorm": "solid", "rmsnorm": "dot", "none": "dash"}
LABELS = {"layernorm": "LayerNorm", "rmsnorm": "RMSNorm", "none": "no norm"}
SYMBOLS = {"layernorm": "circle", "rmsnorm": "diamond"}


def _label(norm, placement):
    return LABELS[norm] if norm == "none" else f"{LABELS[norm]}, {placement}-norm"


def _color(norm, placement):
    return COLORS["none" if norm == "none" else placement]


def _shown(norm, on):
    """Plotly visibility: the exploding no-norm curves start hidden (legend click shows them)
    so that they do not squeeze the normalized curves into one decade of a log axis."""
    if not on:
        return False
    return "legendonly" if norm == "none" else True


def grad_norm_figure(results):
    """‖∂L/∂W₂‖ per layer at initialization; a slider picks the depth (precomputed
    traces), starting at the deepest stack."""
    runs = results["runs"]
    depths = sorted({r["depth"] for r in runs})
    fig = go.Figure()
    for depth in depths:
        for r in (r for r in runs if r["depth"] == depth):
            fig.add_trace(go.Scatter(
                x=list(range(1, depth + 1)), y=r4(r["grad_norm"]), mode="lines+markers",
                name=_label(r["norm"], r["placement"]), meta=r["norm"],
                visible=_shown(r["norm"], depth == depths[-1]),
                line={"color": _color(r["norm"], r["placement"]), "dash": DASHES[r["norm"]]}))
    per_depth = len(fig.data) // len(depths)
    steps = [{"method": "update", "label": str(depth),
              "args": [{"visible": [_shown(t.meta, i // per_depth == k)
                                    for i, t in enumerate(fig.data)]},
                       {"xaxis.range": [0.5, depth + 0.5]}]}
             for k, depth in enumerate(depths)]
    fig.update_layout(
        title="Gradient norm of each layer's MLP output weight at initialization",
        xaxis={"title": "layer (1 = next to the embeddings)", "range": [0.5, depths[-1] + 0.5]},
        yaxis={"title": "‖∂L/∂W₂‖<sub>F</sub> (log scale)", "type": "log"},
        sliders=[{"active": len(depths) - 1, "steps": steps, "currentvalue": {"prefix": "depth: "},
                  "pad": {"t": 50}}],
        legend={"title": "norm, placement"}, height=520)
    return fig


def last_layer_figure(results):
    """The last layer's gradient norm against depth (log–log), with a 1/√L guide line."""
    runs = results["runs"]
    fig = go.Figure()
    for norm, placement in dict.fromkeys((r["norm"], r["placement"]) for r in runs):
        rows = sorted((r["depth"], r["grad_norm"][-1]) for r in runs
                      if (r["norm"], r["placement"]) == (norm, placement))
        fig.add_trace(go.Scatter(
            x=[d for d, _ in rows], y=r4([g for _, g in rows]), mode="lines+markers",
            name=_label(norm, placement), visible=_shown(norm, True),
            line={"color": _color(norm, placement), "dash": DASHES[norm]}))
    pre = sorted((r["depth"], r["grad_norm"][-1]) for r in runs
                 if (r["norm"], r["placement"]) == ("layernorm", "pre"))
    (d0, g0), depths = pre[0], [d for d, _ in pre]
    fig.add_trace(go.Scatter(x=depths, y=r4([g0 * (d0 / d) ** 0.5 for d in depths]),
                             mode="lines", name="∝ 1/√L (guide)",
                             line={"color": GREY, "dash": "longdash", "width": 1}))
    fig.update_layout(
        title="Last layer's gradient norm at initialization against depth",
        xaxis={"title": "number of layers L (log scale)", "type": "log",
               "tickvals": depths, "ticktext": [str(d) for d in depths]},
        yaxis={"title": "‖∂L/∂W₂‖<sub>F</sub> of the last layer (log scale)", "type": "log"},
        legend={"title": "norm, placement"}, height=480)
    return fig


def _moving_average(values, window):
    """Trailing mean over ``window`` steps (fewer at the start); ``None`` stops the curve."""
    out, acc = [], []
    for v in values:
        if v is None:
            break
        acc = (acc + [v])[-window:]
        out.append(sum(acc) / len(acc))
    return out


def loss_curves_figure(grid, window=10):
    """Training loss (moving average) and validation loss per configuration; buttons pick
    the runs without warm-up, with warm-up, or all of them."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=(f"training loss ({window}-step moving average)",
                                        "validation loss"))
    warm = []
    for run in grid["runs"]:
        c = run["config"]
        name = _label(c["norm"], c["placement"]) + (", warm-up" if c["warmup_steps"] else "")
        style = {"color": _color(c["norm"], c["placement"]), "dash": DASHES[c["norm"]],
                 "width": 1 if c["warmup_steps"] else 2}
        train = r4(_moving_average(run["train_loss"], window))
        fig.add_trace(go.Scatter(x=list(range(1, len(train) + 1)), y=train, name=name,
                                 legendgroup=name, line=style), row=1, col=1)
        fig.add_trace(go.Scatter(x=run["val_steps"], y=r4(run["val_loss"]), name=name,
                                 legendgroup=name, showlegend=False, mode="lines+markers",
                                 line=style), row=1, col=2)
        warm += [bool(c["warmup_steps"])] * 2
    buttons = [{"label": label, "method": "restyle", "args": [{"visible": visible}]}
               for label, visible in [
                   ("no warm-up", [not w for w in warm]), ("warm-up", warm),
                   ("all", [True] * len(warm))]]
    for trace, w in zip(fig.data, warm, strict=True):
        trace.visible = not w
    fig.update_layout(
        title={"text": f"Character-level LM on Persuasion, lr {grid['base_config']['lr']:g}, "
                       "same seed for every run", "y": 0.97, "yanchor": "top"},
        updatemenus=[{"type": "buttons", "direction": "right", "buttons": buttons,
                      "x": 0, "xanchor": "left", "y": 1.1, "yanchor": "bottom"}],
        height=640, margin={"t": 130},
        legend={"orientation": "h", "x": 0, "y": -0.18, "yanchor": "top"})
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="cross-entropy (nats/char)", col=1)
    return fig


def seed_spread_figure(*results):
    """Top: final validation loss of every seed (dots) and the mean (bar) for each norm and
    placement. Bottom: the paired differences seed by seed, with the mean and its 95 % interval
    (Student t); a comparison whose interval excludes 0 exceeds the spread between seeds.
    Stacked, so that the long category labels of both panels fit a phone's width."""
    finals = {}
    for result in results:
        finals.update(final_losses(result))
    fig = make_subplots(rows=2, cols=1, vertical_spacing=0.16,
                        subplot_titles=("final loss per seed", "paired differences"))
    for (norm, placement), by_seed in finals.items():
        label = _label(norm, placement)
        values = [by_seed[s] for s in sorted(by_seed)]
        style = {"color": _color(norm, placement), "symbol": SYMBOLS[norm], "size": 9}
        fig.add_trace(go.Scatter(
            x=r4(values), y=[label] * len(values), mode="markers", marker=style,
            text=[f"seed {s}" for s in sorted(by_seed)], name=label, showlegend=False),
            row=1, col=1)
        fig.add_trace(go.Scatter(
            x=r4([mean(values)]), y=[label], mode="markers", showlegend=False, name="mean",
            marker={"color": style["color"], "symbol": "line-ns-open", "size": 22,
                    "line": {"width": 3}}), row=1, col=1)
    for name, a, b in seed_comparisons(finals):
        cmp = paired_difference(finals[a], finals[b])
        fig.add_trace(go.Scatter(
            x=r4(cmp["diffs"]), y=[name] * cmp["n"], mode="markers", showlegend=False,
            marker={"color": GREY, "size": 8}, text=[f"seed {s}" for s in cmp["seeds"]],
            name=name), row=2, col=1)
        fig.add_trace(go.Scatter(
            x=r4([cmp["mean"]]), y=[name], mode="markers", showlegend=False,
            name="mean, 95 % interval", marker={"color": BLACK, "size": 11},
            error_x={"type": "data", "symmetric": False,
                     "array": r4([cmp["high"] - cmp["mean"]]),
                     "arrayminus": r4([cmp["mean"] - cmp["low"]])}), row=2, col=1)
    fig.add_vline(x=0, line={"color": GREY, "dash": "dash", "width": 1}, row=2, col=1)
    fig.update_layout(
        title={"text": "Five seeds per configuration, lr 0.003, no warm-up", "y": 0.97,
               "yanchor": "top"},
        height=820, margin={"t": 110})
    fig.update_xaxes(title_text="validation cross-entropy (nats/char)", row=1, col=1)
    fig.update_xaxes(title_text="second minus first, one dot per seed (nats/char)", row=2, col=1)
    fig.update_yaxes(autorange="reversed")
    return fig

