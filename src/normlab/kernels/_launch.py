"""Launch heuristics and tensor plumbing shared by the LayerNorm and RMSNorm kernels."""

import os

import torch
import triton
import triton.language as tl

# Rows up to this many columns are held in registers by one program (one read of x).
# What ptxas makes of each setting for an H100 (registers, spills, load widths) is in
# normlab/data/benchmarks/codegen/sm90.json: `python -m normlab.kernels.codegen`.
MAX_FUSED_SIZE = 16384
# Longer rows are processed in column blocks of this size (see SINGLE_BLOCK in the kernels).
LOOP_BLOCK_SIZE = 4096


def interpreting():
    """True when Triton runs kernels through its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def interpreter_active():
    """True when triton.language was imported in interpreter mode (env set early enough)."""
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(tl.sum, InterpretedFunction)


def check_device(x):
    """Kernels need CUDA tensors, or CPU tensors under the interpreter."""
    if not interpreting() and x.device.type != "cuda":
        raise ValueError(
            f"x must be a CUDA tensor for the Triton kernels, got device {x.device} "
            "(set TRITON_INTERPRET=1 before importing normlab.kernels to run them on CPU)"
        )


def settings(n_cols, backward=False):
    """``(BLOCK_SIZE, num_warps, SINGLE_BLOCK)`` for rows of ``n_cols`` elements.

    One power-of-two block covers the row when it fits (masking handles the tail);
    beyond ``MAX_FUSED_SIZE`` the kernels loop over ``LOOP_BLOCK_SIZE`` column blocks.
    More warps for wider blocks keep the registers per thread bounded. The backward keeps
    x, dy, γ and the dγ, dβ sums of its block live, so from 4096 columns on it gets twice
    the forward's warps: ~64 registers per thread instead of ~120 (twice the resident warps
    per SM), and at 16384 columns half the register spills (the one size that still spills:
    1024 threads cannot hold 5 × 16384 values in 64 registers each).
    """
    single = n_cols <= MAX_FUSED_SIZE
    block = triton.next_power_of_2(n_cols) if single else LOOP_BLOCK_SIZE
    num_warps = 16 if block >= 8192 else 8 if block >= 2048 else 4 if block >= 512 else 1
    if backward and block >= 4096:
        num_warps *= 2
    return block, num_warps, single


def sm_count(device):
    """Streaming multiprocessors of a CUDA ``device``; 0 elsewhere (the interpreter)."""
    return torch.cuda.get_device_properties(device).multi_processor_count \
        if device.type == "cuda" else 0


def backward_grid(n_rows, sms):
    """``(rows_per_program, programs)`` for the backward on a GPU with ``sms`` streaming
    multiprocessors; ``programs`` = rows of the dweight/dbias partial sums.

    A few programs per SM keep the memory system busy; each sums its rows in float32
    registers, so the partials buffer is small and its reduction cheap and deterministic.
    """
    target = 4 * sms if sms else 4  # interpreter: few programs, each loops over several rows
    rows_per_program = triton.cdiv(n_rows, max(1, min(n_rows, target))) if n_rows else 1
    return rows_per_program, max(1, triton.cdiv(n_rows, rows_per_program))


def partials(programs, n_cols, dtype, device, single_block, n_rows):
    """The ``(G, N)`` partial-sum buffer of the backward. Single-block kernels store every
    row of it; long-row kernels add into it, so it starts at zero (as it must for M = 0)."""
    alloc = torch.empty if single_block and n_rows > 0 else torch.zeros
    return alloc((programs, n_cols), dtype=dtype, device=device)


def as_rows(t, n_cols):
    """View ``t`` as ``(M, n_cols)`` rows with unit column stride, copying only when needed.

    Row-strided views (``x[::2]``) are read in place through the row stride; anything
    else (transposes, broadcast gradients with stride 0) is made contiguous once.
    """
    rows = t.reshape(-1, n_cols)
    return rows if rows.stride(-1) == 1 else rows.contiguous()


def acc_dtype(x):
    """Triton accumulation dtype: float32 for half/float32 inputs, float64 for float64
    (so the kernels can be gradchecked in float64)."""
    return tl.float64 if x.dtype == torch.float64 else tl.float32


def flat_param(p):
    """An affine parameter flattened to ``(N,)`` (contiguous), or ``None``."""
    return None if p is None else p.reshape(-1).contiguous()


def param_meta(p):
    """``(shape, dtype)`` of an affine parameter (or ``None``): what backward needs of it."""
    return None if p is None else (p.shape, p.dtype)


def reduce_partials(partial, meta):
    """Sum the ``(G, N)`` float32 partials over programs; shape and cast them per ``meta``.

    ``torch.sum`` of a fixed-shape tensor reduces in a fixed order: bitwise-reproducible.
    Returns ``None`` when the parameter is absent (``meta is None``).
    """
    if meta is None:
        return None
    shape, dtype = meta
    return partial.sum(dim=0).reshape(shape).to(dtype)
