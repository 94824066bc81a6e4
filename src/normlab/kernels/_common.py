"""Triton helpers shared by the LayerNorm and RMSNorm kernels."""

import triton
import triton.language as tl


@triton.jit
def load_block(x_row, dy_row, weight_ptr, start, N, HAS_WEIGHT: tl.constexpr,
               BLOCK_SIZE: tl.constexpr, ACC: tl.constexpr):
    """Columns ``start … start+BLOCK_SIZE`` of one row of x and dy, and of γ (1 if absent),
    in the accumulation dtype; masked-off columns read as 0."""
    cols = start + tl.arange(0, BLOCK_SIZE)
    mask = cols < N
    x = tl.load(x_row + cols, mask=mask, other=0.0).to(ACC)
    dy = tl.load(dy_row + cols, mask=mask, other=0.0).to(ACC)
    if HAS_WEIGHT:
        w = tl.load(weight_ptr + cols, mask=mask, other=0.0).to(ACC)
    else:
        w = tl.full([BLOCK_SIZE], 1.0, ACC)
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
