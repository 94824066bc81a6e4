"""Launch heuristics and tensor plumbing shared by the LayerNorm and RMSNorm kernels."""

import math
import os

import torch
import triton
import triton.language as tl

# A row is held in registers by one program when it has at most MAX_FUSED_SIZE columns and
# MAX_FUSED_BYTES bytes (16384 bfloat16 or 8192 float32 values: a float32 LayerNorm row of
# 16384 keeps one program per SM whatever its warps, see the compile report); the backward
# and the LayerNorm forward at most MAX_FUSED_SIZE // 2 columns (see `settings`). What ptxas
# makes of each setting for an H100 (registers, spills, load widths, programs per SM) is in
# normlab/data/benchmarks/codegen/sm90.json: `python -m normlab.kernels.codegen`.
MAX_FUSED_SIZE = 16384
MAX_FUSED_BYTES = 32768
# Longer rows are processed in column blocks of this size (see SINGLE_BLOCK in the kernels).
LOOP_BLOCK_SIZE = 4096
# Programs per SM the backward grid assumes where nothing is compiled (the interpreter).
INTERPRETER_PROGRAMS = 4
# Per-SM limits of compute capability 9.0 (CUDA C++ Programming Guide, "Compute
# Capabilities"), and the H100 SXM5's SM count: the compile report's target.
SM90 = {"arch": 90, "sms": 132, "max_warps": 64, "max_ctas": 32, "registers": 65536,
        "register_unit": 256, "shared_bytes": 233472, "shared_per_cta_reserved": 1024}


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


def settings(n_cols, element_size=2, backward=False, centered=True):
    """``(BLOCK_SIZE, num_warps, SINGLE_BLOCK)`` for rows of ``n_cols`` elements.

    One power-of-two block covers the row when it fits (masking handles the tail);
    beyond ``MAX_FUSED_SIZE`` columns or ``MAX_FUSED_BYTES`` the kernels loop over
    ``LOOP_BLOCK_SIZE`` column blocks. More warps for wider blocks keep the registers per
    thread bounded. Two exceptions, each read off the compile report: the backward keeps
    x, dy, γ and the dγ, dβ sums of its block live, so from 4096 columns on it gets twice
    the forward's warps (~64 registers per thread instead of ~120: twice the resident
    warps); and the backward and the LayerNorm (``centered``) forward hold a row in
    registers only up to ``MAX_FUSED_SIZE // 2`` columns. At 16384 bfloat16 columns 1024
    threads cannot hold the backward's x, dy, γ, dγ, dβ in 64 registers each (ptxas
    spilled 224 bytes per thread), and the LayerNorm forward with its overflow rescue
    needed 142 registers per thread at 8 warps (one program per SM; 128 before the
    rescue): its column-block path keeps at least two.
    """
    limit = MAX_FUSED_SIZE // 2 if backward or centered else MAX_FUSED_SIZE
    single = n_cols <= limit and n_cols * element_size <= MAX_FUSED_BYTES
    block = triton.next_power_of_2(n_cols) if single else LOOP_BLOCK_SIZE
    return block, warps(block, backward), single


def warps(block, backward=False):
    """``num_warps`` for a block of ``block`` columns (see :func:`settings`)."""
    num_warps = 16 if block >= 8192 else 8 if block >= 2048 else 4 if block >= 512 else 1
    return 2 * num_warps if backward and block >= 4096 else num_warps


def vector_width(n_cols, *rows):
    """VEC: elements per 16-byte vector when ``n_cols`` and the row stride of every
    ``(M, N)`` tensor in ``rows`` (``None`` skipped) are multiples of it, else 1.

    The kernels then promise Triton (``tl.multiple_of``) that every row starts on a vector
    boundary and mask whole vectors, so N = 1000 in bfloat16 gets 16-byte accesses.
    """
    rows = [t for t in rows if t is not None]
    vec = 16 // rows[0].element_size()
    aligned = n_cols % vec == 0 and all(t.stride(0) % vec == 0 or t.shape[0] <= 1 for t in rows)
    return vec if aligned else 1


def occupancy(registers, num_warps, shared, sm=SM90):
    """Theoretical warps per SM: CTAs that fit by warps, registers and shared memory."""
    regs_per_warp = math.ceil(registers * 32 / sm["register_unit"]) * sm["register_unit"]
    ctas = min(sm["max_ctas"], sm["max_warps"] // num_warps,
               sm["registers"] // (regs_per_warp * num_warps),
               sm["shared_bytes"] // (shared + sm["shared_per_cta_reserved"]))
    return ctas * num_warps


def device_limits(device):
    """The per-SM limits of a CUDA ``device`` in :data:`SM90`'s form (CTA limit and
    allocation units as on sm_80 and sm_90)."""
    from triton.runtime import driver

    props = driver.active.utils.get_device_properties(device.index)
    return {**SM90, "sms": props["multiprocessor_count"], "registers": props["max_num_regs"],
            "shared_bytes": props["max_shared_mem"],
            "max_warps": torch.cuda.get_device_properties(device).max_threads_per_multi_processor
            // 32}


_RESIDENT = {}


def resident_programs(kernel, device, args, constexprs):
    """Programs of ``kernel`` that can run at once on ``device``: SMs × programs per SM
    (from the compiled kernel's registers, warps and shared memory), as quack and
    inductor size persistent grids. Without a GPU, ``INTERPRETER_PROGRAMS``."""
    if device.type != "cuda":
        return INTERPRETER_PROGRAMS
    key = (kernel.__name__, device.index, tuple(sorted(constexprs.items(), key=str)),
           tuple(getattr(a, "dtype", None) for a in args))
    if key not in _RESIDENT:
        compiled = kernel.warmup(*args, grid=(1,), **constexprs)
        compiled._init_handles()
        sm = device_limits(device)
        warps = compiled.metadata.num_warps
        per_sm = occupancy(compiled.n_regs, warps, compiled.metadata.shared, sm) // warps
        _RESIDENT[key] = sm["sms"] * max(1, per_sm)
    return _RESIDENT[key]


def sm_count(device):
    """Streaming multiprocessors of a CUDA ``device``; 0 elsewhere (the interpreter)."""
    return torch.cuda.get_device_properties(device).multi_processor_count \
        if device.type == "cuda" else 0


def backward_grid(n_rows, programs):
    """``(rows_per_program, G)``: at most ``programs`` programs (those that fit on the GPU at
    once, :func:`resident_programs`), each owning a contiguous block of rows; ``G`` is also
    the number of rows of the dweight/dbias partial sums.

    Each program sums its rows in float32 registers and writes one partial row, so the
    reduction is deterministic and needs no atomics.
    """
    rows_per_program = triton.cdiv(n_rows, max(1, min(n_rows, programs))) if n_rows else 1
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


def refuse_higher_order(fused_add):
    """The fused residual add has no reference path for double backward or forward mode."""
    if fused_add:
        raise RuntimeError("the fused residual add + norm supports first-order reverse mode "
                           "only; for create_graph=True or forward-mode AD compose "
                           "x + residual and the norm instead")


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
