"""Higher-order and forward-mode derivatives through both paths (issue #16, cause 2).

The kernels' backward is first-order; with ``create_graph=True`` and in forward mode their
autograd Functions differentiate the reference formula instead, so a gradient penalty
keeps its second-order term. The truth is float64 autograd of PyTorch's own functions
(or, for RMSNorm with ε outside the sqrt, which PyTorch lacks, of the plain formula).
"""

import importlib.util

import pytest
import torch
import torch.nn.functional as F

import normlab

KERNELS = pytest.param("kernels", marks=pytest.mark.skipif(
    importlib.util.find_spec("triton") is None, reason="Triton not installed"))
PATHS = ["reference", KERNELS]
TOL = {torch.float32: 2e-4, torch.float64: 1e-10}
N = 6


def norms(path):
    """``{name: f(x, weight, bias)}`` of the path, and the same for the float64 truth."""
    if path == "reference":
        ln, rms = normlab.layer_norm, normlab.rms_norm
    elif path == "truth":
        ln, rms = F.layer_norm, None
    else:
        from normlab import kernels

        ln, rms = kernels.layer_norm, kernels.rms_norm
    if rms is None:
        return {"layernorm": lambda x, w, b: ln(x, (N,), w, b, 1e-5),
                "rmsnorm": lambda x, w, b: F.rms_norm(x, (N,), w, 1e-5),
                "rmsnorm eps outside": lambda x, w, b: x / (
                    torch.linalg.vector_norm(x, dim=-1, keepdim=True) / N ** 0.5 + 1e-5) * w}
    return {"layernorm": lambda x, w, b: ln(x, (N,), w, b, 1e-5),
            "rmsnorm": lambda x, w, b: rms(x, (N,), w, 1e-5),
            "rmsnorm eps outside": lambda x, w, b: rms(x, (N,), w, 1e-5, eps_inside_sqrt=False)}


def leaves(dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, N, generator=g, dtype=torch.float64) * 2 + 0.5
    w = 1 + 0.3 * torch.randn(N, generator=g, dtype=torch.float64)
    b = 0.3 * torch.randn(N, generator=g, dtype=torch.float64)
    dy = torch.randn(3, N, generator=g, dtype=torch.float64)
    return [t.to(dtype) for t in (x, w, b, dy)]


def gradient_penalty(f, x, w, b, dy):
    """``x.grad`` and ``w.grad`` of ``‖∂⟨dy, f(x)⟩/∂x‖²``: a WGAN-GP-style loss, whose
    gradient is made only of second-order terms."""
    x, w, b = (t.detach().clone().requires_grad_() for t in (x, w, b))
    (gx,) = torch.autograd.grad((f(x, w, b) * dy).sum(), x, create_graph=True)
    gx.pow(2).sum().backward()
    return x.grad, w.grad


def assert_close(got, want, tol, what):
    assert got is not None and torch.isfinite(got).all(), f"{what}: {got}"
    err = (got.double() - want).abs().max().item()
    assert err <= tol * max(1.0, want.abs().max().item()), f"{what}: max error {err:.3g}"


@pytest.mark.parametrize("dtype", list(TOL), ids=str)
@pytest.mark.parametrize("path", PATHS)
def test_gradient_penalty_keeps_the_second_order_term(path, dtype):
    x, w, b, dy = leaves(dtype)
    truth = norms("truth")
    for name, f in norms(path).items():
        got = gradient_penalty(f, x, w, b, dy)
        want = gradient_penalty(truth[name], *(t.double() for t in (x, w, b, dy)))
        assert want[0].abs().max() > 1e-3  # the term that a dropped graph would lose
        for what, g, v in zip(("dx", "dweight"), got, want, strict=True):
            assert_close(g, v, TOL[dtype], f"{path} {name} {what}")


@pytest.mark.parametrize("path", PATHS)
def test_gradgradcheck(path):
    """Double backward with ``dy`` itself requiring grad, against finite differences."""
    x, w, b, _ = leaves(torch.float64)
    args = [t.requires_grad_() for t in (x, w, b)]
    for name, f in norms(path).items():
        assert torch.autograd.gradgradcheck(f, args, fast_mode=True), name


@pytest.mark.parametrize("dtype", list(TOL), ids=str)
@pytest.mark.parametrize("path", PATHS)
def test_forward_mode_jvp(path, dtype):
    """torch.func.jvp and torch.autograd.forward_ad give J·(ẋ, ẇ, ḃ)."""
    x, w, b, _ = leaves(dtype)
    dots = [torch.randn_like(t) for t in (x, w, b)]
    truth = norms("truth")
    for name, f in norms(path).items():
        _, want = torch.func.jvp(truth[name], tuple(t.double() for t in (x, w, b)),
                                 tuple(t.double() for t in dots))
        _, got = torch.func.jvp(f, (x, w, b), tuple(dots))
        assert_close(got, want, TOL[dtype], f"{path} {name} torch.func.jvp")
        with torch.autograd.forward_ad.dual_level():
            duals = [torch.autograd.forward_ad.make_dual(t, d)
                     for t, d in zip((x, w, b), dots, strict=True)]
            got = torch.autograd.forward_ad.unpack_dual(f(*duals)).tangent
        assert_close(got, want, TOL[dtype], f"{path} {name} forward_ad")


@pytest.mark.parametrize("path", PATHS)
def test_first_order_gradients_do_not_build_a_graph(path):
    """Without create_graph the gradient is a plain tensor (the fused backward on the
    kernel path): nothing is recorded for a second derivative nobody asked for."""
    x, w, b, dy = leaves(torch.float32)
    x.requires_grad_()
    for f in norms(path).values():
        (gx,) = torch.autograd.grad((f(x, w, b) * dy).sum(), x)
        assert gx.grad_fn is None and not gx.requires_grad
