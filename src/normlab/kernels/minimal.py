r"""The smallest fused LayerNorm forward: where chapter 7 starts.

One Triton program per row; the whole row in registers (one power-of-two block, masked);
float32 statistics; no long-row branch, no backward, no launch tuning. Chapter 7 then adds,
one at a time and each with its compile-report evidence, what :mod:`normlab.kernels.layer_norm`
has on top: 64-bit row offsets, warps that grow with the row, 16-byte vectors for any N
that is a multiple of 16 bytes, column blocks for long rows, the backward.

.. math:: y = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta
"""

import torch
import triton
import triton.language as tl

# One block holds the whole row: beyond this the registers run out (see chapter 7).
MAX_COLUMNS = 16384
NUM_WARPS = 4  # fixed: the production kernel's settings() is the first addition


@triton.jit
def layer_norm_fwd_minimal(
    x_ptr,                      # (M, N) input, contiguous
    y_ptr,                      # (M, N) output, contiguous
    weight_ptr,                 # (N,) γ
    bias_ptr,                   # (N,) β
    N,                          # row length
    eps,
    BLOCK_SIZE: tl.constexpr,   # power of two >= N
):
    row = tl.program_id(0)      # this program's row
    cols = tl.arange(0, BLOCK_SIZE)
    mask = cols < N             # columns N … BLOCK_SIZE-1 do not exist
    x = tl.load(x_ptr + row * N + cols, mask=mask, other=0.0).to(tl.float32)
    mean = tl.sum(x, axis=0) / N
    x_centered = tl.where(mask, x - mean, 0.0)  # the padding must not enter the variance
    var = tl.sum(x_centered * x_centered, axis=0) / N
    rstd = 1.0 / tl.sqrt(var + eps)
    w = tl.load(weight_ptr + cols, mask=mask).to(tl.float32)
    b = tl.load(bias_ptr + cols, mask=mask).to(tl.float32)
    y = x_centered * rstd * w + b
    tl.store(y_ptr + row * N + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


def layer_norm(x, weight, bias, eps=1e-5):
    """LayerNorm over the last dimension of a contiguous 2-D ``x`` of shape ``(M, N)`` with
    ``N <= MAX_COLUMNS``, γ and β of shape ``(N,)``; ``y`` in x's dtype. Forward only."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or not x.is_contiguous():
        raise ValueError("the minimal kernel takes a contiguous 2-D tensor (M, N); use "
                         "normlab.kernels.layer_norm for anything else")
    M, N = x.shape
    if not 0 < N <= MAX_COLUMNS:
        raise ValueError(f"the minimal kernel holds a row in registers: 1 <= N <= "
                         f"{MAX_COLUMNS}, got N = {N} (normlab.kernels.layer_norm loops)")
    for name, p in (("weight", weight), ("bias", bias)):
        if not isinstance(p, torch.Tensor) or p.shape != (N,) or p.device != x.device:
            raise ValueError(f"{name} must be a tensor of shape ({N},) on {x.device}")
    y = torch.empty_like(x)
    layer_norm_fwd_minimal[(M,)](x, y, weight.contiguous(), bias.contiguous(), N, eps,
                                 BLOCK_SIZE=triton.next_power_of_2(N), num_warps=NUM_WARPS)
    return y
