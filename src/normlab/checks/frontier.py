"""Checkers for the exercises of chapter 8 (normalization at the frontier)."""

import math

import torch

from normlab.checks._base import call, describe, expect_number, expect_tensor_close, fail, passed
from normlab.dyt import dyt
from normlab.rms_norm import rms_norm


def _reference_logits(q, k, eps):
    d_head = q.shape[-1]
    q_hat, k_hat = rms_norm(q, (d_head,), eps=eps), rms_norm(k, (d_head,), eps=eps)
    return q_hat @ k_hat.transpose(-2, -1) / math.sqrt(d_head)


def qk_norm_exercise(qk_norm_logits):
    """Exercise 1: ``qk_norm_logits(q, k)`` = per-head RMS-normalised ``q̂ k̂ᵀ / √d_h``."""
    gen = torch.Generator().manual_seed(0)
    q = 5 * torch.randn(2, 3, 6, 8, generator=gen)  # (B, heads, T, d_head)
    k = 0.2 * torch.randn(2, 3, 6, 8, generator=gen)
    expected = _reference_logits(q, k, 1e-6)
    got = call(qk_norm_logits, q, k)
    if isinstance(got, torch.Tensor) and got.shape == expected.shape:
        if torch.allclose(got, expected * math.sqrt(8), rtol=1e-4, atol=1e-4):
            fail("the logits are √d_h = √8 times too large.",
                 "Keep the 1/√d_h of ordinary attention after normalising q and k.")
        if torch.allclose(got, q @ k.transpose(-2, -1) / math.sqrt(8), rtol=1e-4, atol=1e-4):
            fail("these are ordinary attention logits: q and k were not normalised.",
                 "Divide each head's q and k by their RMS over the last (d_head) dimension.")
    expect_tensor_close(got, expected, f"qk_norm_logits(q, k) for q, k = {describe(q)}",
                        hint="RMS over the last dim of each head: x / sqrt(mean(x**2) + eps).")
    scaled = call(qk_norm_logits, 10 * q, 3 * k)
    expect_tensor_close(scaled, expected, "qk_norm_logits(10·q, 3·k)",
                        hint="QK-norm makes the logits independent of the scale of q and k.")
    passed("qk_norm_logits matches per-head QK-norm; rescaling q or k no longer moves a logit.")


def deepnorm_exercise(deepnorm_constants):
    """Exercise 2: ``deepnorm_constants(n_layers)`` = ``((2L)^(1/4), (8L)^(-1/4))``."""
    for n_layers in (4, 18, 100):
        got = call(deepnorm_constants, n_layers)
        try:
            alpha, beta = got
        except (TypeError, ValueError):
            fail(f"deepnorm_constants({n_layers}) should return a pair (alpha, beta), "
                 f"got {got!r}.")
        expect_number(alpha, (2 * n_layers) ** 0.25, f"alpha for {n_layers} layers", rel=1e-9,
                      hint="α = (2L)^(1/4) for a decoder-only model: (2 * L) ** 0.25.")
        expect_number(beta, (8 * n_layers) ** -0.25, f"beta for {n_layers} layers", rel=1e-9,
                      hint="β = (8L)^(-1/4): (8 * L) ** -0.25.")
    passed("deepnorm_constants matches DeepNorm's decoder-only α and β.")


def dyt_exercise(dyt_forward):
    """Exercise 3: ``dyt_forward(x, alpha, weight, bias)`` = ``weight · tanh(α x) + bias``."""
    gen = torch.Generator().manual_seed(1)
    x = 3 * torch.randn(4, 5, generator=gen)
    weight, bias = 1 + torch.randn(5, generator=gen), torch.randn(5, generator=gen)
    alpha = torch.tensor(0.7)
    expected = dyt(x, 5, alpha, weight, bias)
    got = call(dyt_forward, x, alpha, weight, bias)
    if isinstance(got, torch.Tensor) and got.shape == expected.shape and torch.allclose(
            got, alpha * torch.tanh(x) * weight + bias, atol=1e-5):
        fail("α multiplies tanh's output instead of its input.",
             "α sets how soon tanh saturates: tanh(alpha * x), not alpha * tanh(x).")
    expect_tensor_close(got, expected, f"dyt_forward(x, 0.7, weight, bias) for x = {describe(x)}",
                        hint="weight * torch.tanh(alpha * x) + bias, element by element.")
    passed("dyt_forward matches normlab.dyt: an element-wise squashing, no statistics.")
