"""LayerNorm (Ba et al., 2016): centre and scale each row, then an affine map."""

import math

import torch
from torch import nn

from normlab._validate import check_eps, check_input, check_param, check_stats, compute_dtype


def _dims(shape):
    """The trailing dimensions that ``normalized_shape`` covers, as negative indices."""
    return tuple(range(-len(shape), 0))


def _stats(xf, dims, eps):
    """``mean``, ``x_hat = (xf - mean)·rstd``, ``rstd = 1/sqrt(var + eps)`` and ``var`` over
    ``dims`` (kept as size 1); ``xf - mean`` is computed once, for the variance and for
    ``x_hat``. A row whose squared deviations overflow has ``var = inf`` (or NaN if its
    sum overflowed too): :func:`_robust_stats` mends it."""
    mean = xf.mean(dim=dims, keepdim=True)
    centred = xf - mean
    var = centred.pow(2).mean(dim=dims, keepdim=True)  # biased: divide by d
    rstd = torch.rsqrt(var + eps)
    return mean, centred * rstd, rstd, var


def _rescaled_stats(xf, dims, eps, s):
    r"""``mean``, ``x_hat`` and ``rstd`` computed in float64 on :math:`z = x/s`, for a
    per-row scale ``s`` (constant: no gradient flows through it).

    :math:`\mu(x) = s\,\mu(z)` and :math:`\sigma^2(x) = s^2\sigma^2(z)`, so ε must
    scale by :math:`s^2` for the result to stay the same function of x:

    .. math:: \mathrm{rstd}_\epsilon(x) = \frac{1}{\sqrt{s^2\sigma^2(z) + \epsilon}}
        = \frac{1}{s}\,\mathrm{rstd}_{\epsilon/s^2}(z),\qquad
        \hat x = (z - \mu(z))\,\mathrm{rstd}_{\epsilon/s^2}(z).

    With :math:`s = \max_i |x_i|` the squares of z cannot overflow (|z| ≤ 1). A constant
    row (σ(z) = 0, here because its sum overflowed) has :math:`\mathrm{rstd}_{\epsilon/s^2}
    (z) = s/\sqrt\epsilon` exactly, used as such since ε/s² may underflow; in float64 it
    is finite for every float32 row (a float64 row with |x| > √ε·max gets inf, so NaN).
    """
    z = xf.to(torch.float64) / s
    mean_z = z.mean(dim=dims, keepdim=True)
    centred_z = z - mean_z
    var_z = centred_z.pow(2).mean(dim=dims, keepdim=True)
    spread = var_z > 0  # inner where: no 1/√0 in the gradient of the branch not taken
    rstd_z = torch.where(spread, torch.rsqrt(torch.where(spread, var_z, 1.0) + eps / s / s),
                         s / math.sqrt(eps))
    return tuple(t.to(xf.dtype) for t in (mean_z * s, centred_z * rstd_z, rstd_z / s))


def _robust_stats(xf, dims, eps, var):
    """``mean``, ``x_hat``, ``rstd`` (as :func:`_stats`) with the rows whose ``var`` is not
    finite recomputed by :func:`_rescaled_stats` with s = max|x|. Each row depends only on
    itself (batch-invariant), and each branch sees zeros in the other's rows, so no inf
    or NaN reaches a gradient through ``torch.where``. Rows holding ±inf or NaN give NaN."""
    bad = ~torch.isfinite(var)
    s = torch.where(bad, xf.detach().abs().amax(dim=dims, keepdim=True).double(), 1.0)
    ordinary = _stats(torch.where(bad, 0.0, xf), dims, eps)[:3]
    rescaled = _rescaled_stats(torch.where(bad, xf, 0.0), dims, eps, s)
    return tuple(torch.where(bad, r, o) for r, o in zip(rescaled, ordinary, strict=True))


def _normalised_stats(xf, dims, eps):
    """``mean``, ``x_hat`` and ``rstd``; right also for rows whose squares overflow."""
    mean, x_hat, rstd, var = _stats(xf, dims, eps)
    if not torch.isfinite(var).all():  # rare: a row's squared deviations overflowed
        mean, x_hat, rstd = _robust_stats(xf, dims, eps, var)
    return mean, x_hat, rstd


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
    mean, _, rstd = _normalised_stats(x.to(compute_dtype(x.dtype)), _dims(shape), check_eps(eps))
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

    Rows whose squared deviations overflow (float32 entries around 1e20) are computed
    again on x / max|x| with ε / max|x|² (:func:`_rescaled_stats`): the same y, where
    PyTorch returns NaN. That check runs after y is formed, so the ordinary path (and
    ``torch.compile``'s fusion of it) is unchanged; rows holding ±inf or NaN give NaN.
    """
    shape = check_input(x, normalized_shape)
    eps = check_eps(eps)
    check_param(weight, "weight", x, shape)
    check_param(bias, "bias", x, shape)
    xf, dims = x.to(compute_dtype(x.dtype)), _dims(shape)
    _, x_hat, _, var = _stats(xf, dims, eps)
    y = _affine(x_hat, weight, bias).to(x.dtype)
    if not torch.isfinite(var).all():  # rare: a row's squared deviations overflowed
        y = _affine(_robust_stats(xf, dims, eps, var)[1], weight, bias).to(x.dtype)
    return y


def _affine(x_hat, weight, bias):
    """``γ ⊙ x_hat + β``, each factor only if given."""
    y = x_hat
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


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
    x_hat = _normalise(x.to(ct), mean, rstd)
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


def _normalise(x, mean, rstd):
    r"""x̂ = (x − μ)·rstd from saved statistics. Rows spread so wide (σ > 2⁶⁴, rstd < 2⁻⁶⁴)
    that x − μ may overflow use (x/2 − μ/2)·(2·rstd): the same number, as halving is exact."""
    spread = rstd < 2.0 ** -64
    return torch.where(spread, (x / 2 - mean / 2) * (2 * rstd), (x - mean) * rstd)


class LayerNorm(nn.LayerNorm):
    """Drop-in for ``torch.nn.LayerNorm`` (same arguments, parameters and state dict)
    whose forward is :func:`normlab.layer_norm`."""

    def forward(self, x):
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
