r"""What the compiler makes of the kernels for an H100 (sm_90), read on any Linux machine.

The triton wheel ships Triton's compiler, ``ptxas`` and ``cuobjdump``: no GPU is needed to
compile a kernel for one and read its machine code. For each kernel at the launch settings
of :func:`normlab.kernels._launch.settings` this reports

- **registers** per thread and **stack** bytes per thread (local memory: register spills;
  these kernels have no local arrays, so stack > 0 means spills);
- the **global loads and stores** in the SASS by width: ``LDG.E.128`` moves 16 bytes per
  thread (8 bfloat16 or 4 float32 values), the widest access there is;
- the **theoretical occupancy**: warps resident per SM, from registers, shared memory and
  the per-SM limits of compute capability 9.0.

Triton specialises every launch on its arguments (a pointer aligned to 16 bytes, an int
divisible by 16); :func:`compile_kernel` gives the compiler the same facts a real launch
on contiguous tensors would.

    python -m normlab.kernels.codegen --out src/normlab/data/benchmarks/codegen/sm90.json

Runs only where ``TRITON_INTERPRET`` is unset: the interpreter replaces the kernels.
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import triton
import triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.backends.nvidia.compiler import get_ptxas
from triton.compiler import ASTSource

from normlab._machine import utc_now
from normlab._workloads import BENCHMARKS, gpu_shapes
from normlab.kernels import _launch, minimal
from normlab.kernels.layer_norm import _layer_norm_bwd, _layer_norm_fwd
from normlab.kernels.rms_norm import _rms_norm_bwd, _rms_norm_fwd

KERNELS = {("layernorm", "fwd"): _layer_norm_fwd, ("layernorm", "bwd"): _layer_norm_bwd,
           ("rmsnorm", "fwd"): _rms_norm_fwd, ("rmsnorm", "bwd"): _rms_norm_bwd}
SM90 = _launch.SM90
TRITON_TYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}
ELEMENT_SIZE = {"bfloat16": 2, "float16": 2, "float32": 4}
# Pointers to float32 statistics and partial sums; every other pointer has x's dtype.
FLOAT32_POINTERS = ("mean_ptr", "rstd_ptr", "dweight_ptr", "dbias_ptr")
# What each reported variant switches on: the plain launch (affine, all gradients), the
# fused residual add (forward stores h, backward adds dh), the backward with the forward's
# warps (what doubling them changed), and chapter 7's minimal LayerNorm forward
# (normlab.kernels.minimal: what the production kernel starts from), and the backward of
# a row of 8193 to 16384 columns held in registers (why such rows take column blocks).
VARIANTS = {"launch": {}, "fused add": {"HAS_RESIDUAL": True, "HAS_DRESIDUAL": True},
            "forward warps": {}, "minimal": {}, "single block": {}}


def launch_values(M, N, rows_per_program):
    """The integer arguments a launch on contiguous ``(M, N)`` tensors passes."""
    return {"x_row_stride": N, "dy_row_stride": N, "residual_row_stride": N,
            "dresidual_row_stride": N, "N": N, "M": M, "rows_per_program": rows_per_program}


def vector_width(dtype, N):
    """VEC of a launch on contiguous rows (:func:`_launch.vector_width`)."""
    vec = 16 // ELEMENT_SIZE[dtype]
    return vec if N % vec == 0 else 1


def _launch_settings(norm, pass_, dtype, N, variant="launch"):
    """``(BLOCK_SIZE, num_warps, SINGLE_BLOCK)`` of a launch (the minimal kernel's fixed)."""
    if variant == "minimal":
        return triton.next_power_of_2(N), minimal.NUM_WARPS, True
    if variant == "single block":
        block = triton.next_power_of_2(N)
        return block, _launch.warps(block, backward=True), True
    return _launch.settings(N, ELEMENT_SIZE[dtype], backward=pass_ == "bwd",
                            centered=norm == "layernorm")


def compile_kernel(norm, pass_, dtype, M, N, num_warps=None, variant="launch",
                   rows_per_program=None, arch=SM90["arch"]):
    """The kernel compiled for ``sm_<arch>`` as it would be launched on ``(M, N)`` rows.

    Constexprs and ``num_warps`` (unless given) come from :func:`_launch.settings`, with γ
    and β present, every gradient needed and ε inside the square root (plus the fused add
    for ``variant="fused add"``); ints divisible by 16 and all pointers (16-byte aligned
    by PyTorch's allocator) carry Triton's ``tt.divisibility=16``; the backward's
    ``rows_per_program`` is the residency-sized grid's (:func:`backward_rows`).
    """
    fn = minimal.layer_norm_fwd_minimal if variant == "minimal" else KERNELS[norm, pass_]
    block, launch_warps, single = _launch_settings(norm, pass_, dtype, N, variant)
    num_warps = num_warps or launch_warps
    consts = {"HAS_WEIGHT": True, "HAS_BIAS": True, "HAS_DWEIGHT": True, "HAS_DBIAS": True,
              "HAS_RESIDUAL": False, "HAS_DRESIDUAL": False, "EPS_INSIDE_SQRT": True,
              "ACC": tl.float32, "SINGLE_BLOCK": single, "BLOCK_SIZE": block,
              "VEC": vector_width(dtype, N), **VARIANTS[variant]}
    consts = {k: v for k, v in consts.items() if k in fn.arg_names}
    values = launch_values(M, N, rows_per_program or 3)
    signature, attrs = {}, {}
    for i, arg in enumerate(fn.arg_names):
        if arg in consts:
            signature[arg] = "constexpr"
        elif arg.endswith("_ptr"):
            signature[arg] = "*fp32" if arg in FLOAT32_POINTERS else "*" + TRITON_TYPES[dtype]
            attrs[(i,)] = [["tt.divisibility", 16]]
        elif arg == "eps":
            signature[arg] = "fp32"
        else:
            signature[arg] = "i32"
            if values[arg] % 16 == 0:
                attrs[(i,)] = [["tt.divisibility", 16]]
    return triton.compile(ASTSource(fn, signature, consts, attrs),
                          target=GPUTarget("cuda", arch, 32), options={"num_warps": num_warps})


def _cuobjdump(cubin, *flags):
    tool = Path(get_ptxas(SM90["arch"]).path).with_name("cuobjdump")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "kernel.cubin")
        path.write_bytes(cubin)
        return subprocess.run([str(tool), *flags, str(path)], check=True, capture_output=True,
                              text=True).stdout


