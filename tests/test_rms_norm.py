"""normlab.rms_norm and normlab.RMSNorm against torch.nn.functional.rms_norm and a float64
reference, over shapes, dtypes, ε placements and the variants (Gemma's 1 + γ, pRMSNorm)."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, find, given, settings
from hypothesis import strategies as st
from torch.autograd import gradcheck, gradgradcheck

import normlab
from normlab import RMSNorm, default_eps, layer_norm, rms_norm

# (atol, rtol) per dtype; half precision is computed in float32 and rounded once at the end.
TOL = {
    torch.float64: (1e-12, 1e-10),
    torch.float32: (1e-5, 1e-5),
    torch.bfloat16: (1e-2, 1.6e-2),
    torch.float16: (1e-3, 2e-3),
}
DTYPES = list(TOL)

# (shape of x, normalized_shape)
SHAPES = [
    ((7,), (7,)),
    ((4, 33), (33,)),
    ((2, 3, 16), (16,)),
    ((2, 3, 4, 5), (4, 5)),
    ((5, 1), (1,)),
    ((0, 8), (8,)),
    ((3, 1023), (1023,)),
]


def reference(x, normalized_shape, weight=None, eps=1e-6, eps_inside_sqrt=True, k=None):
    """RMSNorm in float64 written as a norm: RMS = ‖x[:k]‖₂ / √k."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    x64 = x.double()
    rows = x64.reshape(*x64.shape[: x64.dim() - len(shape)], math.prod(shape))
    k = rows.shape[-1] if k is None else k
    rms = torch.linalg.vector_norm(rows[..., :k], dim=-1, keepdim=True) / math.sqrt(k)
    denom = torch.sqrt(rms**2 + eps) if eps_inside_sqrt else rms + eps
    y = (rows / denom).reshape(x64.shape)
    return y if weight is None else y * weight.double()


def close(actual, expected, dtype):
    atol, rtol = TOL[dtype]
    torch.testing.assert_close(actual.double(), expected.double(), atol=atol, rtol=rtol)


