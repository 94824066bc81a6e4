"""Rows whose squares overflow: the right answer where one is representable, NaN where none
exists, never a finite wrong value (issue #16, cause 1). Both paths, forward and backward.

The oracle computes each row exactly (60 significant digits, Python's ``decimal``), so it
shares no code and no rounding with either path.
"""

import importlib.util
import math
from decimal import Decimal, localcontext

import pytest
import torch

import normlab

NO_TRITON = pytest.mark.skipif(importlib.util.find_spec("triton") is None,
                               reason="Triton not installed")


@pytest.fixture(params=["reference", pytest.param("kernels", marks=NO_TRITON),
                        pytest.param("kernels, long rows", marks=NO_TRITON)])
def path(request, monkeypatch):
    """Which implementation: the reference, or the kernels (also forced onto their
    long-row code, which reads a row in column blocks of 4)."""
    if request.param == "kernels, long rows":
        from normlab.kernels import _launch

        monkeypatch.setattr(_launch, "MAX_FUSED_SIZE", 4)
        monkeypatch.setattr(_launch, "LOOP_BLOCK_SIZE", 4)
    return request.param


# Max error relative to the largest |value| of the exact tensor: each dtype's rounding of
# the output plus headroom (bfloat16 outputs round to 8 bits; a CPU's interpreter truncates).
TOL = {torch.float32: 1e-5, torch.bfloat16: 3e-2, torch.float64: 1e-12}
BIG = {torch.float32: 3e38, torch.bfloat16: 3e38, torch.float64: 1.7e308}
LARGE = {torch.float32: 1e20, torch.bfloat16: 1e20, torch.float64: 1e200}


def functions(path):
    """``(layer_norm, rms_norm)`` of the path."""
    if path == "reference":
        return normlab.layer_norm, normlab.rms_norm
    from normlab import kernels

    return kernels.layer_norm, kernels.rms_norm


