"""Fused RMSNorm: one Triton program per row forward, row-blocked programs backward."""

import torch
import triton
import triton.language as tl
from torch.autograd.function import once_differentiable

from normlab._validate import check_eps, check_input, check_param, compute_dtype
from normlab.kernels import _launch
from normlab.kernels._common import (
    add_residual_grad,
    affine_store,
    finalize_partials,
    load_block,
    load_row,
    row_sum,
    tile,
)
from normlab.rms_norm import RMSNorm, default_eps, gain


@triton.jit
def _rstd(mean_square, eps, EPS_INSIDE_SQRT: tl.constexpr):
    """1/sqrt(ms + eps) (PyTorch, LLaMA) or 1/(sqrt(ms) + eps) (original RMSNorm code)."""
    if EPS_INSIDE_SQRT:
        return 1.0 / tl.sqrt(mean_square + eps)
    else:
        return 1.0 / (tl.sqrt(mean_square) + eps)


@triton.jit
def _rms_norm_fwd(
    x_ptr,                      # (M, N) input; rows x_row_stride apart, columns contiguous
    y_ptr,                      # (M, N) output, contiguous
    weight_ptr,                 # (N,) γ (unused unless HAS_WEIGHT)
    rstd_ptr,                   # (M,) ACC 1/RMS_eps(x), saved for backward
    residual_ptr,               # (M, N) residual, rows residual_row_stride apart (HAS_RESIDUAL)
    h_ptr,                      # (M, N) output h = x + residual, contiguous (HAS_RESIDUAL)
    x_row_stride,               # elements between consecutive rows of x
    residual_row_stride,
    N,                          # row length
    eps,                        # a Python float: Triton passes it as fp32
    HAS_WEIGHT: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr,  # fused add: normalise h = x + residual and store h
    EPS_INSIDE_SQRT: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,   # power of two >= N when SINGLE_BLOCK, else the column block
    VEC: tl.constexpr,          # N and row strides are multiples of VEC (16 bytes, or 1)
    SINGLE_BLOCK: tl.constexpr,
    ACC: tl.constexpr,          # accumulation dtype: float32 (float64 for float64 input)
):
    row = tl.program_id(0).to(tl.int64)  # int64: row * stride overflows int32 past 2**31
    x_ptr += tl.multiple_of(row * x_row_stride, VEC)
    residual_ptr += tl.multiple_of(row * residual_row_stride, VEC)
    y_ptr += tl.multiple_of(row * N, VEC)
    h_ptr += tl.multiple_of(row * N, VEC)
    if SINGLE_BLOCK:  # the row lives in registers: x is read from memory exactly once
        cols, mask = tile(0, N, BLOCK_SIZE, VEC)
        x = load_row(x_ptr, residual_ptr, h_ptr, cols, mask, HAS_RESIDUAL, True, ACC)
        rstd = _rstd(row_sum(x * x) / N, eps, EPS_INSIDE_SQRT)
        affine_store(y_ptr, x * rstd, weight_ptr, weight_ptr, cols, mask,
                      HAS_WEIGHT, False, ACC)
    else:  # sum of squares has no cancellation: plain accumulation is accurate
        sum_sq = tl.zeros([], ACC)
        for start in range(0, N, BLOCK_SIZE):
            cols, mask = tile(start, N, BLOCK_SIZE, VEC)
            x = load_row(x_ptr, residual_ptr, h_ptr, cols, mask, HAS_RESIDUAL, False, ACC)
            sum_sq += row_sum(x * x)
        rstd = _rstd(sum_sq / N, eps, EPS_INSIDE_SQRT)
        for start in range(0, N, BLOCK_SIZE):
            cols, mask = tile(start, N, BLOCK_SIZE, VEC)
            x = load_row(x_ptr, residual_ptr, h_ptr, cols, mask, HAS_RESIDUAL, True, ACC)
            affine_store(y_ptr, x * rstd, weight_ptr, weight_ptr, cols, mask,
                          HAS_WEIGHT, False, ACC)
    tl.store(rstd_ptr + row, rstd)


@triton.jit
def _dx_coefficient(rstd, sum_sq, N, EPS_INSIDE_SQRT: tl.constexpr):
    """k in dx = rstd·w⊙dy − k·x_hat·mean(w⊙dy⊙x_hat): rstd (ε inside the sqrt) or
    1/RMS(x) (ε outside; 0 for an all-zero row, where that term vanishes)."""
    if EPS_INSIDE_SQRT:
        return rstd
    else:
        rms = tl.sqrt(sum_sq / N)
        return tl.where(rms > 0, 1.0 / tl.where(rms > 0, rms, 1.0), 0.0)


