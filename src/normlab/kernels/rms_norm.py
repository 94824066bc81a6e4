"""Fused RMSNorm: one Triton program per row forward, row-blocked programs backward."""

import torch
import triton
import triton.language as tl

from normlab._validate import check_eps, check_input, check_param, compute_dtype
from normlab.kernels import _launch
from normlab.kernels._autograd import reference_jvp, reference_vjp
from normlab.kernels._common import (
    RESCUE_BLOCK_SIZE,
    add_residual_grad,
    affine_store,
    finalize_partials,
    load_block,
    load_row,
    not_finite,
    row_abs_max,
    row_sum,
    tile,
)
from normlab.rms_norm import RMSNorm, default_eps, gain
from normlab.rms_norm import rms_norm as reference_rms_norm


@triton.jit
def _rstd(mean_square, eps, EPS_INSIDE_SQRT: tl.constexpr):
    """1/sqrt(ms + eps) (PyTorch, LLaMA) or 1/(sqrt(ms) + eps) (original RMSNorm code)."""
    if EPS_INSIDE_SQRT:
        return 1.0 / tl.sqrt(mean_square + eps)
    else:
        return 1.0 / (tl.sqrt(mean_square) + eps)


@triton.jit
def _scaled_eps(eps, s, EPS_INSIDE_SQRT: tl.constexpr):
    r"""The ε' that keeps ε's meaning on z = x/s: :math:`\mathrm{RMS}_\epsilon(x) =
    s\,\mathrm{RMS}_{\epsilon'}(z)`, since
    :math:`\sqrt{s^2\,\overline{z^2} + \epsilon} = s\sqrt{\overline{z^2} + \epsilon/s^2}`
    (ε' = ε/s², inside the sqrt) and :math:`s\sqrt{\overline{z^2}} + \epsilon =
    s\,(\sqrt{\overline{z^2}} + \epsilon/s)` (ε' = ε/s, outside)."""
    if EPS_INSIDE_SQRT:
        return eps / s / s
    else:
        return eps / s


@triton.jit
def _row_sum_squares_scaled(x_ptr, N, scale, BLOCK_SIZE: tl.constexpr, ACC: tl.constexpr):
    """Σ (x_i / scale)² (in ACC) over a row read in column blocks; no cancellation."""
    sum_sq = tl.zeros([], ACC)
    for start in range(0, N, BLOCK_SIZE):
        cols = start + tl.arange(0, BLOCK_SIZE)
        x = tl.load(x_ptr + cols, mask=cols < N, other=0.0).to(ACC) / scale
        sum_sq += tl.sum(x * x, axis=0)
    return sum_sq


@triton.jit
def _rescued_row(x_ptr, y_ptr, weight_ptr, N, eps, HAS_WEIGHT: tl.constexpr,
                 EPS_INSIDE_SQRT: tl.constexpr, BLOCK_SIZE: tl.constexpr,
                 ACC: tl.constexpr):
    """y of a row whose squares overflow (rare; the y already stored is replaced), read again
    (x, or the h a fused add stored) and computed on z = x/s with s = max|x|:
    y = γ ⊙ z·rstd_ε'(z), ε' from :func:`_scaled_eps` (where it underflows it is below
    rounding of mean(z²) ≥ 1/d). Returns the row's rstd = rstd_ε'(z)/s. A row holding ±inf
    or NaN has s = inf or z = NaN: NaN."""
    s = row_abs_max(x_ptr, N, BLOCK_SIZE, ACC)
    sum_sq_z = _row_sum_squares_scaled(x_ptr, N, s, BLOCK_SIZE, ACC)
    rstd_z = _rstd(sum_sq_z / N, _scaled_eps(eps, s, EPS_INSIDE_SQRT), EPS_INSIDE_SQRT)
    for start in range(0, N, BLOCK_SIZE):
        cols = start + tl.arange(0, BLOCK_SIZE)
        mask = cols < N
        z = tl.load(x_ptr + cols, mask=mask, other=0.0).to(ACC) / s
        affine_store(y_ptr, z * rstd_z, weight_ptr, weight_ptr, cols, mask,
                     HAS_WEIGHT, False, ACC)
    return rstd_z / s


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
        sum_sq = row_sum(x * x)
        rstd = _rstd(sum_sq / N, eps, EPS_INSIDE_SQRT)
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
    if not_finite(sum_sq):  # rare: the squares overflowed (or x holds ±inf/NaN)
        tl.debug_barrier()  # every thread's first y (and h) is written before any is replaced
        rstd = _rescued_row(h_ptr if HAS_RESIDUAL else x_ptr, y_ptr, weight_ptr, N, eps,
                            HAS_WEIGHT, EPS_INSIDE_SQRT, RESCUE_BLOCK_SIZE, ACC)
    tl.store(rstd_ptr + row, rstd)


