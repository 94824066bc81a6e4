"""RMSNorm (Zhang & Sennrich, 2019): scale each row by its root mean square.

Variants used by real models are keyword options of the one kernel:
``eps_inside_sqrt`` (where ε goes), ``add_unit_offset`` (Gemma's ``1 + γ``) and
``partial`` (pRMSNorm: the RMS of the first ``p`` fraction of the features).
"""

import math

import torch
from torch import nn

from normlab._validate import check_eps, check_input, check_param, check_real, compute_dtype


def default_eps(dtype):
    """The ε that ``torch.nn.functional.rms_norm`` uses for ``eps=None``.

    It is the machine epsilon of the *compute* dtype: float32's (≈1.19e-7) for
    float16/bfloat16 inputs, not the input dtype's.
    """
    return torch.finfo(compute_dtype(dtype)).eps


def partial_size(partial, d):
    """How many of the ``d`` features pRMSNorm uses: ``k = ⌊p·d⌋`` (as the reference code).

    ``partial=None`` means all ``d``. Raises if ``p`` is not in (0, 1] or ``k`` would be 0.
    """
    if partial is None:
        return d
    p = check_real(partial, "partial", positive=True)
    if p > 1:
        raise ValueError(f"partial must be a fraction in (0, 1], got {partial}")
    k = math.floor(p * d)
    if k == 0:
        raise ValueError(f"partial={partial} keeps no feature of d={d}: need partial >= 1/d")
    return k


def gain(weight, add_unit_offset, dtype):
    """The factor ``g`` of ``y = g ⊙ x̂``: ``weight``, or ``1 + weight`` (Gemma), in ``dtype``.

    ``weight`` is upcast first (``1 + w`` in bfloat16 would round small ``w`` away);
    ``None`` when there is no weight.
    """
    if weight is None:
        if add_unit_offset:
            raise ValueError("add_unit_offset=True needs a weight (the y = x̂·(1 + weight) form)")
        return None
    g = weight.to(dtype)
    return 1 + g if add_unit_offset else g


def rms_norm(x, normalized_shape, weight=None, eps=None, *, eps_inside_sqrt=True,
             add_unit_offset=False, partial=None):
    r"""RMSNorm over the trailing ``normalized_shape`` dimensions of ``x`` (d features).

    .. math::
        \mathrm{RMS}_\epsilon(x) = \sqrt{\tfrac1k \textstyle\sum_{i\le k} x_i^2 + \epsilon}
        \;\text{(eps_inside_sqrt=True)}
        \quad\text{or}\quad
        \sqrt{\tfrac1k \textstyle\sum_{i\le k} x_i^2} + \epsilon \;\text{(False)},\qquad
        y = g \odot \frac{x}{\mathrm{RMS}_\epsilon(x)}

    with ``g = weight`` (or ``1 + weight`` if ``add_unit_offset``, Gemma's form) and
    ``k = d`` (or ``⌊partial·d⌋``, pRMSNorm: the first features in row-major order).
    ``eps=None`` means :func:`default_eps` (as in ``torch.nn.functional.rms_norm``).
    ``eps_inside_sqrt=True`` is PyTorch's and LLaMA's formula; ``False`` is the one in
    the original paper's PyTorch reference code. Half-precision inputs are computed in
    float32 (weight included) and returned in their own dtype.

    Rows whose squares overflow (float32 entries around 1e20) are computed again on
    x / max|x| with ε rescaled (:func:`rescaled_inv_rms`): the same y, where PyTorch
    returns zeros. Rows holding ±inf or NaN give NaN.
    """
    shape = check_input(x, normalized_shape)
    eps = default_eps(x.dtype) if eps is None else check_eps(eps)
    check_param(weight, "weight", x, shape)
    g = gain(weight, add_unit_offset, compute_dtype(x.dtype))
    k = partial_size(partial, math.prod(shape))
    xf = x.to(compute_dtype(x.dtype))
    rows = xf.flatten(start_dim=x.dim() - len(shape))[..., :k]  # (..., k)
    rstd = inv_rms(rows, eps, eps_inside_sqrt)  # (...,): 1/RMS_ε of each row
    y = _gained(xf * rstd.reshape(rstd.shape + (1,) * len(shape)), g).to(x.dtype)
    if not (rstd > 0).all():  # rare: a row's squares overflowed (rstd = 0), or it holds NaN
        x_hat = _rescued_x_hat(xf, rows, eps, eps_inside_sqrt, rstd, len(shape))
        y = _gained(x_hat, g).to(x.dtype)
    return y