@triton.jit
def _rms_norm_bwd(
    x_ptr, dy_ptr,              # (M, N) inputs, each with its own row stride
    dx_ptr,                     # (M, N) output, contiguous
    weight_ptr,                 # (N,) γ (unused unless HAS_WEIGHT)
    rstd_ptr,                   # (M,) ACC rstd from the forward
    dweight_ptr,                # (G, N) ACC: row g = Σ over program g's rows of dy ⊙ x_hat
    dresidual_ptr,              # (M, N) gradient of the fused add's h output (HAS_DRESIDUAL)
    x_row_stride, dy_row_stride, dresidual_row_stride,
    M, N,
    rows_per_program,           # program g owns rows [g * rows_per_program, ...) (< M)
    HAS_WEIGHT: tl.constexpr,
    HAS_DWEIGHT: tl.constexpr,  # partial sums only when autograd needs dweight
    HAS_DRESIDUAL: tl.constexpr,
    EPS_INSIDE_SQRT: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    VEC: tl.constexpr,          # N and row strides are multiples of VEC (16 bytes, or 1)
    SINGLE_BLOCK: tl.constexpr,
    ACC: tl.constexpr,
):
    """dx = rstd · w⊙dy − k · x_hat · mean(w⊙dy⊙x_hat) (k from _dx_coefficient; + dh of a
    fused add), partial dγ."""
    pid = tl.program_id(0)
    dweight_ptr += tl.multiple_of(pid.to(tl.int64) * N, VEC)
    first = pid.to(tl.int64) * rows_per_program  # int64: row * stride may pass 2**31
    n_rows = tl.minimum(rows_per_program, M - first)  # the last program may get fewer
    if SINGLE_BLOCK:
        cols, mask = tile(0, N, BLOCK_SIZE, VEC)
        w = tl.load(weight_ptr + cols, mask=mask, other=0.0).to(ACC) if HAS_WEIGHT else 1.0
        dweight = tl.zeros([BLOCK_SIZE // VEC, VEC], ACC)  # ACC partial sums, in registers
    # num_stages=2: Triton issues the next row's loads (cp.async) before this row's math
    for i in tl.range(0, n_rows, num_stages=2):
        row = first + i
        rstd = tl.load(rstd_ptr + row)
        x_row = x_ptr + tl.multiple_of(row * x_row_stride, VEC)
        dy_row = dy_ptr + tl.multiple_of(row * dy_row_stride, VEC)
        dx_row = dx_ptr + tl.multiple_of(row * N, VEC)
        dresidual_row = dresidual_ptr + tl.multiple_of(row * dresidual_row_stride, VEC)
        if SINGLE_BLOCK:
            x = tl.load(x_row + cols, mask=mask, other=0.0).to(ACC)
            dy = tl.load(dy_row + cols, mask=mask, other=0.0).to(ACC)
            x_hat = x * rstd
            wdy = w * dy
            c = row_sum(x_hat * wdy) / N
            k = _dx_coefficient(rstd, row_sum(x * x), N, EPS_INSIDE_SQRT)
            dx = rstd * wdy - k * c * x_hat
            dx = add_residual_grad(dx, dresidual_row, cols, mask, HAS_DRESIDUAL)
            tl.store(dx_row + cols, dx.to(dx_ptr.dtype.element_ty), mask=mask)
            if HAS_DWEIGHT:
                dweight += dy * x_hat
        else:
            _rms_norm_bwd_long_row(x_row, dy_row, dx_row, dresidual_row, weight_ptr,
                                   dweight_ptr, rstd, N, HAS_WEIGHT, HAS_DWEIGHT,
                                   HAS_DRESIDUAL, EPS_INSIDE_SQRT, BLOCK_SIZE, VEC, ACC)
    if SINGLE_BLOCK and HAS_DWEIGHT:
        tl.store(dweight_ptr + cols, dweight, mask=mask)


@triton.jit
def _rms_norm_bwd_long_row(x_row, dy_row, dx_row, dresidual_row, weight_ptr, dweight_ptr,
                           rstd, N, HAS_WEIGHT: tl.constexpr, HAS_DWEIGHT: tl.constexpr,
                           HAS_DRESIDUAL: tl.constexpr, EPS_INSIDE_SQRT: tl.constexpr,
                           BLOCK_SIZE: tl.constexpr, VEC: tl.constexpr, ACC: tl.constexpr):
    """One row too long for registers: pass 1 reduces c (and Σx²); pass 2 writes dx and adds
    to this program's own partial-sum row (no other program touches it: no atomics)."""
    c = tl.zeros([], ACC)
    sum_sq = tl.zeros([], ACC)
    for start in tl.range(0, N, BLOCK_SIZE, num_stages=2):
        cols, mask, x, dy, w = load_block(x_row, dy_row, weight_ptr, start, N, HAS_WEIGHT,
                                          BLOCK_SIZE, VEC, ACC)
        c += row_sum(x * rstd * w * dy)
        sum_sq += row_sum(x * x)
    c = c / N
    k = _dx_coefficient(rstd, sum_sq, N, EPS_INSIDE_SQRT)
    for start in tl.range(0, N, BLOCK_SIZE, num_stages=2):
        cols, mask, x, dy, w = load_block(x_row, dy_row, weight_ptr, start, N, HAS_WEIGHT,
                                          BLOCK_SIZE, VEC, ACC)
        x_hat = x * rstd
        dx = rstd * w * dy - k * c * x_hat
        dx = add_residual_grad(dx, dresidual_row, cols, mask, HAS_DRESIDUAL)
        tl.store(dx_row + cols, dx.to(dx_row.dtype.element_ty), mask=mask)
        if HAS_DWEIGHT:
            tl.store(dweight_ptr + cols, tl.load(dweight_ptr + cols, mask=mask) + dy * x_hat,
                     mask=mask)


def rms_norm_fwd(x, weight, eps, eps_inside_sqrt=True, residual=None):
    """Launch the forward on ``x`` of shape ``(M, N)`` (unit column stride), or with
    ``residual`` (same shape) on ``h = x + residual``.

    Returns ``y`` (M, N) in x's dtype, ``rstd`` (M,) in the compute dtype (float32;
    float64 for float64 ``x``) and ``h`` (``None`` without a residual).
    """
    M, N = x.shape
    y = torch.empty((M, N), dtype=x.dtype, device=x.device)
    h = None if residual is None else torch.empty_like(y)
    rstd = torch.empty(M, dtype=compute_dtype(x.dtype), device=x.device)
    if M == 0:
        return y, rstd, h
    block, num_warps, single = _launch.settings(N, x.element_size(), centered=False)
    _rms_norm_fwd[(M,)](
        x, y, x if weight is None else weight, rstd, x if residual is None else residual,
        y if h is None else h, x.stride(0), 0 if residual is None else residual.stride(0),
        N, eps, HAS_WEIGHT=weight is not None, HAS_RESIDUAL=residual is not None,
        EPS_INSIDE_SQRT=eps_inside_sqrt, BLOCK_SIZE=block,
        VEC=min(block, _launch.vector_width(N, x, residual)), SINGLE_BLOCK=single,
        ACC=_launch.acc_dtype(x), num_warps=num_warps,
    )
    return y, rstd, h


def rms_norm_bwd(dy, x, weight, rstd, eps_inside_sqrt=True, need_dweight=True,
                 dresidual=None):
    """Launch the backward; ``dy``, ``x`` (``h`` of a fused add) are ``(M, N)``; with
    ``dresidual`` (the gradient of the fused add's ``h``) it is added to ``dx``.

    Returns ``dx`` and the ``(G, N)`` compute-dtype partial sums of ``dweight`` (``None``
    when not needed; :func:`finalize_partials` reduces them over G).
    """
    M, N = x.shape
    dx = torch.empty((M, N), dtype=x.dtype, device=x.device)
    block, num_warps, single = _launch.settings(N, x.element_size(), backward=True)
    constexprs = dict(HAS_WEIGHT=weight is not None, HAS_DWEIGHT=need_dweight,
                      HAS_DRESIDUAL=dresidual is not None, EPS_INSIDE_SQRT=eps_inside_sqrt,
                      BLOCK_SIZE=block, VEC=min(block, _launch.vector_width(N, x, dy, dresidual)),
                      SINGLE_BLOCK=single, ACC=_launch.acc_dtype(x), num_warps=num_warps)
    args = [x, dy, dx, x if weight is None else weight, rstd, rstd,
            x if dresidual is None else dresidual, x.stride(0), dy.stride(0),
            0 if dresidual is None else dresidual.stride(0), M, N, 1]
    programs = _launch.resident_programs(_rms_norm_bwd, x.device, args, constexprs)
    rows_per_program, G = _launch.backward_grid(M, programs)
    dweight = _launch.partials(G, N, rstd.dtype, x.device, single, M) if need_dweight else None
    if M > 0:
        args[5] = rstd if dweight is None else dweight
        args[-1] = rows_per_program
        _rms_norm_bwd[(G,)](*args, **constexprs)
    return dx, dweight


class RMSNormFunction(torch.autograd.Function):
    """Autograd glue: ``apply(x, normalized_shape, weight, eps, eps_inside_sqrt[,
    residual])``, validated; with a residual it returns ``(y, h)``, h = x + residual."""

    @staticmethod
    def forward(ctx, x, normalized_shape, weight, eps, eps_inside_sqrt, residual=None):
        n = torch.Size(normalized_shape).numel()
        x_rows = _launch.as_rows(x, n)
        r_rows = None if residual is None else _launch.as_rows(residual, n)
        w = _launch.flat_param(weight)
        y, rstd, h = rms_norm_fwd(x_rows, w, eps, eps_inside_sqrt, r_rows)
        ctx.save_for_backward(x_rows if h is None else h, w, rstd)
        ctx.weight = _launch.param_meta(weight)
        ctx.eps_inside_sqrt = eps_inside_sqrt
        ctx.fused_add = residual is not None
        ctx.set_materialize_grads(False)
        if residual is None:
            return y.reshape(x.shape)
        return y.reshape(x.shape), h.reshape(x.shape)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dh=None):
        x_rows, w, rstd = ctx.saved_tensors
        n = x_rows.shape[1]
        shape = x_rows.shape if dy is None else dy.shape
        dy_rows = (torch.zeros_like(x_rows) if dy is None  # only h was used
                   else _launch.as_rows(dy, n))  # dy's own strides, never x's
        need_w = ctx.needs_input_grad[2] and ctx.weight is not None
        dx, dweight = rms_norm_bwd(dy_rows, x_rows, w, rstd, ctx.eps_inside_sqrt, need_w,
                                   None if dh is None else _launch.as_rows(dh, n))
        dweight, _ = finalize_partials(dweight, None, ctx.weight, None)
        dx = dx.reshape(shape)
        return dx, None, dweight, None, None, dx if ctx.fused_add else None


def rms_norm(x, normalized_shape, weight=None, eps=None, *, eps_inside_sqrt=True,
             add_unit_offset=False):
    r"""Fused RMSNorm; same signature, checks and messages as :func:`normlab.rms_norm`
    (all but pRMSNorm's ``partial``).

    .. math:: y = g \odot \frac{x}{\sqrt{\tfrac1d \sum_i x_i^2 + \epsilon}}
        \quad(\text{or } \sqrt{\cdot} + \epsilon \text{ with eps_inside_sqrt=False})

    with ``g = weight`` or, with ``add_unit_offset``, ``1 + weight`` formed in the
    compute dtype before the kernel (autograd carries dg back to the weight unchanged).
    ``eps=None`` means :func:`normlab.default_eps`; statistics in float32 (float64
    for float64 input); ``y`` in x's dtype.
    """
    shape = check_input(x, normalized_shape)
    eps = default_eps(x.dtype) if eps is None else check_eps(eps)
    check_param(weight, "weight", x, shape)
    _launch.check_device(x)
    if add_unit_offset:
        weight = gain(weight, True, compute_dtype(x.dtype))
    return RMSNormFunction.apply(x, shape, weight, eps, bool(eps_inside_sqrt))


class TritonRMSNorm(RMSNorm):
    """Drop-in for ``torch.nn.RMSNorm`` (same parameters and state dict); fused forward.

    Takes :class:`normlab.RMSNorm`'s ``eps_inside_sqrt`` and ``add_unit_offset``; ``partial``
    (pRMSNorm) has no fused kernel and is refused rather than silently ignored.
    """

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, *,
                 partial=None, **options):
        if partial is not None:
            raise ValueError(f"TritonRMSNorm has no fused pRMSNorm: partial must be None, got "
                             f"{partial!r} (use normlab.RMSNorm for partial RMSNorm)")
        super().__init__(normalized_shape, eps, elementwise_affine, **options)

    def forward(self, x):
        return rms_norm(x, self.normalized_shape, self.weight, self.eps,
                        eps_inside_sqrt=self.eps_inside_sqrt,
                        add_unit_offset=self.add_unit_offset)
