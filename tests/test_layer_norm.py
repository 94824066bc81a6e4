"""normlab.layer_norm, layer_norm_stats, layer_norm_backward and LayerNorm against PyTorch."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import normlab
from normlab.layer_norm import layer_norm_backward, layer_norm_stats

# (atol, rtol) per dtype: a few units in the last place of the output dtype at |y| ~ 3.
TOL = {
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-5, 1e-5),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (1.6e-2, 1e-2),
}
DTYPES = list(TOL)

# (shape of x, normalized_shape): 1-D, batched, odd sizes, multi-dim, size-1 rows, empty batch.
CASES = [
    ((7,), (7,)),
    ((3, 5), (5,)),
    ((2, 3, 17), (17,)),
    ((4, 123), (123,)),
    ((2, 3, 4, 5), (4, 5)),
    ((2, 3, 4, 5), (3, 4, 5)),
    ((6, 1), (1,)),
    ((0, 8), (8,)),
    ((2, 0, 8), (8,)),
]


def make(shape, dtype, seed=0, scale=1.0, offset=0.0):
    """Deterministic test tensor: drawn in float64, then rounded to ``dtype``."""
    gen = torch.Generator().manual_seed(seed)
    return (offset + scale * torch.randn(shape, generator=gen, dtype=torch.float64)).to(dtype)


def affine(shape, dtype, seed=1):
    return 1 + 0.5 * make(shape, dtype, seed), make(shape, dtype, seed + 1)


def close(got, expected, dtype, scale=1.0):
    """assert_close with the dtype's tolerance; ``scale`` widens atol for big reductions."""
    atol, rtol = TOL[dtype]
    torch.testing.assert_close(got, expected, atol=atol * scale, rtol=rtol, check_dtype=True)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape,nshape", CASES, ids=str)