def memory_instructions(sass):
    """Global (``LDG``/``STG``; ``LDGSTS``: an asynchronous copy global → shared, the
    prefetch of a pipelined loop) and local (``LDL``/``STL``: spill) accesses in ``sass``
    by opcode with modifiers, e.g. ``{"LDG.E.128": 4, "STG.E.U16": 1}``."""
    return dict(Counter(m.group(0) for m in re.finditer(
        r"\b(?:LDGSTS|LDG|STG|LDL|STL)(?:\.\w+)*\b", sass)))


occupancy = _launch.occupancy


def _resources(kernel):
    machine_code = _cuobjdump(kernel.asm["cubin"], "-res-usage", "-sass")
    registers, stack = (int(re.search(rf"{key}:(\d+)", machine_code).group(1))
                        for key in ("REG", "STACK"))
    return registers, stack, machine_code


def backward_rows(kernel, M, sm=SM90):
    """``rows_per_program`` of the residency-sized backward grid for ``kernel`` on ``sm``
    (what :func:`_launch.resident_programs` computes on a GPU)."""
    registers, _, _ = _resources(kernel)
    warps = kernel.metadata.num_warps
    per_sm = occupancy(registers, warps, kernel.metadata.shared, sm) // warps
    return _launch.backward_grid(M, sm["sms"] * max(1, per_sm))[0]


