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
from normlab.kernels import _launch
from normlab.kernels.layer_norm import _layer_norm_bwd, _layer_norm_fwd
from normlab.kernels.rms_norm import _rms_norm_bwd, _rms_norm_fwd

KERNELS = {("layernorm", "fwd"): _layer_norm_fwd, ("layernorm", "bwd"): _layer_norm_bwd,
           ("rmsnorm", "fwd"): _rms_norm_fwd, ("rmsnorm", "bwd"): _rms_norm_bwd}
# Per-SM limits of compute capability 9.0 (CUDA C++ Programming Guide, "Compute
# Capabilities"), and the H100 SXM5's SM count.
SM90 = {"arch": 90, "sms": 132, "max_warps": 64, "max_ctas": 32, "registers": 65536,
        "register_unit": 256, "shared_bytes": 233472, "shared_per_cta_reserved": 1024}
TRITON_TYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}
# Pointers to float32 statistics and partial sums; every other pointer has x's dtype.
FLOAT32_POINTERS = ("mean_ptr", "rstd_ptr", "dweight_ptr", "dbias_ptr")


def launch_values(M, N):
    """The integer arguments a launch on contiguous ``(M, N)`` tensors passes."""
    rows_per_program, _ = _launch.backward_grid(M, SM90["sms"])
    return {"x_row_stride": N, "dy_row_stride": N, "N": N, "M": M,
            "rows_per_program": rows_per_program}


def compile_kernel(norm, pass_, dtype, M, N, num_warps=None, arch=SM90["arch"]):
    """The kernel compiled for ``sm_<arch>`` as it would be launched on ``(M, N)`` rows.

    Constexprs and ``num_warps`` (unless given) come from :func:`_launch.settings`, with γ
    and β present
    and ε inside the square root; ints divisible by 16 and all pointers (16-byte aligned
    by PyTorch's allocator) carry Triton's ``tt.divisibility=16``.
    """
    fn = KERNELS[norm, pass_]
    block, launch_warps, single = _launch.settings(N, backward=pass_ == "bwd")
    num_warps = num_warps or launch_warps
    consts = {"HAS_WEIGHT": True, "HAS_BIAS": True, "EPS_INSIDE_SQRT": True,
              "ACC": tl.float32, "SINGLE_BLOCK": single, "BLOCK_SIZE": block}
    consts = {k: v for k, v in consts.items() if k in fn.arg_names}
    values = launch_values(M, N)
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
    """Global (``LDG``/``STG``) and local (``LDL``/``STL``: spill) accesses in ``sass`` by
    opcode with modifiers, e.g. ``{"LDG.E.128": 4, "STG.E.U16": 1}``."""
    return dict(Counter(m.group(0) for m in re.finditer(r"\b(?:LDG|STG|LDL|STL)(?:\.\w+)*",
                                                        sass)))


def occupancy(registers, num_warps, shared, sm=SM90):
    """Theoretical warps per SM: CTAs that fit by warps, registers and shared memory."""
    regs_per_warp = math.ceil(registers * 32 / sm["register_unit"]) * sm["register_unit"]
    ctas = min(sm["max_ctas"], sm["max_warps"] // num_warps,
               sm["registers"] // (regs_per_warp * num_warps),
               sm["shared_bytes"] // (shared + sm["shared_per_cta_reserved"]))
    return ctas * num_warps


def report(norm, pass_, dtype, M, N, num_warps=None):
    """One row: launch settings, resources and memory instructions of one compiled kernel
    (``variant`` "launch", or "forward warps" for a backward given the forward's warps)."""
    kernel = compile_kernel(norm, pass_, dtype, M, N, num_warps)
    machine_code = _cuobjdump(kernel.asm["cubin"], "-res-usage", "-sass")
    registers, stack = (int(re.search(rf"{key}:(\d+)", machine_code).group(1))
                        for key in ("REG", "STACK"))
    warps, shared = kernel.metadata.num_warps, kernel.metadata.shared
    block, _, single = _launch.settings(N, backward=pass_ == "bwd")
    return {"norm": norm, "pass": pass_, "dtype": dtype, "M": M, "N": N,
            "variant": "launch" if num_warps is None else "forward warps",
            "BLOCK_SIZE": block, "SINGLE_BLOCK": single, "num_warps": warps,
            "registers": registers, "stack_bytes": stack, "shared_bytes": shared,
            "warps_per_sm": occupancy(registers, warps, shared),
            "memory": memory_instructions(machine_code)}


# The committed report that chapter 7 reads and tests/test_codegen.py keeps up to date.
REPORT = BENCHMARKS / "codegen" / "sm90.json"


def shapes(dtype):
    """``(M, N)``: the GPU benchmark's shapes, plus, with as many elements, N = 1000 (rows
    16-byte aligned in bfloat16 yet not divisible by 16 elements) and one long row (the
    column-block path)."""
    bench = gpu_shapes(dtype)
    elements = math.prod(bench[0])
    return [(elements // 1000, 1000), *bench,
            (elements // (4 * _launch.MAX_FUSED_SIZE), 4 * _launch.MAX_FUSED_SIZE)]


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m normlab.kernels.codegen", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="write the rows as JSON here (default: print only)")
    args = p.parse_args(argv)
    if _launch.interpreting():
        p.error("unset TRITON_INTERPRET: the interpreter does not compile kernels")
    rows = []
    for dtype in ("bfloat16", "float32"):
        for (norm, pass_) in KERNELS:
            for M, N in shapes(dtype):
                variants = [None]
                forward_warps = _launch.settings(N)[1]
                if pass_ == "bwd" and forward_warps != _launch.settings(N, backward=True)[1]:
                    variants.append(forward_warps)  # what doubling the warps changed
                for num_warps in variants:
                    r = report(norm, pass_, dtype, M, N, num_warps)
                    rows.append(r)
                    print(f"{dtype:<9}{norm:<10}{pass_:<4}N={N:<6} warps={r['num_warps']:<3}"
                          f"regs={r['registers']:<4}stack={r['stack_bytes']:<5}"
                          f"warps/SM={r['warps_per_sm']:<3}{r['memory']}")
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
