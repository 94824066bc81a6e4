"""Figures of chapter 5 (PyTorch's built-ins): saved-for-backward memory and the benchmark.

Controls switch between precomputed traces (no kernel needed); values are rounded to 4
significant digits so stored outputs reproduce on any x86 CPU.
"""

import plotly.graph_objects as go

from normlab.figures.plotting import BLUE, GREEN, PALETTE, dropdown, r4

PROVIDER_ORDER = ("eager", "torch", "compile")
# How the prose names each provider; the benchmark's own name follows in parentheses.
PROVIDER_NAMES = {"eager": "from-scratch (eager)", "torch": "built-in (torch)",
                  "compile": "torch.compile (compile)"}


def provider_name(provider):
    """Legend name of a benchmark provider, in the chapter's words."""
    return PROVIDER_NAMES.get(provider, provider)
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "cross", "star", "hexagon")


def saved_memory_figure(rows):
    """Bars of the extra memory each implementation saves for backward, in units of ``x``.

    ``rows``: dicts with ``label`` (implementation), ``dtype`` and ``ratio`` (new saved
    bytes / bytes of ``x``). A dropdown switches the input dtype.
    """
    dtypes = list(dict.fromkeys(r["dtype"] for r in rows))
    fig = go.Figure()
    for i, dtype in enumerate(dtypes):
        sel = [r for r in rows if r["dtype"] == dtype]
        fig.add_bar(x=[r["label"] for r in sel], y=[r4(r["ratio"]) for r in sel],
                    marker_color=[BLUE if "LayerNorm" in r["label"] else GREEN
                                  for r in sel],
                    text=[f'{r["ratio"]:.3g}×' for r in sel], textposition="outside",
                    name=dtype, visible=i == 0, showlegend=False)
    fig.update_layout(
        title="Memory saved for backward, beyond the inputs and parameters",
        xaxis_title="implementation", yaxis_title="saved bytes / bytes of x",
        updatemenus=dropdown([f"input dtype: {d}" for d in dtypes], 1),
        height=450, margin={"t": 120})
    return fig


def provenance(doc, sep="<br>"):
    """Where, when and with what a results file was measured: two parts joined by ``sep``."""
    triton = f", triton {doc['triton']}" if doc.get("triton") else ""
    threads = ""
    if doc["device"] == "cpu" and "threads" in doc:
        threads = f", {doc['threads']} thread(s), {doc.get('clock', 'wall')} clock"
    load = f", load avg {doc['loadavg']}" if doc.get("loadavg") is not None else ""
    return (f"{doc['device']}: {doc['host']}{threads}{load}{sep}"
            f"torch {doc['torch']}{triton} · python {doc['python']} · {doc['date'][:10]}")


def bench_figure(doc):
    """Effective bandwidth per shape and provider for one results document.

    A dropdown picks (norm, pass, dtype); error bars span the p20–p80 times.
    """
    results = doc["results"]
    combos = list(dict.fromkeys((r["norm"], r["pass"], r["dtype"]) for r in results))
    found = list(dict.fromkeys(r["provider"] for r in results))
    providers = [p for p in PROVIDER_ORDER if p in found] + [p for p in found
                                                             if p not in PROVIDER_ORDER]
    shapes = list(dict.fromkeys((r["M"], r["N"]) for r in results))
    fig = go.Figure()
    for i, combo in enumerate(combos):
        for j, provider in enumerate(providers):
            sel = [r for r in results
                   if (r["norm"], r["pass"], r["dtype"]) == combo and r["provider"] == provider]
            gb = [r["gbps"] for r in sel]
            fig.add_scatter(
                x=[f'{r["M"]}×{r["N"]}' for r in sel], y=[r4(g) for g in gb],
                error_y={"type": "data", "symmetric": False,
                         "array": [r4(g * r["ms_median"] / r["ms_p20"] - g)
                                   for g, r in zip(gb, sel, strict=True)],
                         "arrayminus": [r4(g - g * r["ms_median"] / r["ms_p80"])
                                        for g, r in zip(gb, sel, strict=True)]},
                customdata=[r4(r["ms_median"]) for r in sel],
                hovertemplate=f"{provider_name(provider)}<br>%{{x}}: %{{y}} GB/s, "
                              "%{customdata} ms<extra></extra>",
                name=provider_name(provider), mode="lines+markers", visible=i == 0,
                line={"color": PALETTE[j % len(PALETTE)]},
                marker={"symbol": SYMBOLS[j % len(SYMBOLS)], "size": 9})
    labels = [f"{n} · {p} · {d}" for n, p, d in combos]
    fig.update_layout(
        title=f"Effective bandwidth on {doc['host']} (higher is better)",
        xaxis_title="shape M×N (rows × hidden size)", yaxis_title="effective bandwidth (GB/s)",
        # Categories inset from the y axis, so the first shape's label clears the "0" tick.
        xaxis={"type": "category", "range": [-0.4, len(shapes) - 0.6]},
        yaxis={"rangemode": "tozero"},
        updatemenus=dropdown(labels, len(providers)), height=520,
        margin={"t": 120, "b": 150}, legend_title_text="provider",
        annotations=[{"text": provenance(doc), "showarrow": False, "xref": "paper",
                      "yref": "paper", "x": 0, "y": -0.3, "xanchor": "left",
                      "yanchor": "top", "align": "left", "font": {"size": 11}}])
    return fig


def grad_error_figure(rows):
    """Error of the parameter gradients against float64, versus the number of rows ``M``.

    ``rows``: dicts with ``provider``, ``output`` ("dweight"/"dbias"), ``M`` and ``err``.
    """
    fig = go.Figure()
    keys = list(dict.fromkeys((r["provider"], r["output"]) for r in rows))
    for provider, output in keys:
        sel = [r for r in rows if (r["provider"], r["output"]) == (provider, output)]
        j = PROVIDER_ORDER.index(provider) if provider in PROVIDER_ORDER else len(PROVIDER_ORDER)
        fig.add_scatter(x=[r["M"] for r in sel], y=[r4(r["err"]) for r in sel],
                        name=f"{provider_name(provider)}: {output}", mode="lines+markers",
                        line={"color": PALETTE[j], "dash": "solid" if output == "dweight"
                              else "dash"},
                        marker={"symbol": SYMBOLS[j], "size": 9})
    fig.update_layout(
        title="bfloat16 LayerNorm backward: error of the parameter gradients",
        xaxis={"type": "log", "title": "rows M summed into dweight, dbias",
               "exponentformat": "power", "dtick": 1},
        yaxis={"type": "log", "title": "max |error| / max |float64 value|",
               "exponentformat": "power", "dtick": 1},
        legend_title_text="provider: output", height=430)
    return fig