def overflow_rows(dtype, n=8):
    """Rows (each ``n`` long) whose squared deviations (and squares) overflow in ``dtype``'s
    compute dtype, next to an ordinary row, which must come out as it always did."""
    big, large = BIG[dtype], LARGE[dtype]
    g = torch.Generator().manual_seed(0)
    rows = [
        torch.randn(n, generator=g, dtype=torch.float64) * large,  # squares overflow
        torch.tensor([big, -big] * (n // 2), dtype=torch.float64),  # sum finite, squares not
        torch.tensor([big] + [-big] * (n - 1), dtype=torch.float64),  # x - mean overflows
        torch.randn(n, generator=g, dtype=torch.float64),  # ordinary
    ]
    return torch.stack(rows).to(dtype)


def exact(values):
    """A float64 tensor as rows of Decimals."""
    return [[Decimal(float(v)) for v in row] for row in values.double().tolist()]


def to_tensor(rows):
    return torch.tensor([[float(v) for v in row] for row in rows], dtype=torch.float64)


def exact_layer_norm(x, dy, weight, bias, eps):
    """y, dx, dweight, dbias of LayerNorm, exactly (then rounded to float64)."""
    xs, dys, w, b = exact(x), exact(dy), exact(weight[None])[0], exact(bias[None])[0]
    e = Decimal(eps)
    ys, dxs, dw, db = [], [], [Decimal(0)] * len(w), [Decimal(0)] * len(w)
    with localcontext() as ctx:
        ctx.prec = 60
        for row, drow in zip(xs, dys, strict=True):
            n = len(row)
            mu = sum(row) / n
            rstd = 1 / (sum((v - mu) ** 2 for v in row) / n + e).sqrt()
            x_hat = [(v - mu) * rstd for v in row]
            ys.append([h * wi + bi for h, wi, bi in zip(x_hat, w, b, strict=True)])
            gw = [d * wi for d, wi in zip(drow, w, strict=True)]
            mean_g = sum(gw) / n
            mean_gx = sum(gi * h for gi, h in zip(gw, x_hat, strict=True)) / n
            dxs.append([rstd * (gi - mean_g - h * mean_gx)
                        for gi, h in zip(gw, x_hat, strict=True)])
            dw = [a + d * h for a, d, h in zip(dw, drow, x_hat, strict=True)]
            db = [a + d for a, d in zip(db, drow, strict=True)]
        return to_tensor(ys), to_tensor(dxs), to_tensor([dw])[0], to_tensor([db])[0]


def exact_rms_norm(x, dy, weight, eps, eps_inside_sqrt=True):
    """y, dx, dweight of RMSNorm, exactly: dx = rstd·g − k·x̂·mean(g⊙x̂), k = rstd (ε inside
    the sqrt) or 1/RMS (outside)."""
    xs, dys, w = exact(x), exact(dy), exact(weight[None])[0]
    e = Decimal(eps)
    ys, dxs, dw = [], [], [Decimal(0)] * len(w)
    with localcontext() as ctx:
        ctx.prec = 60
        for row, drow in zip(xs, dys, strict=True):
            n = len(row)
            rms = (sum(v * v for v in row) / n).sqrt()
            rstd = 1 / ((rms * rms + e).sqrt() if eps_inside_sqrt else rms + e)
            k = rstd if eps_inside_sqrt else 1 / rms
            x_hat = [v * rstd for v in row]
            ys.append([h * wi for h, wi in zip(x_hat, w, strict=True)])
            gw = [d * wi for d, wi in zip(drow, w, strict=True)]
            mean_gx = sum(gi * h for gi, h in zip(gw, x_hat, strict=True)) / n
            dxs.append([rstd * gi - k * h * mean_gx for gi, h in zip(gw, x_hat, strict=True)])
            dw = [a + d * h for a, d, h in zip(dw, drow, x_hat, strict=True)]
        return to_tensor(ys), to_tensor(dxs), to_tensor([dw])[0]


def assert_close(got, want, dtype, what):
    """|got − want| ≤ tol·max|want| (+ a few subnormal steps), and got finite where want is."""
    assert torch.isfinite(got).all(), f"{what}: not finite: {got}"
    err = (got.double() - want).abs().max().item()
    allowed = TOL[dtype] * want.abs().max().item() + 8 * torch.finfo(got.dtype).smallest_normal \
        * torch.finfo(got.dtype).eps
    assert err <= allowed, f"{what}: max error {err:.3g} > {allowed:.3g}\ngot {got}\nwant {want}"


def run(fn, x, dy, *params, **kwargs):
    """y and the gradients of x and the params for upstream gradient ``dy``."""
    leaves = [t.detach().clone().requires_grad_() for t in (x, *params)]
    y = fn(*leaves, **kwargs)
    y.backward(dy)
    return (y.detach(), *(t.grad for t in leaves))


def inputs(dtype, n=8):
    x = overflow_rows(dtype, n)
    g = torch.Generator().manual_seed(1)
    dy = torch.randn(x.shape, generator=g, dtype=torch.float64).to(dtype)
    weight = (1 + 0.5 * torch.randn(n, generator=g, dtype=torch.float64)).to(dtype)
    bias = (0.5 * torch.randn(n, generator=g, dtype=torch.float64)).to(dtype)
    return x, dy, weight, bias


@pytest.mark.parametrize("dtype", list(TOL), ids=str)
def test_layer_norm_overflowing_rows_are_right(path, dtype):
    x, dy, weight, bias = inputs(dtype)
    got = run(lambda x, w, b: functions(path)[0](x, x.shape[-1:], w, b), x, dy, weight, bias)
    for name, g, w in zip(("y", "dx", "dweight", "dbias"), got,
                          exact_layer_norm(x, dy, weight, bias, 1e-5), strict=True):
        assert_close(g, w, dtype, f"{path} {name}")


@pytest.mark.parametrize("eps_inside_sqrt", [True, False])
@pytest.mark.parametrize("dtype", list(TOL), ids=str)
def test_rms_norm_overflowing_rows_are_right(path, dtype, eps_inside_sqrt):
    x, dy, weight, _ = inputs(dtype)
    got = run(lambda x, w: functions(path)[1](x, x.shape[-1:], w, 1e-5,
                                              eps_inside_sqrt=eps_inside_sqrt), x, dy, weight)
    for name, g, w in zip(("y", "dx", "dweight"), got,
                          exact_rms_norm(x, dy, weight, 1e-5, eps_inside_sqrt), strict=True):
        assert_close(g, w, dtype, f"{path} {name}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_layer_norm_constant_row_whose_sum_overflows(path, dtype):
    """All entries 3e38: the mean overflows, yet x − μ = 0, so y = β and dx = rstd·(g − ḡ)
    with rstd = 1/√ε exactly: ε keeps its meaning on the rescaled row."""
    x = torch.full((1, 8), 3e38, dtype=torch.float64).to(dtype)
    _, dy, weight, bias = inputs(dtype)
    dy = dy[:1]
    got = run(lambda x, w, b: functions(path)[0](x, 8, w, b, eps=1e-2), x, dy, weight, bias)
    for name, g, w in zip(("y", "dx", "dweight", "dbias"), got,
                          exact_layer_norm(x, dy, weight, bias, 1e-2), strict=True):
        assert_close(g, w, dtype, f"{path} {name}")


@pytest.mark.parametrize("scale", [0.0, 1.0])
def test_eps_keeps_its_meaning_on_rescaled_rows(path, scale):
    """A float32 row of entries up to 1e20: its variance (≈ 3e39) overflows, and an ε of
    the same order (1e38 inside the sqrt, 1e19 outside: ``scale`` = 1) changes y by a few
    %, so the rescaled row must carry ε/s² (ε/s) to get it right; ``scale`` = 0 takes
    ε = 1e-5, negligible there."""
    x = torch.tensor([[1e20, -1e20, 2e19, -3e19, 5e19, 0.0, 1e18, -1e19]])
    dy = torch.linspace(-1, 1, 8)[None]
    w, b = torch.ones(8), torch.zeros(8)
    ln, rms = functions(path)
    inside, outside = (1e38, 1e19) if scale else (1e-5, 1e-5)
    got = run(lambda x, w, b: ln(x, 8, w, b, eps=inside), x, dy, w, b)
    for name, g, want in zip(("y", "dx"), got, exact_layer_norm(x, dy, w, b, inside),
                             strict=False):
        assert_close(g, want, torch.float32, f"{path} layer_norm {name}")
    for eps_inside_sqrt, eps in ((True, inside), (False, outside)):
        got = run(lambda x, w, e=eps, inside=eps_inside_sqrt:
                  rms(x, 8, w, e, eps_inside_sqrt=inside), x, dy, w)
        for name, g, want in zip(("y", "dx"), got, exact_rms_norm(x, dy, w, eps, eps_inside_sqrt),
                                 strict=False):
            assert_close(g, want, torch.float32, f"{path} rms_norm {name} {eps_inside_sqrt=}")


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_rows_with_inf_or_nan_are_nan_and_leave_other_rows_alone(path, bad):
    """No right answer exists for a row holding ±inf or NaN: the whole row is NaN (as in
    PyTorch), never a finite value; the other rows of the batch are unaffected."""
    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(2))
    x[1, 3] = bad
    ln, rms = functions(path)
    for y, want in ((ln(x, 8), torch.nn.functional.layer_norm(x[::2], (8,))),
                    (rms(x, 8), torch.nn.functional.rms_norm(x[::2], (8,), eps=1.2e-7))):
        assert torch.isnan(y[1]).all()
        torch.testing.assert_close(y[::2], want, atol=1e-5, rtol=1e-5)


def test_float64_constant_row_whose_sum_overflows(path):
    """A float64 constant row with |x| > max/d: the sum overflows and ε/s² underflows even
    in float64. The kernels take rstd = 1/√ε directly; the reference's float64 s/√ε
    overflows there (|x| > √ε·max), so it returns NaN: right or NaN, never finite and wrong."""
    x = torch.full((1, 4), 1.7e308, dtype=torch.float64)
    y = functions(path)[0](x, 4)
    assert torch.isnan(y).all() if path == "reference" else (y == 0).all(), y
