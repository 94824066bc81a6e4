r"""Three ways to compute the biased variance of each row, and why only two are safe.

Every function streams over the last dimension one element at a time, vectorised over
the rows, and rounds every intermediate to ``dtype`` (default ``x.dtype``): what a simple
row-per-thread kernel that accumulates in ``dtype`` does. Adding in a fixed order also
makes the results bit-identical on every CPU, unlike ``torch.sum``, whose blocked
summation order depends on the vector width.

- one pass: :math:`\sigma^2 = \overline{x^2} - \bar x^2` (cancels catastrophically when
  :math:`|\bar x| \gg \sigma`),
- two passes: :math:`\sigma^2 = \overline{(x - \bar x)^2}`,
- Welford (1962): one pass with a running mean and a running sum of squared deviations.
"""

import torch

from normlab._validate import check_input


def _rows(x, dtype, name="x"):
    """Check ``x`` (floating, at least 1-D; rows along the last dim), cast to ``dtype``."""
    last = x.shape[-1:] if isinstance(x, torch.Tensor) and x.dim() else (1,)
    if last == (0,):
        raise ValueError(f"{name} rows must have at least one element, got shape {tuple(x.shape)}")
    check_input(x, last, name=name)
    dtype = x.dtype if dtype is None else dtype
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
    return x.to(dtype)


def running_sum(v):
    """``sum(v, dim=-1)`` added left to right, rounding to ``v.dtype`` after every step."""
    total = v.new_zeros(v.shape[:-1])
    for j in range(v.shape[-1]):
        total = total + v[..., j]
    return total


def variance_one_pass(x, dtype=None):
    r"""Biased variance of each row as :math:`\overline{x^2} - \bar x^2` (one pass over the row).

    Shapes: ``x`` is ``(*rows, d)``; returns ``(*rows,)`` in ``dtype``. Both terms are
    about :math:`\bar x^2`; their difference :math:`\sigma^2` loses every digit the
    two terms share, and can come out negative.
    """
    x = _rows(x, dtype)
    d = x.shape[-1]
    mean = running_sum(x) / d
    mean_sq = running_sum(x * x) / d
    return mean_sq - mean * mean


def variance_two_pass(x, dtype=None):
    r"""Biased variance of each row as :math:`\tfrac1d\sum_i (x_i - \bar x)^2`.

    Shapes: ``x`` is ``(*rows, d)``; returns ``(*rows,)`` in ``dtype``. The first pass
    finds :math:`\bar x`, the second sums squares of centred values, which are small
    and exact enough, so no cancellation. Costs a second read of the row.
    """
    x = _rows(x, dtype)
    d = x.shape[-1]
    mean = running_sum(x) / d
    centred = x - mean[..., None]
    return running_sum(centred * centred) / d


def variance_welford(x, dtype=None):
    r"""Biased variance of each row by Welford's (1962) single-pass update.

    For :math:`k = 1, \dots, d`:

    .. math::
        \delta = x_k - m_{k-1},\quad m_k = m_{k-1} + \delta / k,\quad
        M_k = M_{k-1} + \delta\,(x_k - m_k),\qquad \sigma^2 = M_d / d

    Shapes: ``x`` is ``(*rows, d)``; returns ``(*rows,)`` in ``dtype``. Reads each
    element once, like the one-pass formula, but only ever adds non-negative,
    already-centred terms to :math:`M`.
    """
    x = _rows(x, dtype)
    mean = x.new_zeros(x.shape[:-1])
    m2 = torch.zeros_like(mean)
    for k in range(x.shape[-1]):
        delta = x[..., k] - mean
        mean = mean + delta / (k + 1)
        m2 = m2 + delta * (x[..., k] - mean)
    return m2 / x.shape[-1]


METHODS = {"one pass": variance_one_pass, "two pass": variance_two_pass,
           "Welford": variance_welford}


def cancellation_table(offsets, dtype, acc_dtype=None, rows=200, d=256, seed=0):
    r"""How wrong each method is on rows :math:`x = c + z`, :math:`z \sim \mathcal N(0, 1)`.

    For each offset ``c``: ``rows`` rows of length ``d`` are drawn in float64, rounded to
    ``dtype`` (the stored input), and each method runs with accumulation in
    ``acc_dtype`` (default ``dtype``). The reference is the float64 two-pass variance of
    the *stored* values. Returns one dict per (offset, method) with the median relative
    error and the fraction of rows whose variance came out negative.
    """
    gen = torch.Generator().manual_seed(seed)
    table = []
    for c in offsets:
        x = (c + torch.randn(rows, d, generator=gen, dtype=torch.float64)).to(dtype)
        ref = variance_two_pass(x.double())
        for name, method in METHODS.items():
            var = method(x, acc_dtype).double()
            rel = ((var - ref).abs() / ref).median().item()
            table.append({"offset": c, "method": name, "median_rel_error": rel,
                          "negative_fraction": (var < 0).double().mean().item()})
    return table
