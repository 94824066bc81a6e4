"""Building blocks for exercise checkers: call the learner's code, compare, explain.

A checker prints one line starting with :data:`PASS_MARK` when the answer is right
(plain text: no output relies on an emoji font) and raises
:class:`ExerciseError` with specific feedback (what input, what was expected, what
came back, a hint) when it is not. nbgrader counts a raised error as zero points.
"""

import math

import torch

PASS_MARK = "Passed:"


class ExerciseError(AssertionError):
    """The learner's answer is not right yet; the message says why and how to proceed."""


def passed(message):
    """Report success."""
    print(f"{PASS_MARK} {message}")


def fail(message, hint=None):
    """Raise :class:`ExerciseError` with an optional hint line."""
    raise ExerciseError(message + (f"\nHint: {hint}" if hint else ""))


def call(fn, *args, **kwargs):
    """Call the learner's ``fn``; turn a stub or a crash into feedback instead of a traceback."""
    name = getattr(fn, "__name__", repr(fn))
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        fail(f"{name} is not implemented yet: replace `raise NotImplementedError()` "
             "with your code and run the cell again.")
    except Exception as err:  # noqa: BLE001 - any crash of learner code becomes feedback
        inputs = ", ".join(describe(a) for a in args)
        fail(f"{name}({inputs}) raised {type(err).__name__}: {err}")


def describe(value):
    """A short description of an argument for feedback messages."""
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    return repr(value)


def expect_tensor_close(got, expected, what, *, atol=1e-5, rtol=1e-4, hint=None):
    """Check ``got`` is a tensor with ``expected``'s shape and values (within tolerance)."""
    if not isinstance(got, torch.Tensor):
        fail(f"{what}: expected a torch.Tensor, got {type(got).__name__}.", hint)
    if got.shape != expected.shape:
        fail(f"{what}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}.", hint)
    got64, exp64 = got.detach().double(), expected.detach().double()
    if not torch.allclose(got64, exp64, atol=atol, rtol=rtol, equal_nan=True):
        err = (got64 - exp64).abs()
        err = torch.where(torch.isnan(err), torch.full_like(err, math.inf), err)
        idx = tuple(int(i) for i in torch.unravel_index(err.argmax(), err.shape))
        fail(f"{what}: largest difference {err.max().item():.3g} at index {idx} "
             f"(expected {exp64[idx].item():.6g}, got {got64[idx].item():.6g}).", hint)


def expect_number(got, expected, what, *, rel=1e-6, hint=None):
    """Check a scalar answer equals ``expected`` up to a relative tolerance."""
    try:
        value = float(got)
    except (TypeError, ValueError):
        fail(f"{what}: expected a number, got {got!r}.", hint)
    if not math.isclose(value, expected, rel_tol=rel, abs_tol=0.0):
        fail(f"{what}: expected {expected:.6g}, got {value:.6g}.", hint)
    return value
