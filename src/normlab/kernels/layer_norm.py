"""Fused LayerNorm: one Triton program per row forward, row-blocked programs backward."""

import torch
import triton
import triton.language as tl

from normlab._validate import check_eps, check_input, check_param, compute_dtype
from normlab.kernels import _launch
from normlab.kernels._autograd import reference_jvp, reference_vjp
from normlab.kernels._common import (
    RESCUE_BLOCK_SIZE,
    SPREAD_RSTD,
    add_residual_grad,
    affine_store,
    finalize_partials,
    load_block,
    load_row,
    normalise,
    not_finite,
    row_abs_max,
    row_sum,
    tile,
)
from normlab.layer_norm import LayerNorm
from normlab.layer_norm import layer_norm as reference_layer_norm


@triton.jit
def _row_mean_var(x_ptr, residual_ptr, N, scale, HAS_RESIDUAL: tl.constexpr,
                  SCALED: tl.constexpr, BLOCK_SIZE: tl.constexpr, VEC: tl.constexpr,
                  ACC: tl.constexpr):
    """Mean and biased variance (in ACC) of a long row (of x, or of h = x + residual; of
    that / scale if SCALED) in one pass over memory.

    Each block's moments are exact (two passes over registers); blocks are merged with
    Chan et al.'s update, which, unlike sum and sum of squares, does not cancel when
    |mean| >> std.
    """
    mean = tl.zeros([], ACC)
    m2 = tl.zeros([], ACC)  # sum of squared deviations so far
    count = tl.zeros([], ACC)
    for start in range(0, N, BLOCK_SIZE):
        cols, mask = tile(start, N, BLOCK_SIZE, VEC)
        x = load_row(x_ptr, residual_ptr, x_ptr, cols, mask, HAS_RESIDUAL, False, ACC)
        if SCALED:
            x = x / scale
        n_b = row_sum(mask.to(ACC))
        mean_b = row_sum(x) / n_b
        d = tl.where(mask, x - mean_b, 0.0)
        delta = mean_b - mean
        total = count + n_b
        mean += delta * (n_b / total)
        m2 += row_sum(d * d) + delta * delta * (count * n_b / total)
        count = total
    return mean, m2 / N


@triton.jit
def _rescaled_stats(mean_z, var_z, s, eps):
    r"""``mean`` and ``rstd`` of x from the moments of :math:`z = x/s`, and
    :math:`\mathrm{rstd}_{\epsilon/s^2}(z)`.

    :math:`\mu(x) = s\,\mu(z)` and :math:`\sigma^2(x) = s^2\sigma^2(z)`, so ε must
    scale by :math:`s^2` for the result to stay the same function of x:

    .. math:: \mathrm{rstd}_\epsilon(x) = \frac{1}{\sqrt{s^2\sigma^2(z) + \epsilon}}
        = \frac{1}{s}\,\mathrm{rstd}_{\epsilon/s^2}(z),\qquad
        \hat x = (z - \mu(z))\,\mathrm{rstd}_{\epsilon/s^2}(z).

    ε/s² may underflow to 0; it is then below rounding of σ²(z) ≥ 2⁻⁴⁸/d, unless the row
    is constant (σ(z) = 0, reached here because its sum overflowed), whose rstd is
    1/√ε exactly and x̂ = 0.
    """
    spread = var_z > 0.0
    rstd_z = 1.0 / tl.sqrt(tl.where(spread, var_z, 1.0) + eps / s / s)
    return mean_z * s, tl.where(spread, rstd_z / s, 1.0 / tl.sqrt(eps + tl.zeros_like(s))), \
        tl.where(spread, rstd_z, 0.0)