@pytest.mark.parametrize("with_affine", [True, False], ids=["affine", "plain"])
def test_forward_matches_torch_and_float64(shape, nshape, dtype, with_affine):
    x = make(shape, dtype, offset=0.5, scale=2.0)
    w, b = affine(nshape, dtype) if with_affine else (None, None)
    y = normlab.layer_norm(x, nshape, w, b, eps=1e-5)
    assert y.dtype == dtype and y.shape == x.shape
    close(y, F.layer_norm(x, nshape, w, b, 1e-5), dtype)
    w64, b64 = (None, None) if w is None else (w.double(), b.double())
    ref = F.layer_norm(x.double(), nshape, w64, b64, 1e-5)
    close(y, ref.to(dtype), dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_forward_non_contiguous(dtype):
    x = make((9, 16, 5), dtype).transpose(1, 2)  # (9, 5, 16) with stride 1 on dim 1
    assert not x.is_contiguous()
    sliced = make((4, 33), dtype)[:, ::2]  # (4, 17), stride 2 along the normalised dim
    w, b = affine((16,), dtype)
    close(normlab.layer_norm(x, (16,), w, b), F.layer_norm(x, (16,), w, b), dtype)
    close(normlab.layer_norm(sliced, 17), F.layer_norm(sliced, (17,)), dtype)


def test_size_one_rows_give_the_bias():
    x, b = make((5, 1), torch.float64), make((1,), torch.float64, seed=3)
    torch.testing.assert_close(normlab.layer_norm(x, 1, None, b), b.expand(5, 1))


@pytest.mark.parametrize("shape,nshape", CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_stats_match_native_layer_norm(shape, nshape, dtype):
    x = make(shape, dtype, offset=3.0)
    mean, rstd = layer_norm_stats(x, nshape, eps=1e-5)
    _, ref_mean, ref_rstd = torch.native_layer_norm(x, nshape, None, None, 1e-5)
    assert mean.shape == ref_mean.shape and rstd.shape == ref_rstd.shape
    stat_dtype = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    assert mean.dtype == stat_dtype and rstd.dtype == stat_dtype
    # PyTorch's CPU kernel rounds its saved statistics to the input dtype; ours stay float32.
    close(mean.to(dtype), ref_mean, dtype)
    close(rstd.to(dtype), ref_rstd, dtype)


def grads(fn, x, w, b, dy):
    """(dx, dw, db) of ``sum(fn(x, w, b) * dy)`` by autograd."""
    x, w, b = (t.detach().clone().requires_grad_() for t in (x, w, b))
    fn(x, w, b).backward(dy)
    return x.grad, w.grad, b.grad


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape,nshape", CASES, ids=str)
def test_backward_autograd_and_manual_match_torch(shape, nshape, dtype):
    x = make(shape, dtype, offset=-1.0, scale=3.0)
    w, b = affine(nshape, dtype)
    dy = make(shape, dtype, seed=7)
    ours = grads(lambda x, w, b: normlab.layer_norm(x, nshape, w, b), x, w, b, dy)
    torchs = grads(lambda x, w, b: F.layer_norm(x, nshape, w, b), x, w, b, dy)
    exact = grads(lambda x, w, b: F.layer_norm(x, nshape, w, b),
                  *(t.double() for t in (x, w, b, dy)))
    mean, rstd = layer_norm_stats(x, nshape)
    manual = layer_norm_backward(dy, x, nshape, w, mean, rstd)
    rows = max(1, x.numel() // math.prod(nshape))
    # dx = rstd * (...): its rounding error scales with rstd (316 on a size-1 row, where
    # torch returns rounding noise instead of 0); dweight/dbias add one term per row.
    dx_scale = max(1.0, rstd.max().item()) if rstd.numel() else 1.0
    for i, (got_a, got_m, ref, ref64) in enumerate(zip(ours, manual, torchs, exact, strict=True)):
        assert got_m.dtype == ref.dtype and got_m.shape == ref.shape
        scale = 4 * (dx_scale if i == 0 else math.sqrt(rows))
        for got in (got_a, got_m):
            close(got, ref, dtype, scale=scale)
            close(got, ref64.to(dtype), dtype, scale=scale)


def test_backward_without_weight_uses_gamma_one():
    x, dy = make((4, 9), torch.float64), make((4, 9), torch.float64, seed=2)
    mean, rstd = layer_norm_stats(x, 9)
    ones = torch.ones(9, dtype=torch.float64)
    for got, ref in zip(layer_norm_backward(dy, x, 9, None, mean, rstd),
                        layer_norm_backward(dy, x, 9, ones, mean, rstd), strict=True):
        torch.testing.assert_close(got, ref)


def test_gradcheck_and_gradgradcheck_float64():
    x = make((3, 2, 5), torch.float64).requires_grad_()
    w, b = (t.requires_grad_() for t in affine((2, 5), torch.float64))

    def fn(x, w, b):
        return normlab.layer_norm(x, (2, 5), w, b)

    assert torch.autograd.gradcheck(fn, (x, w, b))
    assert torch.autograd.gradgradcheck(fn, (x, w, b))


def test_layer_norm_backward_is_differentiable():
    """The manual backward is itself plain autograd-able math (for double backward)."""
    x = make((3, 6), torch.float64).requires_grad_()
    dy = make((3, 6), torch.float64, seed=4).requires_grad_()
    w = affine((6,), torch.float64)[0].requires_grad_()

    def dx(dy, x, w):
        mean, rstd = layer_norm_stats(x, 6)
        return layer_norm_backward(dy, x, 6, w, mean, rstd)[0]

    assert torch.autograd.gradcheck(dx, (dy, x, w))


# ---- properties -------------------------------------------------------------------------

rows_f64 = arrays("float64", st.tuples(st.integers(1, 4), st.integers(2, 24)),
                  elements=st.floats(-10, 10, allow_nan=False, width=64))


@settings(max_examples=60, deadline=None)
@given(rows_f64, st.floats(0.01, 100), st.floats(-100, 100))
def test_affine_input_changes_only_through_eps(rows, a, b):
    r"""LN(a x + b) = LN(x) * a sqrt(σ² + ε) / sqrt(a²σ² + ε): invariant when σ² ≫ ε."""
    x = torch.from_numpy(rows)
    var = x.var(-1, unbiased=False, keepdim=True)
    assume(bool((var > 1e-3).all()))
    eps = 1e-5
    expected = normlab.layer_norm(x, x.shape[-1:], eps=eps) * (
        a * torch.sqrt(var + eps) / torch.sqrt(a * a * var + eps))
    got = normlab.layer_norm(a * x + b, x.shape[-1:], eps=eps)
    torch.testing.assert_close(got, expected, atol=1e-8, rtol=1e-7)
    if min(a * a, 1.0) * var.min() > 1e3 * eps:  # ε negligible on both sides: invariance
        torch.testing.assert_close(got, normlab.layer_norm(x, x.shape[-1:]), atol=1e-2, rtol=0)


@settings(max_examples=60, deadline=None)
@given(rows_f64)
def test_rows_have_mean_zero_and_variance_one(rows):
    x = torch.from_numpy(rows)
    var = x.var(-1, unbiased=False)
    assume(bool((var > 1e-3).all()))
    y = normlab.layer_norm(x, x.shape[-1], eps=1e-5)
    torch.testing.assert_close(y.mean(-1), torch.zeros_like(var), atol=1e-12, rtol=0)
    # exactly σ²/(σ²+ε) = 1 - ε/(σ²+ε): one up to eps
    y_var = y.var(-1, unbiased=False)
    torch.testing.assert_close(y_var, var / (var + 1e-5), atol=1e-12, rtol=1e-12)
    assert bool(((y_var - 1).abs() <= 1e-5 / var).all())


# ---- bad inputs -------------------------------------------------------------------------

X = torch.zeros(2, 3)
BAD = [
    (dict(x=X, normalized_shape=(4,)), ValueError, "normalized_shape"),
    (dict(x=X, normalized_shape=(2, 3, 1)), ValueError, "normalized_shape"),
    (dict(x=X, normalized_shape=3.5), TypeError, "normalized_shape"),
    (dict(x=X, normalized_shape=()), ValueError, "normalized_shape"),
    (dict(x=torch.zeros(2, 3, dtype=torch.int64), normalized_shape=3), TypeError, "x"),
    (dict(x=torch.zeros(2, 3, dtype=torch.bool), normalized_shape=3), TypeError, "x"),
    (dict(x=[[0.0, 1.0]], normalized_shape=2), TypeError, "x"),
    (dict(x=torch.tensor(1.0), normalized_shape=1), ValueError, "x"),
    (dict(x=X, normalized_shape=3, eps=0.0), ValueError, "eps"),
    (dict(x=X, normalized_shape=3, eps=-1e-5), ValueError, "eps"),
    (dict(x=X, normalized_shape=3, eps=float("nan")), ValueError, "eps"),
    (dict(x=X, normalized_shape=3, eps=float("inf")), ValueError, "eps"),
    (dict(x=X, normalized_shape=3, eps="1e-5"), TypeError, "eps"),
    (dict(x=X, normalized_shape=3, eps=1e-50), ValueError, "eps"),  # 0 in float32
    (dict(x=X, normalized_shape=3, eps=10**400), ValueError, "eps"),  # not even a float64
    (dict(x=X, normalized_shape=3, weight=torch.ones(4)), ValueError, "weight"),
    (dict(x=X, normalized_shape=3, weight=torch.ones(1, 3)), ValueError, "weight"),
    (dict(x=X, normalized_shape=3, weight=torch.ones(3, device="meta")), ValueError, "weight"),
    (dict(x=X, normalized_shape=3, bias=torch.ones(3, device="meta")), ValueError, "bias"),
    (dict(x=X, normalized_shape=3, weight=torch.ones(3, dtype=torch.int32)), TypeError, "weight"),
    (dict(x=X, normalized_shape=3, bias=torch.ones(2)), ValueError, "bias"),
    (dict(x=X, normalized_shape=3, bias=[0.0, 0.0, 0.0]), TypeError, "bias"),
]


@pytest.mark.parametrize("kwargs,error,name", BAD, ids=lambda v: str(v)[:40])
def test_bad_input_raises_naming_the_argument(kwargs, error, name):
    with pytest.raises(error, match=rf"\b{name}\b"):
        normlab.layer_norm(**kwargs)


@pytest.mark.parametrize("kwargs,error,name",
                         [c for c in BAD if set(c[0]) <= {"x", "normalized_shape", "eps"}],
                         ids=lambda v: str(v)[:40])
def test_stats_bad_input(kwargs, error, name):
    with pytest.raises(error, match=rf"\b{name}\b"):
        layer_norm_stats(**kwargs)


def test_backward_bad_input():
    x = make((2, 3), torch.float64)
    mean, rstd = layer_norm_stats(x, 3)
    with pytest.raises(ValueError, match=r"\bdy\b"):
        layer_norm_backward(torch.zeros(3, 3, dtype=torch.float64), x, 3, None, mean, rstd)
    with pytest.raises(TypeError, match=r"\bdy\b"):
        layer_norm_backward(torch.zeros(2, 3, dtype=torch.int64), x, 3, None, mean, rstd)
    with pytest.raises(ValueError, match=r"\bweight\b"):
        layer_norm_backward(x, x, 3, torch.ones(2), mean, rstd)
    with pytest.raises(ValueError, match="normalized_shape"):
        layer_norm_backward(x, x, 4, None, mean, rstd)
    square = make((3, 3), torch.float64)  # flat (M,) statistics would broadcast when M == N
    mean, rstd = layer_norm_stats(square, 3)
    with pytest.raises(ValueError, match=r"\bmean must have shape \(3, 1\)"):
        layer_norm_backward(square, square, 3, None, mean.reshape(-1), rstd)
    with pytest.raises(ValueError, match=r"\brstd\b"):
        layer_norm_backward(square, square, 3, None, mean, rstd[0, 0])
    with pytest.raises(TypeError, match=r"\brstd\b"):
        layer_norm_backward(square, square, 3, None, mean, 1.0)


# ---- module -------------------------------------------------------------------------------

MODULE_ARGS = [
    dict(normalized_shape=8),
    dict(normalized_shape=(3, 8)),
    dict(normalized_shape=8, bias=False),
    dict(normalized_shape=8, elementwise_affine=False),
    dict(normalized_shape=8, eps=1e-6, elementwise_affine=False, bias=False),
]


@pytest.mark.parametrize("kwargs", MODULE_ARGS, ids=str)
def test_module_matches_torch_module(kwargs):
    ours, theirs = normlab.LayerNorm(**kwargs), torch.nn.LayerNorm(**kwargs)
    assert isinstance(ours, torch.nn.LayerNorm)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    assert [(n, p.shape) for n, p in ours.named_parameters()] == \
        [(n, p.shape) for n, p in theirs.named_parameters()]
    assert (ours.normalized_shape, ours.eps) == (theirs.normalized_shape, theirs.eps)
    with torch.no_grad():  # non-trivial parameters, so loading them is visible in the output
        for p in theirs.parameters():
            p.copy_(make(p.shape, p.dtype, seed=p.numel()))
    ours.load_state_dict(theirs.state_dict())
    x = make((4, 3, 8), torch.float32, seed=5)
    close(ours(x), theirs(x), torch.float32)
    for p, q in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(p, q)


def test_eps_reaches_every_entry_point():
    """Rows of variance ≈ 1e-4 with eps = 0.1: eps dominates, so a path that drops it shows."""
    x = make((4, 16), torch.float64, offset=1.0, scale=1e-2)
    _, _, want_rstd = torch.native_layer_norm(x, (16,), None, None, 0.1)
    want_y = F.layer_norm(x, (16,), eps=0.1)
    close(normlab.layer_norm(x, 16, eps=0.1), want_y, torch.float64)
    close(normlab.LayerNorm(16, eps=0.1, dtype=torch.float64)(x), want_y, torch.float64)
    close(layer_norm_stats(x, 16, eps=0.1)[1], want_rstd, torch.float64)
    assert (F.layer_norm(x, (16,)) - want_y).abs().max() > 1  # the default eps differs a lot


def test_module_without_loading_uses_gamma_one_beta_zero():
    m = normlab.LayerNorm(8)
    assert torch.equal(m.weight, torch.ones(8)) and torch.equal(m.bias, torch.zeros(8))
    x = make((2, 8), torch.float32)
    close(m(x), normlab.layer_norm(x, 8), torch.float32)