@triton.jit
def _dx_coefficient(rstd, eps, EPS_INSIDE_SQRT: tl.constexpr):
    r"""k in dx = rstd·w⊙dy − k·x_hat·mean(w⊙dy⊙x_hat): rstd (ε inside the sqrt) or
    1/RMS(x) (ε outside), read off the saved :math:`\mathrm{rstd} = 1/(\mathrm{RMS}+\epsilon)`
    as :math:`k = \mathrm{rstd}/(1 - \epsilon\,\mathrm{rstd})` (no second Σx², which can
    overflow). 0 where ε·rstd rounds to 1: an all-zero row, where x_hat = 0, or a row
    with RMS < 2⁻²⁴ε, where the term is below rounding of the first."""
    if EPS_INSIDE_SQRT:
        return rstd
    else:
        gap = 1.0 - eps * rstd  # RMS / (RMS + ε)
        return tl.where(gap > 0, rstd / tl.where(gap > 0, gap, 1.0), 0.0)


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
    eps,                        # the forward's ε (a Python float: fp32)
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
            k = _dx_coefficient(rstd, eps, EPS_INSIDE_SQRT)
            dx = rstd * wdy - k * c * x_hat
            dx = add_residual_grad(dx, dresidual_row, cols, mask, HAS_DRESIDUAL)
            tl.store(dx_row + cols, dx.to(dx_ptr.dtype.element_ty), mask=mask)
            if HAS_DWEIGHT:
                dweight += dy * x_hat
        else:
            _rms_norm_bwd_long_row(x_row, dy_row, dx_row, dresidual_row, weight_ptr,
                                   dweight_ptr, rstd,
                                   _dx_coefficient(rstd, eps, EPS_INSIDE_SQRT), N, HAS_WEIGHT,
                                   HAS_DWEIGHT, HAS_DRESIDUAL, BLOCK_SIZE, VEC, ACC)
    if SINGLE_BLOCK and HAS_DWEIGHT:
        tl.store(dweight_ptr + cols, dweight, mask=mask)


@triton.jit
def _rms_norm_bwd_long_row(x_row, dy_row, dx_row, dresidual_row, weight_ptr, dweight_ptr,
                           rstd, k, N, HAS_WEIGHT: tl.constexpr, HAS_DWEIGHT: tl.constexpr,
                           HAS_DRESIDUAL: tl.constexpr,
                           BLOCK_SIZE: tl.constexpr, VEC: tl.constexpr, ACC: tl.constexpr):
    """One row too long for registers: pass 1 reduces c; pass 2 writes dx and adds
    to this program's own partial-sum row (no other program touches it: no atomics)."""
    c = tl.zeros([], ACC)
    for start in tl.range(0, N, BLOCK_SIZE, num_stages=2):
        cols, mask, x, dy, w = load_block(x_row, dy_row, weight_ptr, start, N, HAS_WEIGHT,
                                          BLOCK_SIZE, VEC, ACC)
        c += row_sum(x * rstd * w * dy)
    c = c / N
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


