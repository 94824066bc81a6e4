"""Triton helpers shared by the LayerNorm and RMSNorm kernels."""

import torch
import triton
import triton.language as tl


@triton.jit
def tile(start, N, BLOCK_SIZE: tl.constexpr, VEC: tl.constexpr):
    """Columns ``start … start+BLOCK_SIZE`` of a row as a ``[BLOCK_SIZE // VEC, VEC]`` tile
    of vectors of VEC consecutive columns, and its mask, whole vectors in or out.

    With N a multiple of VEC (16 bytes of the dtype, checked on the host) the per-vector
    mask lets the compiler move each vector with one 16-byte access, whatever N % 16 is
    (1-D ``cols < N`` vectorises only when Triton knows N is divisible by 16).
    """
    vectors = start // VEC + tl.arange(0, BLOCK_SIZE // VEC)[:, None]
    cols = vectors * VEC + tl.arange(0, VEC)[None, :]
    mask = (vectors < N // VEC) & (tl.arange(0, VEC)[None, :] < VEC)
    return cols, mask


@triton.jit
def row_sum(t):
    """Sum of a ``[vectors, VEC]`` tile: the reduction over one row block."""
    return tl.sum(tl.sum(t, axis=1), axis=0)


@triton.jit
def load_block(x_row, dy_row, weight_ptr, start, N, HAS_WEIGHT: tl.constexpr,
               BLOCK_SIZE: tl.constexpr, VEC: tl.constexpr, ACC: tl.constexpr):
    """Columns ``start … start+BLOCK_SIZE`` of one row of x and dy, and of γ (1 if absent),
    in the accumulation dtype; masked-off columns read as 0."""
    cols, mask = tile(start, N, BLOCK_SIZE, VEC)
    x = tl.load(x_row + cols, mask=mask, other=0.0).to(ACC)
    dy = tl.load(dy_row + cols, mask=mask, other=0.0).to(ACC)
    if HAS_WEIGHT:
        w = tl.load(weight_ptr + cols, mask=mask, other=0.0).to(ACC)
    else:
        w = tl.full([BLOCK_SIZE // VEC, VEC], 1.0, ACC)
    return cols, mask, x, dy, w


@triton.jit
def affine_store(y_ptr, x_hat, weight_ptr, bias_ptr, cols, mask,
                 HAS_WEIGHT: tl.constexpr, HAS_BIAS: tl.constexpr, ACC: tl.constexpr):
    """y = γ ⊙ x_hat + β for one block of columns, stored in y's dtype."""
    y = x_hat
    if HAS_WEIGHT:
        y = y * tl.load(weight_ptr + cols, mask=mask, other=0.0).to(ACC)
    if HAS_BIAS:
        y = y + tl.load(bias_ptr + cols, mask=mask, other=0.0).to(ACC)
    tl.store(y_ptr + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def load_row(x_row, residual_row, h_row, cols, mask, HAS_RESIDUAL: tl.constexpr,
             STORE_H: tl.constexpr, ACC: tl.constexpr):
    """One block of a row in ACC: x, or with HAS_RESIDUAL h = x + residual rounded to x's
    dtype (what the unfused ``x + residual`` stores), written to ``h_row`` if STORE_H."""
    x = tl.load(x_row + cols, mask=mask, other=0.0)
    if HAS_RESIDUAL:
        x = (x.to(ACC) + tl.load(residual_row + cols, mask=mask, other=0.0).to(ACC))
        x = x.to(h_row.dtype.element_ty)
        if STORE_H:
            tl.store(h_row + cols, x, mask=mask)
    return x.to(ACC)


@triton.jit
def add_residual_grad(dx, dresidual_row, cols, mask, HAS_DRESIDUAL: tl.constexpr):
    """dx + the gradient arriving at the residual output h (fused add: dh flows to both)."""
    if HAS_DRESIDUAL:
        dx += tl.load(dresidual_row + cols, mask=mask, other=0.0).to(dx.dtype)
    return dx


@triton.jit
def _column_sums(partial_ptr, out_ptr, G, N, cols, BLOCK_G: tl.constexpr,
                 BLOCK_N: tl.constexpr):
    acc = tl.zeros([BLOCK_G, BLOCK_N], partial_ptr.dtype.element_ty)
    for start in range(0, G, BLOCK_G):
        rows = start + tl.arange(0, BLOCK_G)
        mask = (rows[:, None] < G) & (cols[None, :] < N)
        acc += tl.load(partial_ptr + rows[:, None].to(tl.int64) * N + cols[None, :],
                       mask=mask, other=0.0)
    tl.store(out_ptr + cols, tl.sum(acc, axis=0).to(out_ptr.dtype.element_ty), mask=cols < N)


@triton.jit
def finalize_partials_kernel(
    dweight_partial_ptr, dbias_partial_ptr,  # (G, N) ACC partial sums, one row per program
    dweight_ptr, dbias_ptr,                  # (N,) outputs in the parameters' dtypes
    G, N,
    HAS_DWEIGHT: tl.constexpr,
    HAS_DBIAS: tl.constexpr,
    BLOCK_G: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """dγ[c] = Σ_g partial[g, c] (and dβ alike): a fixed-order sum over the G partial rows
    in the partials' dtype, cast to the parameter's dtype at the store (Apex's
    ``ln_bwd_finalize_kernel`` pattern: one launch instead of ``sum`` + ``.to()`` per
    parameter)."""
    cols = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    if HAS_DWEIGHT:
        _column_sums(dweight_partial_ptr, dweight_ptr, G, N, cols, BLOCK_G, BLOCK_N)
    if HAS_DBIAS:
        _column_sums(dbias_partial_ptr, dbias_ptr, G, N, cols, BLOCK_G, BLOCK_N)


FINALIZE_BLOCK_G, FINALIZE_BLOCK_N = 64, 32  # 32 float32 columns: one 128-byte line per row


def finalize_partials(dweight_partial, dbias_partial, weight_meta, bias_meta):
    """``(dweight, dbias)`` from the ``(G, N)`` partials (``None`` where not needed), shaped
    and typed per the ``(shape, dtype)`` metas, in one kernel launch."""
    parts = [(p, meta) if p is not None and meta is not None else None
             for p, meta in ((dweight_partial, weight_meta), (dbias_partial, bias_meta))]
    outs = [None if part is None else
            torch.empty(part[1][0], dtype=part[1][1], device=part[0].device) for part in parts]
    present = [part[0] for part in parts if part is not None]
    if not present:
        return None, None
    G, N = present[0].shape
    finalize_partials_kernel[(triton.cdiv(N, FINALIZE_BLOCK_N),)](
        *(part[0] if part else present[0] for part in parts),
        *(out if out is not None else present[0] for out in outs),
        G, N, HAS_DWEIGHT=parts[0] is not None, HAS_DBIAS=parts[1] is not None,
        BLOCK_G=FINALIZE_BLOCK_G, BLOCK_N=FINALIZE_BLOCK_N, num_warps=4,
    )
    return tuple(outs)
# Rows whose rstd is below this (σ > 2**64) are normalised in halves, see `normalise`.
SPREAD_RSTD = tl.constexpr(2.0 ** -64)
# Rows whose squares overflow are read again in column blocks this small: the rescue code
# then needs fewer registers than the ordinary path, so it does not raise the kernel's
# register count (and cut its occupancy) for the rows that never take it.
RESCUE_BLOCK_SIZE = tl.constexpr(256)
INF = tl.constexpr(float("inf"))


@triton.jit
def not_finite(v):
    """True for ±inf and NaN: a row whose sum of squares overflowed, or that holds them."""
    return (v != v) | (tl.abs(v) == INF)


@triton.jit
def row_abs_max(x_row, N, BLOCK_SIZE: tl.constexpr, ACC: tl.constexpr):
    """s = max_i |x_i| over one row, read in column blocks (the rescaling of rare rows)."""
    s = tl.zeros([], ACC)
    for start in range(0, N, BLOCK_SIZE):
        cols = start + tl.arange(0, BLOCK_SIZE)
        x = tl.load(x_row + cols, mask=cols < N, other=0.0).to(ACC)
        s = tl.maximum(s, tl.max(tl.abs(x), axis=0))
    return s


@triton.jit
def normalise(x, mean, rstd, halved):
    r"""x̂ = (x − μ)·rstd from the saved statistics.

    Rows so spread that x − μ itself may overflow (σ > 2**64, i.e. rstd < SPREAD_RSTD: the
    float32 squares of such rows overflow) pass ``halved``: x̂ = (x/2 − μ/2)·(2·rstd), where
    |x/2 − μ/2| ≤ max|x| never overflows and halving is exact, so x̂ is the same number.
    """
    if halved:
        x_hat = (x * 0.5 - mean * 0.5) * (rstd * 2.0)
    else:
        x_hat = (x - mean) * rstd
    return x_hat
