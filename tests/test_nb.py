"""normlab.nb: outputs are deterministic and carry what both Jupyter and the site need."""

import functools
from types import SimpleNamespace

import IPython.display
import plotly.graph_objects as go
import pytest
import torch

from normlab import nb


@pytest.fixture
def shown(monkeypatch):
    """Everything the helpers pass to IPython's ``display``."""
    calls = []
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: calls.append((a, k)))
    return calls


def test_setup_is_deterministic():
    nb.setup(seed=3)
    first = torch.randn(4)
    nb.setup(seed=3)
    assert torch.equal(first, torch.randn(4))
    assert torch.get_num_threads() == 1


def slider_figure():
    fig = go.Figure([go.Scatter(x=[0, 1], y=[0, 1]), go.Scatter(x=[0, 1], y=[1, 0])])
    steps = [{"method": "update", "args": [{"visible": [i == 0, i == 1]}]} for i in range(2)]
    return fig.update_layout(sliders=[{"steps": steps}], title_text="Two lines")


def test_show_bundle_is_deterministic_and_self_contained(shown):
    nb.show(slider_figure(), "ch00-test")
    nb.show(slider_figure(), "ch00-test")
    (bundle,), kwargs = shown[0]
    assert kwargs == {"raw": True}
    assert shown[0] == shown[1]
    html = bundle["text/html"]
    assert 'id="ch00-test"' in html and "window.normlabFigures" in html
    assert "<script src" not in html and "cdn" not in html.lower()
    spec = bundle["application/vnd.plotly.v1+json"]
    assert spec["config"]["responsive"] and spec["layout"]["sliders"]
    assert spec["layout"]["template"]["layout"]["paper_bgcolor"] == "rgba(0, 0, 0, 0)"


def test_show_keeps_the_callers_figure(shown):
    fig = slider_figure()
    before = fig.to_json()
    nb.show(fig, "ch00-test")
    assert fig.to_json() == before


@pytest.mark.parametrize("div_id", ["", "1abc", "has space", "quote'"])
def test_show_rejects_bad_div_ids(div_id):
    with pytest.raises(ValueError, match="div_id"):
        nb.show(go.Figure(), div_id)


def test_playground_shows_note_and_updates_its_output(shown):
    nb.playground(lambda eps=0.5: print(f"eps={eps}"), eps=(0.0, 1.0, 0.25))
    (bundle,), _ = shown[0]
    assert bundle["text/plain"] == nb.PLAYGROUND_NOTE
    assert nb.PLAYGROUND_NOTE in bundle["text/html"]
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_captured_outputs_are_nbformat_dicts():
    from IPython.core.interactiveshell import InteractiveShell

    InteractiveShell.instance()  # display() publishes rich outputs only inside IPython

    def fn(n):
        print("n =", n)
        IPython.display.display(IPython.display.Markdown("**hi**"))

    streams, rich = nb._captured_outputs(fn, {"n": 2}, change=None)
    assert streams == {"output_type": "stream", "name": "stdout", "text": "n = 2\n"}
    assert rich["output_type"] == "display_data" and "text/markdown" in rich["data"]


def test_captured_outputs_raise_first_then_report():
    def fn():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        nb._captured_outputs(fn, {}, change=None)
    (err,) = nb._captured_outputs(fn, {}, change="slider moved")
    assert err["name"] == "stderr" and "RuntimeError: boom" in err["text"]


def test_source_listing_names_module_file_and_lines():
    text = nb.source_listing(nb.setup)
    caption, _, body = text.partition("\n\n")
    assert caption.startswith("**`normlab.nb.setup`** — `normlab/nb.py`, lines ")
    assert body.startswith("```python\ndef setup(seed=0):") and body.endswith("```\n")


def test_source_listing_unwraps_decorators_and_triton_fn():
    @functools.wraps(nb.setup)
    def wrapper(*args, **kwargs):
        return nb.setup(*args, **kwargs)

    jit_like = SimpleNamespace(fn=wrapper)
    assert nb.source_listing(jit_like) == nb.source_listing(nb.setup)


def test_plotly_json_renders_to_nothing_on_the_site():
    plotly = SimpleNamespace(mime_type="application/vnd.plotly.v1+json")
    other = SimpleNamespace(mime_type="text/html")
    assert nb.PlotlyJsonMimeRenderer.handle_mime(None, plotly, False) == []
    assert nb.PlotlyJsonMimeRenderer.handle_mime(None, other, False) is None


def test_show_gives_the_figure_a_text_alternative(shown):
    fig = slider_figure().update_layout(title_text="Loss <i>vs</i> step &amp; depth")
    nb.show(fig, "ch00-test")
    html = shown[0][0][0]["text/html"]
    assert '<div id="ch00-test" role="figure" aria-label="Loss vs step &amp; depth"' in html
    nb.show(fig, "ch00-test", alt='Two "lines" cross')
    assert 'aria-label="Two &quot;lines&quot; cross"' in shown[1][0][0]["text/html"]


def test_show_needs_a_title_or_alt():
    with pytest.raises(ValueError, match="title or an alt"):
        nb.show(go.Figure(), "ch00-test")
    assert nb.figure_label(go.Figure(), alt="A blank figure") == "A blank figure"


def test_table_renders_html_and_aligned_text():
    t = nb.table([("plain", 1.41421356, 3), ("residual + <b>", 656.8, 12)], ["case", "g", "n"])
    assert repr(t).splitlines() == [
        "case                g   n",
        "plain           1.414   3",
        "residual + <b>  656.8  12",
    ]
    page = t._repr_html_()
    assert page.startswith('<table class="normlab-table"><thead><tr><th>case</th>')
    assert '<td style="text-align: right">1.414</td>' in page
    assert "residual + &lt;b&gt;" in page  # cells are escaped


def test_table_rejects_rows_that_do_not_match_the_header():
    with pytest.raises(ValueError, match="row 1 has 1 cells, the header has 2"):
        nb.table([(1, 2), (3,)], ["a", "b"])
    with pytest.raises(ValueError, match="at least one header"):
        nb.table([], [])


def test_themed_log_axes_label_every_tick_in_full():
    fig = go.Figure(go.Scatter(x=[1, 2], y=[1, 50]), layout={"title": "t"})
    fig.update_yaxes(type="log")
    fig.update_xaxes(type="log", exponentformat="power")
    themed = nb.themed(fig)
    assert themed.layout.yaxis.minorloglabels == "complete"
    assert themed.layout.yaxis.dtick == "D2"
    assert themed.layout.xaxis.minorloglabels is None  # 10² style keeps plotly's digits
