r"""nGPT's update of the hidden state on the unit hypersphere (Loshchilov et al. 2025).

In nGPT every hidden vector has unit length. A sub-layer ``F`` (attention or MLP) does not
add its output to a residual stream: its normalised output is a point on the sphere, and
the hidden state ``h`` moves a learned fraction ``α`` of the way towards it and is put back
on the sphere:

.. math::
    h \leftarrow \mathrm{Norm}\big(h + \alpha \odot (\mathrm{Norm}(F(h)) - h)\big),
    \qquad \mathrm{Norm}(v) = v / \lVert v \rVert_2 .

``α`` has one entry per feature (the paper's "eigen learning rates"). Only this update is
here; the rest of nGPT (weight rows kept at unit norm by a projection after every optimizer
step, learned scalings of the queries, keys and output logits) is not.
"""

import torch

from normlab._validate import check_input


def unit_norm(x, eps=1e-12):
    """``x / max(‖x‖₂, eps)`` over the last dimension: each row onto the unit sphere."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)


def ngpt_update(h, h_sub, alpha):
    """``unit_norm(h + alpha * (unit_norm(h_sub) - h))``.

    ``h``: ``(..., d)`` hidden states of unit length; ``h_sub``: the sub-layer's output, same
    shape; ``alpha``: a number or a ``(d,)`` tensor (``0`` keeps ``h``, ``1`` jumps to the
    normalised ``h_sub``).
    """
    for t, name in ((h, "h"), (h_sub, "h_sub")):
        check_input(t, t.shape[-1:] if isinstance(t, torch.Tensor) and t.dim() else 1, name)
    if h.shape != h_sub.shape:
        raise ValueError(f"h and h_sub must have the same shape, got {tuple(h.shape)} and "
                         f"{tuple(h_sub.shape)}")
    target = unit_norm(h_sub)  # (..., d) on the sphere
    return unit_norm(h + alpha * (target - h))
