"""Fused LayerNorm: one Triton program per row forward, row-blocked programs backward."""

import torch
import triton
import triton.language as tl
from torch.autograd.function import once_differentiable

from normlab._validate import check_eps, check_input, check_param, compute_dtype
from normlab.kernels import _launch
from normlab.kernels._common import affine_store, load_block
from normlab.layer_norm import LayerNorm


@triton.jit
def _row_mean_var(x_ptr, N, BLOCK_SIZE: tl.constexpr, ACC: tl.constexpr):
    """Mean and biased variance of a long row in one pass over memory.

    Each block's moments are exact (two passes over registers); blocks are merged with
    Chan et al.'s update, which, unlike sum and sum of squares, does not cancel when
    |mean| >> std.
    """
    mean = tl.zeros([], ACC)
    m2 = tl.zeros([], ACC)  # sum of squared deviations so far
    count = tl.zeros([], ACC)
    for start in range(0, N, BLOCK_SIZE):
        cols = start + tl.arange(0, BLOCK_SIZE)
        mask = cols < N
        x = tl.load(x_ptr + cols, mask=mask, other=0.0).to(ACC)
        n_b = tl.sum(mask.to(ACC), axis=0)
        mean_b = tl.sum(x, axis=0) / n_b
        d = tl.where(mask, x - mean_b, 0.0)
        delta = mean_b - mean
        total = count + n_b
        mean += delta * (n_b / total)
        m2 += tl.sum(d * d, axis=0) + delta * delta * (count * n_b / total)
        count = total
    return mean, m2 / N


@triton.jit
def _layer_norm_fwd(
    x_ptr,                      # (M, N) input; rows x_row_stride apart, columns contiguous
    y_ptr,                      # (M, N) output, contiguous
    weight_ptr,                 # (N,) γ (unused unless HAS_WEIGHT)
    bias_ptr,                   # (N,) β (unused unless HAS_BIAS)
    mean_ptr,                   # (M,) ACC mean, saved for backward
    rstd_ptr,                   # (M,) ACC 1/sqrt(var + eps), saved for backward
    x_row_stride,               # elements between consecutive rows of x
    N,                          # row length
    eps,                        # a Python float: Triton passes it as fp32
    HAS_WEIGHT: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,   # power of two >= N when SINGLE_BLOCK, else the column block
    SINGLE_BLOCK: tl.constexpr,
    ACC: tl.constexpr,          # accumulation dtype: float32 (float64 for float64 input)
):
    row = tl.program_id(0).to(tl.int64)  # int64: row * stride overflows int32 past 2**31
    x_ptr += row * x_row_stride
    y_ptr += row * N
    if SINGLE_BLOCK:  # the row lives in registers: x is read from memory exactly once
        cols = tl.arange(0, BLOCK_SIZE)
        mask = cols < N
        x = tl.load(x_ptr + cols, mask=mask, other=0.0).to(ACC)
        mean = tl.sum(x, axis=0) / N
        x_centered = tl.where(mask, x - mean, 0.0)  # padding must not enter the variance
        var = tl.sum(x_centered * x_centered, axis=0) / N
        rstd = 1.0 / tl.sqrt(var + eps)
        affine_store(y_ptr, x_centered * rstd, weight_ptr, bias_ptr, cols, mask,
                      HAS_WEIGHT, HAS_BIAS, ACC)
    else:  # statistics in one pass, then a second (mostly L2-resident) pass to normalise
        mean, var = _row_mean_var(x_ptr, N, BLOCK_SIZE, ACC)
        rstd = 1.0 / tl.sqrt(var + eps)
        for start in range(0, N, BLOCK_SIZE):
            cols = start + tl.arange(0, BLOCK_SIZE)
            mask = cols < N
            x = tl.load(x_ptr + cols, mask=mask, other=0.0).to(ACC)
            affine_store(y_ptr, (x - mean) * rstd, weight_ptr, bias_ptr, cols, mask,
                          HAS_WEIGHT, HAS_BIAS, ACC)
    tl.store(mean_ptr + row, mean)
    tl.store(rstd_ptr + row, rstd)


