"""Every argument check and error message, once.

The reference kernels and the Triton kernels call these, so both paths reject bad
input with the same message. Checks raise ``TypeError``/``ValueError`` (never
``assert``, which ``python -O`` removes).
"""

import math
import numbers

import torch

HALF_DTYPES = (torch.float16, torch.bfloat16)
# What both paths compute in: half precision upcast to float32, float32 and float64.
SUPPORTED_DTYPES = (*HALF_DTYPES, torch.float32, torch.float64)
FLOAT32 = torch.finfo(torch.float32)


def check_input(x, normalized_shape, name="x"):
    """Check ``x`` is a floating tensor whose trailing dims equal ``normalized_shape``.

    Returns ``normalized_shape`` as a tuple of ints.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    check_dtype(x, name)
    if x.dim() == 0:
        raise ValueError(f"{name} must have at least one dimension, got a zero-dim tensor")
    shape = _as_shape(normalized_shape)
    if len(shape) > x.dim() or tuple(x.shape[x.dim() - len(shape):]) != shape:
        raise ValueError(
            f"normalized_shape {shape} does not match the trailing dimensions of "
            f"{name} with shape {tuple(x.shape)}"
        )
    return shape


def check_dtype(t, name):
    """The one dtype check of both paths (reference and kernels), for inputs and parameters:
    float16, bfloat16, float32 or float64. Everything else is refused with this one
    message: integers, bool and complex, and the float8 formats (``float8_e4m3fn``,
    ``float8_e5m2``, ...), on which PyTorch's norms fail with an internal message and the
    Triton kernels would compute without complaint."""
    if t.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{name} must have dtype float16, bfloat16, float32 or float64 "
                        f"(what normlab computes in), got {t.dtype}")


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


def check_eps(eps):
    """``eps`` as a float: a positive number in float32's normal range. Every kernel
    computes in float32 at least (the Triton kernels take ``eps`` as float32), where a
    smaller ``eps`` would be 0 or subnormal and a larger one infinite."""
    eps = check_real(eps, "eps", positive=True)
    if not FLOAT32.tiny <= eps <= FLOAT32.max:
        raise ValueError(f"eps must be between {FLOAT32.tiny:.4g} and {FLOAT32.max:.4g} "
                         f"(float32's normal range), got {eps:g}")
    return eps


def check_param(p, name, x, normalized_shape):
    """Check an optional affine parameter (``weight``/``bias``) has ``normalized_shape``
    and sits on ``x``'s device."""
    if p is None:
        return
    if not isinstance(p, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or None, got {type(p).__name__}")
    check_dtype(p, name)
    if tuple(p.shape) != tuple(normalized_shape):
        raise ValueError(
            f"{name} must have shape normalized_shape={tuple(normalized_shape)}, "
            f"got {tuple(p.shape)}"
        )
    if p.device != x.device:
        raise ValueError(f"{name} must be on x's device {x.device}, got {p.device}")


def check_stats(stat, name, x, normalized_shape):
    """Check a saved per-row statistic (``mean``/``rstd``) has shape ``(*batch, 1, ..., 1)``."""
    want = tuple(x.shape[:x.dim() - len(normalized_shape)]) + (1,) * len(normalized_shape)
    if not isinstance(stat, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(stat).__name__}")
    if tuple(stat.shape) != want:
        raise ValueError(f"{name} must have shape {want} (one value per row, as "
                         f"layer_norm_stats returns it), got {tuple(stat.shape)}")


def check_real(value, name, positive=False):
    """``value`` as a float; a finite real number (and > 0 if ``positive``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        value = float(value)
    except OverflowError:  # an int beyond float64's range
        value = math.inf if value > 0 else -math.inf
    if not math.isfinite(value) or (positive and value <= 0):
        kind = "a positive finite" if positive else "a finite"
        raise ValueError(f"{name} must be {kind} number, got {value}")
    return value


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
