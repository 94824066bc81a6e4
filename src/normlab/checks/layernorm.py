"""Exercise checkers of chapter 2 (LayerNorm): each names the input, the gap and a hint."""

import torch

from normlab.checks._base import call, expect_tensor_close, fail, passed
from normlab.checks._shortcuts import AUTOGRAD, NORMS, call_from_scratch
from normlab.layer_norm import layer_norm, layer_norm_backward, layer_norm_stats
from normlab.variance import variance_one_pass


def _tensor(shape, seed, offset=0.0, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    return offset + scale * torch.randn(shape, generator=gen, dtype=torch.float64)


def _matches(got, expected):
    return (isinstance(got, torch.Tensor) and got.shape == expected.shape
            and torch.allclose(got.double(), expected, atol=1e-6, rtol=1e-5))


def layer_norm_exercise(fn):
    """``fn(x, normalized_shape, eps)``: LayerNorm without γ, β over the trailing dims."""
    cases = [((3, 7), (7,), 1e-5), ((2, 3, 4, 5), (4, 5), 1e-5), ((4, 6), (6,), 0.5)]
    for k, (shape, nshape, eps) in enumerate(cases):
        x = _tensor(shape, seed=k, offset=2.0, scale=3.0)
        what = f"my_layer_norm(x of shape {shape}, normalized_shape={nshape}, eps={eps})"
        got = call_from_scratch(fn, x, nshape, eps, shortcuts=NORMS,
                                task="compute LayerNorm from a mean and a variance")
        expected = layer_norm(x, nshape, eps=eps)
        if _matches(got, expected):
            continue
        dims = tuple(range(-len(nshape), 0))
        centred = x - x.mean(dims, keepdim=True)
        unbiased = centred / torch.sqrt(x.var(dims, correction=1, keepdim=True) + eps)
        last_dim_only = layer_norm(x, shape[-1:], eps=eps)
        eps_outside = centred / (x.var(dims, correction=0, keepdim=True).sqrt() + eps)
        if _matches(got, unbiased):
            fail(f"{what} divides by the unbiased standard deviation (1/(d−1)).",
                 "LayerNorm uses the biased variance: mean over d, correction=0.")
        if len(nshape) > 1 and _matches(got, last_dim_only):
            fail(f"{what} normalises over the last dimension only.",
                 f"mean and variance run over all of normalized_shape: dims {dims}.")
        if _matches(got, eps_outside):
            fail(f"{what} adds eps to the standard deviation.",
                 "ε goes inside the square root: 1/sqrt(var + eps).")
        expect_tensor_close(got, expected, what, atol=1e-6, rtol=1e-5,
                            hint="mean over the normalised dims, biased variance, "
                                 "(x − mean) / sqrt(var + eps).")
    passed("my_layer_norm agrees with normlab.layer_norm on 1-D and 2-D normalized_shape.")


def param_grads_exercise(fn):
    """``fn(dy, x_hat)`` → ``(dweight, dbias)`` for ``y = weight * x_hat + bias``."""
    dy, x_hat = _tensor((2, 5, 8), seed=10), _tensor((2, 5, 8), seed=11)
    got = call_from_scratch(fn, dy, x_hat, shortcuts=AUTOGRAD,
                            task="derive dweight and dbias by hand")
    if not isinstance(got, tuple) or len(got) != 2:
        fail(f"my_param_grads should return a pair (dweight, dbias), got {type(got).__name__}.")
    dweight, dbias = got
    what = "my_param_grads(dy, x_hat) with dy, x_hat of shape (2, 5, 8)"
    for name, value in (("dweight", dweight), ("dbias", dbias)):
        if isinstance(value, torch.Tensor) and value.shape != (8,):
            fail(f"{what}: {name} has shape {tuple(value.shape)}, expected (8,).",
                 "γ and β are shared by every row (batch and sequence): sum over all "
                 "dimensions except the last.")
    if _matches(dweight, dy.sum((0, 1))):
        fail(f"{what}: dweight equals dbias.", "∂y_i/∂γ_i = x̂_i: multiply dy by x_hat first.")
    if _matches(dbias, dy.mean((0, 1))):
        fail(f"{what}: dbias is a mean over rows.",
             "The loss adds every row's contribution: sum, don't average.")
    expect_tensor_close(dweight, (dy * x_hat).sum((0, 1)), what + ": dweight",
                        hint="dweight = Σ_rows dy ⊙ x̂.")
    expect_tensor_close(dbias, dy.sum((0, 1)), what + ": dbias", hint="dbias = Σ_rows dy.")
    passed("dweight = Σ dy·x̂ and dbias = Σ dy, summed over every row.")


def input_grad_exercise(fn):
    """``fn(dy, x_hat, rstd, weight)`` → ``dx`` of LayerNorm (rows along the last dim)."""
    x, dy = _tensor((4, 6), seed=20, offset=1.0, scale=2.0), _tensor((4, 6), seed=21)
    weight = 1 + 0.5 * _tensor((6,), seed=22)
    mean, rstd = layer_norm_stats(x, 6)
    x_hat = (x - mean) * rstd
    expected = layer_norm_backward(dy, x, 6, weight, mean, rstd)[0]
    got = call_from_scratch(fn, dy, x_hat, rstd, weight, shortcuts={**NORMS, **AUTOGRAD},
                            task="derive LayerNorm's dx by hand")
    what = "my_dx(dy, x_hat, rstd, weight) on rows of length 6"
    if not _matches(got, expected):
        _diagnose_dx(got, what, dy, x_hat, rstd, weight)
    expect_tensor_close(got, expected, what,
                        hint="dx = rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂)) with g = γ ⊙ dy.")
    passed("my_dx matches normlab.layer_norm_backward (and therefore autograd).")


def _diagnose_dx(got, what, dy, x_hat, rstd, weight):
    """Name the typical mistake when ``got`` is one of the classic wrong formulas."""
    g = dy * weight
    if _matches(got, rstd * g):
        fail(f"{what} returns rstd·γ·dy, as if μ and σ did not depend on x.",
             "Moving one x_i moves the mean and the variance of its row: two more terms.")
    if _matches(got, rstd * (g - g.mean(-1, keepdim=True))):
        fail(f"{what} accounts for the mean but not for the variance.",
             "Subtract x̂ · mean(g ⊙ x̂) as well.")
    if _matches(got, rstd * (dy - dy.mean(-1, keepdim=True)
                             - x_hat * (dy * x_hat).mean(-1, keepdim=True))):
        fail(f"{what} ignores weight.", "Start from g = weight ⊙ dy, the gradient w.r.t. x̂.")


def cancellation_exercise(fn):
    """``fn()`` → a float32 row whose one-pass variance is wrong by more than 50 %."""
    row = call(fn)
    what = "breaking_row()"
    if not isinstance(row, torch.Tensor) or row.dtype != torch.float32 or row.dim() != 1:
        fail(f"{what} should return a 1-D float32 tensor, got "
             f"{getattr(row, 'dtype', type(row).__name__)} with shape "
             f"{tuple(getattr(row, 'shape', ()))}.",
             "e.g. torch.tensor([...], dtype=torch.float32)")
    if not 2 <= row.numel() <= 4096 or not torch.isfinite(row).all():
        fail(f"{what} should have between 2 and 4096 finite elements, got {row.numel()}.")
    true_var = row.double().var(correction=0).item()
    if true_var == 0:
        fail(f"{what} is constant in float32, so its variance is 0 and nothing can cancel.",
             "Keep some spread, e.g. values 1 apart. If you added a large constant, keep it "
             "below about 1e7: beyond that float32's spacing exceeds 1 and the values merge.")
    one_pass = variance_one_pass(row).item()
    rel = abs(one_pass - true_var) / true_var
    if rel <= 0.5:
        fail(f"{what}: one-pass variance {one_pass:.6g} vs exact {true_var:.6g} "
             f"({rel:.1%} off): not broken yet.",
             "Add the same large constant c to every element (1e4 or more, below about 1e7 "
             "so the values stay distinct): E[x²] and E[x]² grow like c² and "
             "float32 keeps about 7 digits of each.")
    passed(f"one-pass variance {one_pass:.6g} vs exact {true_var:.6g}: {rel:.0%} off.")
