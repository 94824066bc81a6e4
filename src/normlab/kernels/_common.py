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