def rms_norm_bwd(dy, x, weight, rstd, eps, eps_inside_sqrt=True, need_dweight=True,
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
            0 if dresidual is None else dresidual.stride(0), M, N, eps, 1]
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
    residual])`` on validated input returns ``(y, rstd)``, with a residual ``(y, h, rstd)``
    (h = x + residual); only ``y`` and ``h`` are differentiable.

    First-order reverse mode runs the fused backward. With ``create_graph=True`` (gradient
    penalties, double backward) and in forward mode (``torch.func.jvp``) the derivative is
    autograd of :func:`normlab.rms_norm` instead (see :mod:`normlab.kernels._autograd`),
    so no higher-order term is dropped; the fused residual add refuses both.
    """

    @staticmethod
    def forward(x, normalized_shape, weight, eps, eps_inside_sqrt, residual=None):
        n = torch.Size(normalized_shape).numel()
        x_rows = _launch.as_rows(x, n)
        r_rows = None if residual is None else _launch.as_rows(residual, n)
        y, rstd, h = rms_norm_fwd(x_rows, _launch.flat_param(weight), eps, eps_inside_sqrt,
                                  r_rows)
        if residual is None:
            return y.reshape(x.shape), rstd
        return y.reshape(x.shape), h.reshape(x.shape), rstd

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, normalized_shape, weight, eps, eps_inside_sqrt, *residual = inputs
        ctx.fused_add = bool(residual) and residual[0] is not None
        ctx.mark_non_differentiable(output[-1])
        ctx.save_for_backward(output[1] if ctx.fused_add else x, weight, output[-1])
        ctx.save_for_forward(x, weight)
        ctx.normalized_shape, ctx.eps = normalized_shape, eps
        ctx.eps_inside_sqrt = eps_inside_sqrt
        ctx.set_materialize_grads(False)

    @staticmethod
    def _reference(ctx, x, weight):
        return reference_rms_norm(x, ctx.normalized_shape, weight, ctx.eps,
                                  eps_inside_sqrt=ctx.eps_inside_sqrt)

    @staticmethod
    def backward(ctx, dy, *grads):
        x, weight, rstd = ctx.saved_tensors
        dh = grads[0] if ctx.fused_add else None
        if torch.is_grad_enabled():  # create_graph=True: the gradient must itself be differentiable
            _launch.refuse_higher_order(ctx.fused_add)
            needs = (ctx.needs_input_grad[0], ctx.needs_input_grad[2])
            dx, dweight = reference_vjp(lambda *t: RMSNormFunction._reference(ctx, *t),
                                        (x, weight), needs, dy)
            return dx, None, dweight, None, None, None
        n = torch.Size(ctx.normalized_shape).numel()
        x_rows = _launch.as_rows(x, n)
        dy_rows = (torch.zeros_like(x_rows) if dy is None  # only h was used
                   else _launch.as_rows(dy, n))  # dy's own strides, never x's
        need_w = ctx.needs_input_grad[2] and weight is not None
        dx, dweight = rms_norm_bwd(dy_rows, x_rows, _launch.flat_param(weight), rstd, ctx.eps,
                                   ctx.eps_inside_sqrt, need_w,
                                   None if dh is None else _launch.as_rows(dh, n))
        dweight, _ = finalize_partials(dweight, None, _launch.param_meta(weight), None)
        dx = dx.reshape(x.shape)
        return dx, None, dweight, None, None, dx if ctx.fused_add else None

    @staticmethod
    def jvp(ctx, x_dot, _shape_dot, weight_dot, _eps_dot, _inside_dot, *_residual_dot):
        _launch.refuse_higher_order(ctx.fused_add)
        y_dot = reference_jvp(lambda *t: RMSNormFunction._reference(ctx, *t),
                              ctx.saved_tensors[:2], (x_dot, weight_dot))
        return y_dot, None


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
    return RMSNormFunction.apply(x, shape, weight, eps, bool(eps_inside_sqrt))[0]


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
