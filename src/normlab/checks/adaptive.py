"""Exercise checkers of chapter 3 (adaptive LayerNorm): modulate, adaLN-Zero, its size."""

import torch
from torch import nn

from normlab.adaptive import AdaLNZero, modulate
from normlab.checks._base import call, expect_number, expect_tensor_close, fail, passed


def _tensor(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _same(got, expected):
    return (isinstance(got, torch.Tensor) and got.shape == expected.shape
            and torch.allclose(got.double(), expected, atol=1e-9, rtol=1e-9))


def modulate_exercise(fn):
    """``fn(x, shift, scale)`` with ``x``: ``(B, N, D)``, ``shift``/``scale``: ``(B, D)``."""
    x, shift, scale = _tensor((2, 5, 8), 0), _tensor((2, 8), 1), _tensor((2, 8), 2)
    what = "my_modulate(x (2, 5, 8), shift (2, 8), scale (2, 8))"
    zero = torch.zeros(2, 8, dtype=torch.float64)
    got = call(fn, x, zero, zero)
    if _same(got, torch.zeros_like(x)):
        fail("my_modulate(x, 0, 0) returned zeros, expected x unchanged.",
             "DiT's scale is an offset from 1: x * (1 + scale) + shift.")
    expect_tensor_close(got, x, "my_modulate(x, shift=0, scale=0)", atol=1e-12, rtol=0,
                        hint="with zero shift and scale the map must be the identity.")
    got = call(fn, x, shift, scale)
    if _same(got, (x + shift[:, None]) * (1 + scale[:, None])):
        fail(f"{what} shifts before it scales.", "scale first, then add shift.")
    expect_tensor_close(got, modulate(x, shift, scale), what, atol=1e-9, rtol=1e-9,
                        hint="one (shift, scale) pair per example, the same for every "
                             "token: unsqueeze the sequence dim, shift[:, None].")
    passed("my_modulate matches DiT's x * (1 + scale) + shift, broadcast over the sequence.")


def adaln_zero_block_exercise(fn):
    """``fn(x, c, ada, mlp)`` → ``x + gate ⊙ mlp(h)`` with ``h, gate = ada(x, c)``."""
    torch.manual_seed(0)
    ada, mlp = AdaLNZero(8, 4).double(), nn.Sequential(nn.Linear(8, 16), nn.GELU(),
                                                       nn.Linear(16, 8)).double()
    x, c = _tensor((2, 5, 8), 3), _tensor((2, 4), 4)
    got = call(fn, x, c, ada, mlp)
    expect_tensor_close(got, x, "my_block(x, c) with a freshly initialised AdaLNZero",
                        atol=0, rtol=0, hint="a fresh adaLN-Zero block returns x exactly: "
                                             "gate = 0 multiplies the whole residual branch.")
    with torch.no_grad():  # a trained-looking modulation: every output of the layer matters
        ada.modulation[-1].weight.copy_(_tensor(ada.modulation[-1].weight.shape, 5) * 0.3)
        ada.modulation[-1].bias.copy_(_tensor(ada.modulation[-1].bias.shape, 6) * 0.3)
    got = call(fn, x, c, ada, mlp)
    h, gate = ada(x, c)
    expected = x + gate[:, None] * mlp(h)
    if _same(got, gate[:, None] * mlp(h)):
        fail("my_block returns only the residual branch.", "add it to x: x + gate * mlp(h).")
    if _same(got, x + mlp(h)):
        fail("my_block ignores the gate.", "multiply the branch by gate[:, None].")
    expect_tensor_close(got, expected, "my_block(x, c) with a non-zero modulation layer",
                        atol=1e-9, rtol=1e-9,
                        hint="h, gate = ada(x, c); return x + gate[:, None] * mlp(h).")
    passed("my_block is the identity at initialisation and x + gate ⊙ mlp(h) after training.")


def adaln_params_exercise(fn):
    """``fn(hidden, cond_dim, n_vectors)``: parameters of the modulation Linear layer."""
    for hidden, cond, n in ((8, 4, 3), (64, 32, 6), (1152, 1152, 6)):
        linear = nn.Linear(cond, n * hidden)
        expected = sum(p.numel() for p in linear.parameters())
        got = call(fn, hidden, cond, n)
        if got == n * hidden * cond:
            fail(f"adaln_params({hidden}, {cond}, {n}) = {got} counts the weight only.",
                 "the Linear layer has a bias too: one per output.")
        expect_number(got, expected, f"adaln_params({hidden}, {cond}, {n})", rel=0,
                      hint="a Linear(cond_dim, n_vectors * hidden) layer: weight and bias.")
    passed(f"adaln_params is right: DiT-XL/2 spends {expected:,} parameters per block on "
           "adaLN-Zero modulation.")
