"""Fused Triton kernels against torch.nn.functional and the float64 reference.

Without a GPU the kernels run on CPU tensors through Triton's interpreter on small
shapes (tests/conftest.py sets TRITON_INTERPRET=1 before any test imports triton); with a
GPU the same tests run at full size.
"""

import importlib
import re
import sys

import pytest
import torch

CUDA = torch.cuda.is_available()
pytest.importorskip("triton", reason="Triton is not installed (Linux only): kernels untested")

import torch.nn.functional as F  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

import normlab  # noqa: E402
from normlab import kernels  # noqa: E402
from normlab.kernels import _launch  # noqa: E402

DEVICE = "cuda" if CUDA else "cpu"
# Max |error| allowed against the float64 reference, per dtype (y, dx, dweight, dbias alike,
# relative to the tensor's own scale): the output rounding of each dtype plus headroom (on a
# CPU twice it for bfloat16: the interpreter truncates, see the test at the end).
TOL = {torch.float32: 1e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}
DTYPES = list(TOL)
# (leading shape, N): N = 1, odd sizes, several leading dims; bigger on a GPU.
# 1000: N % 16 != 0 yet a multiple of a 16-byte vector (the VEC path)
SHAPES = [((3,), 1), ((5,), 123), ((2, 3), 33), ((4,), 1023), ((3,), 1000)]
if CUDA:
    SHAPES += [((4096,), 1024), ((2, 512), 4099), ((64,), 16384), ((8,), 65536), ((3,), 100_003)]


def make_inputs(lead, n, dtype, seed=0, mean=0.0):
    """x, dy in ``dtype`` and affine parameters in float32, all on DEVICE (seeded)."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(*lead, n, generator=g) + mean).to(DEVICE, dtype)
    dy = torch.randn(*lead, n, generator=g).to(DEVICE, dtype)
    weight = (1 + 0.5 * torch.randn(n, generator=g)).to(DEVICE)
    bias = (0.5 * torch.randn(n, generator=g)).to(DEVICE)
    return x, dy, weight, bias


def run(fn, x, dy, *params, **kwargs):
    """Forward ``fn(x, *params)``, backward with ``dy``: returns (y, dx, dparam...)."""
    leaves = [t.detach().clone().requires_grad_() for t in (x, *params)]
    y = fn(*leaves, **kwargs)
    y.backward(dy)
    return (y.detach(), *(t.grad for t in leaves))


def assert_close(got, want, tol, what):
    """max |got - want| <= tol · max(1, max |want|), with want the float64 reference."""
    assert got.dtype != torch.float64 or want.dtype == torch.float64
    err = (got.double() - want.double()).abs().max().item() if want.numel() else 0.0
    scale = max(1.0, want.double().abs().max().item()) if want.numel() else 1.0
    assert err <= tol * scale, f"{what}: max error {err:.3g} > {tol * scale:.3g}"


def ln_triton(x, w, b):
    return kernels.layer_norm(x, x.shape[-1:], w, b)


def ln_reference(x, w, b):
    return normlab.layer_norm(x, x.shape[-1:], w, b)


def rms_triton(x, w, **kw):
    return kernels.rms_norm(x, x.shape[-1:], w, **kw)


def rms_reference(x, w, **kw):
    return normlab.rms_norm(x, x.shape[-1:], w, **kw)


def check_against_references(triton_fn, reference_fn, torch_fn, x, dy, params, tol, **kw):
    """Triton vs the float64 reference, and torch.nn.functional vs the same (sanity)."""
    got = run(triton_fn, x, dy, *params, **kw)
    want = run(reference_fn, x.double(), dy.double(), *(p.double() for p in params), **kw)
    names = ["y", "dx", "dweight", "dbias"]
    for name, g, w in zip(names, got, want, strict=False):
        assert g.dtype == (x.dtype if name in ("y", "dx") else params[0].dtype), name
        assert_close(g, w, tol, name)
    if torch_fn is not None:
        for name, g, w in zip(names, got, run(torch_fn, x.double(), dy.double(),
                                              *(p.double() for p in params)), strict=False):
            assert_close(g, w, tol, f"{name} vs torch.nn.functional")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("lead,n", SHAPES)
def test_layer_norm_matches_references(lead, n, dtype):
    x, dy, w, b = make_inputs(lead, n, dtype)
    check_against_references(ln_triton, ln_reference,
                             lambda x, w, b: F.layer_norm(x, x.shape[-1:], w, b),
                             x, dy, (w, b), TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("lead,n", SHAPES)
def test_rms_norm_matches_references(lead, n, dtype):
    x, dy, w, _ = make_inputs(lead, n, dtype)
    # torch.nn.functional.rms_norm's eps=None is the float64 eps for float64 input: pass ours.
    eps = normlab.default_eps(dtype)
    check_against_references(rms_triton, rms_reference,
                             lambda x, w: F.rms_norm(x, x.shape[-1:], w, eps=eps),
                             x, dy, (w,), TOL[dtype], eps=eps)


@pytest.mark.parametrize("eps_inside_sqrt", [True, False])
def test_rms_norm_eps_placement(eps_inside_sqrt):
    x, dy, w, _ = make_inputs((6,), 77, torch.float32, mean=0.0)
    x = x * 1e-3  # small rows: where the two ε placements differ most
    check_against_references(rms_triton, rms_reference, None, x, dy, (w,), TOL[torch.float32],
                             eps=1e-6, eps_inside_sqrt=eps_inside_sqrt)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_rms_norm_unit_offset(dtype):
    """Gemma's y = (1 + w) ⊙ x̂: the fused path adds the 1 in float32, dw is dg."""
    x, dy, w, _ = make_inputs((5,), 123, dtype)
    check_against_references(rms_triton, rms_reference, None, x, dy, (w - 1,), TOL[dtype],
                             add_unit_offset=True)


