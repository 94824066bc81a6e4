"""Adaptive LayerNorm: AdaNorm (Xu et al., 2019) and adaLN-Zero (Peebles & Xie, 2023).

Two different ideas share the name. AdaNorm makes the gain a function of the normalised
input itself; adaLN / adaLN-Zero regress gain, bias (and a residual gate) from a separate
conditioning vector such as a timestep or class embedding (FiLM, Perez et al., 2018).
"""

import torch
from torch import nn

from normlab._validate import (
    _as_shape,
    check_eps,
    check_input,
    check_positive_int,
    check_real,
    compute_dtype,
)
from normlab.layer_norm import layer_norm


def ada_norm(x, normalized_shape, C=1.0, k=0.1, eps=1e-5, *, detach=True):
    r"""AdaNorm over the trailing ``normalized_shape`` dimensions of ``x``.

    .. math::
        y = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}},\qquad
        z = \varphi(y) \odot y,\qquad \varphi(y) = C\,(1 - k\,y)

    ``y`` is LayerNorm without gain and bias; the gain ``φ(y)`` depends on the
    *normalised* input, not on ``x``. ``k = 1/10`` is the paper's recommendation; ``C`` is
    a hyperparameter (the authors' translation script uses 2). With ``detach=True`` (the
    paper's choice) ``φ(y)`` is a constant in backprop: ``∂z/∂x = φ(y) ⊙ ∂y/∂x``.
    Shapes: ``z`` has ``x``'s shape.
    """
    shape = check_input(x, normalized_shape)
    eps = check_eps(eps)
    C = check_real(C, "C", positive=True)
    k = check_real(k, "k")
    y = layer_norm(x.to(compute_dtype(x.dtype)), shape, eps=eps)
    phi = C * (1.0 - k * (y.detach() if detach else y))
    return (phi * y).to(x.dtype)


class AdaNorm(nn.Module):
    """Module form of :func:`ada_norm`. It has no parameters: φ replaces gain and bias."""

    def __init__(self, normalized_shape, C=1.0, k=0.1, eps=1e-5, *, detach=True):
        super().__init__()
        self.normalized_shape = _as_shape(normalized_shape)  # a tuple, as in nn.LayerNorm
        self.C = check_real(C, "C", positive=True)
        self.k = check_real(k, "k")
        self.eps = check_eps(eps)
        self.detach = detach

    def forward(self, x):
        return ada_norm(x, self.normalized_shape, self.C, self.k, self.eps, detach=self.detach)

    def extra_repr(self):
        return (f"{self.normalized_shape}, C={self.C}, k={self.k}, eps={self.eps}, "
                f"detach={self.detach}")


def modulate(x, shift, scale):
    r"""DiT's feature-wise affine map, broadcast over every dim between batch and features.

    .. math:: \mathrm{modulate}(x, \beta, \gamma) = x \odot (1 + \gamma) + \beta

    ``x``: ``(B, ..., D)`` (typically ``(B, N, D)``: batch, sequence, hidden);
    ``shift``, ``scale``: ``(B, D)``, one vector per example. ``scale`` is an offset
    from 1, so ``scale = shift = 0`` is the identity.
    """
    _check_batched(x, "x")
    expected = (x.shape[0], x.shape[-1])
    _check_batched(shift, "shift", expected)
    _check_batched(scale, "scale", expected)
    # (B, D) -> (B, 1, ..., 1, D): the same vector for every token of an example.
    view = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
    return x * (1 + scale.view(view)) + shift.view(view)


class AdaLNZero(nn.Module):
    r"""adaLN-Zero conditioning for one residual branch of a DiT block.

    .. math::
        (\beta, \gamma, \alpha) = W\,\mathrm{SiLU}(c) + b,\qquad
        h = \mathrm{modulate}(\mathrm{LN}(x), \beta, \gamma)

    ``forward(x, c)`` takes ``x``: ``(B, ..., hidden)`` and ``c``: ``(B, cond_dim)`` and
    returns ``(h, gate)`` with ``gate = α``: ``(B, hidden)``; the block then computes
    ``x + gate[:, None] * f(h)``. ``W`` and ``b`` start at zero, so a fresh block is
    exactly the identity. LayerNorm has no affine parameters (γ, β come from ``c``)
    and ``eps=1e-6`` as in DiT.
    """

    def __init__(self, hidden, cond_dim, eps=1e-6):
        super().__init__()
        self.hidden = check_positive_int(hidden, "hidden")
        self.cond_dim = check_positive_int(cond_dim, "cond_dim")
        self.eps = check_eps(eps)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 3 * hidden))
        self.reset_parameters()

    def reset_parameters(self):
        """The "Zero" of adaLN-Zero: shift = scale = gate = 0 for every ``c``."""
        nn.init.zeros_(self.modulation[-1].weight)
        nn.init.zeros_(self.modulation[-1].bias)

    def forward(self, x, c):
        check_input(x, self.hidden)
        _check_batched(x, "x")
        _check_batched(c, "c", (x.shape[0], self.cond_dim))
        shift, scale, gate = self.modulation(c).chunk(3, dim=-1)  # 3 x (B, hidden)
        h = modulate(layer_norm(x, self.hidden, eps=self.eps), shift, scale)
        return h, gate

    def extra_repr(self):
        return f"hidden={self.hidden}, cond_dim={self.cond_dim}, eps={self.eps}"


def _check_batched(v, name, shape=None):
    """``v`` must be a floating tensor of shape ``(batch, ..., features)``, or ``shape``."""
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(v).__name__}")
    if not v.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {v.dtype}")
    if v.dim() < 2 or (shape is not None and tuple(v.shape) != tuple(shape)):
        expected = "(batch, ..., features)" if shape is None else f"(batch, features) = {shape}"
        raise ValueError(f"{name} must have shape {expected}, got {tuple(v.shape)}")
