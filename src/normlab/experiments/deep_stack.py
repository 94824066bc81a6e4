r"""Deep stacks with and without normalization: the experiment of chapter 1.

A stack of ``depth`` blocks acts on a stream ``x`` of width ``d`` (shape ``(batch, d)``):

.. math::
    f(x) = W\,\varphi(N(x)),\quad W_{ij} \sim \mathcal N(0, g^2/d),\qquad
    x_{l+1} = x_l + f(x_l)\ \text{(residual)}\quad\text{or}\quad x_{l+1} = f(x_l)\ \text{(plain)}

``N`` is the identity, :class:`normlab.LayerNorm`, :class:`normlab.RMSNorm` or
``torch.nn.BatchNorm1d``; ``φ`` is ReLU or tanh; ``g`` is the init gain. This is the
"pre-activation" ordering (norm → activation → weight) of He et al. (2016), the same
place a pre-norm Transformer puts its norm.
"""

import math

import torch
from torch import nn

from normlab._validate import check_choice, check_positive_int, check_real
from normlab.layer_norm import LayerNorm
from normlab.rms_norm import RMSNorm

NORMS = (None, "layernorm", "rmsnorm", "batchnorm")
ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh}
# φ'(z), to see where an activation is flat (saturated: tanh at |z| ≫ 1, ReLU at z < 0).
DERIVATIVES = {"relu": lambda z: (z > 0).to(z.dtype), "tanh": lambda z: 1 - torch.tanh(z) ** 2}


def _check_gain(gain):
    gain = check_real(gain, "gain")
    if gain < 0:
        raise ValueError(f"gain must be a finite number >= 0, got {gain}")
    return gain


def make_norm(norm, width):
    """The normalization module called ``norm`` (``None`` → identity) for ``(batch, width)``."""
    check_choice(norm, NORMS, "norm")
    if norm is None:
        return nn.Identity()
    if norm == "layernorm":
        return LayerNorm(width)
    if norm == "rmsnorm":
        return RMSNorm(width)
    return nn.BatchNorm1d(width)


class Block(nn.Module):
    """One block: ``x + W φ(N(x))`` (residual) or ``W φ(N(x))`` (plain)."""

    def __init__(self, width, norm, activation, residual):
        super().__init__()
        self.norm = make_norm(norm, width)
        self.linear = nn.Linear(width, width, bias=False)
        self.activation = activation
        self.residual = residual

    def forward(self, x):
        update = self.linear(ACTIVATIONS[self.activation](self.norm(x)))
        return x + update if self.residual else update


class DeepStack(nn.Module):
    """``depth`` blocks of width ``width``; weights drawn from ``𝒩(0, gain²/width)`` with ``seed``.

    The seed makes a stack reproducible on its own, whatever the global RNG state.
    """

    def __init__(self, width, depth, *, norm=None, residual=True, gain=1.0,
                 activation="relu", seed=0, dtype=torch.float32):
        super().__init__()
        width = check_positive_int(width, "width")
        depth = check_positive_int(depth, "depth")
        self.gain = _check_gain(gain)
        self.norm = check_choice(norm, NORMS, "norm")
        check_choice(activation, ACTIVATIONS, "activation")
        self.blocks = nn.ModuleList(
            Block(width, norm, activation, residual) for _ in range(depth))
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for block in self.blocks:
                nn.init.normal_(block.linear.weight, std=gain / math.sqrt(width),
                                generator=generator)
        self.to(dtype)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


def trace(stack, x):
    """The stream ``[x_0, ..., x_L]`` through ``stack``: ``L + 1`` tensors shaped like ``x``."""
    xs = [x]
    for block in stack.blocks:
        xs.append(block(xs[-1]))
    return xs


def activation_rms(stack, x):
    r"""Per-layer RMS of the stream, :math:`\sqrt{\operatorname{mean}(x_l^2)}`: shape ``(L + 1,)``.

    The mean runs over batch and features; index 0 is the input.
    """
    with torch.no_grad():
        return torch.stack([h.pow(2).mean().sqrt() for h in trace(stack, x)])


