"""Every argument check and error message, once.

The reference kernels and the Triton kernels call these, so both paths reject bad
input with the same message. Checks raise ``TypeError``/``ValueError`` (never
``assert``, which ``python -O`` removes).
"""

import math
import numbers

import torch

HALF_DTYPES = (torch.float16, torch.bfloat16)


def check_input(x, normalized_shape, name="x"):
    """Check ``x`` is a floating tensor whose trailing dims equal ``normalized_shape``.

    Returns ``normalized_shape`` as a tuple of ints.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() == 0:
        raise ValueError(f"{name} must have at least one dimension, got a zero-dim tensor")
    shape = _as_shape(normalized_shape)
    if len(shape) > x.dim() or tuple(x.shape[x.dim() - len(shape):]) != shape:
        raise ValueError(
            f"normalized_shape {shape} does not match the trailing dimensions of "
            f"{name} with shape {tuple(x.shape)}"
        )
    return shape


def _as_shape(normalized_shape):
    if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, bool):
        normalized_shape = (normalized_shape,)
    try:
        if isinstance(normalized_shape, (str, bytes)):
            raise TypeError
        shape = tuple(_as_int(n) for n in normalized_shape)
    except TypeError:
        raise TypeError(
            f"normalized_shape must be an int or a sequence of ints, got {normalized_shape!r}"
        ) from None
    if not shape or any(n <= 0 for n in shape):
        raise ValueError(f"normalized_shape must be non-empty with positive sizes, got {shape}")
    return shape


def _as_int(n):
    if isinstance(n, bool) or not isinstance(n, (numbers.Integral, torch.SymInt)):
        raise TypeError
    return int(n)


def check_eps(eps, name="eps"):
    """Return ``eps`` as a float after checking it is a positive, finite number."""
    return check_real(eps, name, positive=True)


def check_param(p, name, normalized_shape):
    """Check an optional affine parameter (``weight``/``bias``) has ``normalized_shape``."""
    if p is None:
        return
    if not isinstance(p, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or None, got {type(p).__name__}")
    if not p.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {p.dtype}")
    if tuple(p.shape) != tuple(normalized_shape):
        raise ValueError(
            f"{name} must have shape normalized_shape={tuple(normalized_shape)}, "
            f"got {tuple(p.shape)}"
        )


def check_real(value, name, positive=False):
    """``value`` as a float; a finite real number (and > 0 if ``positive``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not math.isfinite(value) or (positive and value <= 0):
        kind = "a positive finite" if positive else "a finite"
        raise ValueError(f"{name} must be {kind} number, got {value}")
    return float(value)


def check_positive_int(value, name):
    """``value`` as an int; a positive integer."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return int(value)


def compute_dtype(dtype):
    """float32 for half-precision inputs (as PyTorch computes them), else the dtype itself."""
    return torch.float32 if dtype in HALF_DTYPES else dtype


def check_choice(value, choices, name):
    """``value`` if it is one of ``choices``, else a ``ValueError`` listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value
