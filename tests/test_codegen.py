"""The kernels compiled for an H100 (sm_90) on this machine, no GPU: Triton's code
generator, ptxas and cuobjdump ship with the triton wheel.

The committed report (codegen.REPORT, which chapter 7 reads) is checked twice: every one of
its rows against the design's targets (no spills, 16-byte accesses, ≥ 2 programs per SM
forward, a prefetching backward loop, no cliff past a power of two), and a sample of it
against a fresh compile in a subprocess without TRITON_INTERPRET (the interpreter replaces
the kernels), so the tests fail when the report is stale or a config regresses.
"""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("triton", reason="Triton is not installed (Linux only)")

from normlab.kernels import codegen  # noqa: E402
from normlab.kernels.codegen import REPORT, occupancy  # noqa: E402

RECOMPILED = (1000, 8200, 16384)  # N % 16 != 0, just past 8192, the largest single block
COMPILE = f"""
import json, sys
from normlab.kernels import codegen
out = {{"ttir": {{}}, "rows": []}}
for norm, pass_ in codegen.KERNELS:
    for n in (1024, 65536):
        kernel = codegen.compile_kernel(norm, pass_, "bfloat16", 2**27 // n, n)
        out["ttir"][f"{{norm}} {{pass_}} N={{n}}"] = kernel.asm["ttir"]
for norm, pass_, M, N, warps, variant in codegen.configs("bfloat16"):
    if N in {RECOMPILED}:
        out["rows"].append(codegen.report(norm, pass_, "bfloat16", M, N, warps, variant))
json.dump(out, sys.stdout)
"""
ROWS = json.loads(REPORT.read_text())["rows"]
# The kernels as launched (the counterfactual "forward warps" and the minimal kernel aside).
LAUNCHED = [r for r in ROWS if r["variant"] in ("launch", "fused add")]
SCALARS = {"layernorm": 2, "rmsnorm": 1}  # per-row statistics: mean, rstd / rstd


def name(row):
    return f"{row['dtype']} {row['norm']} {row['pass']} {row['variant']} N={row['N']}"


@pytest.fixture(scope="module")
def compiled():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", COMPILE], env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_row_offsets_are_int64_and_eps_float32(compiled):
    for what, ttir in compiled["ttir"].items():
        assert "f64" not in ttir, f"{what}: float64 arithmetic in a bfloat16 kernel"
        row_ptrs = [line for line in ttir.splitlines()
                    if "tt.addptr %x_ptr," in line or "tt.addptr %dy_ptr," in line]
        assert row_ptrs and all(line.split(" loc(")[0].endswith("i64") for line in row_ptrs), \
            f"{what}: a row offset is not int64"
        if "fwd" in what:
            assert "%eps: f32" in ttir, f"{what}: eps is not a float32 argument"


def test_committed_report_matches_the_code(compiled):
    """A sample of the committed report is what the current kernels compile to."""
    committed = {(r["norm"], r["pass"], r["N"], r["variant"]): r
                 for r in ROWS if r["dtype"] == "bfloat16"}
    assert compiled["rows"]
    for row in compiled["rows"]:
        assert committed.get((row["norm"], row["pass"], row["N"], row["variant"])) == row, (
            f"stale {REPORT}: rerun `python -m normlab.kernels.codegen --out {REPORT}`")


def test_committed_report_covers_every_config():
    committed = {(r["dtype"], r["norm"], r["pass"], r["N"], r["variant"]) for r in ROWS}
    wanted = {(dtype, norm, pass_, N, variant) for dtype in ("bfloat16", "float32")
              for norm, pass_, _, N, _, variant in codegen.configs(dtype)}
    assert committed == wanted, f"stale {REPORT}: {sorted(committed ^ wanted)[:5]}"


def test_no_register_spills_forward_and_backward():
    for row in LAUNCHED:
        assert row["stack_bytes"] == 0 and not any(
            op.startswith(("LDL", "STL")) for op in row["memory"]), name(row)


def test_forward_keeps_at_least_two_programs_per_sm():
    for row in (r for r in LAUNCHED if r["pass"] == "fwd"):
        assert row["programs_per_sm"] >= 2, f"{name(row)}: {row['programs_per_sm']}/SM"


def test_backward_loop_prefetches_the_next_row():
    """tl.range(num_stages=2) compiles to cp.async (LDGSTS): the next loads are in flight
    while this row (or column block) is computed."""
    for row in (r for r in LAUNCHED if r["pass"] == "bwd"):
        assert row["prefetch"] and row["rows_per_program"] >= 1, name(row)


def test_rows_are_moved_with_16_byte_accesses():
    """Wherever N is a multiple of a 16-byte vector (VEC > 1), every tensor access moves 16
    bytes; the only narrow ones are the per-row statistics and, in the forward, the rare
    rescue of rows whose squares overflow (``_rescued_row``, never run for ordinary rows),
    which reads a row again in narrow blocks of RESCUE_BLOCK_SIZE columns."""
    for row in (r for r in LAUNCHED if r["VEC"] > 1):
        narrow = {op: n for op, n in row["memory"].items()
                  if op.startswith(("LDG", "STG")) and not op.endswith(".128")}
        assert row["memory"].get("STG.E.128"), name(row)
        if row["pass"] == "fwd":
            assert row["memory"].get("LDG.E.128"), name(row)
            assert narrow.get("STG.E", 0) >= SCALARS[row["norm"]], f"{name(row)}: {narrow}"
        else:
            assert set(narrow) <= {"LDG.E", "LDGSTS.E"} and \
                sum(narrow.values()) <= 2 * SCALARS[row["norm"]], f"{name(row)}: {narrow}"


def test_n_1000_gets_16_byte_vectors_the_minimal_kernel_does_not():
    """What chapter 7 shows: 1-D ``cols < N`` vectorises only when N % 16 == 0; the
    production kernel's per-vector mask does for any N that is a multiple of 16 bytes."""
    rows = {(r["dtype"], r["variant"]): r for r in ROWS
            if r["N"] == 1000 and r["norm"] == "layernorm" and r["pass"] == "fwd"}
    assert "LDG.E.U16" in rows["bfloat16", "minimal"]["memory"]
    assert rows["bfloat16", "launch"]["memory"].get("LDG.E.128")
    # narrow loads left are the overflow rescue's, a few, not one per element of the row
    narrow = rows["bfloat16", "launch"]["memory"].get("LDG.E.U16", 0)
    assert narrow < rows["bfloat16", "minimal"]["memory"]["LDG.E.U16"], narrow


def test_no_cliff_just_past_a_power_of_two():
    """N = 8200 rounds the block up to 16384; it must not cost more than N = 16384 does."""
    by_key = {(r["dtype"], r["norm"], r["pass"], r["variant"], r["N"]): r for r in LAUNCHED}
    for (dtype, norm, pass_, variant, n), row in by_key.items():
        if n == 8200:
            big = by_key[dtype, norm, pass_, variant, 16384]
            assert row["programs_per_sm"] >= big["programs_per_sm"], name(row)
            assert row["registers"] <= big["registers"] or row["programs_per_sm"] >= 2, \
                name(row)


def test_occupancy_takes_the_tightest_per_sm_limit():
    assert occupancy(32, 4, 0) == 64  # warps limit: 16 CTAs of 4 warps
    assert occupancy(64, 32, 0) == 32  # registers: 64 × 32 threads × 32 warps fill the file
    assert occupancy(255, 4, 0) == 8  # 255 regs round up to 8192 per warp: 2 CTAs
    assert occupancy(32, 4, 100 * 1024) == 8  # shared memory: 2 CTAs of 101 KiB fit in 228