def flat_fraction(stack, x, threshold=0.1):
    r"""Per block, the fraction of units where the activation is flat: :math:`\varphi'(z) < t`.

    ``z = N(x_l)`` is the activation's input, ``t = threshold``; shape ``(L,)``. For tanh and
    ``t = 0.1`` this is :math:`|z| > 1.82`, the saturated tails.
    """
    with torch.no_grad():
        xs = trace(stack, x)
        return torch.stack([
            (DERIVATIVES[block.activation](block.norm(h)) < threshold).to(x.dtype).mean()
            for block, h in zip(stack.blocks, xs[:-1], strict=True)])


def gradient_rms(stack, x, seed=0):
    r"""Per-layer RMS of the backward signal :math:`\partial\ell/\partial x_l`: shape ``(L + 1,)``.

    ``ℓ = ⟨v, x_L⟩`` with a fixed random ``v ~ 𝒩(0, 1)`` of ``x_L``'s shape: a unit-scale
    output gradient (so index ``L`` is ≈ 1), and the profile shows what the backward pass
    does to it, not what some loss does. Index 0 is the gradient reaching the input.
    """
    x = x.detach().requires_grad_(True)
    xs = trace(stack, x)
    for h in xs[1:-1]:
        h.retain_grad()
    v = torch.randn(xs[-1].shape, generator=torch.Generator().manual_seed(seed),
                    dtype=x.dtype)
    (xs[-1] * v).sum().backward()
    grads = [h.grad for h in xs[:-1]] + [v]
    stack.zero_grad(set_to_none=True)
    return torch.stack([g.pow(2).mean().sqrt() for g in grads])


def predicted_rms(depth, gain, *, residual, normalized):
    r"""Mean-field RMS of ``x_L`` for a ReLU stack fed unit-RMS input (width → ∞).

    Each block adds (residual) or passes on (plain) ``q_{l+1} ⊃ g² E[ReLU(z)²] = g² q_z / 2``:

    * plain, no norm:    :math:`q_L = (g^2/2)^L`
    * residual, no norm: :math:`q_L = (1 + g^2/2)^L`
    * residual, LN/RMS:  :math:`q_L = 1 + L g^2/2` (the norm feeds each block unit scale)

    Returns :math:`\sqrt{q_L}`. (A plain stack with a norm has RMS ``g/√2`` after any block.)
    """
    depth = check_positive_int(depth, "depth")
    q = _check_gain(gain) ** 2 / 2
    if normalized:
        return math.sqrt(1 + depth * q) if residual else math.sqrt(q)
    return math.sqrt((1 + q) ** depth if residual else q ** depth)


def init_profile(width, depth, *, batch=128, seed=0, **stack_kwargs):
    """Measurements of a fresh stack fed ``𝒩(0, I)`` input, as float lists.

    ``act_rms`` and ``grad_rms`` have ``L + 1`` entries, ``flat`` has ``L``. Measured in
    float64 so that a plain stack can vanish by 1e-40 without underflowing.
    """
    stack = DeepStack(width, depth, seed=seed, dtype=torch.float64, **stack_kwargs)
    x = torch.randn(batch, width, generator=torch.Generator().manual_seed(seed + 1),
                    dtype=torch.float64)
    return {"act_rms": activation_rms(stack, x).tolist(),
            "grad_rms": gradient_rms(stack, x, seed=seed + 2).tolist(),
            "flat": flat_fraction(stack, x).tolist()}


def init_sweep(depths, gains, *, width=64, **kwargs):
    """:func:`init_profile` for every depth, gain, plain/residual and norm: flat records."""
    return [{"depth": depth, "gain": gain, "residual": residual, "norm": norm,
             **init_profile(width, depth, residual=residual, norm=norm, gain=gain, **kwargs)}
            for depth in depths for gain in gains
            for residual in (False, True) for norm in NORMS]

