r"""Residual add fused into the norm: one pass reads ``x`` and ``residual`` and writes the
new residual ``h = x + residual`` and ``y = norm(h)`` (vLLM's ``fused_add_rms_norm``,
FlashInfer's ``fused_add_rmsnorm``, Liger's ``LigerFusedAddRMSNorm``).

Unfused, a pre-norm block writes ``h`` and reads it back: read x, r, write h, then read h,
write y, ``5·M·N·s`` bytes in two launches; fused, ``4·M·N·s`` in one. The backward adds
the gradient arriving at ``h`` to the norm's ``dx`` in the same kernel; that sum is the
gradient of both ``x`` and ``residual``.

.. math:: h = x + r, \qquad y = \operatorname{norm}(h), \qquad
    \frac{\partial L}{\partial x} = \frac{\partial L}{\partial r}
    = \frac{\partial L}{\partial h} + J_{\operatorname{norm}}(h)^\top \frac{\partial L}{\partial y}
"""

import torch

from normlab._validate import check_eps, check_input, check_param, compute_dtype
from normlab.kernels import _launch
from normlab.kernels.layer_norm import LayerNormFunction
from normlab.kernels.rms_norm import RMSNormFunction, TritonRMSNorm
from normlab.layer_norm import LayerNorm
from normlab.rms_norm import default_eps, gain


def _check_residual(x, residual):
    """The residual is added elementwise and h written in x's layout: same shape, dtype,
    device."""
    if not isinstance(residual, torch.Tensor):
        raise TypeError(f"residual must be a torch.Tensor, got {type(residual).__name__}")
    if (residual.shape, residual.dtype, residual.device) != (x.shape, x.dtype, x.device):
        raise ValueError(f"residual must have x's shape, dtype and device "
                         f"({tuple(x.shape)}, {x.dtype}, {x.device}), got "
                         f"({tuple(residual.shape)}, {residual.dtype}, {residual.device})")


def add_layer_norm(x, residual, normalized_shape, weight=None, bias=None, eps=1e-5):
    """``(LayerNorm(x + residual), x + residual)`` in one kernel; arguments as
    :func:`normlab.kernels.layer_norm` plus ``residual`` (x's shape, dtype and device)."""
    shape = check_input(x, normalized_shape)
    _check_residual(x, residual)
    eps = check_eps(eps)
    check_param(weight, "weight", x, shape)
    check_param(bias, "bias", x, shape)
    _launch.check_device(x)
    return LayerNormFunction.apply(x, shape, weight, bias, eps, residual)[:2]


def add_rms_norm(x, residual, normalized_shape, weight=None, eps=None, *,
                 eps_inside_sqrt=True, add_unit_offset=False):
    """``(RMSNorm(x + residual), x + residual)`` in one kernel; arguments as
    :func:`normlab.kernels.rms_norm` plus ``residual`` (x's shape, dtype and device)."""
    shape = check_input(x, normalized_shape)
    _check_residual(x, residual)
    eps = default_eps(x.dtype) if eps is None else check_eps(eps)
    check_param(weight, "weight", x, shape)
    _launch.check_device(x)
    if add_unit_offset:
        weight = gain(weight, True, compute_dtype(x.dtype))
    return RMSNormFunction.apply(x, shape, weight, eps, bool(eps_inside_sqrt), residual)[:2]


class FusedAddLayerNorm(LayerNorm):
    """``forward(x, residual) -> (y, h)``: ``h = x + residual``, ``y = LayerNorm(h)``;
    parameters and state dict those of ``torch.nn.LayerNorm``."""

    def forward(self, x, residual):
        return add_layer_norm(x, residual, self.normalized_shape, self.weight, self.bias,
                              self.eps)


class FusedAddRMSNorm(TritonRMSNorm):
    """``forward(x, residual) -> (y, h)``: ``h = x + residual``, ``y = RMSNorm(h)``;
    parameters and state dict those of ``torch.nn.RMSNorm`` (options as
    :class:`TritonRMSNorm`)."""

    def forward(self, x, residual):
        return add_rms_norm(x, residual, self.normalized_shape, self.weight, self.eps,
                            eps_inside_sqrt=self.eps_inside_sqrt,
                            add_unit_offset=self.add_unit_offset)
