r"""Chapter 8's options for chapter 6's Transformer: QK-norm, placements, DyT, depth scaling.

A block applies, for each sub-layer ``F`` (attention, then MLP) and norms ``N``, ``N'``:

.. math::
    \text{post:}\ x \leftarrow N(x + F(x)) \qquad
    \text{deepnorm:}\ x \leftarrow N(\alpha x + F(x)),\ \alpha = (2L)^{1/4} \\
    \text{pre:}\ x \leftarrow x + F(s_\ell N(x)) \qquad
    \text{peri:}\ x \leftarrow x + N'(F(s_\ell N(x))) \qquad
    \text{olmo2:}\ x \leftarrow x + N'(F(x))

with ``s_ℓ = 1/√ℓ`` in layer ``ℓ = 1..L`` when ``ln_scaling`` (LayerNorm Scaling), else 1.
Peri is chapter 6's "sandwich" (Gemma 2/3); DeepNorm also scales the initial value, output
and MLP weights by ``β = (8L)^{-1/4}`` (decoder-only constants of Wang et al. 2022).
``qk_norm`` RMS-normalises queries and keys before ``QKᵀ``: per head over ``d_h`` features
(``"head"``, Qwen3, Gemma 3) or over the whole ``d``-wide projection (``"projection"``, OLMo 2).
With the defaults the model is chapter 6's pre-norm model (same state dict, same output).
"""

import math

import torch
from torch import nn

from normlab._validate import check_choice
from normlab.dyt import DyT
from normlab.experiments import models
from normlab.rms_norm import RMSNorm

NORMS = ("layernorm", "rmsnorm", "dyt")
PLACEMENTS = ("post", "deepnorm", "pre", "peri", "olmo2")
QK_NORMS = ("none", "head", "projection")
# Which norms a placement has: before each sub-layer (norm1/2), after it (post_norm1/2).
_INPUT_NORMS = ("post", "deepnorm", "pre", "peri")
_OUTPUT_NORMS = ("peri", "olmo2")


def make_norm(norm, d_model, eps=1e-5):
    """Chapter 6's ``make_norm`` plus ``"dyt"``: :class:`normlab.DyT`."""
    return DyT(d_model) if norm == "dyt" else models.make_norm(norm, d_model, eps)


class QKNormAttention(models.CausalSelfAttention):
    r"""Causal attention with optional QK-norm: ``softmax(N(q) N(k)ᵀ/√d_h + M) v``.

    After each forward, ``max_logit`` holds ``max |qᵀk|/√d_h`` of that batch (a float).
    """

    def __init__(self, d_model, n_heads, qk_norm="none", eps=1e-5):
        super().__init__(d_model, n_heads)
        self.qk_norm = check_choice(qk_norm, QK_NORMS, "qk_norm")
        if qk_norm != "none":
            width = d_model // n_heads if qk_norm == "head" else d_model
            self.q_norm, self.k_norm = RMSNorm(width, eps), RMSNorm(width, eps)
        self.max_logit = None

    def forward(self, x):
        B, T, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        if self.qk_norm == "projection":  # OLMo 2: one RMS over all heads' features
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = (t.view(B, T, self.n_heads, -1).transpose(1, 2) for t in (q, k, v))
        if self.qk_norm == "head":  # Qwen3, Gemma 3: one RMS per head
            q, k = self.q_norm(q), self.k_norm(k)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, heads, T, T)
        future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        self.max_logit = scores.detach().masked_fill(future, 0).abs().max().item()
        y = scores.masked_fill(future, float("-inf")).softmax(dim=-1) @ v
        return self.proj(y.transpose(1, 2).reshape(B, T, d))


class FrontierBlock(nn.Module):
    """Attention and MLP sub-layers with the norms of ``placement`` (see the module doc);
    ``layer`` (1-based) and ``n_layers`` set LayerNorm Scaling's ``1/√layer`` and DeepNorm's α."""

    def __init__(self, d_model, n_heads, *, norm="rmsnorm", placement="pre", qk_norm="none",
                 ln_scaling=False, layer=1, n_layers=1, eps=1e-5):
        super().__init__()
        check_choice(norm, NORMS, "norm")
        self.placement = check_choice(placement, PLACEMENTS, "placement")
        if ln_scaling and placement not in ("pre", "peri"):
            raise ValueError(f"ln_scaling scales a pre-sub-layer norm: use placement 'pre' or "
                             f"'peri', got {placement!r}")
        self.attn = QKNormAttention(d_model, n_heads, qk_norm, eps)
        self.mlp = models.MLP(d_model)
        for i in (1, 2):
            if placement in _INPUT_NORMS:
                setattr(self, f"norm{i}", make_norm(norm, d_model, eps))
            if placement in _OUTPUT_NORMS:
                setattr(self, f"post_norm{i}", make_norm(norm, d_model, eps))
        self.scale = 1 / math.sqrt(layer) if ln_scaling else 1.0
        self.alpha = (2 * n_layers) ** 0.25 if placement == "deepnorm" else 1.0

    def forward(self, x):
        for i, sub in ((1, self.attn), (2, self.mlp)):
            n_in = getattr(self, f"norm{i}", None)
            n_out = getattr(self, f"post_norm{i}", None)
            if self.placement in ("post", "deepnorm"):
                x = n_in(self.alpha * x + sub(x))
            elif self.placement == "olmo2":
                x = x + n_out(sub(x))
            else:
                h = sub(self.scale * n_in(x))
                x = x + (h if n_out is None else n_out(h))
        return x


class FrontierTransformer(models.TinyTransformer):
    """Chapter 6's :class:`~normlab.experiments.models.TinyTransformer` with chapter 8's
    blocks; embeddings, head, initialisation and ``forward`` are chapter 6's."""

    def __init__(self, vocab_size, d_model=64, n_layers=4, n_heads=4, block_size=64, *,
                 norm="rmsnorm", placement="pre", qk_norm="none", ln_scaling=False, eps=1e-5):
        super().__init__(vocab_size, d_model, n_layers, n_heads, block_size, "none", "pre", eps)
        self.norm, self.placement = check_choice(norm, NORMS, "norm"), placement
        self.blocks = nn.ModuleList(
            FrontierBlock(d_model, n_heads, norm=norm, placement=placement, qk_norm=qk_norm,
                          ln_scaling=ln_scaling, layer=i + 1, n_layers=n_layers, eps=eps)
            for i in range(n_layers))
        # Post-norm's stream ends normalized; every other placement needs a final norm.
        final = placement not in ("post", "deepnorm")
        self.final_norm = make_norm(norm, d_model, eps) if final else nn.Identity()
        self.blocks.apply(models._init_weights)
        if placement == "deepnorm":
            deepnorm_init_(self.blocks, n_layers)


@torch.no_grad()
def deepnorm_init_(blocks, n_layers):
    """Multiply the value, attention-output and MLP weights by ``β = (8L)^{-1/4}``."""
    beta = (8 * n_layers) ** -0.25
    for block in blocks:
        d = block.attn.proj.weight.shape[0]
        block.attn.qkv.weight[2 * d:] *= beta  # rows of v in the fused q|k|v projection
        for linear in (block.attn.proj, block.mlp.fc, block.mlp.out):
            linear.weight *= beta