def _rescued_x_hat(xf, rows, eps, eps_inside_sqrt, rstd, n_dims):
    """x̂ = x / RMS_ε(x) with the rows whose ``rstd`` is not positive (0: the squares
    overflowed; NaN: the row holds NaN) recomputed by :func:`rescaled_inv_rms` with
    s = max|x|. Each row depends only on itself (batch-invariant), and each branch sees
    zeros in the other's rows, so no inf or NaN reaches a gradient through ``torch.where``.
    Rows holding ±inf or NaN give NaN."""
    bad = ~(rstd > 0)
    s = torch.where(bad, rows.detach().abs().amax(dim=-1).double(), 1.0)
    rstd = inv_rms(torch.where(bad[..., None], 0.0, rows), eps, eps_inside_sqrt)
    rstd_z = rescaled_inv_rms(torch.where(bad[..., None], rows, 0.0), eps, eps_inside_sqrt, s)
    bad, s, rstd, rstd_z = (t.reshape(t.shape + (1,) * n_dims) for t in (bad, s, rstd, rstd_z))
    rescaled = (torch.where(bad, xf, 0.0) / s * rstd_z).to(xf.dtype)
    return torch.where(bad, rescaled, torch.where(bad, 0.0, xf) * rstd)


def _gained(x_hat, g):
    """``g ⊙ x_hat`` (``x_hat`` when there is no gain)."""
    return x_hat if g is None else x_hat * g


def inv_rms(rows, eps, eps_inside_sqrt):
    r""":math:`1/\mathrm{RMS}_\epsilon` over the last dim of ``rows`` (k features), from the
    mean square :math:`\tfrac1k\sum_i x_i^2`. It is 0 for a row whose squares overflow."""
    if eps_inside_sqrt:
        mean_square = rows.pow(2).mean(dim=-1)
        return torch.rsqrt(mean_square + eps)
    # RMS = ‖x‖/√k as in the paper's code: autograd of ‖x‖ at x = 0 is 0, of √(x²) NaN
    return 1.0 / (torch.linalg.vector_norm(rows, dim=-1) / math.sqrt(rows.shape[-1]) + eps)


def rescaled_inv_rms(rows, eps, eps_inside_sqrt, s):
    r""":math:`1/\mathrm{RMS}_{\epsilon'}(z)` computed in float64 on :math:`z = x/s`, for
    a per-row scale ``s`` (constant: no gradient flows through it), with the ε' that keeps
    ε's meaning: :math:`\mathrm{RMS}_\epsilon(x) = s\,\mathrm{RMS}_{\epsilon'}(z)`, since

    .. math:: \sqrt{s^2\,\overline{z^2} + \epsilon} = s\sqrt{\overline{z^2} + \epsilon/s^2}
        \;(\epsilon' = \epsilon/s^2),\qquad
        s\sqrt{\overline{z^2}} + \epsilon = s\,\big(\sqrt{\overline{z^2}} + \epsilon/s\big)
        \;(\epsilon' = \epsilon/s).

    So :math:`y = g \odot z / \mathrm{RMS}_{\epsilon'}(z)` exactly. With s = max|x| the
    squares of z cannot overflow (|z| ≤ 1).
    """
    eps_z = eps / s / s if eps_inside_sqrt else eps / s
    return inv_rms(rows.to(torch.float64) / s[..., None], eps_z, eps_inside_sqrt)


class RMSNorm(nn.RMSNorm):
    """Drop-in for ``torch.nn.RMSNorm`` (same arguments, parameters and state dict)
    whose forward is :func:`normlab.rms_norm`.

    Keyword-only options (not in the state dict) pick the variant: ``eps_inside_sqrt``,
    ``add_unit_offset`` (the weight then starts at 0, so the layer starts as ``x̂``,
    as in Gemma) and ``partial``. ``elementwise_affine=False`` gives no weight at all.
    """

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, *,
                 eps_inside_sqrt=True, add_unit_offset=False, partial=None,
                 device=None, dtype=None):
        super().__init__(normalized_shape, eps, elementwise_affine, device=device, dtype=dtype)
        if add_unit_offset and not elementwise_affine:
            raise ValueError("add_unit_offset=True needs elementwise_affine=True (a weight)")
        partial_size(partial, math.prod(self.normalized_shape))  # fail early, not at forward
        self.eps_inside_sqrt = eps_inside_sqrt
        self.add_unit_offset = add_unit_offset
        self.partial = partial
        self.reset_parameters()

    def reset_parameters(self):
        """γ = 1, or the offset form's stored weight = 0 (so that 1 + weight = 1)."""
        if self.weight is not None:
            init = nn.init.zeros_ if getattr(self, "add_unit_offset", False) else nn.init.ones_
            init(self.weight)

    def forward(self, x):
        return rms_norm(x, self.normalized_shape, self.weight, self.eps,
                        eps_inside_sqrt=self.eps_inside_sqrt,
                        add_unit_offset=self.add_unit_offset, partial=self.partial)

    def extra_repr(self):
        return (super().extra_repr() + f", eps_inside_sqrt={self.eps_inside_sqrt}"
                f", add_unit_offset={self.add_unit_offset}, partial={self.partial}")
