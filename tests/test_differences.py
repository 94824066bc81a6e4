"""normlab's deliberate differences from PyTorch: one test per row of the table in chapter 5
("normlab vs PyTorch: deliberate differences"). Each test shows what PyTorch does and what
normlab does instead, on both paths (the reference and the Triton kernels)."""

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F

import normlab

CHAPTER = Path(__file__).resolve().parent.parent / "chapters" / "05_pytorch_builtins.ipynb"
TABLE_CELL = "differences-table"
NO_TRITON = pytest.mark.skipif(importlib.util.find_spec("triton") is None,
                               reason="Triton not installed")
PATHS = ["reference", pytest.param("kernels", marks=NO_TRITON)]
X = torch.randn(2, 4, generator=torch.Generator().manual_seed(0))


def norms(path):
    """``(layer_norm, rms_norm)`` of the path."""
    if path == "reference":
        return normlab.layer_norm, normlab.rms_norm
    from normlab import kernels

    return kernels.layer_norm, kernels.rms_norm


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("eps", [0.0, -1e-5, 1e-45, 1e39])
def test_difference_eps_positive_in_float32_normal_range(path, eps):
    """PyTorch takes any float ε (0 gives NaN on a constant row, a negative one a wrong
    answer); normlab wants 1.18e-38 ≤ ε ≤ 3.4e38, the range every kernel computes ε in."""
    F.layer_norm(X, (4,), eps=eps)  # accepted
    for f in norms(path):
        with pytest.raises(ValueError, match="eps must be"):
            f(X, 4, None, eps=eps) if f.__name__ == "rms_norm" else f(X, 4, eps=eps)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("eps", [True, torch.tensor(1e-5)], ids=["bool", "tensor"])
def test_difference_eps_bool_or_tensor_refused(path, eps):
    """PyTorch reads ``eps=True`` as 1.0 and a 0-dim tensor as its value; normlab wants a
    real number (a bool is almost always a misplaced flag)."""
    F.layer_norm(X, (4,), eps=eps)
    F.rms_norm(X, (4,), eps=eps)
    for f in norms(path):
        with pytest.raises(TypeError, match="eps must be a real number"):
            f(X, 4, None, eps=eps) if f.__name__ == "rms_norm" else f(X, 4, eps=eps)


@pytest.mark.parametrize("path", PATHS)
def test_difference_empty_normalized_shape_refused(path):
    """PyTorch normalises rows of 0 features (an empty result); normlab refuses
    ``normalized_shape=(0,)``: a row without features has no mean or RMS."""
    empty = torch.ones(2, 0)
    assert F.layer_norm(empty, (0,)).shape == (2, 0)
    for f in norms(path):
        with pytest.raises(ValueError, match="positive sizes"):
            f(empty, (0,))


@pytest.mark.parametrize("path", PATHS)
def test_difference_complex_float8_integer_bool_refused_with_one_message(path):
    """PyTorch's LayerNorm fails inside its kernel ("not implemented for 'ComplexFloat'")
    and its RMSNorm computes on complex input; normlab refuses every dtype but float16,
    bfloat16, float32 and float64 with one TypeError (all of them: tests/test_dtypes.py)."""
    z = torch.randn(2, 4, dtype=torch.complex64)
    assert F.rms_norm(z, (4,)).dtype == torch.complex64
    with pytest.raises(NotImplementedError):
        F.layer_norm(z, (4,))
    for dtype in (torch.complex64, torch.float8_e4m3fn, torch.int64, torch.bool):
        for f in norms(path):
            with pytest.raises(TypeError, match="float16, bfloat16, float32 or float64"):
                f(torch.zeros(2, 4).to(dtype), 4)


@pytest.mark.parametrize("path", PATHS)
def test_difference_overflowing_rows_are_right_not_nan_or_zero(path):
    """A float32 row whose squares overflow: PyTorch's LayerNorm returns NaN and its RMSNorm
    zeros; normlab returns the right answer (more rows: tests/test_overflow.py)."""
    x = torch.tensor([[3e38, -3e38, 3e38, -3e38]])
    assert torch.isnan(F.layer_norm(x, (4,))).all()
    assert (F.rms_norm(x, (4,)) == 0).all()
    want = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    for f in norms(path):
        torch.testing.assert_close(f(x, 4), want)


def test_difference_half_precision_statistics_are_float32():
    """PyTorch's CPU kernel rounds the saved mean and rstd of a bfloat16 input to bfloat16;
    ``normlab.layer_norm_stats`` (and the kernels' saved statistics) keep them in float32."""
    x = X.bfloat16()
    assert torch.native_layer_norm(x, (4,), None, None, 1e-5)[1].dtype == torch.bfloat16
    assert all(t.dtype == torch.float32 for t in normlab.layer_norm_stats(x, 4))


@NO_TRITON
def test_difference_kernels_have_no_partial_rmsnorm_and_need_cuda():
    """The Triton kernels refuse what they do not implement instead of ignoring it:
    pRMSNorm's ``partial``, and CPU tensors unless Triton's interpreter is on."""
    from normlab import kernels
    from normlab.kernels import _launch

    with pytest.raises(ValueError, match="partial must be None"):
        kernels.TritonRMSNorm(4, partial=0.5)
    assert _launch.interpreting() or X.device.type == "cpu"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRITON_INTERPRET", "0")
        with pytest.raises(ValueError, match="must be a CUDA tensor"):
            kernels.layer_norm(X, 4)


@NO_TRITON
def test_difference_kernels_higher_order_gradients_use_the_reference_formula():
    """A fused kernel's backward is first-order; with ``create_graph=True`` or in forward
    mode the kernels differentiate the reference formula, so a gradient penalty is right
    (the check against float64 PyTorch: tests/test_higher_order.py)."""
    from normlab import kernels

    x = X.double().requires_grad_()
    (g,) = torch.autograd.grad(kernels.layer_norm(x, 4).pow(3).sum(), x, create_graph=True)
    (want,) = torch.autograd.grad(F.layer_norm(x, (4,)).pow(3).sum(), x, create_graph=True)
    torch.testing.assert_close(torch.autograd.grad(g.sum(), x)[0],
                               torch.autograd.grad(want.sum(), x)[0])


def test_every_difference_is_a_row_of_the_chapter_table():
    """The chapter's table names exactly the ``test_difference_*`` tests of this file."""
    cell = next(c for c in nbformat.read(CHAPTER, as_version=4).cells if c.id == TABLE_CELL)
    in_table = set(re.findall(r"test_difference_\w+", cell.source))
    here = {name for name in globals() if name.startswith("test_difference_")}
    assert in_table == here
