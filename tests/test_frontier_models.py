"""Chapter 8's model options: chapter 6's model as a special case, invariances, DeepNorm."""

import pytest
import torch

from normlab.dyt import DyT
from normlab.experiments.frontier_models import (
    FrontierBlock,
    FrontierTransformer,
    QKNormAttention,
    make_norm,
)
from normlab.experiments.models import TinyTransformer

VOCAB = 11
SMALL = {"d_model": 16, "n_layers": 3, "n_heads": 2, "block_size": 8}


def _ids(seed=1):
    return torch.randint(VOCAB, (2, 8), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("placement,ch6", [("pre", "pre"), ("post", "post"), ("peri", "sandwich")])
def test_chapter_6_model_is_a_special_case(placement, ch6):
    torch.manual_seed(0)
    old = TinyTransformer(VOCAB, norm="rmsnorm", placement=ch6, **SMALL)
    new = FrontierTransformer(VOCAB, norm="rmsnorm", placement=placement, **SMALL)
    new.load_state_dict(old.state_dict())  # strict: the same parameter names and shapes
    assert torch.allclose(new(_ids()), old(_ids()), atol=1e-6)


@pytest.mark.parametrize("qk_norm", ["head", "projection"])
def test_qk_norm_makes_attention_blind_to_the_scale_of_q_and_k(qk_norm):
    torch.manual_seed(0)
    attn = QKNormAttention(16, 2, qk_norm)
    x = torch.randn(2, 5, 16)
    before = attn(x)
    with torch.no_grad():
        attn.qkv.weight[:32] *= 7.0  # q and k rows
        attn.qkv.bias[:32] *= 7.0
    assert torch.allclose(attn(x), before, atol=1e-4)  # up to eps
    width = 8 if qk_norm == "head" else 16
    assert attn.q_norm.weight.shape == (width,) and "k_norm.weight" in attn.state_dict()


def test_without_qk_norm_the_logits_grow_with_the_scale():
    torch.manual_seed(0)
    attn = QKNormAttention(16, 2, "none")
    x = torch.randn(2, 5, 16)
    attn(x)
    small = attn.max_logit
    with torch.no_grad():
        attn.qkv.weight[:32] *= 3.0
        attn.qkv.bias[:32] *= 3.0
    attn(x)
    assert attn.max_logit == pytest.approx(9 * small, rel=1e-4)


def test_layernorm_scaling_equals_scaled_norm_weights():
    torch.manual_seed(0)
    scaled = FrontierBlock(16, 2, placement="pre", ln_scaling=True, layer=4)
    plain = FrontierBlock(16, 2, placement="pre")
    plain.load_state_dict(scaled.state_dict())
    with torch.no_grad():
        plain.norm1.weight.mul_(0.5)  # 1/sqrt(4)
        plain.norm2.weight.mul_(0.5)
    x = torch.randn(2, 5, 16)
    assert torch.allclose(scaled(x), plain(x), atol=1e-6)


def test_deepnorm_alpha_beta_and_alpha_one_is_post_norm():
    torch.manual_seed(0)
    deep = FrontierTransformer(VOCAB, placement="deepnorm", **SMALL)
    torch.manual_seed(0)
    post = FrontierTransformer(VOCAB, placement="post", **SMALL)
    block, beta = deep.blocks[0], 24 ** -0.25  # L = 3 layers: (2L)^(1/4), (8L)^(-1/4)
    assert block.alpha == pytest.approx(6 ** 0.25) and post.blocks[0].alpha == 1.0
    w_deep, w_post = block.attn.qkv.weight, post.blocks[0].attn.qkv.weight
    assert torch.equal(w_deep[:32], w_post[:32])  # q, k unscaled
    assert torch.allclose(w_deep[32:], beta * w_post[32:])  # v scaled
    for name in ("attn.proj.weight", "mlp.fc.weight", "mlp.out.weight"):
        assert torch.allclose(block.get_parameter(name),
                              beta * post.blocks[0].get_parameter(name))
    block.alpha = 1.0
    post.blocks[0].load_state_dict(block.state_dict())
    x = torch.randn(2, 5, 16)
    assert torch.allclose(block(x), post.blocks[0](x), atol=1e-6)


def test_olmo2_has_only_output_norms_and_a_final_norm():
    model = FrontierTransformer(VOCAB, placement="olmo2", **SMALL)
    keys = model.blocks[0].state_dict().keys()
    assert "post_norm1.weight" in keys and not any(k.startswith("norm1") for k in keys)
    assert "final_norm.weight" in model.state_dict()


def test_dyt_everywhere_and_shapes():
    model = FrontierTransformer(VOCAB, norm="dyt", placement="pre", qk_norm="head", **SMALL)
    assert isinstance(model.final_norm, DyT) and isinstance(model.blocks[2].norm2, DyT)
    logits, loss = model(_ids(), _ids(2))
    assert logits.shape == (2, 8, VOCAB) and loss.ndim == 0
    loss.backward()
    assert model.blocks[0].norm1.alpha.grad is not None
    assert isinstance(make_norm("layernorm", 4), torch.nn.Module)


def test_bad_options_name_the_problem():
    with pytest.raises(ValueError, match="placement"):
        FrontierBlock(16, 2, placement="middle")
    with pytest.raises(ValueError, match="qk_norm"):
        QKNormAttention(16, 2, "both")
    with pytest.raises(ValueError, match="ln_scaling"):
        FrontierBlock(16, 2, placement="post", ln_scaling=True)
    with pytest.raises(ValueError, match="norm"):
        FrontierTransformer(VOCAB, norm="batchnorm", **SMALL)