def make(shape, normalized_shape, dtype, seed=0, offset=0.3):
    """An input with a non-zero mean (so centring would matter) and a weight."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) + offset).to(dtype)
    wshape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
    w = (1 + 0.5 * torch.randn(wshape, generator=g, dtype=torch.float64)).to(dtype)
    return x, w


# --- forward and backward against torch and float64 -----------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape,normalized_shape", SHAPES, ids=str)
@pytest.mark.parametrize("with_weight", [True, False])
def test_forward_matches_torch_and_float64(shape, normalized_shape, dtype, with_weight):
    x, w = make(shape, normalized_shape, dtype)
    w = w if with_weight else None
    y = rms_norm(x, normalized_shape, w, eps=1e-6)
    assert y.dtype == dtype and y.shape == x.shape
    close(y, F.rms_norm(x, normalized_shape, w, eps=1e-6), dtype)
    close(y, reference(x, normalized_shape, w, eps=1e-6), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape,normalized_shape", SHAPES, ids=str)
def test_backward_matches_torch_and_float64(shape, normalized_shape, dtype):
    x, w = make(shape, normalized_shape, dtype)
    dy = torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    grads = []
    for fn, cast in ((rms_norm, dtype), (F.rms_norm, dtype), (reference, torch.float64)):
        xi, wi = (t.to(cast, copy=True).requires_grad_() for t in (x, w))
        fn(xi, normalized_shape, wi, eps=1e-6).backward(dy.to(cast))
        grads.append((xi.grad, wi.grad))
    (dx, dweight), *others = grads
    atol, rtol = TOL[dtype]
    scale = max(1, x[..., :1].numel())  # dweight sums over rows: its error grows with them
    for dx_other, dweight_other in others:
        close(dx, dx_other, dtype)
        torch.testing.assert_close(dweight.double(), dweight_other.double(),
                                   atol=atol * scale, rtol=rtol * 4)


def test_int_normalized_shape():
    x = torch.randn(3, 9, dtype=torch.float64)
    torch.testing.assert_close(rms_norm(x, 9), rms_norm(x, (9,)), atol=0, rtol=0)


def test_non_contiguous_input():
    x = torch.randn(16, 6, dtype=torch.float64).t()  # (6, 16), strides (1, 6)
    assert not x.is_contiguous()
    w = torch.rand(16, dtype=torch.float64)
    close(rms_norm(x, 16, w), F.rms_norm(x.contiguous(), (16,), w), torch.float64)
    sliced = torch.randn(4, 32, dtype=torch.float64)[:, ::2]
    close(rms_norm(sliced, 16), reference(sliced, 16, eps=default_eps(torch.float64)),
          torch.float64)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_default_eps_is_float32_eps_for_half_inputs(dtype):
    """eps=None: torch uses the compute dtype's ε (float32's), not torch.finfo(x.dtype).eps."""
    assert default_eps(dtype) == torch.finfo(torch.float32).eps
    x = torch.full((4, 3), 1e-4, dtype=dtype)  # RMS² = 1e-8, smaller than both candidates
    ours, theirs = rms_norm(x, 3), F.rms_norm(x, (3,))
    torch.testing.assert_close(ours, theirs, atol=0, rtol=0)
    with_input_eps = rms_norm(x, 3, eps=torch.finfo(dtype).eps)
    assert (with_input_eps.float() - theirs.float()).abs().min() > 0.1  # 0.003 vs 0.28


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_default_eps_full_precision(dtype):
    assert default_eps(dtype) == torch.finfo(dtype).eps
    x = torch.full((2, 5), 1e-9, dtype=dtype)
    close(rms_norm(x, 5), F.rms_norm(x, (5,)), dtype)


# --- gradcheck / gradgradcheck in float64 -----------------------------------------------------

VARIANTS = {
    "eps_inside": {},
    "eps_outside": {"eps_inside_sqrt": False},
    "unit_offset": {"add_unit_offset": True},
    "partial": {"partial": 0.5},
    "partial_outside_offset": {"partial": 0.25, "eps_inside_sqrt": False,
                               "add_unit_offset": True},
}


@pytest.mark.parametrize("kwargs", VARIANTS.values(), ids=VARIANTS.keys())
def test_gradcheck_and_gradgradcheck(kwargs):
    x, w = make((3, 2, 8), (2, 8), torch.float64)
    x, w = x.requires_grad_(), w.requires_grad_()

    def fn(x, w):
        return rms_norm(x, (2, 8), w, eps=1e-3, **kwargs)

    assert gradcheck(fn, (x, w))
    assert gradgradcheck(fn, (x, w))


def test_gradcheck_without_weight():
    x = make((4, 6), (6,), torch.float64)[0].requires_grad_()
    assert gradcheck(lambda x: rms_norm(x, 6, eps=1e-3, eps_inside_sqrt=False), (x,))
    assert gradgradcheck(lambda x: rms_norm(x, 6, eps=1e-3), (x,))


# --- properties -------------------------------------------------------------------------------

rows = st.lists(st.floats(-100, 100, allow_nan=False, width=64), min_size=2, max_size=32)


@settings(max_examples=60, deadline=None)
@given(row=rows, a=st.floats(1e-3, 1e3))
def test_invariant_to_rescaling(row, a):
    x = torch.tensor(row, dtype=torch.float64)
    # RMS far above √ε = 1e-6 for both, so ε changes the output by < ε/RMS² = 1e-8
    assume(min(1, a) * x.pow(2).mean().sqrt() > 1e-2)
    y, y_scaled = rms_norm(x, x.numel(), eps=1e-12), rms_norm(a * x, x.numel(), eps=1e-12)
    torch.testing.assert_close(y_scaled, y, atol=1e-8, rtol=1e-8)


def shift_changes_output(xb):
    row, b = xb
    x = torch.tensor(row, dtype=torch.float64)
    d = x.numel()
    return not torch.allclose(rms_norm(x + b, d, eps=1e-12), rms_norm(x, d, eps=1e-12),
                              atol=1e-6)


def test_not_invariant_to_shifting_counterexample():
    """Hypothesis finds an input whose shift changes RMSNorm's output; LayerNorm ignores it."""
    row, b = find(st.tuples(rows, st.floats(-10, 10)), shift_changes_output,
                  settings=settings(database=None))
    x = torch.tensor(row, dtype=torch.float64)
    assert shift_changes_output((row, b))
    torch.testing.assert_close(layer_norm(x + b, x.numel(), eps=1e-12),
                               layer_norm(x, x.numel(), eps=1e-12), atol=1e-5, rtol=1e-5)
    x = torch.tensor([1.0, -1.0, 2.0], dtype=torch.float64)  # a concrete one, for the record
    assert shift_changes_output((x.tolist(), 1.0))


