"""Chapter 7 measurements and figures: traffic counts, roofline points, copy fractions."""

import pytest
import torch

from normlab.figures import fast_kernels as figs


@pytest.mark.parametrize("norm,flops", [("layernorm", 7), ("rmsnorm", 4)])
def test_forward_traffic_and_flops(norm, flops):
    s = figs.traffic_summary(norm, "fwd", M=16, N=256, dtype=torch.float32)
    assert s["fused_bytes"] == 8.0  # read x, write y: 2 × 4 bytes per element
    assert s["kernels"] >= 5 and s["eager_bytes"] > 3 * s["fused_bytes"]
    assert s["flops"] == pytest.approx(flops, rel=0.05)  # row-sized ops add a little


def test_backward_adds_kernels_and_views_move_nothing():
    fwd = figs.traffic_summary("layernorm", "fwd", M=16, N=256)
    both = figs.traffic_summary("layernorm", "fwd+bwd", M=16, N=256)
    assert both["kernels"] > 2 * fwd["kernels"] and both["fused_bytes"] == 20.0
    ops = [op for op, *_ in figs.eager_kernels("layernorm", "fwd+bwd", 16, 256)]
    assert not {"expand", "view", "detach"} & set(ops)


def test_bfloat16_eager_moves_float32_intermediates():
    s = figs.traffic_summary("rmsnorm", "fwd", M=16, N=256, dtype=torch.bfloat16)
    assert s["fused_bytes"] == 4.0 and s["eager_bytes"] > 8 * s["fused_bytes"]


def test_roofline_points_and_figure():
    points = dict(figs.roofline_points("bfloat16"))
    assert points["layernorm fwd, fused"] > points["layernorm fwd, eager"]
    assert max(points.values()) > figs.H100_SPEC["peak"]["bfloat16"] / figs.H100_SPEC["bandwidth"]
    fig = figs.roofline_figure()
    for button in fig.layout.updatemenus[0].buttons:
        assert len(button.args[0]["visible"]) == len(fig.data)
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text


def test_traffic_figure_has_one_block_per_choice():
    fig = figs.traffic_figure(M=8, N=64)
    buttons = fig.layout.updatemenus[0].buttons
    assert len(buttons) == 4 and len(fig.data) == 3 * 4
    assert sum(bool(v) for v in buttons[1].args[0]["visible"]) == 3


def test_copy_fractions():
    rows = [{"norm": "rmsnorm", "pass": "fwd", "dtype": "bfloat16", "M": 4, "N": 8,
             "provider": p, "gbps": g} for p, g in (("copy", 2000.0), ("torch", 1500.0))]
    assert figs.copy_fractions({"results": rows}) == [
        ("rmsnorm", "fwd", "bfloat16", 4, 8, {"torch": 0.75})]
    assert figs.copy_fractions({"results": rows[1:]}) == []
