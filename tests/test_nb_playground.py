"""normlab.nb's playground and glue work without the book's tools and with both ipywidgets
generations (Colab ships ipywidgets 7, the book pins 8)."""

import sys

import IPython.display
import ipywidgets
import pytest

from normlab import nb


@pytest.fixture
def shown(monkeypatch):
    """Everything ``IPython.display.display`` is called with."""
    calls = []
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: calls.append((a, k)))
    return calls


def test_playground_without_repr_mimebundle(shown, monkeypatch):
    """ipywidgets 7 widgets have no ``_repr_mimebundle_`` (Colab's 7.7.x failed with
    AttributeError: 'VBox' object has no attribute '_repr_mimebundle_')."""
    monkeypatch.delattr(ipywidgets.Widget, "_repr_mimebundle_")
    nb.playground(lambda eps=0.5: print(f"eps={eps}"), eps=(0.0, 1.0, 0.25))
    (bundle,), kwargs = shown[0]
    view = bundle["application/vnd.jupyter.widget-view+json"]
    assert kwargs == {"raw": True} and view["version_major"] == 2
    assert bundle["text/plain"] == nb.PLAYGROUND_NOTE


def test_widget_view_matches_ipywidgets_own_bundle():
    box = ipywidgets.VBox([ipywidgets.IntSlider()])
    own = box._repr_mimebundle_()["application/vnd.jupyter.widget-view+json"]
    assert nb.widget_view(box) == own


@pytest.mark.parametrize("display", [False, True])
def test_glue_without_myst_nb_writes_what_myst_nb_writes(shown, monkeypatch, display):
    glue_module = pytest.importorskip("myst_nb.ext.glue")
    # myst-nb bound IPython's display at import time: record its calls too
    monkeypatch.setattr(glue_module, "ipy_display", IPython.display.display)
    nb.glue("ratio", 0.125, display=display)
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # `import myst_nb` now fails
    nb.glue("ratio", 0.125, display=display)
    with_myst, without = shown
    assert with_myst == without
    (bundle,), kwargs = without
    assert kwargs["metadata"]["scrapbook"]["name"] == "ratio"
    assert (nb.GLUE_PREFIX + "text/plain" in bundle) is not display