@triton.jit
def _layer_norm_bwd(
    x_ptr, dy_ptr,              # (M, N) inputs, each with its own row stride
    dx_ptr,                     # (M, N) output, contiguous
    weight_ptr,                 # (N,) γ (unused unless HAS_WEIGHT)
    mean_ptr, rstd_ptr,         # (M,) ACC statistics from the forward
    dweight_ptr,                # (G, N) ACC: row g = Σ over program g's rows of dy ⊙ x_hat
    dbias_ptr,                  # (G, N) ACC: row g = Σ over program g's rows of dy
    x_row_stride, dy_row_stride,
    M, N,
    rows_per_program,           # program g owns rows [g * rows_per_program, ...) (< M)
    HAS_WEIGHT: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    SINGLE_BLOCK: tl.constexpr,
    ACC: tl.constexpr,          # accumulation dtype: float32 (float64 for float64 input)
):
    """dx = rstd · (w⊙dy − x_hat · mean(w⊙dy⊙x_hat) − mean(w⊙dy)), plus partial dγ, dβ."""
    pid = tl.program_id(0)
    dweight_ptr += pid.to(tl.int64) * N
    dbias_ptr += pid.to(tl.int64) * N
    first = pid.to(tl.int64) * rows_per_program  # int64: row * stride may pass 2**31
    n_rows = tl.minimum(rows_per_program, M - first)  # the last program may get fewer
    if SINGLE_BLOCK:
        cols = tl.arange(0, BLOCK_SIZE)
        mask = cols < N
        w = tl.load(weight_ptr + cols, mask=mask, other=0.0).to(ACC) if HAS_WEIGHT else 1.0
        dweight = tl.zeros([BLOCK_SIZE], ACC)  # ACC partial sums, in registers
        dbias = tl.zeros([BLOCK_SIZE], ACC)
    for i in range(0, n_rows):
        row = first + i
        mean = tl.load(mean_ptr + row)
        rstd = tl.load(rstd_ptr + row)
        x_row = x_ptr + row * x_row_stride
        dy_row = dy_ptr + row * dy_row_stride
        dx_row = dx_ptr + row * N
        if SINGLE_BLOCK:
            x = tl.load(x_row + cols, mask=mask, other=0.0).to(ACC)
            dy = tl.load(dy_row + cols, mask=mask, other=0.0).to(ACC)
            x_hat = tl.where(mask, (x - mean) * rstd, 0.0)
            wdy = w * dy
            c1 = tl.sum(x_hat * wdy, axis=0) / N
            c2 = tl.sum(wdy, axis=0) / N
            dx = (wdy - (x_hat * c1 + c2)) * rstd
            tl.store(dx_row + cols, dx.to(dx_ptr.dtype.element_ty), mask=mask)
            dweight += dy * x_hat
            dbias += dy
        else:
            _layer_norm_bwd_long_row(x_row, dy_row, dx_row, weight_ptr, dweight_ptr,
                                     dbias_ptr, mean, rstd, N, HAS_WEIGHT, BLOCK_SIZE, ACC)
    if SINGLE_BLOCK:
        tl.store(dweight_ptr + cols, dweight, mask=mask)
        tl.store(dbias_ptr + cols, dbias, mask=mask)


@triton.jit
def _layer_norm_bwd_long_row(x_row, dy_row, dx_row, weight_ptr, dweight_ptr, dbias_ptr,
                             mean, rstd, N, HAS_WEIGHT: tl.constexpr, BLOCK_SIZE: tl.constexpr,
                             ACC: tl.constexpr):
    """One row too long for registers: pass 1 reduces c1, c2; pass 2 writes dx and adds to
    this program's own partial-sum rows (no other program touches them: no atomics)."""
    c1 = tl.zeros([], ACC)
    c2 = tl.zeros([], ACC)
    for start in range(0, N, BLOCK_SIZE):
        cols, mask, x, dy, w = load_block(x_row, dy_row, weight_ptr, start, N, HAS_WEIGHT,
                                          BLOCK_SIZE, ACC)
        x_hat = tl.where(mask, (x - mean) * rstd, 0.0)
        c1 += tl.sum(x_hat * w * dy, axis=0)
        c2 += tl.sum(w * dy, axis=0)
    c1 = c1 / N
    c2 = c2 / N
    for start in range(0, N, BLOCK_SIZE):
        cols, mask, x, dy, w = load_block(x_row, dy_row, weight_ptr, start, N, HAS_WEIGHT,
                                          BLOCK_SIZE, ACC)
        x_hat = tl.where(mask, (x - mean) * rstd, 0.0)
        dx = (w * dy - (x_hat * c1 + c2)) * rstd
        tl.store(dx_row + cols, dx.to(dx_row.dtype.element_ty), mask=mask)
        tl.store(dweight_ptr + cols, tl.load(dweight_ptr + cols, mask=mask) + dy * x_hat, mask=mask)
        tl.store(dbias_ptr + cols, tl.load(dbias_ptr + cols, mask=mask) + dy, mask=mask)


