"""Exercise checkers of chapter 4 (RMSNorm): implement it, break the ε placements apart,
verify LayerNorm(x) = RMSNorm(x − mean(x)) + β."""

import torch

from normlab.checks._base import call, describe, expect_tensor_close, fail, passed
from normlab.checks._shortcuts import NORMS, call_from_scratch
from normlab.layer_norm import layer_norm
from normlab.rms_norm import rms_norm

# The identity exercise may use any RMSNorm; another norm would skip the point of it.
NOT_RMS_NORM = {f: name for f, name in NORMS.items() if "rms_norm" not in name}


def _cases():
    """(x, weight, eps, what): float32; a mean, a 3-D batch, rows below √ε, a 1-D row."""
    g = torch.Generator().manual_seed(4)
    return [
        (torch.randn(4, 8, generator=g) + 0.5, torch.rand(8, generator=g) + 0.5, 1e-6,
         "a (4, 8) input"),
        (3 * torch.randn(2, 3, 16, generator=g), torch.randn(16, generator=g), 1e-5,
         "a (2, 3, 16) input"),
        (1e-4 * torch.randn(2, 8, generator=g), torch.ones(8), 1e-5,
         "rows with RMS ≈ 1e-4, below √ε ≈ 3.2e-3"),
        (torch.randn(5, generator=g), torch.rand(5, generator=g), 1e-6, "a 1-D row of 5"),
    ]


def _close(got, expected):
    return (isinstance(got, torch.Tensor) and got.shape == expected.shape
            and torch.allclose(got.detach().double(), expected.double(), atol=1e-5, rtol=1e-4))


def rms_norm_exercise(fn):
    """``fn(x, weight, eps)``: RMSNorm over the last dimension, ε inside the square root."""
    for x, weight, eps, what in _cases():
        x_before = x.clone()
        got = call_from_scratch(fn, x, weight, eps, shortcuts=NORMS,
                                task="compute RMSNorm from the mean of the squares")
        d = x.shape[-1]
        expected = rms_norm(x, d, weight, eps)
        if not torch.equal(x, x_before):
            fail(f"{fn.__name__} changed its input x in place on {what}.",
                 "build new tensors (x * ..., not x *= ...).")
        if not _close(got, expected):
            if _close(got, rms_norm(x, d, weight, eps, eps_inside_sqrt=False)):
                fail(f"On {what} your output equals γ·x / (RMS(x) + ε): ε sits outside the root.",
                     "this chapter's (and PyTorch's) RMSNorm is γ·x / √(mean(x²) + ε).")
            if _close(got, layer_norm(x, d, weight, None, eps)):
                fail(f"On {what} your output equals LayerNorm without β: you subtracted the mean.",
                     "RMSNorm only divides by √(mean(x²) + ε); it does not centre x.")
        expect_tensor_close(got, expected, f"{fn.__name__} on {what} (eps={eps:g})",
                            hint="y = weight * x / sqrt(mean(x**2, last dim, keepdim) + eps).")
    passed(f"{fn.__name__} matches normlab.rms_norm on {len(_cases())} inputs, "
           "including rows whose RMS is below √ε.")


def placement_gap(x, eps):
    """Largest relative difference ‖y_in − y_out‖/‖y_out‖ over the non-zero rows of ``x``."""
    rows = x.detach().double().reshape(-1, x.shape[-1])
    rows = rows[rows.abs().amax(dim=-1) > 0]
    if rows.numel() == 0:
        return 0.0
    d = rows.shape[-1]
    inside, outside = rms_norm(rows, d, eps=eps), rms_norm(rows, d, eps=eps, eps_inside_sqrt=False)
    return ((inside - outside).norm(dim=-1) / outside.norm(dim=-1)).max().item()


def eps_gap_exercise(fn, threshold=0.01):
    """``fn(eps)`` returns an input where the two ε placements differ by more than 1 %."""
    for eps in (1e-6, 1e-5):
        x = call(fn, eps)
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() == 0:
            fail(f"{fn.__name__}({eps:g}) must return a floating-point tensor with at least one "
                 f"dimension, got {describe(x)}.")
        if not torch.isfinite(x).all():
            fail(f"{fn.__name__}({eps:g}) returned non-finite values.", "use finite numbers.")
        gap = placement_gap(x, eps)
        if gap <= threshold:
            rms = x.detach().double().pow(2).mean(-1).sqrt()
            fail(f"For eps={eps:g} the two placements differ by at most {100 * gap:.3g} % on "
                 f"your input (row RMS between {rms.min():.3g} and {rms.max():.3g}); "
                 f"need more than {100 * threshold:g} %.",
                 "for √ε ≪ RMS the difference is only about |ε/RMS − ε/(2·RMS²)|: make the "
                 "RMS comparable to √ε (not exactly 0: an all-zero row gives 0 either way).")
    passed(f"the two ε placements differ by {100 * gap:.3g} % on your input for eps={eps:g}.")


def layer_norm_identity_exercise(fn):
    """``fn(x, weight, bias, eps)``: LayerNorm computed as RMSNorm of the centred x, plus β.

    Inputs are float64 and shifted by 3, so a missing centring cannot go unnoticed.
    """
    g = torch.Generator().manual_seed(5)
    for x, weight, eps, what in _cases():
        # float64, so that centring a mean of ≈ 3 loses nothing the comparison could see
        x, weight = x.double() + 3.0, weight.double()
        bias = torch.randn(x.shape[-1], generator=g, dtype=torch.float64)
        got = call_from_scratch(fn, x, weight, bias, eps, shortcuts=NOT_RMS_NORM,
                                task="build LayerNorm from RMSNorm")
        expected = layer_norm(x, x.shape[-1], weight, bias, eps)
        if _close(got, expected - bias):
            fail(f"On {what} (shifted by 3) your output is LayerNorm without the bias β.",
                 "LayerNorm(x) = RMSNorm(x − mean(x)) + β: add the bias at the end.")
        expect_tensor_close(got, expected, f"{fn.__name__} on {what}, shifted by 3 (eps={eps:g})",
                            hint="centre x over the last dimension, then call normlab.rms_norm "
                                 "with the same weight and eps, then add bias.")
    passed(f"{fn.__name__} equals normlab.layer_norm on {len(_cases())} shifted inputs: "
           "LayerNorm(x) = RMSNorm(x − mean(x)) + β, with the same ε and γ.")
