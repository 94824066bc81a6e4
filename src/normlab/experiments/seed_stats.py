r"""How far a difference between two configurations exceeds the spread between seeds.

Chapter 6 trains each configuration from several seeds; a seed fixes the initial weights and
the order of the batches, and two configurations with the same seed share both. So the
comparison is *paired*: for seeds :math:`s = 1..n` take the differences
:math:`d_s = L_B(s) - L_A(s)` of the final validation losses and ask whether their mean
:math:`\bar d` is far from zero compared with their scatter,

.. math::
    t = \frac{\bar d}{s_d / \sqrt n}, \qquad
    \bar d \pm t_{0.975,\,n-1}\, \frac{s_d}{\sqrt n} \quad\text{(95 % interval)},

with :math:`s_d` the sample standard deviation of the :math:`d_s` (Student's paired t-test,
which assumes the :math:`d_s` scatter normally). Only ``math`` is used: the Student-t
probabilities come from integrating its density numerically.
"""

import math
from statistics import mean, stdev


def final_losses(results):
    """``{(norm, placement): {seed: final validation loss}}`` of a seed-spread result file."""
    out = {}
    for run in results["runs"]:
        c = run["config"]
        out.setdefault((c["norm"], c["placement"]), {})[c["seed"]] = run["val_loss"][-1]
    return out


def _t_density(u, df):
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_c - (df + 1) / 2 * math.log1p(u * u / df))


def t_two_sided_p(t, df, intervals=2000):
    """:math:`P(|T| \\ge |t|)` for Student's t with ``df`` degrees of freedom (Simpson's rule)."""
    h = abs(t) / intervals
    weights = [1] + [4 if i % 2 else 2 for i in range(1, intervals)] + [1]
    area = h / 3 * sum(w * _t_density(i * h, df) for i, w in enumerate(weights))
    return max(0.0, 1.0 - 2.0 * area)


def t_quantile(p, df):
    """The ``p`` quantile of Student's t (``p`` > 0.5), by bisection on :func:`t_two_sided_p`."""
    lo, hi = 0.0, 1e3
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_two_sided_p(mid, df) > 2 * (1 - p) else (lo, mid)
    return (lo + hi) / 2


def paired_difference(a, b):
    """Compare configuration ``b`` with ``a``, both ``{seed: final loss}`` over the same seeds.

    Returns the per-seed differences ``b - a`` and their mean, 95 % interval (``low``,
    ``high``), two-sided p-value of the paired t-test, and in how many seeds ``b`` ended
    higher (``b_higher``) out of ``n``.
    """
    if sorted(a) != sorted(b):
        raise ValueError(f"different seeds: {sorted(a)} and {sorted(b)}")
    seeds = sorted(a)
    d = [b[s] - a[s] for s in seeds]
    n, m = len(d), mean(d)
    if n < 2:
        raise ValueError("a paired comparison needs at least two seeds")
    se = stdev(d) / math.sqrt(n)
    half = t_quantile(0.975, n - 1) * se
    p = t_two_sided_p(m / se, n - 1) if se > 0 else float(m == 0)
    return {"seeds": seeds, "diffs": d, "mean": m, "low": m - half, "high": m + half, "p": p,
            "b_higher": sum(x > 0 for x in d), "n": n}


NAMES = {"layernorm": "LayerNorm", "rmsnorm": "RMSNorm", "none": "no norm"}


def seed_comparisons(finals):
    """``(name, a, b)`` for the paired comparisons chapter 6 reports, ``b`` minus ``a``: the
    placements within each norm (pre vs post, sandwich vs pre), then RMSNorm vs LayerNorm
    within each placement. ``finals`` is :func:`final_losses`' dictionary."""
    norms = list(dict.fromkeys(n for n, _ in finals))
    placements = list(dict.fromkeys(p for _, p in finals))
    out = [(f"{NAMES[n]}: {second} − {first}", (n, first), (n, second))
           for n in norms for first, second in (("post", "pre"), ("pre", "sandwich"))
           if (n, first) in finals and (n, second) in finals]
    out += [(f"{p}: RMSNorm − LayerNorm", ("layernorm", p), ("rmsnorm", p))
            for p in placements if ("layernorm", p) in finals and ("rmsnorm", p) in finals]
    return out
