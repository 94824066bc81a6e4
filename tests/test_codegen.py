"""The kernels compiled for an H100 (sm_90) on this machine, no GPU: Triton's code
generator, ptxas and cuobjdump ship with the triton wheel.

One subprocess without TRITON_INTERPRET (the interpreter replaces the kernels) compiles
every kernel for a short row (one register block) and a long row (column blocks) and
reports the benchmark's bfloat16 shapes; the tests read what it printed.
"""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("triton", reason="Triton is not installed (Linux only)")

from normlab.kernels.codegen import REPORT, occupancy  # noqa: E402

REPORTED = (1000, 1024, 4096, 8192, 16384)
COMPILE = f"""
import json, sys
from normlab.kernels import codegen
out = {{"ttir": {{}}, "rows": []}}
for norm, pass_ in codegen.KERNELS:
    for n in (1024, 65536):
        kernel = codegen.compile_kernel(norm, pass_, "bfloat16", 2**27 // n, n)
        out["ttir"][f"{{norm}} {{pass_}} N={{n}}"] = kernel.asm["ttir"]
    for n in {REPORTED}:
        out["rows"].append(codegen.report(norm, pass_, "bfloat16", 2**27 // n, n))
json.dump(out, sys.stdout)
"""


@pytest.fixture(scope="module")
def compiled():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", COMPILE], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_row_offsets_are_int64_and_eps_float32(compiled):
    for name, ttir in compiled["ttir"].items():
        assert "f64" not in ttir, f"{name}: float64 arithmetic in a bfloat16 kernel"
        row_ptrs = [line for line in ttir.splitlines()
                    if "tt.addptr %x_ptr," in line or "tt.addptr %dy_ptr," in line]
        assert row_ptrs and all(line.split(" loc(")[0].endswith("i64") for line in row_ptrs), \
            f"{name}: a row offset is not int64"
        if "fwd" in name:
            assert "%eps: f32" in ttir, f"{name}: eps is not a float32 argument"


def test_rows_are_moved_with_16_byte_accesses(compiled):
    """For N divisible by 16 every tensor access is LDG/STG.E.128; the only narrow ones
    are per-row scalars (mean, rstd: a load in the backward, a store in the forward) and,
    in the forward, the rare rescue of rows whose squares overflow (``_rescued_row``,
    never run for ordinary rows), which reads a row again in narrow blocks of
    RESCUE_BLOCK_SIZE columns and stores its y and statistics a second time."""
    scalars = {"layernorm": 2, "rmsnorm": 1}
    for row in (r for r in compiled["rows"] if r["N"] % 16 == 0):
        memory, what = row["memory"], f"{row['norm']} {row['pass']} N={row['N']}"
        narrow = {op: n for op, n in memory.items() if op[:3] in ("LDG", "STG")
                  and not op.endswith(".128")}
        assert memory.get("LDG.E.128") and memory.get("STG.E.128"), f"{what}: {memory}"
        if row["pass"] == "bwd":
            assert narrow == {"LDG.E": scalars[row["norm"]]}, f"{what}: narrow {narrow}"
        else:
            assert narrow.get("STG.E", 0) >= scalars[row["norm"]], f"{what}: {narrow}"


def test_n_not_divisible_by_16_gets_scalar_loads(compiled):
    """What chapter 7 reports: without Triton's divisibility-by-16 fact, no vector access."""
    for row in (r for r in compiled["rows"] if r["N"] == 1000):
        assert "LDG.E.U16" in row["memory"] and "LDG.E.128" not in row["memory"], row


def test_no_register_spills_below_16384_columns(compiled):
    for row in compiled["rows"]:
        if row["pass"] == "fwd" or row["N"] < 16384:
            assert row["stack_bytes"] == 0 and not any(
                op.startswith(("LDL", "STL")) for op in row["memory"]), row


def test_committed_report_matches_the_code(compiled):
    """The committed report (REPORT) is what the current kernels and settings compile to."""
    committed = {(r["norm"], r["pass"], r["N"], r["variant"]): r
                 for r in json.loads(REPORT.read_text())["rows"] if r["dtype"] == "bfloat16"}
    for row in compiled["rows"]:
        assert committed[row["norm"], row["pass"], row["N"], row["variant"]] == row, (
            f"stale {REPORT}: rerun `python -m normlab.kernels.codegen --out {REPORT}`")


def test_occupancy_takes_the_tightest_per_sm_limit():
    assert occupancy(32, 4, 0) == 64  # warps limit: 16 CTAs of 4 warps
    assert occupancy(64, 32, 0) == 32  # registers: 64 × 32 threads × 32 warps fill the file
    assert occupancy(255, 4, 0) == 8  # 255 regs round up to 8192 per warp: 2 CTAs
    assert occupancy(32, 4, 100 * 1024) == 8  # shared memory: 2 CTAs of 101 KiB fit in 228
