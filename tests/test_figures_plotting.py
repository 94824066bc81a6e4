"""normlab.figures.plotting: contrast helpers and the light/dark palette variants."""

import plotly.graph_objects as go
import pytest

from normlab import nb
from normlab.figures import plotting
from normlab.figures.plotting import (
    BLACK,
    DARK_BG,
    GREY,
    LIGHT_BG,
    MIN_TRACE_CONTRAST,
    ORANGE,
    PALETTE,
    contrast_ratio,
    recoloured,
    theme_colours,
    with_contrast,
)

COLOURS = (*PALETTE, GREY)


def test_contrast_ratio_matches_wcag_reference_values():
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast_ratio("#ffffff", "#ffffff") == pytest.approx(1.0)
    assert contrast_ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    assert contrast_ratio(ORANGE, "#ffffff") == pytest.approx(2.25, abs=0.01)  # the issue's


@pytest.mark.parametrize("colour", COLOURS)
def test_light_variant_reaches_three_to_one_on_white(colour):
    variant = theme_colours("light").get(colour.lower(), colour.lower())
    assert contrast_ratio(variant, LIGHT_BG) >= MIN_TRACE_CONTRAST


@pytest.mark.parametrize("colour", COLOURS)
def test_dark_variant_reaches_three_to_one_on_the_dark_page(colour):
    light = theme_colours("light").get(colour.lower(), colour.lower())
    dark = theme_colours("dark").get(light, light)
    assert contrast_ratio(dark, DARK_BG) >= MIN_TRACE_CONTRAST


def test_black_becomes_light_ink_in_the_dark_theme():
    dark = theme_colours("dark")[BLACK]
    assert contrast_ratio(dark, DARK_BG) >= plotting.INK_CONTRAST


def test_variants_move_as_little_as_needed():
    """Colours that already pass are kept; a changed one would fail one step less mixed."""
    assert plotting.BLUE.lower() not in theme_colours("light")
    assert with_contrast(ORANGE, LIGHT_BG) != ORANGE.lower()
    assert contrast_ratio(with_contrast(ORANGE, LIGHT_BG, 2.5), LIGHT_BG) < MIN_TRACE_CONTRAST


def test_dark_map_is_invertible():
    """The site swaps light -> dark and back: no colour may be both a key and a value."""
    dark = theme_colours("dark")
    assert not set(dark) & set(dark.values())
    assert len(set(dark.values())) == len(dark)


def test_recoloured_replaces_colours_anywhere_case_insensitively():
    spec = {"data": [{"line": {"color": "#E69F00"}, "colorscale": [[0, "#999999"]]}],
            "layout": {"title": {"text": "#e69f00 stays text? no: a string equal to it"}}}
    out = recoloured(spec, {"#e69f00": "#c68900", "#999999": "#949494"})
    assert out["data"][0]["line"]["color"] == "#c68900"
    assert out["data"][0]["colorscale"] == [[0, "#949494"]]
    assert out["layout"] == spec["layout"]


@pytest.mark.parametrize("bad", ["orange", "#fff", None, "#12345g"])
def test_bad_colour_is_named(bad):
    with pytest.raises(ValueError, match="colour"):
        contrast_ratio(bad, LIGHT_BG)


def test_bad_theme_and_ratio_are_named():
    with pytest.raises(ValueError, match="theme"):
        theme_colours("sepia")
    with pytest.raises(ValueError, match="contrast ratio"):
        with_contrast(ORANGE, LIGHT_BG, 30)


def test_shown_figure_carries_light_colours_and_the_dark_map(monkeypatch):
    import IPython.display

    calls = []
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: calls.append(a))
    fig = go.Figure(go.Scatter(y=[1, 2], line={"color": ORANGE}), {"title": {"text": "t"}})
    nb.show(fig, "ch00-colours")
    (bundle,) = calls[0]
    assert bundle["application/vnd.plotly.v1+json"]["data"][0]["line"]["color"] == "#c68900"
    html = bundle["text/html"]
    assert '"#c68900"' in html and '"dark": {"#000000": "#bbbbbb"' in html
    assert "</script>" not in html.split("<script", 1)[1].removesuffix("</script>")


def test_overlap_of_rotated_boxes_uses_their_real_shape():
    """The phone test's collision check: axis-aligned boxes of two parallel rotated labels
    overlap, the labels do not."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_site_figures import penetration

    square = [(0, 0), (10, 0), (10, 10), (0, 10)]
    assert penetration(square, [(5, 5), (15, 5), (15, 15), (5, 15)]) == pytest.approx(5)
    assert penetration(square, [(12, 0), (20, 0), (20, 10), (12, 10)]) < 0

    def label(x):  # a 40 x 8 label rotated by 45 degrees, starting at (x, 0)
        c = 0.5 ** 0.5
        return [(x, 0), (x + 40 * c, -40 * c), (x + 40 * c + 8 * c, -40 * c + 8 * c),
                (x + 8 * c, 8 * c)]

    assert penetration(label(0), label(20)) < 0  # parallel, 20 px apart: no collision
    assert penetration(label(0), label(5)) > 1.5
