"""Chapter 1 figures: controls switch between precomputed traces; data are rounded."""

import math

from normlab.experiments.deep_stack import init_sweep
from normlab.figures import why_normalize as fig


def test_r4_rounds_and_turns_non_finite_into_gaps():
    assert fig.r4([math.pi, 123456.0, math.nan, -math.inf]) == [3.142, 123500.0, None, None]


def test_norm_axes_buttons_highlight_the_reduced_cells():
    f = fig.norm_axes_figure(batch=3, seq=4, hidden=6)
    buttons = {b["label"]: b["args"][0]["z"] for b in f.layout.updatemenus[0].buttons}
    assert set(buttons) == {"BatchNorm", "LayerNorm", "RMSNorm"}
    count = {name: sum(map(sum, (row for grid in z for row in grid)))
             for name, z in buttons.items()}
    assert count == {"BatchNorm": 3 * 4, "LayerNorm": 6, "RMSNorm": 6}  # B·T cells vs H cells
    assert buttons["LayerNorm"][1][2] == [1.0] * 6


def test_init_profile_slider_shows_one_configuration_at_a_time():
    records = init_sweep((2, 3), (0.5, 1.0), width=8, batch=4)
    f = fig.init_profile_figure(records)
    slider = f.layout.sliders[0]
    assert [s.label for s in slider.steps] == ["L=2, g=0.5", "L=2, g=1", "L=3, g=0.5", "L=3, g=1"]
    masks = [s.args[0]["visible"] for s in slider.steps]
    assert all(sum(m) == 2 * 2 * 4 for m in masks)  # 2 rows × (plain, residual) × 4 norms
    assert [sum(col) for col in zip(*masks, strict=True)] == [1] * len(f.data)
    assert [t.visible for t in f.data] == masks[0]
    later = fig.init_profile_figure(records, active=(3, 0.5))
    assert later.layout.sliders[0].active == 2
    assert [t.visible for t in later.data] == masks[2]


def test_training_figure_marks_diverged_runs():
    records = [{"label": "a", "lr": 0.1, "losses": [1.0, 0.5]},
               {"label": "a", "lr": 1.0, "losses": [1.0, math.nan]}]
    f = fig.training_figure(records)
    assert [t.name for t in f.data] == ["a", "a (diverged)"]
    assert f.data[1].y == (1.0, None)
    assert [s.label for s in f.layout.sliders[0].steps] == ["0.1", "1"]
