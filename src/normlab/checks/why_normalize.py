"""Checkers for the exercises of chapter 1 (Why normalize?)."""

import math

import torch

from normlab.checks._base import call, describe, expect_tensor_close, fail, passed
from normlab.experiments.deep_stack import DeepStack, activation_rms, predicted_rms, trace


def _close(a, b):
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-6)


# --- exercise 1: activation RMS per layer ----------------------------------------------------

def _rms_mistakes(xs):
    """Answers a learner is likely to return instead, with what to say about each."""
    return {
        "the standard deviation (mean subtracted)":
            torch.stack([h.std(correction=0) for h in xs]),
        "the sample standard deviation (mean subtracted, divided by n − 1)":
            torch.stack([h.std(correction=1) for h in xs]),
        "the mean square (no square root)": torch.stack([h.pow(2).mean() for h in xs]),
        "the mean over rows of each row's RMS":
            torch.stack([h.pow(2).mean(-1).sqrt().mean() for h in xs]),
    }


def activation_rms_exercise(fn):
    """Check ``fn(stack, x)`` returns ``sqrt(mean(x_l²))`` for l = 0..L, shape ``(L + 1,)``."""
    cases = {"residual stack": DeepStack(16, 5, gain=1.0, seed=1),
             "plain LayerNorm stack": DeepStack(16, 3, norm="layernorm", residual=False, seed=2)}
    # A non-zero mean makes RMS and standard deviation differ.
    x = torch.randn(32, 16, generator=torch.Generator().manual_seed(3)) + 0.5
    for kind, stack in cases.items():
        depth = len(stack.blocks)
        got = call(fn, stack, x)
        expected = activation_rms(stack, x)
        if isinstance(got, torch.Tensor) and got.shape == (depth,):
            fail(f"For a stack of depth {depth} you returned {depth} values; expected "
                 f"{depth + 1}.", "Index 0 is the input x itself, before any block.")
        if isinstance(got, torch.Tensor) and got.shape == expected.shape:
            with torch.no_grad():
                xs = trace(stack, x)
            for what, wrong in _rms_mistakes(xs).items():
                if _close(got, wrong) and not _close(got, expected):
                    fail(f"Your values match {what}.",
                         "RMS(x_l) = sqrt(mean(x_l**2)), one mean over batch and features.")
        expect_tensor_close(got, expected, f"{kind} of depth {depth}, input {describe(x)}",
                            hint="Feed x through stack.blocks one at a time and record each.")
    passed(f"activation RMS per layer matches on {len(cases)} stacks (residual and plain).")


# --- exercise 2: the init gain of an unnormalized residual stack -----------------------------

GAIN_DEPTHS = (8, 32, 128)
TARGET = (1.5, 2.0)  # RMS(x_L) / RMS(x_0)
SLACK = 1.1  # finite width makes the measured ratio scatter by a few percent


def _measured_ratio(depth, gain):
    stack = DeepStack(128, depth, gain=gain, seed=0, dtype=torch.float64)
    x = torch.randn(256, 128, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    rms = activation_rms(stack, x)
    return (rms[-1] / rms[0]).item()


def gain_exercise(fn):
    """Check ``fn(depth)`` gives a gain with ``RMS(x_L)/RMS(x_0)`` in 1.5–2 for several depths."""
    lo, hi = TARGET
    for depth in GAIN_DEPTHS:
        gain = call(fn, depth)
        try:
            gain = float(gain)
        except (TypeError, ValueError):
            fail(f"choose_gain({depth}) returned {gain!r}; expected a number.")
        if not math.isfinite(gain) or gain < 0:
            fail(f"choose_gain({depth}) returned {gain}; a gain is a finite number >= 0.")
        ratio = _measured_ratio(depth, gain)
        theory = predicted_rms(depth, gain, residual=True, normalized=False)
        told = (f"With depth L = {depth} and g = {gain:.4g}, the stack multiplied the RMS by "
                f"{ratio:.4g} (mean-field theory: (1 + g²/2)^(L/2) = {theory:.4g}).")
        hint = ("Each block multiplies the second moment by (1 + g²/2); solve "
                "(1 + g²/2)^(L/2) = target for g. The answer depends on L.")
        if ratio > hi * SLACK:
            fail(told + f" That is more than {hi}: the stream grows with every block.", hint)
        if ratio < lo / SLACK:
            fail(told + f" That is less than {lo}: the residual branches barely add "
                 "anything (with g = 0 every block starts as the identity: the stream does not "
                 "grow at all).", hint)
    passed(f"ratios within {lo}–{hi} for depths {GAIN_DEPTHS}: the right gain shrinks like "
           "1/√L, the idea behind depth-scaled inits such as Fixup.")

