"""The chapter-6 Transformer (normlab.experiments.models) and its data (experiments.char_data)."""

import pytest
import torch
from torch import nn

import normlab
from normlab.experiments.char_data import (
    CharDataset,
    encode,
    eval_batches,
    get_batch,
    load_dataset,
    load_text,
)
from normlab.experiments.models import (
    NORMS,
    PLACEMENTS,
    Block,
    CausalSelfAttention,
    TinyTransformer,
    make_norm,
)

VOCAB = 11


def tiny(norm="layernorm", placement="pre", seed=0, **kwargs):
    torch.manual_seed(seed)
    args = {"d_model": 16, "n_layers": 2, "n_heads": 2, "block_size": 8, **kwargs}
    return TinyTransformer(VOCAB, norm=norm, placement=placement, **args)


def ids(batch=3, length=8, seed=1):
    return torch.randint(VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_shapes_and_finite_loss(norm, placement):
    model = tiny(norm, placement)
    x = ids()
    logits, loss = model(x, ids(seed=2))
    assert logits.shape == (3, 8, VOCAB)
    assert model(x[:, :5]).shape == (3, 5, VOCAB)  # shorter sequences are fine
    assert loss.ndim == 0 and torch.isfinite(loss)
    # At init the prediction is near uniform: loss close to log(vocab).
    assert abs(loss.item() - torch.log(torch.tensor(VOCAB * 1.0)).item()) < 1.0


def test_norm_switching_uses_normlab_modules():
    assert type(make_norm("layernorm", 8)) is normlab.LayerNorm
    assert type(make_norm("rmsnorm", 8)) is normlab.RMSNorm
    assert type(make_norm("none", 8)) is nn.Identity
    assert make_norm("rmsnorm", 8, eps=1e-6).eps == 1e-6
    for norm, kind in [("layernorm", normlab.LayerNorm), ("rmsnorm", normlab.RMSNorm)]:
        counts = {p: sum(isinstance(m, kind) for m in tiny(norm, p).modules()) for p in PLACEMENTS}
        # 2 layers: post 2 per block; pre 2 per block + final; sandwich 4 per block + final.
        assert counts == {"post": 4, "pre": 5, "sandwich": 9}
    assert not any(isinstance(m, (nn.LayerNorm, nn.RMSNorm)) for m in tiny("none").modules())


def test_same_seed_same_shared_weights_across_norms():
    """Norm layers draw no random numbers, so every configuration starts from the same weights."""
    ref = tiny("layernorm", "post").state_dict()
    for norm in NORMS:
        for placement in ("post", "pre"):
            state = tiny(norm, placement).state_dict()
            for key, value in state.items():
                if key in ref and "norm" not in key:
                    torch.testing.assert_close(value, ref[key], rtol=0, atol=0)


def test_placements_compute_different_functions():
    x = ids()
    outs = {p: tiny("layernorm", p)(x) for p in PLACEMENTS}
    assert not torch.allclose(outs["post"], outs["pre"])
    assert not torch.allclose(outs["pre"], outs["sandwich"])
    # Without norms, post and pre are the same network (the "none" row appears once).
    torch.testing.assert_close(tiny("none", "post")(x), tiny("none", "pre")(x))


def test_post_norm_block_output_is_normalized():
    block = Block(16, 2, "layernorm", "post")
    y = block(torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(0)) * 7)
    torch.testing.assert_close(y.mean(-1), torch.zeros(2, 5), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(-1, unbiased=False), torch.ones(2, 5), atol=1e-3, rtol=0)


def test_deterministic_loss_on_fixed_seed():
    x, y = ids(seed=3), ids(seed=4)
    first = tiny("rmsnorm", "post", seed=5)(x, y)[1]
    again = tiny("rmsnorm", "post", seed=5)(x, y)[1]
    other = tiny("rmsnorm", "post", seed=6)(x, y)[1]
    assert first.item() == again.item()
    assert first.item() != other.item()


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_causal_mask_future_tokens_do_not_change_the_past(placement):
    model = tiny("layernorm", placement)
    x = ids(batch=2)
    changed = x.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % VOCAB
    before, after = model(x), model(changed)
    torch.testing.assert_close(before[:, :5], after[:, :5], rtol=0, atol=0)
    assert not torch.allclose(before[:, 5:], after[:, 5:])


def test_attention_matches_torch_sdpa_float64():
    torch.manual_seed(0)
    attn = CausalSelfAttention(12, 3).double()
    x = torch.randn(2, 7, 12, dtype=torch.float64)
    q, k, v = attn.qkv(x).split(12, dim=-1)
    q, k, v = (t.view(2, 7, 3, 4).transpose(1, 2) for t in (q, k, v))
    ref = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    ref = attn.proj(ref.transpose(1, 2).reshape(2, 7, 12))
    torch.testing.assert_close(attn(x), ref)


def test_gradcheck_float64():
    model = tiny("rmsnorm", "sandwich", d_model=8, n_layers=1).double()
    emb = torch.randn(1, 4, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda e: model.blocks[0](e), (emb,))


@pytest.mark.parametrize(
    "kwargs, message",
    [({"norm": "batchnorm"}, "norm must be one of"), ({"placement": "middle"}, "placement must"),
     ({"d_model": 10, "n_heads": 3}, "divisible by n_heads")],
)
def test_bad_arguments_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny(**kwargs)


def test_too_long_sequence_raises():
    with pytest.raises(ValueError, match="block_size"):
        tiny()(ids(length=9))


def test_shipped_text_and_dataset():
    text = load_text()
    assert 100_000 < len(text.encode()) < 500_000 and text.startswith("Persuasion")
    data = load_dataset()
    assert data.vocab_size == len(set(text)) and data.chars == tuple(sorted(set(text)))
    assert len(data.train) + len(data.val) == len(text)
    assert data.decode(data.train[:10]) == text[:10]
    assert data.decode(data.val[:10]) == text[len(data.train):len(data.train) + 10]


def test_dataset_bad_inputs():
    with pytest.raises(ValueError, match="train_fraction"):
        CharDataset.from_text("abcabc", train_fraction=1.5)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        encode("abz", ("a", "b"))
    with pytest.raises(ValueError, match="block_size"):
        get_batch(torch.arange(5), 2, 5, torch.Generator())


def test_batches_are_seeded_and_shifted_by_one():
    data = torch.arange(100)
    x, y = get_batch(data, 4, 6, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 6)
    torch.testing.assert_close(y, x + 1)
    x2, _ = get_batch(data, 4, 6, torch.Generator().manual_seed(0))
    torch.testing.assert_close(x, x2)
    a = eval_batches(data, 2, 4, 6, seed=3)
    b = eval_batches(data, 2, 4, 6, seed=3)
    assert all(torch.equal(p[0], q[0]) for p, q in zip(a, b, strict=True))