def test_rms_module_options_match_reference_module():
    torch.manual_seed(0)
    for options in (dict(add_unit_offset=True), dict(eps_inside_sqrt=False, eps=1e-3)):
        ref, fast = normlab.RMSNorm(12, **options), kernels.TritonRMSNorm(12, **options)
        torch.nn.init.normal_(ref.weight, std=0.1)  # the offset form starts at w = 0
        ref, fast = ref.to(DEVICE), fast.to(DEVICE)
        fast.load_state_dict(ref.state_dict())
        x = torch.randn(4, 12, device=DEVICE)
        torch.testing.assert_close(fast(x), ref(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="partial must be None"):
        kernels.TritonRMSNorm(12, partial=0.5)
    with pytest.raises(ValueError, match="add_unit_offset=True needs a weight"):
        kernels.rms_norm(torch.ones(2, 3, device=DEVICE), 3, add_unit_offset=True)


@pytest.fixture
def loop_path(monkeypatch):
    """Force the long-row code path (column blocks of 32) on small rows."""
    monkeypatch.setattr(_launch, "MAX_FUSED_SIZE", 64)
    monkeypatch.setattr(_launch, "LOOP_BLOCK_SIZE", 32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("n", [123])  # 3 full column blocks of 32 and a partial one
def test_long_row_path(loop_path, n, dtype):
    x, dy, w, b = make_inputs((2, 3), n, dtype)
    check_against_references(ln_triton, ln_reference, None, x, dy, (w, b), TOL[dtype])
    check_against_references(rms_triton, rms_reference, None, x, dy, (w,), TOL[dtype])
    check_against_references(rms_triton, rms_reference, None, x, dy, (w,), TOL[dtype],
                             eps=1e-5, eps_inside_sqrt=False)


@pytest.mark.parametrize("long_rows", [False, True])
def test_layer_norm_large_mean_is_stable(monkeypatch, long_rows):
    """mean 1e4, std 1 in float32: Σx² − (Σx)²/N would lose every digit of the variance."""
    if long_rows:
        monkeypatch.setattr(_launch, "MAX_FUSED_SIZE", 64)
        monkeypatch.setattr(_launch, "LOOP_BLOCK_SIZE", 32)
    x, dy, w, b = make_inputs((4,), 200, torch.float32, mean=1e4)
    y = ln_triton(x, w, b)
    assert_close(y, ln_reference(x.double(), w.double(), b.double()), 1e-3, "y")


def test_zero_size_batch():
    x, dy, w, b = make_inputs((0, 3), 16, torch.float32)
    y, dx, dw, db = run(ln_triton, x, dy, w, b)
    assert y.shape == dx.shape == (0, 3, 16)
    assert torch.equal(dw, torch.zeros_like(w)) and torch.equal(db, torch.zeros_like(b))
    y, dx, dw = run(rms_triton, x, dy, w)
    assert y.shape == (0, 3, 16) and torch.equal(dw, torch.zeros_like(w))


def strided_cases(lead, n, dtype):
    """Non-contiguous x and dy: transposed, row-strided and broadcast (stride 0) layouts."""
    x, dy, w, b = make_inputs(lead, n, dtype)
    x_t = x.reshape(-1, n).t().contiguous().t().reshape(x.shape)  # column-major storage
    dy_t = dy.reshape(-1, n).t().contiguous().t().reshape(dy.shape)
    x_rows = torch.cat([x, x], dim=-1)[..., :n]  # rows 2n apart in memory
    dy_bcast = torch.ones(n, dtype=dtype, device=DEVICE).expand_as(dy)
    return w, b, [(x_t, dy), (x, dy_t), (x_rows, dy_t), (x_t, dy_bcast)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_non_contiguous_x_and_dy(dtype):
    w, b, cases = strided_cases((4, 3), 37, dtype)
    for x, dy in cases:
        assert not (x.is_contiguous() and dy.is_contiguous())
        check_against_references(ln_triton, ln_reference, None, x, dy, (w, b), TOL[dtype])
        check_against_references(rms_triton, rms_reference, None, x, dy, (w,), TOL[dtype])


def test_vector_width_only_where_every_row_starts_on_a_16_byte_vector():
    x = torch.empty(4, 1000, dtype=torch.bfloat16)
    assert _launch.vector_width(1000, x) == 8
    assert _launch.vector_width(1000, x.float(), None) == 4
    assert _launch.vector_width(1001, torch.empty(4, 1001, dtype=torch.bfloat16)) == 1
    rows_44_apart = torch.empty(4, 44, dtype=torch.bfloat16)[:, :40]
    assert _launch.vector_width(40, x[:, :40].contiguous(), rows_44_apart) == 1
    assert _launch.vector_width(40, rows_44_apart[:1]) == 8  # one row: no stride to check


def test_multi_dim_normalized_shape_and_no_affine():
    x, dy, _, _ = make_inputs((3,), 20, torch.float32)
    x, dy = x.reshape(3, 4, 5), dy.reshape(3, 4, 5)
    w = torch.randn(4, 5, device=DEVICE)
    got = run(lambda x, w: kernels.layer_norm(x, (4, 5), w), x, dy, w)
    want = run(lambda x, w: F.layer_norm(x, (4, 5), w), x.double(), dy.double(), w.double())
    for g, r in zip(got, want, strict=True):
        assert_close(g, r, 1e-5, "layer_norm (4, 5)")
    got = run(lambda x: kernels.rms_norm(x, (4, 5), eps=1e-6), x, dy)
    want = run(lambda x: F.rms_norm(x, (4, 5), eps=1e-6), x.double(), dy.double())
    for g, r in zip(got, want, strict=True):
        assert_close(g, r, 1e-5, "rms_norm (4, 5), no weight")


def test_half_input_keeps_float32_statistics_and_partials():
    from normlab.kernels.layer_norm import layer_norm_bwd, layer_norm_fwd
    from normlab.kernels.rms_norm import rms_norm_bwd, rms_norm_fwd

    x, dy, w, b = make_inputs((8,), 40, torch.bfloat16)
    y, mean, rstd, h = layer_norm_fwd(x, w, b, 1e-5)
    assert (y.dtype, mean.dtype, rstd.dtype) == (torch.bfloat16, torch.float32, torch.float32)
    assert h is None
    dx, dweight, dbias = layer_norm_bwd(dy, x, w, mean, rstd)
    assert dx.dtype == torch.bfloat16 and dweight.dtype == dbias.dtype == torch.float32
    y, rstd, _ = rms_norm_fwd(x, w, 1e-5)
    assert rstd.dtype == torch.float32
    assert rms_norm_bwd(dy, x, w, rstd, 1e-5)[1].dtype == torch.float32


def test_dweight_dbias_are_bitwise_deterministic():
    x, dy, w, b = make_inputs((8192,) if CUDA else (20,), 1024 if CUDA else 96, torch.bfloat16)
    first = run(ln_triton, x, dy, w, b)
    assert all(torch.equal(f, a) for f, a in zip(first, run(ln_triton, x, dy, w, b), strict=True))
    first = run(rms_triton, x, dy, w)
    assert all(torch.equal(f, a) for f, a in zip(first, run(rms_triton, x, dy, w), strict=True))


def test_gradcheck_float64():
    x, _, w, b = make_inputs((3,), 7, torch.float64)
    args = [t.double().requires_grad_() for t in (x, w, b)]
    fast = not CUDA  # the interpreter is slow: check random projections of the Jacobian
    assert torch.autograd.gradcheck(ln_triton, args, fast_mode=fast)
    for inside in (True, False):
        assert torch.autograd.gradcheck(
            lambda x, w, inside=inside: rms_triton(x, w, eps=1e-3, eps_inside_sqrt=inside),
            args[:2], fast_mode=fast)


def test_rms_norm_zero_row_eps_outside_has_finite_gradient():
    """y = x/(RMS(x)+ε) is differentiable at x = 0 with dy/dx = I/ε (as the reference's
    ‖x‖/√d gives; autograd of √(mean x²) would give 0 · ∞ = NaN there)."""
    x = torch.zeros(2, 8, device=DEVICE)
    dy = torch.randn(2, 8, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    _, dx = run(lambda x: rms_triton(x, None, eps=1e-2, eps_inside_sqrt=False), x, dy)
    torch.testing.assert_close(dx, dy / 1e-2)


def test_eps_reaches_the_kernels():
    """Rows whose variance (LayerNorm) or mean square (RMSNorm) is ≈ 1e-4, with eps = 0.1:
    a kernel or module that drops eps is far off."""
    small = 1e-2 * torch.randn(4, 16, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    for fused, module, x, ref in [
        (kernels.layer_norm, kernels.TritonLayerNorm, 1 + small, F.layer_norm),
        (kernels.rms_norm, kernels.TritonRMSNorm, small, F.rms_norm),
    ]:
        want = ref(x, (16,), eps=0.1)
        torch.testing.assert_close(fused(x, 16, eps=0.1), want, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(module(16, eps=0.1, device=DEVICE)(x), want,
                                   atol=1e-5, rtol=1e-5)


def test_modules_are_drop_in():
    torch.manual_seed(0)
    for ref, fast, x in [
        (torch.nn.LayerNorm(12), kernels.TritonLayerNorm(12), torch.randn(2, 3, 12)),
        (torch.nn.LayerNorm(12, bias=False), kernels.TritonLayerNorm(12, bias=False),
         torch.randn(5, 12)),
        (torch.nn.RMSNorm(12), kernels.TritonRMSNorm(12), torch.randn(2, 3, 12)),
        (torch.nn.RMSNorm(12, elementwise_affine=False),
         kernels.TritonRMSNorm(12, elementwise_affine=False), torch.randn(4, 12)),
    ]:
        for p in ref.parameters():  # non-trivial parameters, loaded through the state dict
            torch.nn.init.normal_(p)
        ref, fast, x = ref.to(DEVICE), fast.to(DEVICE), x.to(DEVICE)
        fast.load_state_dict(ref.state_dict())
        assert fast.state_dict().keys() == ref.state_dict().keys()
        assert isinstance(fast, type(ref)) and fast.eps == ref.eps
        torch.testing.assert_close(fast(x), ref(x), atol=1e-5, rtol=1e-5)


BAD_CALLS = [
    ("x not a tensor", lambda f: f([1.0, 2.0], 2)),
    ("integer x", lambda f: f(torch.ones(2, 3, dtype=torch.int64), 3)),
    ("zero-dim x", lambda f: f(torch.tensor(1.0), 1)),
    ("shape mismatch", lambda f: f(torch.ones(2, 3), 4)),
    ("bad normalized_shape", lambda f: f(torch.ones(2, 3), None)),
    ("eps zero", lambda f: f(torch.ones(2, 3), 3, eps=0.0)),
    ("eps nan", lambda f: f(torch.ones(2, 3), 3, eps=float("nan"))),
    ("eps bool", lambda f: f(torch.ones(2, 3), 3, eps=True)),
    ("eps 0 in float32", lambda f: f(torch.ones(2, 3), 3, eps=1e-50)),
    ("weight shape", lambda f: f(torch.ones(2, 3), 3, torch.ones(4))),
    ("weight int", lambda f: f(torch.ones(2, 3), 3, torch.ones(3, dtype=torch.int32))),
    ("weight list", lambda f: f(torch.ones(2, 3), 3, [1.0, 1.0, 1.0])),
]


@pytest.mark.parametrize("bad", [c[1] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
@pytest.mark.parametrize("pair", [(normlab.layer_norm, kernels.layer_norm),
                                  (normlab.rms_norm, kernels.rms_norm)], ids=["ln", "rms"])
def test_bad_input_same_error_as_reference(pair, bad):
    reference, fused = pair
    with pytest.raises((TypeError, ValueError)) as want:
        bad(reference)
    with pytest.raises(want.type) as got:
        bad(lambda x, *a, **k: fused(x.to(DEVICE) if isinstance(x, torch.Tensor) else x, *a,
                                     **k))
    assert str(got.value) == str(want.value)


def test_bad_bias_same_error_as_reference():
    x = torch.ones(2, 3, device=DEVICE)
    for bias in (torch.ones(2, device=DEVICE), "b"):
        with pytest.raises((TypeError, ValueError)) as want:
            normlab.layer_norm(x, 3, None, bias)
        with pytest.raises(want.type, match=re.escape(str(want.value))):
            kernels.layer_norm(x, 3, None, bias)


def test_parameter_on_another_device_same_error_as_reference():
    x, meta = torch.ones(2, 3, device=DEVICE), torch.ones(3, device="meta")
    for reference, fused, args in [(normlab.layer_norm, kernels.layer_norm, (meta, None)),
                                   (normlab.layer_norm, kernels.layer_norm, (None, meta)),
                                   (normlab.rms_norm, kernels.rms_norm, (meta,))]:
        with pytest.raises(ValueError, match="must be on x's device") as want:
            reference(x, 3, *args)
        with pytest.raises(ValueError, match=re.escape(str(want.value))):
            fused(x, 3, *args)


@pytest.mark.skipif(CUDA, reason="CPU-only check of the device message")
def test_cpu_tensor_without_interpreter_is_rejected(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="x must be a CUDA tensor"):
        kernels.layer_norm(torch.ones(2, 3), 3)


def test_import_without_triton_gives_clear_message(monkeypatch):
    for name in [m for m in sys.modules if m.startswith("normlab.kernels")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "triton", None)  # makes `import triton` fail
    with pytest.raises(ImportError, match="normlab.kernels needs Triton"):
        importlib.import_module("normlab.kernels")
    assert normlab.layer_norm(torch.ones(1, 2), 2).shape == (1, 2)


BIG_GPU = CUDA and torch.cuda.get_device_properties(0).total_memory >= 40e9


@pytest.mark.skipif(not BIG_GPU, reason="needs a GPU with >= 40 GB for > 2**31 elements")
def test_row_offsets_beyond_int32():
    """M·N > 2**31: a row index multiplied by the stride in int32 would wrap around."""
    n = 4096
    m = 2**31 // n + 2
    x, dy, w, _ = make_inputs((m,), n, torch.bfloat16)
    tail = slice(m - 4, m)  # rows whose offsets exceed 2**31 - 1
    pairs = [(lambda x, w: kernels.layer_norm(x, n, w), lambda x, w: normlab.layer_norm(x, n, w)),
             (lambda x, w: kernels.rms_norm(x, n, w), lambda x, w: normlab.rms_norm(x, n, w))]
    for fused, reference in pairs:
        y, dx, _ = run(fused, x, dy, w)
        want = run(reference, x[tail].double(), dy[tail].double(), w.double())
        assert_close(y[tail], want[0], TOL[torch.bfloat16], "y of the last rows")
        assert_close(dx[tail], want[1], TOL[torch.bfloat16], "dx of the last rows")
        del y, dx


@triton.jit
def _to_bfloat16(x_ptr, y_ptr, BLOCK_SIZE: tl.constexpr):
    cols = tl.arange(0, BLOCK_SIZE)
    tl.store(y_ptr + cols, tl.load(x_ptr + cols).to(tl.bfloat16))


@pytest.mark.skipif(CUDA, reason="a property of the interpreter, which chapter 7 states")
def test_interpreter_truncates_float32_to_bfloat16():
    """Chapter 7: the interpreter rounds float32 → bfloat16 toward zero (a GPU rounds to
    nearest), so bfloat16 kernel errors on a CPU are up to twice a GPU's."""
    x = torch.randn(1024, generator=torch.Generator().manual_seed(0))
    y = torch.empty(1024, dtype=torch.bfloat16)
    _to_bfloat16[(1,)](x, y, BLOCK_SIZE=1024)
    assert (y.float().abs() <= x.abs()).all()  # never rounded away from zero
    assert not torch.equal(y, x.to(torch.bfloat16))  # so not round-to-nearest


def test_column_blocks_narrower_than_a_vector(monkeypatch):
    """VEC never exceeds the block: 4-column blocks of bfloat16 rows with N % 8 == 0."""
    monkeypatch.setattr(_launch, "MAX_FUSED_SIZE", 4)
    monkeypatch.setattr(_launch, "LOOP_BLOCK_SIZE", 4)
    x, dy, w, b = make_inputs((3,), 40, torch.bfloat16)
    check_against_references(ln_triton, ln_reference, None, x, dy, (w, b), TOL[torch.bfloat16])
    check_against_references(rms_triton, rms_reference, None, x, dy, (w,), TOL[torch.bfloat16])
