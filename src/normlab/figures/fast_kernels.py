"""Figures and measurements of chapter 7 (fast kernels): memory traffic of the eager
reference, a roofline with vendor-spec ceilings, and the fraction-of-copy table.

Controls switch between precomputed traces (no kernel needed); values are rounded to 4
significant digits so stored outputs reproduce on any x86 CPU.
"""

import plotly.graph_objects as go
import torch

from normlab.bench.report import bytes_moved
from normlab.figures.layernorm import memory_traffic
from normlab.figures.plotting import BLACK, BLUE, ORANGE, PALETTE, dropdown, r4
from normlab.layer_norm import layer_norm
from normlab.rms_norm import rms_norm

# NVIDIA H100 SXM5 datasheet (vendor specifications, not measurements). Tensor-core peaks are
# the dense numbers: the sheet's headline 1,979 TFLOP/s for BF16 assumes 2:4 sparsity.
H100_SPEC = {"name": "H100 SXM5 (vendor spec)", "bandwidth": 3.35e12,
             "peak": {"bfloat16": 989.4e12, "float32": 67e12},
             "peak_label": {"bfloat16": "BF16 tensor cores", "float32": "FP32 CUDA cores"}}
REFERENCE = {"layernorm": layer_norm, "rmsnorm": rms_norm}


def _is_view(name):
    """True for ATen ops that return a view (expand, view, detach): no kernel, no traffic."""
    packet = getattr(torch.ops.aten, name)
    return any(getattr(packet, o).is_view for o in packet.overloads())


def eager_kernels(norm, pass_, M=64, N=1024, dtype=torch.float32, seed=0):
    """Kernels of the eager reference, ``[(op, bytes read, bytes written)]``.

    Every non-view ATen op of ``normlab.layer_norm``/``rms_norm`` (and of its autograd
    backward for ``pass_ == "fwd+bwd"``) is one kernel that reads its tensor inputs and
    writes its outputs.
    """
    g = torch.Generator().manual_seed(seed)
    x, dy = (torch.randn(M, N, generator=g).to(dtype) for _ in range(2))
    weight = torch.ones(N, dtype=dtype)
    bias = torch.zeros(N, dtype=dtype) if norm == "layernorm" else None
    leaves = [t.requires_grad_(pass_ == "fwd+bwd") for t in (x, weight, bias) if t is not None]

    def step():
        y = REFERENCE[norm](*leaves[:1], N, *leaves[1:])
        if pass_ == "fwd+bwd":
            y.backward(dy)

    return [op for op in memory_traffic(step) if not _is_view(op[0])]


def flops_per_element(norm, pass_, M=64, N=1024):
    """Arithmetic of the formula per element of x: one operation per element of each float32
    kernel's largest operand (casts excluded). A model, good to a small factor."""
    ops = eager_kernels(norm, pass_, M, N, torch.float32)
    return sum(max(read, written) for _, read, written in ops) / (4 * M * N)


def traffic_summary(norm, pass_, M=64, N=1024, dtype=torch.float32):
    """Kernels launched, bytes moved and flops per element of x: eager vs the fused model."""
    ops = eager_kernels(norm, pass_, M, N, dtype)
    elements = M * N
    return {"norm": norm, "pass": pass_, "dtype": str(dtype).removeprefix("torch."),
            "kernels": len(ops), "eager_bytes": sum(r + w for _, r, w in ops) / elements,
            "fused_bytes": bytes_moved(pass_, M, N, dtype) / elements,
            "flops": flops_per_element(norm, pass_, M, N)}


