r"""A small decoder-only Transformer whose normalization type and placement are arguments.

A block maps the residual stream ``x`` of shape ``(B, T, d)`` with sub-layers
``F`` = causal self-attention, then ``F`` = MLP, and a norm ``N`` placed as

.. math::
    \text{post:}\; x \leftarrow N(x + F(x)) \qquad
    \text{pre:}\; x \leftarrow x + F(N(x)) \qquad
    \text{sandwich:}\; x \leftarrow x + N'(F(N(x)))

Post-norm is the original Transformer's and BERT's; pre-norm is GPT-2's and LLaMA's;
sandwich (a second norm on each sub-layer's output) is Gemma 2's and "Peri-LN".
Pre-norm and sandwich end with a final norm before the output layer; post-norm's stream
is already normalized. ``norm="none"`` makes every ``N`` the identity.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

from normlab._validate import check_choice
from normlab.layer_norm import LayerNorm
from normlab.rms_norm import RMSNorm

NORMS = ("layernorm", "rmsnorm", "none")
PLACEMENTS = ("post", "pre", "sandwich")


def make_norm(norm, d_model, eps=1e-5):
    """``normlab.LayerNorm``, ``normlab.RMSNorm`` or the identity over the last ``d_model`` dims."""
    check_choice(norm, NORMS, "norm")
    if norm == "layernorm":
        return LayerNorm(d_model, eps=eps)
    if norm == "rmsnorm":
        return RMSNorm(d_model, eps=eps)
    return nn.Identity()


class CausalSelfAttention(nn.Module):
    r"""Multi-head attention where token ``t`` sees only tokens ``s <= t``.

    .. math::
        \mathrm{softmax}\big(QK^\top/\sqrt{d_h} + M\big)V,\quad
        M_{ts} = -\infty \text{ if } s > t \text{ else } 0
    """

    def __init__(self, d_model, n_heads):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x):
        B, T, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        # (B, T, d) -> (B, heads, T, d_head)
        q, k, v = (t.view(B, T, self.n_heads, -1).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, heads, T, T)
        future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
        y = scores.softmax(dim=-1) @ v  # (B, heads, T, d_head)
        return self.proj(y.transpose(1, 2).reshape(B, T, d))


class MLP(nn.Module):
    """``W_2 GELU(W_1 x)`` with a 4x wider hidden layer."""

    def __init__(self, d_model):
        super().__init__()
        self.fc = nn.Linear(d_model, 4 * d_model)
        self.out = nn.Linear(4 * d_model, d_model)

    def forward(self, x):
        return self.out(F.gelu(self.fc(x)))


class Block(nn.Module):
    """Attention and MLP sub-layers with residual connections and norms at ``placement``."""

    def __init__(self, d_model, n_heads, norm="layernorm", placement="pre", eps=1e-5):
        super().__init__()
        check_choice(placement, PLACEMENTS, "placement")
        self.placement = placement
        self.attn = CausalSelfAttention(d_model, n_heads)
        self.mlp = MLP(d_model)
        self.norm1 = make_norm(norm, d_model, eps)
        self.norm2 = make_norm(norm, d_model, eps)
        if placement == "sandwich":  # a second norm on each sub-layer output
            self.post_norm1 = make_norm(norm, d_model, eps)
            self.post_norm2 = make_norm(norm, d_model, eps)

    def forward(self, x):
        if self.placement == "post":
            x = self.norm1(x + self.attn(x))
            return self.norm2(x + self.mlp(x))
        if self.placement == "pre":
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))
        x = x + self.post_norm1(self.attn(self.norm1(x)))
        return x + self.post_norm2(self.mlp(self.norm2(x)))


class TinyTransformer(nn.Module):
    """Decoder-only character model: embeddings, ``n_layers`` blocks, (final norm), logits.

    ``forward(idx)`` takes token ids of shape ``(B, T)`` with ``T <= block_size`` and returns
    logits ``(B, T, vocab_size)``; with ``targets`` it also returns the mean cross-entropy.
    """

    def __init__(self, vocab_size, d_model=64, n_layers=4, n_heads=4, block_size=64,
                 norm="layernorm", placement="pre", eps=1e-5):
        super().__init__()
        check_choice(norm, NORMS, "norm")
        check_choice(placement, PLACEMENTS, "placement")
        self.norm, self.placement, self.block_size = norm, placement, block_size
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(block_size, d_model)
        self.blocks = nn.ModuleList(
            Block(d_model, n_heads, norm, placement, eps) for _ in range(n_layers)
        )
        # Post-norm's last block already ends in a norm; the other placements need one here.
        final = "none" if placement == "post" else norm
        self.final_norm = make_norm(final, d_model, eps)
        self.head = nn.Linear(d_model, vocab_size)
        self.apply(_init_weights)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        if T > self.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size={self.block_size}")
        x = self.tok_emb(idx) + self.pos_emb(torch.arange(T, device=idx.device))  # (B, T, d)
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.final_norm(x))  # (B, T, vocab)
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss


def _init_weights(module):
    """Xavier-uniform linear weights and zero biases (as Xiong et al. 2020 analyse);
    embeddings N(0, 1/d) so each token vector has norm ~1. Norm layers keep γ=1, β=0."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=module.embedding_dim ** -0.5)
