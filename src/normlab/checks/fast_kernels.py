"""Exercise checkers of chapter 7 (fast kernels): the ideal time of a memory-bound pass,
and a residual add fused into an RMSNorm Triton kernel (run through Triton's interpreter
on a machine without a GPU)."""

import os

import torch

from normlab.bench.report import bytes_moved
from normlab.checks._base import call, expect_number, expect_tensor_close, fail, passed
from normlab.checks._isolated import KernelCrashed, KernelRaised, in_child, run_guarded
from normlab.rms_norm import rms_norm

DTYPE_OF_SIZE = {2: torch.bfloat16, 4: torch.float32}


def _ideal(M, N, element_size, bandwidth, backward):
    """The benchmark's bytes model divided by the bandwidth."""
    pass_ = "fwd+bwd" if backward else "fwd"
    return bytes_moved(pass_, M, N, DTYPE_OF_SIZE[element_size]) / bandwidth


def ideal_time_exercise(fn):
    """``fn(M, N, element_size, bandwidth, backward)``: seconds to move the unavoidable bytes,
    ``2·M·N·s / BW`` (forward) or ``5·M·N·s / BW`` (``backward=True``: forward + backward)."""
    cases = [(32768, 4096, 2, 3.35e12, False), (16384, 8192, 4, 2.0e12, True),
             (4096, 1024, 2, 1.0e12, True), (3, 5, 4, 1.0e9, False)]
    for M, N, s, bw, backward in cases:
        got = call(fn, M, N, s, bw, backward)
        want = _ideal(M, N, s, bw, backward)
        what = f"ideal time for M={M}, N={N}, {s}-byte elements, {bw:.3g} B/s, backward={backward}"
        try:
            value = float(got)
        except (TypeError, ValueError):
            fail(f"{what}: expected a number of seconds, got {got!r}.")
        ratio = value / want if want else float("nan")
        hints = {0.5: "the forward reads x *and* writes y: 2 tensors of M·N elements.",
                 0.4: "forward + backward moves 5 tensors: x, y, then x, dy and dx.",
                 0.6: "the backward reads x and dy and writes dx: 2 + 3 = 5 tensors.",
                 1e3: "return seconds, not milliseconds.", 1e6: "return seconds, not µs.",
                 8.0: "bandwidth is in bytes per second; element_size is already in bytes."}
        hint = next((h for r, h in hints.items() if abs(ratio - r) < 1e-6 * r), None)
        expect_number(value, want, what, rel=1e-9, hint=hint)
    passed(f"{fn.__name__} gives the bandwidth-bound time 2·M·N·s/BW (forward) and "
           "5·M·N·s/BW (forward + backward) on 4 cases.")


def _device():
    """CUDA when present; else CPU tensors through the interpreter (which must be on)."""
    if torch.cuda.is_available():
        return "cuda"
    if os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
        fail("no GPU here and Triton's interpreter is off, so the kernel cannot run.",
             "set os.environ['TRITON_INTERPRET'] = '1' before the first `import triton` "
             "and restart the kernel.")
    return "cpu"


