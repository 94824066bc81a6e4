"""LayerNorm (Ba et al., 2016): centre and scale each row, then an affine map."""

import torch
from torch import nn

from normlab._validate import check_eps, check_input, check_param, check_stats, compute_dtype


def _dims(shape):
    """The trailing dimensions that ``normalized_shape`` covers, as negative indices."""
    return tuple(range(-len(shape), 0))


def _stats(xf, dims, eps):
    """``mean``, ``centred = xf - mean`` and ``rstd = 1/sqrt(var + eps)`` over ``dims``
    (kept as size 1); ``centred`` is computed once, for the variance and for the output."""
    mean = xf.mean(dim=dims, keepdim=True)
    centred = xf - mean
    var = centred.pow(2).mean(dim=dims, keepdim=True)  # biased: divide by d
    return mean, centred, torch.rsqrt(var + eps)


def layer_norm_stats(x, normalized_shape, eps=1e-5):
    r"""The statistics the forward pass saves for the backward pass: ``mean`` and ``rstd``.

    .. math::
        \mu = \tfrac1d \textstyle\sum_i x_i,\qquad
        \mathrm{rstd} = \big(\tfrac1d \textstyle\sum_i (x_i-\mu)^2 + \epsilon\big)^{-1/2}

    Shapes: ``x`` is ``(*batch, *normalized_shape)``; ``mean`` and ``rstd`` are
    ``(*batch, 1, ..., 1)``, as ``torch.native_layer_norm`` returns them: two numbers
    per row, whatever ``d`` is. Half-precision inputs get float32 statistics (as in
    Triton's layer-norm tutorial; PyTorch's CPU kernel rounds them to the input dtype).
    """
    shape = check_input(x, normalized_shape)
    mean, _, rstd = _stats(x.to(compute_dtype(x.dtype)), _dims(shape), check_eps(eps))
    return mean, rstd


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    r"""LayerNorm over the trailing ``normalized_shape`` dimensions of ``x``.

    .. math::
        \mu = \tfrac1d \sum_i x_i,\quad
        \sigma^2 = \tfrac1d \sum_i (x_i - \mu)^2,\quad
        y = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta

    with ``d = prod(normalized_shape)``, the biased (1/d) variance, ``γ = weight`` and
    ``β = bias``. Half-precision inputs are computed in float32 and returned in
    their own dtype. Same signature as ``torch.nn.functional.layer_norm``.
    """
    shape = check_input(x, normalized_shape)
    eps = check_eps(eps)
    check_param(weight, "weight", x, shape)
    check_param(bias, "bias", x, shape)
    xf = x.to(compute_dtype(x.dtype))
    _, centred, rstd = _stats(xf, _dims(shape), eps)
    y = centred * rstd
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y.to(x.dtype)


def layer_norm_backward(dy, x, normalized_shape, weight, mean, rstd):
    r"""Gradients of :func:`layer_norm` from ``dy = ∂L/∂y`` and the saved ``mean``, ``rstd``.

    With :math:`\hat x = (x-\mu)\,\mathrm{rstd}` and :math:`g = \gamma \odot dy`
    (:math:`\gamma = 1` when ``weight`` is None), per row:

    .. math::
        dx = \mathrm{rstd}\,\big(g - \overline{g} - \hat x\,\overline{g \odot \hat x}\big),
        \qquad
        d\gamma = \textstyle\sum_{\text{rows}} dy \odot \hat x,\qquad
        d\beta = \textstyle\sum_{\text{rows}} dy

    where :math:`\overline{v} = \tfrac1d \sum_i v_i` is the mean over the normalised dims.
    Shapes: ``dy`` and ``x`` are ``(*batch, *normalized_shape)``; ``mean``/``rstd`` as
    returned by :func:`layer_norm_stats`. Returns ``(dx, dweight, dbias)``: ``dx`` in
    ``x.dtype``; ``dweight``/``dbias`` of shape ``normalized_shape`` in the dtype of
    ``weight`` (of ``x`` when ``weight`` is None); they are the gradients an affine
    ``weight``/``bias`` would receive.
    """
    shape = check_input(x, normalized_shape)
    check_input(dy, shape, name="dy")
    if dy.shape != x.shape:
        raise ValueError(f"dy must have the shape of x {tuple(x.shape)}, got {tuple(dy.shape)}")
    check_param(weight, "weight", x, shape)
    check_stats(mean, "mean", x, shape)
    check_stats(rstd, "rstd", x, shape)
    dims = _dims(shape)
    ct = compute_dtype(x.dtype)
    x_hat = (x.to(ct) - mean) * rstd
    dyf = dy.to(ct)
    g = dyf if weight is None else dyf * weight.to(ct)
    # Each term removes what the normalisation makes irrelevant: the mean of g (a shift of
    # x changes nothing) and g's component along x_hat (nor does a rescaling of x).
    dx = rstd * (g - g.mean(dim=dims, keepdim=True)
                 - x_hat * (g * x_hat).mean(dim=dims, keepdim=True))
    param_dtype = x.dtype if weight is None else weight.dtype
    dweight = (dyf * x_hat).reshape(-1, *shape).sum(0).to(param_dtype)  # sum over rows
    dbias = dyf.reshape(-1, *shape).sum(0).to(param_dtype)
    return dx.to(x.dtype), dweight, dbias


class LayerNorm(nn.LayerNorm):
    """Drop-in for ``torch.nn.LayerNorm`` (same arguments, parameters and state dict)
    whose forward is :func:`normlab.layer_norm`."""

    def forward(self, x):
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
