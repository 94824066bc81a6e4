r"""Dynamic Tanh (DyT, Zhu et al. 2025): an element-wise stand-in for a norm layer.

.. math::
    \mathrm{DyT}(x) = \gamma \odot \tanh(\alpha x) + \beta

with one learnable scalar ``α`` per layer and ``γ, β`` of shape ``normalized_shape``
(LayerNorm's affine parameters). No statistic over the row is computed: each element is
squashed on its own, so DyT cannot undo a change of scale the way a norm does; ``α``
learns the scale instead, and ``tanh`` clips the few large values (the "saturation").
"""

import torch
from torch import nn

from normlab._validate import _as_shape, check_input, check_param, check_real


def dyt(x, normalized_shape, alpha, weight=None, bias=None):
    r"""``γ ⊙ tanh(α x) + β`` over the trailing ``normalized_shape`` dims of ``x``.

    ``alpha``: a scalar tensor (or number); ``weight``/``bias``: ``normalized_shape`` or None.
    """
    shape = check_input(x, normalized_shape)
    for p, name in ((weight, "weight"), (bias, "bias")):
        check_param(p, name, x, shape)
    if isinstance(alpha, torch.Tensor) and alpha.numel() != 1:
        raise ValueError(f"alpha must be a scalar, got shape {tuple(alpha.shape)}")
    y = torch.tanh(alpha * x)
    if weight is not None:
        y = y * weight
    return y if bias is None else y + bias


class DyT(nn.Module):
    """Drop-in for ``LayerNorm(normalized_shape)`` in a block: parameters ``alpha`` (a
    scalar, starts at ``alpha_init``; 0.5 in the paper's code), ``weight`` (ones) and
    ``bias`` (zeros)."""

    def __init__(self, normalized_shape, alpha_init=0.5, elementwise_affine=True, bias=True):
        super().__init__()
        self.normalized_shape = _as_shape(normalized_shape)
        self.alpha_init = check_real(alpha_init, "alpha_init", positive=True)
        self.alpha = nn.Parameter(torch.tensor(self.alpha_init))
        self.weight = nn.Parameter(torch.ones(self.normalized_shape)) if elementwise_affine \
            else None
        self.bias = nn.Parameter(torch.zeros(self.normalized_shape)) \
            if elementwise_affine and bias else None

    def forward(self, x):
        return dyt(x, self.normalized_shape, self.alpha, self.weight, self.bias)

    def extra_repr(self):
        return f"{self.normalized_shape}, alpha_init={self.alpha_init}"
