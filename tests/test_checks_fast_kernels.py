"""The chapter 7 checkers accept right answers and explain wrong ones."""

import re

import pytest
import torch

from normlab.checks import ExerciseError
from normlab.checks import fast_kernels as check
from normlab.checks._base import PASS_MARK


def ideal_time(M, N, element_size, bandwidth, backward=False):
    return (5 if backward else 2) * M * N * element_size / bandwidth


def read_only(M, N, element_size, bandwidth, backward=False):
    return (2.5 if backward else 1) * M * N * element_size / bandwidth


def in_ms(M, N, element_size, bandwidth, backward=False):
    return 1e3 * ideal_time(M, N, element_size, bandwidth, backward)


def three_tensors(M, N, element_size, bandwidth, backward=False):
    return (3 if backward else 2) * M * N * element_size / bandwidth


def stub(*args):
    raise NotImplementedError()


def test_ideal_time_accepts_a_right_answer(capsys):
    check.ideal_time_exercise(ideal_time)
    assert capsys.readouterr().out.startswith(PASS_MARK)


@pytest.mark.parametrize("fn,message", [
    (read_only, "reads x *and* writes y"),
    (in_ms, "not milliseconds"),
    (three_tensors, "2 + 3 = 5 tensors"),
    (stub, "not implemented yet"),
    (lambda *a: "fast", "expected a number"),
])
def test_ideal_time_explains_mistakes(fn, message):
    with pytest.raises(ExerciseError, match=re.escape(message)):
        check.ideal_time_exercise(fn)


triton = pytest.importorskip("triton", reason="Triton is not installed: kernel exercise untested")
if torch.cuda.is_available() is False and not isinstance(
        triton.language.sum, triton.runtime.interpreter.InterpretedFunction):
    pytest.skip("triton was imported before TRITON_INTERPRET=1 could be set",
                allow_module_level=True)
tl = triton.language