@triton.jit
def _rescued_row(x_ptr, y_ptr, weight_ptr, bias_ptr, N, eps, HAS_WEIGHT: tl.constexpr,
                 HAS_BIAS: tl.constexpr, BLOCK_SIZE: tl.constexpr, ACC: tl.constexpr):
    """y of a row whose squared deviations overflow (rare; the y already stored is replaced),
    read again (x, or the h a fused add stored) and computed on z = x/s with s = max|x|
    (see :func:`_rescaled_stats`): y = γ ⊙ (z − μ(z))·rstd_ε/s²(z) + β. Returns the row's
    ``mean`` and ``rstd``. A row holding ±inf or NaN has s = inf or z = NaN: NaN."""
    s = row_abs_max(x_ptr, N, BLOCK_SIZE, ACC)
    mean_z, var_z = _row_mean_var(x_ptr, x_ptr, N, s, False, True, BLOCK_SIZE, 1, ACC)
    mean, rstd, rstd_z = _rescaled_stats(mean_z, var_z, s, eps)
    for start in range(0, N, BLOCK_SIZE):
        cols = start + tl.arange(0, BLOCK_SIZE)
        mask = cols < N
        z = tl.load(x_ptr + cols, mask=mask, other=0.0).to(ACC) / s
        affine_store(y_ptr, (z - mean_z) * rstd_z, weight_ptr, bias_ptr, cols, mask,
                     HAS_WEIGHT, HAS_BIAS, ACC)
    return mean, rstd