def test_constant_rows_are_the_only_shift_fixed_points():
    """x + b·1 = c·x (c > 0) needs a constant row: then a shift is only a rescaling."""
    x = torch.full((5,), 2.0, dtype=torch.float64)
    assert not shift_changes_output((x.tolist(), 3.0))


@settings(max_examples=60, deadline=None)
@given(row=rows)
def test_rows_have_unit_rms_without_weight(row):
    x = torch.tensor(row, dtype=torch.float64)
    ms = x.pow(2).mean().item()
    eps = 1e-6
    rms_y = rms_norm(x, x.numel(), eps=eps).pow(2).mean().sqrt().item()
    assert rms_y <= 1 + 1e-12
    assert rms_y == pytest.approx(math.sqrt(ms / (ms + eps)), rel=1e-9)  # = 1 up to ε
    if ms > 1e-2:
        assert rms_y == pytest.approx(1, abs=eps / ms)


# --- variants -----------------------------------------------------------------------------

def test_unit_offset_is_weight_plus_one():
    x, w = make((4, 10), (10,), torch.float64)
    expected = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * (1 + w)  # Gemma's
    close(rms_norm(x, 10, w, eps=1e-6, add_unit_offset=True), expected, torch.float64)
    close(rms_norm(x, 10, w, eps=1e-6, add_unit_offset=True),
          rms_norm(x, 10, 1 + w, eps=1e-6), torch.float64)


def test_unit_offset_upcasts_weight_before_adding_one():
    x = torch.randn(3, 8).to(torch.bfloat16)
    w = torch.full((8,), 1e-3, dtype=torch.bfloat16)  # 1 + 1e-3 rounds to 1 in bfloat16
    y = rms_norm(x, 8, w, add_unit_offset=True)
    expected = F.rms_norm(x.float(), (8,), 1 + w.float()).to(torch.bfloat16)
    torch.testing.assert_close(y, expected, atol=0, rtol=0)


def test_unit_offset_module_starts_as_plain_rmsnorm():
    m = RMSNorm(6, add_unit_offset=True)
    assert torch.equal(m.weight, torch.zeros(6))
    x = torch.randn(5, 6)
    close(m(x), F.rms_norm(x, (6,)), torch.float32)
    assert "add_unit_offset=True" in repr(m)


# (0.45, 28): p·d = 28.8 is floored, as the reference code does, not rounded
@pytest.mark.parametrize("p,k", [(0.0625, 4), (0.5, 32), (0.3, 19), (0.45, 28), (1.0, 64)])
def test_partial_matches_reference_code(p, k):
    """pRMSNorm: RMS from the first ⌊p·d⌋ features, ε outside the root as in bzhangGo/rmsnorm."""
    x, w = make((5, 64), (64,), torch.float64)
    y = rms_norm(x, 64, w, eps=1e-8, eps_inside_sqrt=False, partial=p)
    close(y, reference(x, 64, w, eps=1e-8, eps_inside_sqrt=False, k=k), torch.float64)


def test_partial_uses_only_leading_features_for_the_scale():
    x = torch.randn(3, 16, dtype=torch.float64)
    changed = x.clone()
    changed[:, 8:] *= 5  # the tail does not enter the statistic with partial=0.5
    y, y_changed = rms_norm(x, 16, partial=0.5), rms_norm(changed, 16, partial=0.5)
    torch.testing.assert_close(y_changed[:, :8], y[:, :8])
    torch.testing.assert_close(y_changed[:, 8:], 5 * y[:, 8:])


def test_partial_multi_dim_uses_row_major_order():
    x = torch.randn(2, 4, 4, dtype=torch.float64)
    close(rms_norm(x, (4, 4), partial=0.25), reference(x, (4, 4), eps=default_eps(x.dtype), k=4),
          torch.float64)


def test_t5_layer_norm_is_rms_norm():
    """T5's "LayerNorm": no bias, no mean subtraction, ε = 1e-6 inside the root."""
    x, w = make((2, 7, 32), (32,), torch.float32)
    variance = x.pow(2).mean(-1, keepdim=True)
    t5 = w * (x * torch.rsqrt(variance + 1e-6))
    close(rms_norm(x, 32, w, eps=1e-6), t5, torch.float32)


def test_without_learnable_weight():
    m = RMSNorm((3, 4), elementwise_affine=False)
    assert m.weight is None and list(m.parameters()) == []
    x = torch.randn(2, 3, 4)
    close(m(x), F.rms_norm(x, (3, 4)), torch.float32)