def report(norm, pass_, dtype, M, N, num_warps=None, variant="launch"):
    """One row: launch settings, resources and memory instructions of one compiled kernel
    (``variant``: "launch", "fused add", or "forward warps" for a backward given the
    forward's warps). The backward is compiled twice: once to size its grid, once with the
    ``rows_per_program`` that grid gives (Triton specialises on its divisibility by 16)."""
    rows = None
    if pass_ == "bwd":
        rows = backward_rows(compile_kernel(norm, pass_, dtype, M, N, num_warps, variant), M)
    kernel = compile_kernel(norm, pass_, dtype, M, N, num_warps, variant, rows)
    registers, stack, machine_code = _resources(kernel)
    warps, shared = kernel.metadata.num_warps, kernel.metadata.shared
    block, _, single = _launch_settings(norm, pass_, dtype, N, variant)
    memory = memory_instructions(machine_code)
    resident = occupancy(registers, warps, shared)
    return {"norm": norm, "pass": pass_, "dtype": dtype, "M": M, "N": N, "variant": variant,
            "BLOCK_SIZE": block, "SINGLE_BLOCK": single,
            "VEC": 1 if variant == "minimal" else vector_width(dtype, N),
            "num_warps": warps,
            "registers": registers, "stack_bytes": stack, "shared_bytes": shared,
            "warps_per_sm": resident, "programs_per_sm": resident // warps,
            "rows_per_program": rows,
            "prefetch": any(op.startswith("LDGSTS") for op in memory),
            "memory": memory}


# The committed report that chapter 7 reads and tests/test_codegen.py keeps up to date.
REPORT = BENCHMARKS / "codegen" / "sm90.json"


def shapes(dtype):
    """``(M, N)``: the GPU benchmark's shapes, plus, with as many elements, N = 1000 (rows
    16-byte aligned in bfloat16 yet not divisible by 16 elements), N = 8200 (just past a
    power of two: the block doubles to 16384) and one long row (the column-block path)."""
    bench = gpu_shapes(dtype)
    elements = math.prod(bench[0])
    return sorted([(elements // 1000, 1000), (elements // 8200, 8200), *bench,
                   (elements // (4 * _launch.MAX_FUSED_SIZE), 4 * _launch.MAX_FUSED_SIZE)],
                  key=lambda shape: shape[1])


def configs(dtype):
    """``(norm, pass, M, N, num_warps, variant)`` of every reported row for ``dtype``."""
    for norm, pass_ in KERNELS:
        for M, N in shapes(dtype):
            yield norm, pass_, M, N, None, "launch"
            if (norm, pass_) == ("layernorm", "fwd") and N <= minimal.MAX_COLUMNS:
                yield norm, pass_, M, N, None, "minimal"
            yield norm, pass_, M, N, None, "fused add"
            if pass_ == "bwd" and _launch.MAX_FUSED_SIZE // 2 < N <= _launch.MAX_FUSED_SIZE:
                yield norm, pass_, M, N, None, "single block"
            forward_warps = _launch_settings(norm, "fwd", dtype, N)[1]
            if pass_ == "bwd" and forward_warps != _launch_settings(norm, pass_, dtype, N)[1]:
                yield norm, pass_, M, N, forward_warps, "forward warps"  # what doubling did


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m normlab.kernels.codegen", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="write the rows as JSON here (default: print only)")
    args = p.parse_args(argv)
    if _launch.interpreting():
        p.error("unset TRITON_INTERPRET: the interpreter does not compile kernels")
    rows = []
    for dtype in ("bfloat16", "float32"):
        for norm, pass_, M, N, num_warps, variant in configs(dtype):
            r = report(norm, pass_, dtype, M, N, num_warps, variant)
            rows.append(r)
            print(f"{dtype:<9}{norm:<10}{pass_:<4}{variant:<14}N={N:<6} "
                  f"warps={r['num_warps']:<3}regs={r['registers']:<4}"
                  f"stack={r['stack_bytes']:<5}programs/SM={r['programs_per_sm']:<3}"
                  f"{r['memory']}", flush=True)
    if args.out:
        doc = {"target": f"sm_{SM90['arch']}", "sm": SM90, "triton": triton.__version__,
               "ptxas": get_ptxas(SM90["arch"]).version,
               "date": utc_now(),
               "command": "python -m normlab.kernels.codegen " + " ".join(
                   sys.argv[1:] if argv is None else argv),
               "rows": rows}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton 3.9's default, stated
    sys.exit(main())
