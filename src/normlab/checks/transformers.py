"""Checkers for the exercises of chapter 6 (normalization inside a Transformer)."""

import torch

from normlab.checks._base import call, describe, expect_tensor_close, fail, passed
from normlab.experiments.models import Block, TinyTransformer


def _block(placement, seed=0, d_model=16, n_heads=2):
    torch.manual_seed(seed)
    return Block(d_model, n_heads, "layernorm", placement)


def _perturb_norms(block, seed):
    """Give the norms non-trivial γ, β so that mixing up norm1 and norm2 is detected."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for norm in (block.norm1, block.norm2):
            norm.weight.copy_(1 + 0.5 * torch.randn(norm.weight.shape, generator=gen))
            norm.bias.copy_(0.5 * torch.randn(norm.bias.shape, generator=gen))


def pre_norm_exercise(pre_norm_forward):
    """Exercise 2: ``pre_norm_forward(block, x)`` computes a pre-norm block from its parts."""
    block = _block("pre")
    _perturb_norms(block, seed=1)
    x = 3 * torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = call(pre_norm_forward, block, x)
        expected = block(x)
        block.placement = "post"
        post = block(x)
    if isinstance(got, torch.Tensor) and got.shape == post.shape and torch.allclose(got, post):
        fail("pre_norm_forward returns the post-norm block N(x + F(x)): the norm is still after "
             "the residual addition.",
             "In pre-norm the residual stream is never normalized: x + attn(norm1(x)).")
    expect_tensor_close(got, expected, f"pre_norm_forward(block, x) for x = {describe(x)}",
                        hint="Two steps: x = x + block.attn(block.norm1(x)), then "
                             "x = x + block.mlp(block.norm2(x)). Use norm1 before attention "
                             "and norm2 before the MLP.")
    passed("pre_norm_forward matches normlab's pre-norm Block: the residual path is untouched.")


def grad_norms_exercise(layer_grad_norms):
    """Exercise 3: ``layer_grad_norms(model)`` returns ‖∂L/∂W₂‖_F per layer after ``backward``."""
    torch.manual_seed(0)
    model = TinyTransformer(11, d_model=16, n_layers=3, n_heads=2, block_size=8,
                            placement="post")
    x = torch.randint(11, (4, 8), generator=torch.Generator().manual_seed(1))
    model(x, x.roll(-1, dims=1))[1].backward()
    expected = [b.mlp.out.weight.grad.norm().item() for b in model.blocks]
    got = call(layer_grad_norms, model)
    try:
        got = [float(g) for g in got]
    except (TypeError, ValueError):
        fail(f"layer_grad_norms should return a list of numbers, got {got!r}.")
    if len(got) != len(expected):
        fail(f"expected one number per layer ({len(expected)} layers), got {len(got)}.",
             "Loop over model.blocks.")
    if torch.allclose(torch.tensor(got), torch.tensor(expected[::-1]), rtol=1e-4):
        fail("the values are right but in reverse order.", "Layer 1 (closest to the input) first.")
    weight_norms = [b.mlp.out.weight.norm().item() for b in model.blocks]
    if torch.allclose(torch.tensor(got), torch.tensor(weight_norms), rtol=1e-4):
        fail("these are the norms of the weights, not of their gradients.",
             "Use block.mlp.out.weight.grad.")
    for layer, (g, e) in enumerate(zip(got, expected, strict=True), start=1):
        if abs(g - e) > 1e-4 * abs(e) + 1e-8:
            fail(f"layer {layer}: expected ‖∂L/∂W₂‖_F = {e:.6g}, got {g:.6g}.",
                 "Frobenius norm of block.mlp.out.weight.grad: .norm() with no arguments.")
    passed("layer_grad_norms returns ‖∂L/∂W₂‖_F for every layer, first layer first.")


def placement_prediction_exercise(predict, grad_norm_runs):
    """Exercise 1: ``predict()`` names the placement (with LayerNorm) whose *last* layer has
    the largest gradient norm at initialization in the deepest model.

    ``grad_norm_runs`` are the ``runs`` of the committed ``grad_norms.json``.
    """
    choices = ("post", "pre", "sandwich")
    answer = call(predict)
    if answer not in choices:
        fail(f"answer must be one of {list(choices)}, got {answer!r}.")
    deepest = max(r["depth"] for r in grad_norm_runs)
    last = {r["placement"]: r["grad_norm"][-1] for r in grad_norm_runs
            if r["norm"] == "layernorm" and r["depth"] == deepest}
    truth = max(last, key=last.get)
    summary = ", ".join(f"{p}: {last[p]:.3g}" for p in choices)
    if answer != truth:
        fail(f"at depth {deepest} the last layer's ‖∂L/∂W₂‖ is {summary}; {answer!r} is not "
             "the largest.",
             "In pre-norm (and sandwich) the residual stream grows with depth and the final "
             "norm divides by its size on the way back; post-norm re-normalizes the stream "
             "after every block (Xiong et al. 2020, Theorem 1).")
    passed(f"{truth}-norm: at depth {deepest} its last-layer gradient is the largest ({summary}).")