def test_eps_outside_sqrt_formula():
    x = torch.tensor([[3e-3, -3e-3, 3e-3, -3e-3]], dtype=torch.float64)  # RMS = 3e-3
    y = rms_norm(x, 4, eps=1e-5, eps_inside_sqrt=False)
    close(y, x / (3e-3 + 1e-5), torch.float64)
    y_inside = rms_norm(x, 4, eps=1e-5)
    close(y_inside, x / math.sqrt(9e-6 + 1e-5), torch.float64)
    assert (y / y_inside - 1).abs().max() > 0.4  # RMS ≈ √ε: the placements disagree a lot


@pytest.mark.parametrize("partial", [None, 0.5])
def test_eps_outside_sqrt_zero_row_has_gradient_dy_over_eps(partial):
    """y = x/(RMS(x)+ε) is differentiable at x = 0 with dy/dx = I/ε (the Triton kernel's
    answer); autograd of √(mean x²) would give 0·∞ = NaN there."""
    x = torch.zeros(2, 8, requires_grad=True)
    dy = torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
    rms_norm(x, 8, eps=1e-2, eps_inside_sqrt=False, partial=partial).backward(dy)
    torch.testing.assert_close(x.grad, dy / 1e-2)


def test_module_passes_its_eps_on():
    """RMS ≈ 1e-2 with eps = 0.1 (inside the root: 1e-4 against 0.1): eps dominates."""
    x = 1e-2 * make((4, 16), 16, torch.float64)[0]
    want = F.rms_norm(x, (16,), eps=0.1)
    close(RMSNorm(16, eps=0.1, dtype=torch.float64)(x), want, torch.float64)
    assert (F.rms_norm(x, (16,)) - want).abs().max() > 1  # eps=None differs a lot


def test_eps_placement_irrelevant_for_large_rms():
    x = torch.randn(8, 256, dtype=torch.float64)
    inside, outside = rms_norm(x, 256, eps=1e-6), rms_norm(x, 256, eps=1e-6, eps_inside_sqrt=False)
    assert ((inside / outside) - 1).abs().max() < 2e-6  # ≈ ε/RMS − ε/(2 RMS²) ≈ ε/2 at RMS 1


def test_layer_norm_is_rms_norm_of_centred_input():
    x, w = make((6, 24), (24,), torch.float64, offset=5.0)
    b = torch.randn(24, dtype=torch.float64)
    centred = x - x.mean(-1, keepdim=True)
    close(layer_norm(x, 24, w, b, eps=1e-5), rms_norm(centred, 24, w, eps=1e-5) + b,
          torch.float64)


# --- module and state dict ---------------------------------------------------------------

@pytest.mark.parametrize("affine", [True, False])
def test_state_dict_matches_torch(affine):
    ours, theirs = RMSNorm((3, 5), 1e-5, affine), torch.nn.RMSNorm((3, 5), 1e-5, affine)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert isinstance(ours, torch.nn.RMSNorm)
    if affine:
        with torch.no_grad():
            theirs.weight.normal_()
        ours.load_state_dict(theirs.state_dict())
        x = torch.randn(4, 3, 5)
        close(ours(x), theirs(x), torch.float32)
        theirs.load_state_dict(RMSNorm((3, 5)).state_dict())
        assert torch.equal(theirs.weight, torch.ones(3, 5))


def test_module_dtype_and_eps():
    m = RMSNorm(8, eps=None, dtype=torch.float64)
    assert m.weight.dtype == torch.float64 and m.eps is None
    x = torch.randn(2, 8, dtype=torch.float64)
    close(m(x), F.rms_norm(x, (8,), m.weight), torch.float64)


# --- bad inputs -------------------------------------------------------------------------------