@triton.jit
def _add_rms_norm(x_ptr, residual_ptr, weight_ptr, h_ptr, y_ptr, N, eps,
                  BLOCK_SIZE: tl.constexpr, NORMALISE_X: tl.constexpr,
                  MEAN_OVER_BLOCK: tl.constexpr, USE_WEIGHT: tl.constexpr):
    """The right kernel, or one with a deliberate mistake switched on."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_SIZE)
    mask = cols < N
    x = tl.load(x_ptr + row * N + cols, mask=mask, other=0.0).to(tl.float32)
    h = x + tl.load(residual_ptr + row * N + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(h_ptr + row * N + cols, h.to(h_ptr.dtype.element_ty), mask=mask)
    if NORMALISE_X:
        h = x
    if MEAN_OVER_BLOCK:
        rstd = 1.0 / tl.sqrt(tl.sum(h * h, axis=0) / BLOCK_SIZE + eps)
    else:
        rstd = 1.0 / tl.sqrt(tl.sum(h * h, axis=0) / N + eps)
    y = h * rstd
    if USE_WEIGHT:
        y = y * tl.load(weight_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(y_ptr + row * N + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def right(x_ptr, residual_ptr, weight_ptr, h_ptr, y_ptr, N, eps, BLOCK_SIZE: tl.constexpr):
    _add_rms_norm(x_ptr, residual_ptr, weight_ptr, h_ptr, y_ptr, N, eps, BLOCK_SIZE,
                  False, False, True)


@triton.jit
def normalise_x(x_ptr, residual_ptr, weight_ptr, h_ptr, y_ptr, N, eps, BLOCK_SIZE: tl.constexpr):
    _add_rms_norm(x_ptr, residual_ptr, weight_ptr, h_ptr, y_ptr, N, eps, BLOCK_SIZE,
                  True, False, True)


@triton.jit
def block_mean(x_ptr, residual_ptr, weight_ptr, h_ptr, y_ptr, N, eps, BLOCK_SIZE: tl.constexpr):
    _add_rms_norm(x_ptr, residual_ptr, weight_ptr, h_ptr, y_ptr, N, eps, BLOCK_SIZE,
                  False, True, True)


@triton.jit
def no_weight(x_ptr, residual_ptr, weight_ptr, h_ptr, y_ptr, N, eps, BLOCK_SIZE: tl.constexpr):
    _add_rms_norm(x_ptr, residual_ptr, weight_ptr, h_ptr, y_ptr, N, eps, BLOCK_SIZE,
                  False, False, False)


@triton.jit
def stub_kernel(x_ptr, residual_ptr, weight_ptr, h_ptr, y_ptr, N, eps, BLOCK_SIZE: tl.constexpr):
    raise NotImplementedError()


def test_fused_kernel_accepts_a_right_answer(capsys):
    check.fused_add_rms_norm_exercise(right)
    assert capsys.readouterr().out.startswith(PASS_MARK)


@pytest.mark.parametrize("kernel,message", [
    (stub_kernel, "not implemented yet"),
    (normalise_x, "is RMSNorm(x)"),
    (block_mean, "not by N = 33"),
    (no_weight, "largest difference"),
])
def test_fused_kernel_explains_mistakes(kernel, message):
    with pytest.raises(ExerciseError, match=re.escape(message)):
        check.fused_add_rms_norm_exercise(kernel)


def test_fused_kernel_reports_a_crash():
    @triton.jit
    def wrong_signature(x_ptr, y_ptr, BLOCK_SIZE: tl.constexpr):
        pass

    with pytest.raises(ExerciseError, match="raised"):
        check.fused_add_rms_norm_exercise(wrong_signature)


@triton.jit
def unmasked(x_ptr, residual_ptr, weight_ptr, h_ptr, y_ptr, N, eps, BLOCK_SIZE: tl.constexpr):
    """No masks at all: with N = 33 and BLOCK_SIZE = 64, 31 lanes per row run past N."""
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_SIZE)
    h = tl.load(x_ptr + row * N + cols) + tl.load(residual_ptr + row * N + cols)
    tl.store(h_ptr + row * N + cols, h)
    y = h / tl.sqrt(tl.sum(h * h, axis=0) / N + eps) * tl.load(weight_ptr + cols)
    tl.store(y_ptr + row * N + cols, y)


@triton.jit
def unmasked_loads(x_ptr, residual_ptr, weight_ptr, h_ptr, y_ptr, N, eps,
                   BLOCK_SIZE: tl.constexpr):
    """Masked stores, unmasked loads: the sums include the next row (or what lies past x)."""
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_SIZE)
    mask = cols < N
    h = (tl.load(x_ptr + row * N + cols).to(tl.float32)
         + tl.load(residual_ptr + row * N + cols).to(tl.float32))
    tl.store(h_ptr + row * N + cols, h.to(h_ptr.dtype.element_ty), mask=mask)
    y = h / tl.sqrt(tl.sum(h * h, axis=0) / N + eps)
    y = y * tl.load(weight_ptr + cols, mask=mask, other=0.0)
    tl.store(y_ptr + row * N + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def wild_pointer(x_ptr, residual_ptr, weight_ptr, h_ptr, y_ptr, N, eps,
                 BLOCK_SIZE: tl.constexpr):
    """A store far outside every buffer (no guard can catch it; only a process can)."""
    cols = tl.arange(0, BLOCK_SIZE)
    tl.store(h_ptr + (1 << 40) + cols, tl.zeros([BLOCK_SIZE], dtype=tl.float32))



@pytest.mark.parametrize("kernel,what", [
    (unmasked, "wrote past the end of h or y"),
    (unmasked_loads, "read past x or residual"),
])
def test_fused_kernel_names_reads_and_writes_past_n(kernel, what):
    with pytest.raises(ExerciseError) as caught:
        check.fused_add_rms_norm_exercise(kernel)
    message = str(caught.value)
    assert "your kernel read or wrote past N = 33 " in message and what in message
    assert "mask the loads and stores with `cols < N`" in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="a wild store on a GPU kills the context")
def test_fused_kernel_survives_a_crashing_kernel():
    with pytest.raises(ExerciseError, match=r"died \(exit code -\d+\).*past N = 8"):
        check.fused_add_rms_norm_exercise(wild_pointer)
    check.fused_add_rms_norm_exercise(right)  # this process is still fine