def _launch_kernel(kernel, x, residual, weight, eps):
    """Run the learner's kernel on rows of ``x``; return ``(h, y)`` or explain the failure.

    The launch runs on guarded copies in a child process (``checks._isolated``): a read or
    write past the tensors becomes feedback instead of a dead Jupyter kernel.
    """
    import triton

    M, N = x.shape
    block = triton.next_power_of_2(N)

    def launch(x, residual, weight, h, y):
        kernel[(M,)](x, residual, weight, h, y, N, eps, BLOCK_SIZE=block)

    nan = torch.full_like(x, float("nan"))
    past = (f"your kernel read or wrote past N = {N} (rows of {N} columns, BLOCK_SIZE = "
            f"{block}): mask the loads and stores with `cols < N`.")
    try:
        (h, y), read_past, wrote_past = in_child(
            lambda: run_guarded(launch, [x, residual, weight], [nan, nan], guard=M * block))
    except KernelCrashed as err:
        fail(f"{err}: {past}", "every tl.load and tl.store needs `mask=cols < N` "
             "(loads also `other=0.0`), with cols = tl.arange(0, BLOCK_SIZE).")
    except KernelRaised as err:
        if "NotImplementedError" in err.detail or "NotImplementedError" in err.kind:
            fail("the kernel is not implemented yet: replace `raise NotImplementedError()` "
                 "with your code and run the cell again.")
        first = err.text.strip().splitlines()[-1] if err.text.strip() else ""
        fail(f"launching your kernel on x of shape {tuple(x.shape)} raised "
             f"{err.kind}: {first}",
             "check the argument order (x_ptr, residual_ptr, weight_ptr, h_ptr, y_ptr, N, eps, "
             "BLOCK_SIZE) and that every load and store uses `mask=cols < N`.")
    if wrote_past or read_past:
        what = "wrote past the end of h or y" if wrote_past else "read past x or residual"
        fail(f"{past} (On x of shape {(M, N)} it {what}.)",
             "with BLOCK_SIZE > N the last BLOCK_SIZE - N lanes of each row point into the next "
             "row or past the tensor; `mask=cols < N` switches them off (loads: `other=0.0`).")
    return h, y


def fused_add_rms_norm_exercise(kernel):
    """``kernel[(M,)](x_ptr, residual_ptr, weight_ptr, h_ptr, y_ptr, N, eps, BLOCK_SIZE)``:
    per row, ``h = x + residual`` (stored) and ``y = weight ⊙ h / √(mean(h²) + ε)``.

    Rows are contiguous (row stride N); ``BLOCK_SIZE`` is the next power of two ≥ N.
    """
    device = _device()
    g = torch.Generator().manual_seed(7)
    cases = [((3, 8), torch.float32), ((4, 33), torch.float32), ((2, 40), torch.bfloat16)]
    for (M, N), dtype in cases:
        x, residual = (torch.randn(M, N, generator=g).to(device, dtype) for _ in range(2))
        weight = (1 + 0.5 * torch.randn(N, generator=g)).to(device)
        eps = 1e-6
        h, y = _launch_kernel(kernel, x, residual, weight, eps)
        h_want = (x.float() + residual.float())
        y_want = rms_norm(h_want, N, weight, eps)
        tol = {"atol": 2e-2, "rtol": 2e-2} if dtype == torch.bfloat16 else {}
        what = f"on x, residual of shape {(M, N)} and dtype {dtype}"
        expect_tensor_close(h, h_want, f"h = x + residual {what}", **tol,
                            hint="store h = x + residual: the next layer's residual stream.")
        if torch.allclose(y.float(), rms_norm(x.float(), N, weight, eps), atol=1e-4):
            fail(f"y {what} is RMSNorm(x): normalise h = x + residual instead.")
        block = _next_power_of_2(N)
        # Σh²/BLOCK_SIZE + ε = (N/BLOCK_SIZE)·(Σh²/N + ε·BLOCK_SIZE/N)
        padded = rms_norm(h_want, N, weight, eps * block / N) * (block / N) ** 0.5
        if N != block and torch.allclose(y.float(), padded, atol=1e-4):
            fail(f"y {what} divides Σh² by BLOCK_SIZE = {block}, not by N = {N}.",
                 "the block is padded to a power of two; the mean is over the N real columns.")
        expect_tensor_close(y, y_want, f"y {what}", **tol,
                            hint="rstd = 1 / sqrt(sum(h * h) / N + eps), y = h * rstd * weight; "
                                 "masked-out columns must load as 0.")
    passed("your fused add + RMSNorm kernel matches x + residual and normlab.rms_norm "
           "(odd N = 33, bfloat16 included).")


def _next_power_of_2(n):
    """Next power of two ≥ ``n`` (``triton.next_power_of_2`` without importing triton)."""
    return 1 << (n - 1).bit_length()