X = torch.randn(2, 4)
BAD_CALLS = [
    ({"x": X, "normalized_shape": 5}, ValueError, "normalized_shape"),
    ({"x": X, "normalized_shape": (2, 5)}, ValueError, "normalized_shape"),
    ({"x": X, "normalized_shape": (3, 2, 4)}, ValueError, "normalized_shape"),
    ({"x": X, "normalized_shape": 4.0}, TypeError, "normalized_shape"),
    ({"x": X, "normalized_shape": 0}, ValueError, "normalized_shape"),
    ({"x": torch.ones(2, 4, dtype=torch.int64), "normalized_shape": 4}, TypeError, "x"),
    ({"x": torch.ones(2, 4, dtype=torch.bool), "normalized_shape": 4}, TypeError, "x"),
    ({"x": [[1.0, 2.0]], "normalized_shape": 2}, TypeError, "x"),
    ({"x": torch.tensor(1.0), "normalized_shape": 1}, ValueError, "x"),
    ({"x": X, "normalized_shape": 4, "eps": 0.0}, ValueError, "eps"),
    ({"x": X, "normalized_shape": 4, "eps": -1e-5}, ValueError, "eps"),
    ({"x": X, "normalized_shape": 4, "eps": math.nan}, ValueError, "eps"),
    ({"x": X, "normalized_shape": 4, "eps": math.inf}, ValueError, "eps"),
    ({"x": X, "normalized_shape": 4, "eps": "1e-5"}, TypeError, "eps"),
    ({"x": X, "normalized_shape": 4, "eps": 1e-50}, ValueError, "eps"),  # 0 in float32
    ({"x": X, "normalized_shape": 4, "eps": 1e39}, ValueError, "eps"),  # inf in float32
    ({"x": X, "normalized_shape": 4, "eps": 10**400}, ValueError, "eps"),  # not even a float64
    ({"x": X, "normalized_shape": 4, "weight": torch.ones(5)}, ValueError, "weight"),
    ({"x": X, "normalized_shape": 4, "weight": torch.ones(1, 4)}, ValueError, "weight"),
    ({"x": X, "normalized_shape": 4, "weight": torch.ones(4, device="meta")}, ValueError,
     "weight"),
    ({"x": X, "normalized_shape": 4, "weight": torch.ones(4, dtype=torch.int32)}, TypeError,
     "weight"),
    ({"x": X, "normalized_shape": 4, "weight": [1.0] * 4}, TypeError, "weight"),
    ({"x": X, "normalized_shape": 4, "add_unit_offset": True}, ValueError, "add_unit_offset"),
    ({"x": X, "normalized_shape": 4, "partial": 0.0}, ValueError, "partial"),
    ({"x": X, "normalized_shape": 4, "partial": -0.5}, ValueError, "partial"),
    ({"x": X, "normalized_shape": 4, "partial": 1.5}, ValueError, "partial"),
    ({"x": X, "normalized_shape": 4, "partial": math.nan}, ValueError, "partial"),
    ({"x": X, "normalized_shape": 4, "partial": 0.2}, ValueError, "partial"),  # ⌊0.8⌋ = 0
    ({"x": X, "normalized_shape": 4, "partial": "half"}, TypeError, "partial"),
]


@pytest.mark.parametrize("kwargs,error,name", BAD_CALLS,
                         ids=[f"{n}-{i}" for i, (_, _, n) in enumerate(BAD_CALLS)])
def test_bad_input_raises_naming_the_argument(kwargs, error, name):
    with pytest.raises(error, match=rf"\b{name}\b"):
        rms_norm(**kwargs)


@pytest.mark.parametrize("kwargs,name", [
    ({"partial": 2.0}, "partial"),
    ({"partial": 0.01}, "partial"),
    ({"add_unit_offset": True, "elementwise_affine": False}, "add_unit_offset"),
])
def test_bad_module_arguments_fail_at_construction(kwargs, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        RMSNorm(8, **kwargs)


def test_public_api():
    assert normlab.rms_norm is rms_norm and normlab.RMSNorm is RMSNorm


@pytest.mark.parametrize("normalized_shape", [(8,), (3, 5)])
@pytest.mark.parametrize("with_weight", [True, False])
def test_rms_norm_backward_matches_autograd(normalized_shape, with_weight):
    torch.manual_seed(0)
    x = (torch.randn(4, 2, *normalized_shape, dtype=torch.float64) + 0.7).requires_grad_()
    w = (torch.rand(normalized_shape, dtype=torch.float64) + 0.5).requires_grad_()
    weight = w if with_weight else None
    dy = torch.randn_like(x)
    rms_norm(x, normalized_shape, weight, eps=1e-5).backward(dy)
    dx, dw = normlab.rms_norm_backward(dy, x.detach(), normalized_shape,
                                       None if weight is None else w.detach(), eps=1e-5)
    torch.testing.assert_close(dx, x.grad, rtol=1e-10, atol=1e-12)
    if with_weight:
        torch.testing.assert_close(dw, w.grad, rtol=1e-10, atol=1e-12)
    assert dw.shape == tuple(normalized_shape)


def test_rms_norm_backward_rejects_mismatched_dy():
    x = torch.randn(3, 8)
    with pytest.raises(ValueError, match="dy must have the shape of x"):
        normlab.rms_norm_backward(torch.randn(2, 8), x, 8)