@triton.jit
def _layer_norm_fwd(
    x_ptr,                      # (M, N) input; rows x_row_stride apart, columns contiguous
    y_ptr,                      # (M, N) output, contiguous
    weight_ptr,                 # (N,) γ (unused unless HAS_WEIGHT)
    bias_ptr,                   # (N,) β (unused unless HAS_BIAS)
    mean_ptr,                   # (M,) ACC mean, saved for backward
    rstd_ptr,                   # (M,) ACC 1/sqrt(var + eps), saved for backward
    residual_ptr,               # (M, N) residual, rows residual_row_stride apart (HAS_RESIDUAL)
    h_ptr,                      # (M, N) output h = x + residual, contiguous (HAS_RESIDUAL)
    x_row_stride,               # elements between consecutive rows of x
    residual_row_stride,
    N,                          # row length
    eps,                        # a Python float: Triton passes it as fp32
    HAS_WEIGHT: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr,  # fused add: normalise h = x + residual and store h
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
        mean = row_sum(x) / N
        x_centered = tl.where(mask, x - mean, 0.0)  # padding must not enter the variance
        var = row_sum(x_centered * x_centered) / N
        rstd = 1.0 / tl.sqrt(var + eps)
        affine_store(y_ptr, x_centered * rstd, weight_ptr, bias_ptr, cols, mask,
                      HAS_WEIGHT, HAS_BIAS, ACC)
    else:  # statistics in one pass, then a second (mostly L2-resident) pass to normalise
        mean, var = _row_mean_var(x_ptr, residual_ptr, N, 1.0, HAS_RESIDUAL, False,
                                  BLOCK_SIZE, VEC, ACC)
        rstd = 1.0 / tl.sqrt(var + eps)
        for start in range(0, N, BLOCK_SIZE):
            cols, mask = tile(start, N, BLOCK_SIZE, VEC)
            x = load_row(x_ptr, residual_ptr, h_ptr, cols, mask, HAS_RESIDUAL, True, ACC)
            affine_store(y_ptr, (x - mean) * rstd, weight_ptr, bias_ptr, cols, mask,
                          HAS_WEIGHT, HAS_BIAS, ACC)
    if not_finite(var):  # rare: the squares overflowed (or x holds ±inf/NaN)
        tl.debug_barrier()  # every thread's first y (and h) is written before any is replaced
        mean, rstd = _rescued_row(h_ptr if HAS_RESIDUAL else x_ptr, y_ptr, weight_ptr,
                                  bias_ptr, N, eps, HAS_WEIGHT, HAS_BIAS, RESCUE_BLOCK_SIZE,
                                  ACC)
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
    dresidual_ptr,              # (M, N) gradient of the fused add's h output (HAS_DRESIDUAL)
    x_row_stride, dy_row_stride, dresidual_row_stride,
    M, N,
    rows_per_program,           # program g owns rows [g * rows_per_program, ...) (< M)
    HAS_WEIGHT: tl.constexpr,
    HAS_DWEIGHT: tl.constexpr,  # partial sums only for the gradients autograd needs
    HAS_DBIAS: tl.constexpr,
    HAS_DRESIDUAL: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    VEC: tl.constexpr,          # N and row strides are multiples of VEC (16 bytes, or 1)
    SINGLE_BLOCK: tl.constexpr,
    ACC: tl.constexpr,          # accumulation dtype: float32 (float64 for float64 input)
):
    """dx = rstd · (w⊙dy − x_hat · mean(w⊙dy⊙x_hat) − mean(w⊙dy)) (+ dh of a fused add),
    plus partial dγ, dβ."""
    pid = tl.program_id(0)
    dweight_ptr += tl.multiple_of(pid.to(tl.int64) * N, VEC)
    dbias_ptr += tl.multiple_of(pid.to(tl.int64) * N, VEC)
    first = pid.to(tl.int64) * rows_per_program  # int64: row * stride may pass 2**31
    n_rows = tl.minimum(rows_per_program, M - first)  # the last program may get fewer
    if SINGLE_BLOCK:
        cols, mask = tile(0, N, BLOCK_SIZE, VEC)
        w = tl.load(weight_ptr + cols, mask=mask, other=0.0).to(ACC) if HAS_WEIGHT else 1.0
        dweight = tl.zeros([BLOCK_SIZE // VEC, VEC], ACC)  # ACC partial sums, in registers
        dbias = tl.zeros([BLOCK_SIZE // VEC, VEC], ACC)
    # num_stages=2: Triton issues the next row's loads (cp.async) before this row's math
    for i in tl.range(0, n_rows, num_stages=2):
        row = first + i
        mean = tl.load(mean_ptr + row)
        rstd = tl.load(rstd_ptr + row)
        x_row = x_ptr + tl.multiple_of(row * x_row_stride, VEC)
        dy_row = dy_ptr + tl.multiple_of(row * dy_row_stride, VEC)
        dx_row = dx_ptr + tl.multiple_of(row * N, VEC)
        dresidual_row = dresidual_ptr + tl.multiple_of(row * dresidual_row_stride, VEC)
        if SINGLE_BLOCK:
            x = tl.load(x_row + cols, mask=mask, other=0.0).to(ACC)
            dy = tl.load(dy_row + cols, mask=mask, other=0.0).to(ACC)
            x_hat = tl.where(mask, normalise(x, mean, rstd, rstd < SPREAD_RSTD), 0.0)
            wdy = w * dy
            c1 = row_sum(x_hat * wdy) / N
            c2 = row_sum(wdy) / N
            dx = (wdy - (x_hat * c1 + c2)) * rstd
            dx = add_residual_grad(dx, dresidual_row, cols, mask, HAS_DRESIDUAL)
            tl.store(dx_row + cols, dx.to(dx_ptr.dtype.element_ty), mask=mask)
            if HAS_DWEIGHT:
                dweight += dy * x_hat
            if HAS_DBIAS:
                dbias += dy
        else:  # h = 1/2: a row so spread that x − mean may overflow, see normalise
            h = tl.where(rstd < SPREAD_RSTD, 0.5, 1.0)
            _layer_norm_bwd_long_row(x_row, dy_row, dx_row, dresidual_row, weight_ptr,
                                     dweight_ptr, dbias_ptr, mean * h, rstd / h, rstd, h, N,
                                     HAS_WEIGHT,
                                     HAS_DWEIGHT, HAS_DBIAS, HAS_DRESIDUAL, BLOCK_SIZE, VEC, ACC)
    if SINGLE_BLOCK:
        if HAS_DWEIGHT:
            tl.store(dweight_ptr + cols, dweight, mask=mask)
        if HAS_DBIAS:
            tl.store(dbias_ptr + cols, dbias, mask=mask)


@triton.jit
def _layer_norm_bwd_long_row(x_row, dy_row, dx_row, dresidual_row, weight_ptr, dweight_ptr,
                             dbias_ptr, mean_h, rstd_h, rstd, h, N,
                             HAS_WEIGHT: tl.constexpr,
                             HAS_DWEIGHT: tl.constexpr, HAS_DBIAS: tl.constexpr,
                             HAS_DRESIDUAL: tl.constexpr, BLOCK_SIZE: tl.constexpr,
                             VEC: tl.constexpr, ACC: tl.constexpr):
    """One row too long for registers: pass 1 reduces c1, c2; pass 2 writes dx and adds to
    this program's own partial-sum rows (no other program touches them: no atomics).
    x̂ = (h·x − h·μ)·(rstd/h) with h = 1, or 1/2 where x − μ may overflow (see normalise)."""
    c1 = tl.zeros([], ACC)
    c2 = tl.zeros([], ACC)
    for start in tl.range(0, N, BLOCK_SIZE, num_stages=2):
        cols, mask, x, dy, w = load_block(x_row, dy_row, weight_ptr, start, N, HAS_WEIGHT,
                                          BLOCK_SIZE, VEC, ACC)
        x_hat = tl.where(mask, (x * h - mean_h) * rstd_h, 0.0)
        c1 += row_sum(x_hat * w * dy)
        c2 += row_sum(w * dy)
    c1 = c1 / N
    c2 = c2 / N
    for start in tl.range(0, N, BLOCK_SIZE, num_stages=2):
        cols, mask, x, dy, w = load_block(x_row, dy_row, weight_ptr, start, N, HAS_WEIGHT,
                                          BLOCK_SIZE, VEC, ACC)
        x_hat = tl.where(mask, (x * h - mean_h) * rstd_h, 0.0)
        dx = (w * dy - (x_hat * c1 + c2)) * rstd
        dx = add_residual_grad(dx, dresidual_row, cols, mask, HAS_DRESIDUAL)
        tl.store(dx_row + cols, dx.to(dx_row.dtype.element_ty), mask=mask)
        if HAS_DWEIGHT:
            tl.store(dweight_ptr + cols, tl.load(dweight_ptr + cols, mask=mask) + dy * x_hat,
                     mask=mask)
        if HAS_DBIAS:
            tl.store(dbias_ptr + cols, tl.load(dbias_ptr + cols, mask=mask) + dy, mask=mask)


def layer_norm_fwd(x, weight, bias, eps, residual=None):
    """Launch the forward on ``x`` of shape ``(M, N)`` (unit column stride), or with
    ``residual`` (same shape) on ``h = x + residual``.

    Returns ``y`` (M, N) in x's dtype, ``mean``, ``rstd`` (M,) in the compute dtype
    (float32; float64 for float64 ``x``) and ``h`` (``None`` without a residual).
    """
    M, N = x.shape
    y = torch.empty((M, N), dtype=x.dtype, device=x.device)
    h = None if residual is None else torch.empty_like(y)
    mean = torch.empty(M, dtype=compute_dtype(x.dtype), device=x.device)
    rstd = torch.empty(M, dtype=compute_dtype(x.dtype), device=x.device)
    if M == 0:
        return y, mean, rstd, h
    block, num_warps, single = _launch.settings(N, x.element_size())
    _layer_norm_fwd[(M,)](
        x, y, x if weight is None else weight, x if bias is None else bias, mean, rstd,
        x if residual is None else residual, y if h is None else h,
        x.stride(0), 0 if residual is None else residual.stride(0), N, eps,
        HAS_WEIGHT=weight is not None, HAS_BIAS=bias is not None,
        HAS_RESIDUAL=residual is not None, BLOCK_SIZE=block,
        VEC=min(block, _launch.vector_width(N, x, residual)), SINGLE_BLOCK=single,
        ACC=_launch.acc_dtype(x), num_warps=num_warps,
    )
    return y, mean, rstd, h


def layer_norm_bwd(dy, x, weight, mean, rstd, need_dweight=True, need_dbias=True,
                   dresidual=None):
    """Launch the backward; ``dy``, ``x`` (``h`` of a fused add) are ``(M, N)``; with
    ``dresidual`` (the gradient of the fused add's ``h``) it is added to ``dx``.

    Returns ``dx`` and the ``(G, N)`` compute-dtype partial sums of ``dweight`` and
    ``dbias`` (``None`` where not needed; :func:`finalize_partials` reduces them over G).
    """
    M, N = x.shape
    dx = torch.empty((M, N), dtype=x.dtype, device=x.device)
    block, num_warps, single = _launch.settings(N, x.element_size(), backward=True)
    constexprs = dict(HAS_WEIGHT=weight is not None, HAS_DWEIGHT=need_dweight,
                      HAS_DBIAS=need_dbias, HAS_DRESIDUAL=dresidual is not None,
                      BLOCK_SIZE=block, VEC=min(block, _launch.vector_width(N, x, dy, dresidual)),
                      SINGLE_BLOCK=single, ACC=_launch.acc_dtype(x), num_warps=num_warps)
    args = [x, dy, dx, x if weight is None else weight, mean, rstd, mean, mean,
            x if dresidual is None else dresidual, x.stride(0), dy.stride(0),
            0 if dresidual is None else dresidual.stride(0), M, N, 1]
    programs = _launch.resident_programs(_layer_norm_bwd, x.device, args, constexprs)
    rows_per_program, G = _launch.backward_grid(M, programs)
    dweight, dbias = (_launch.partials(G, N, mean.dtype, x.device, single, M) if need else None
                      for need in (need_dweight, need_dbias))
    if M > 0:
        args[6:8] = [mean if dweight is None else dweight, mean if dbias is None else dbias]
        args[-1] = rows_per_program
        _layer_norm_bwd[(G,)](*args, **constexprs)
    return dx, dweight, dbias


class LayerNormFunction(torch.autograd.Function):
    """Autograd glue: ``apply(x, normalized_shape, weight, bias, eps[, residual])`` on
    validated input returns ``(y, mean, rstd)``, with a residual ``(y, h, mean, rstd)``
    (h = x + residual); only ``y`` and ``h`` are differentiable.

    First-order reverse mode runs the fused backward. With ``create_graph=True`` (gradient
    penalties, double backward) and in forward mode (``torch.func.jvp``) the derivative is
    autograd of :func:`normlab.layer_norm` instead (see :mod:`normlab.kernels._autograd`),
    so no higher-order term is dropped; the fused residual add refuses both.
    """

    @staticmethod
    def forward(x, normalized_shape, weight, bias, eps, residual=None):
        n = torch.Size(normalized_shape).numel()
        x_rows = _launch.as_rows(x, n)
        r_rows = None if residual is None else _launch.as_rows(residual, n)
        y, mean, rstd, h = layer_norm_fwd(x_rows, _launch.flat_param(weight),
                                          _launch.flat_param(bias), eps, r_rows)
        if residual is None:
            return y.reshape(x.shape), mean, rstd
        return y.reshape(x.shape), h.reshape(x.shape), mean, rstd

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, normalized_shape, weight, bias, eps, *residual = inputs
        ctx.fused_add = bool(residual) and residual[0] is not None
        mean, rstd = output[-2:]
        ctx.mark_non_differentiable(mean, rstd)
        ctx.save_for_backward(output[1] if ctx.fused_add else x, weight, bias, mean, rstd)
        ctx.save_for_forward(x, weight, bias)
        ctx.normalized_shape, ctx.eps = normalized_shape, eps
        ctx.set_materialize_grads(False)

    @staticmethod
    def _reference(ctx, x, weight, bias):
        return reference_layer_norm(x, ctx.normalized_shape, weight, bias, ctx.eps)

    @staticmethod
    def backward(ctx, dy, *grads):
        x, weight, bias, mean, rstd = ctx.saved_tensors
        dh = grads[0] if ctx.fused_add else None
        if torch.is_grad_enabled():  # create_graph=True: the gradient must itself be differentiable
            _launch.refuse_higher_order(ctx.fused_add)
            needs = (ctx.needs_input_grad[0], *ctx.needs_input_grad[2:4])
            dx, dweight, dbias = reference_vjp(
                lambda *t: LayerNormFunction._reference(ctx, *t), (x, weight, bias), needs, dy)
            return dx, None, dweight, dbias, None, None
        n = torch.Size(ctx.normalized_shape).numel()
        x_rows = _launch.as_rows(x, n)
        dy_rows = (torch.zeros_like(x_rows) if dy is None  # only h was used
                   else _launch.as_rows(dy, n))  # dy's own strides, never x's
        meta = _launch.param_meta(weight), _launch.param_meta(bias)
        need_w, need_b = ctx.needs_input_grad[2:4]
        dx, dweight, dbias = layer_norm_bwd(
            dy_rows, x_rows, _launch.flat_param(weight), mean, rstd,
            need_w and weight is not None, need_b and bias is not None,
            None if dh is None else _launch.as_rows(dh, n))
        dweight, dbias = finalize_partials(dweight, dbias, *meta)
        dx = dx.reshape(x.shape)
        return dx, None, dweight, dbias, None, dx if ctx.fused_add else None

    @staticmethod
    def jvp(ctx, x_dot, _shape_dot, weight_dot, bias_dot, _eps_dot, *_residual_dot):
        _launch.refuse_higher_order(ctx.fused_add)
        y_dot = reference_jvp(lambda *t: LayerNormFunction._reference(ctx, *t),
                              ctx.saved_tensors[:3], (x_dot, weight_dot, bias_dot))
        return y_dot, None, None


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
    return LayerNormFunction.apply(x, shape, weight, bias, eps)[0]


class TritonLayerNorm(LayerNorm):
    """Drop-in for ``torch.nn.LayerNorm`` (same parameters and state dict); fused forward."""

    def forward(self, x):
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