def traffic_figure(norms=("layernorm", "rmsnorm"), passes=("fwd", "fwd+bwd"), M=64, N=1024,
                   dtype=torch.bfloat16):
    """Bytes each eager kernel moves per element of x, one bar per kernel (read + written),
    beside the fused kernel's total; a dropdown picks norm and pass."""
    labels, fig = [], go.Figure()
    for norm in norms:
        for pass_ in passes:
            ops = eager_kernels(norm, pass_, M, N, dtype)
            kernels = [f"{i + 1}·{op}" for i, (op, *_) in enumerate(ops)]
            first = not labels
            for k, (name, color) in enumerate((("read", BLUE), ("written", ORANGE))):
                fig.add_bar(x=kernels, y=[r4(op[1 + k] / (M * N)) for op in ops], name=name,
                            marker_color=color, visible=first, legendgroup=name)
            fused = bytes_moved(pass_, M, N, dtype) / (M * N)
            fig.add_scatter(x=[kernels[0], kernels[-1]], y=[r4(fused)] * 2, mode="lines",
                            line={"color": BLACK, "dash": "dash"}, visible=first,
                            name=f"fused kernel, all of {pass_}")
            labels.append(f"{norm} {pass_}")
    fig.update_layout(
        barmode="stack", height=460, margin={"t": 110},
        title=f"Eager reference, {dtype}: bytes per element of x, kernel by kernel",
        xaxis={"title": "kernel (in launch order)", "tickangle": -60},
        yaxis_title="bytes moved / element of x",
        updatemenus=dropdown(labels, 3),
        legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"})
    return fig


def roofline_points(dtype, spec=H100_SPEC, gemm=4096):
    """``[(label, arithmetic intensity in flop/byte)]`` for the roofline of ``dtype``."""
    dt = getattr(torch, dtype)
    points = []
    for norm in ("layernorm", "rmsnorm"):
        s = traffic_summary(norm, "fwd", dtype=dt)
        points.append((f"{norm} fwd, fused", s["flops"] / s["fused_bytes"]))
        points.append((f"{norm} fwd, eager", s["flops"] / s["eager_bytes"]))
    if dtype == "bfloat16":  # for contrast: a square matmul reads A, B and writes C once
        points.append((f"GEMM {gemm}³ (tensor cores)", 2 * gemm**3 / (3 * gemm**2 * 2)))
    return points


def _label_position(label):
    """Where a roofline point's label goes: LayerNorm's above and RMSNorm's below their
    (nearly coincident) points, the GEMM's left of it, away from the plot's edge."""
    if label.startswith("GEMM"):
        return "top left"
    return "top right" if label.startswith("layernorm") else "bottom right"


def roofline_figure(spec=H100_SPEC, dtypes=("bfloat16", "float32")):
    """Attainable flop/s = min(peak, intensity × bandwidth) for both compute roofs, with the
    kernels placed by arithmetic intensity; buttons switch the input dtype (element size)."""
    fig = go.Figure()
    intensity = [10 ** (k / 8) for k in range(-16, 33)]  # 0.01 … 10⁴ flop/byte
    bw = spec["bandwidth"]
    for dtype, peak in spec["peak"].items():
        fig.add_scatter(x=[r4(a) for a in intensity],
                        y=[r4(min(peak, a * bw) / 1e12) for a in intensity], mode="lines",
                        line={"color": BLACK, "dash": "solid" if dtype == "float32" else "dot"},
                        name=f"{spec['peak_label'][dtype]}: {peak / 1e12:.3g} TFLOP/s, "
                             f"ridge {peak / bw:.3g} flop/B")
    roofs, group = len(fig.data), []
    top = max(spec["peak"].values())
    for i, dtype in enumerate(dtypes):
        for j, (label, ai) in enumerate(roofline_points(dtype, spec)):
            group.append(i)
            fig.add_scatter(x=[r4(ai)], y=[r4(min(top, ai * bw) / 1e12)], mode="markers+text",
                            text=[label], textposition=_label_position(label), name=label,
                            showlegend=False,
                            marker={"size": 11, "color": PALETTE[j]}, visible=i == 0,
                            hovertemplate=f"{label}<br>%{{x:.3g}} flop/B<extra>{dtype}</extra>")
    buttons = [{"label": f"input dtype: {d}", "method": "restyle",
                "args": [{"visible": [True] * roofs + [g == i for g in group]}]}
               for i, d in enumerate(dtypes)]
    fig.update_layout(
        title=f"{spec['name']} roofline: norms sit on the bandwidth slope",
        xaxis={"title": "arithmetic intensity (flop / byte moved)", "type": "log",
               "exponentformat": "power", "dtick": 1},
        yaxis={"title": "attainable TFLOP/s", "type": "log", "exponentformat": "power",
               "dtick": 1},
        updatemenus=[{"buttons": buttons, "type": "buttons", "direction": "right", "x": 0,
                      "y": 1.14, "xanchor": "left"}],
        height=500, margin={"t": 110}, legend={"x": 0.99, "xanchor": "right", "y": 0.02,
                                               "yanchor": "bottom"})
    return fig


def copy_fractions(doc):
    """Each provider's bandwidth as a fraction of the ``copy`` ceiling, per case:
    ``[(norm, pass, dtype, M, N, {provider: fraction})]`` (empty without copy rows)."""
    rows = {}
    for r in doc["results"]:
        rows.setdefault((r["norm"], r["pass"], r["dtype"], r["M"], r["N"]), {})[
            r["provider"]] = r["gbps"]
    return [(*case, {p: g / gb["copy"] for p, g in gb.items() if p != "copy"})
            for case, gb in rows.items() if "copy" in gb]