def layer_norm_fwd(x, weight, bias, eps):
    """Launch the forward on ``x`` of shape ``(M, N)`` (unit column stride).

    Returns ``y`` (M, N) in x's dtype and ``mean``, ``rstd`` (M,) in the compute dtype
    (float32; float64 for float64 ``x``).
    """
    M, N = x.shape
    y = torch.empty((M, N), dtype=x.dtype, device=x.device)
    mean = torch.empty(M, dtype=compute_dtype(x.dtype), device=x.device)
    rstd = torch.empty(M, dtype=compute_dtype(x.dtype), device=x.device)
    if M == 0:
        return y, mean, rstd
    block, num_warps, single = _launch.settings(N)
    _layer_norm_fwd[(M,)](
        x, y, x if weight is None else weight, x if bias is None else bias, mean, rstd,
        x.stride(0), N, eps,
        HAS_WEIGHT=weight is not None, HAS_BIAS=bias is not None,
        BLOCK_SIZE=block, SINGLE_BLOCK=single, ACC=_launch.acc_dtype(x), num_warps=num_warps,
    )
    return y, mean, rstd


def layer_norm_bwd(dy, x, weight, mean, rstd):
    """Launch the backward; ``dy``, ``x`` are ``(M, N)``. Returns ``dx`` and the
    ``(G, N)`` compute-dtype partial sums of ``dweight`` and ``dbias`` (reduce them over ``G``)."""
    M, N = x.shape
    dx = torch.empty((M, N), dtype=x.dtype, device=x.device)
    rows_per_program, programs = _launch.backward_grid(M, _launch.sm_count(x.device))
    block, num_warps, single = _launch.settings(N, backward=True)
    dweight, dbias = (_launch.partials(programs, N, mean.dtype, x.device, single, M)
                      for _ in range(2))
    if M == 0:
        return dx, dweight, dbias
    _layer_norm_bwd[(programs,)](
        x, dy, dx, x if weight is None else weight, mean, rstd, dweight, dbias,
        x.stride(0), dy.stride(0), M, N, rows_per_program,
        HAS_WEIGHT=weight is not None, BLOCK_SIZE=block, SINGLE_BLOCK=single,
        ACC=_launch.acc_dtype(x), num_warps=num_warps,
    )
    return dx, dweight, dbias


class LayerNormFunction(torch.autograd.Function):
    """Autograd glue: ``apply(x, normalized_shape, weight, bias, eps)`` on validated input."""

    @staticmethod
    def forward(ctx, x, normalized_shape, weight, bias, eps):
        x_rows = _launch.as_rows(x, torch.Size(normalized_shape).numel())
        w, b = _launch.flat_param(weight), _launch.flat_param(bias)
        y, mean, rstd = layer_norm_fwd(x_rows, w, b, eps)
        ctx.save_for_backward(x_rows, w, mean, rstd)
        ctx.params = _launch.param_meta(weight), _launch.param_meta(bias)
        return y.reshape(x.shape)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        x_rows, w, mean, rstd = ctx.saved_tensors
        dy_rows = _launch.as_rows(dy, x_rows.shape[1])  # dy's own strides, never x's
        dx, dweight, dbias = layer_norm_bwd(dy_rows, x_rows, w, mean, rstd)
        weight, bias = ctx.params
        return (dx.reshape(dy.shape), None, _launch.reduce_partials(dweight, weight),
                _launch.reduce_partials(dbias, bias), None)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    r"""Fused LayerNorm; same signature, checks and messages as :func:`normlab.layer_norm`.

    .. math:: y = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta

    Statistics and reductions in float32 (float64 for float64 input); ``y`` in x's dtype.
    """
    shape = check_input(x, normalized_shape)
    eps = check_eps(eps)
    check_param(weight, "weight", x, shape)
    check_param(bias, "bias", x, shape)
    _launch.check_device(x)
    return LayerNormFunction.apply(x, shape, weight, bias, eps)


class TritonLayerNorm(LayerNorm):
    """Drop-in for ``torch.nn.LayerNorm`` (same parameters and state dict); fused forward."""

    def forward(self, x):
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
