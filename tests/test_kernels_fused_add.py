"""The fused residual add + norm against the unfused composition ``norm(x + residual)``,
forward and backward, through the interpreter on a CPU (full size on a GPU)."""

import importlib

import pytest
import torch

pytest.importorskip("triton", reason="Triton is not installed (Linux only): kernels untested")

import normlab  # noqa: E402
from normlab import kernels  # noqa: E402
from normlab.kernels import _launch  # noqa: E402

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
# float64 exact up to rounding; float32 its precision; bfloat16: h itself is rounded to
# bfloat16 in both paths, the rest is the kernels' bfloat16 tolerance (tests/test_kernels.py).
TOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 3e-2}
SHAPES = [((3,), 1), ((2, 3), 123), ((4,), 1023)] + ([((64,), 16384), ((4,), 65536)]
                                                      if CUDA else [])


def inputs(lead, n, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, residual, dy, dh = (torch.randn(*lead, n, generator=g).to(DEVICE, dtype)
                           for _ in range(4))
    weight = (1 + 0.5 * torch.randn(n, generator=g)).to(DEVICE, dtype)
    bias = (0.5 * torch.randn(n, generator=g)).to(DEVICE, dtype)
    return x, residual, dy, dh, weight, bias


def unfused(norm):
    """The composition the fused kernel replaces, with the reference norm in float64."""
    def fn(x, residual, *params):
        h = x + residual  # rounded to x's dtype, as the fused kernel stores it
        y = norm(h.double(), h.shape[-1:], *(p.double() for p in params))
        return y, h
    return fn


CASES = {
    "layernorm": (lambda x, r, *p: kernels.add_layer_norm(x, r, x.shape[-1:], *p),
                  unfused(normlab.layer_norm), 2),
    "rmsnorm": (lambda x, r, *p: kernels.add_rms_norm(x, r, x.shape[-1:], *p),
                unfused(normlab.rms_norm), 1),
}


def grads(fn, x, residual, dy, dh, params, use_h=True):
    leaves = [t.detach().clone().requires_grad_() for t in (x, residual, *params)]
    y, h = fn(leaves[0], leaves[1], *leaves[2:])
    loss = (y.double() * dy.double()).sum()
    if use_h:
        loss = loss + (h.double() * dh.double()).sum()
    loss.backward()
    return [y.detach(), h.detach(), *(t.grad for t in leaves)]


def assert_close(got, want, tol, what):
    err = (got.double() - want.double()).abs().max().item() if want.numel() else 0.0
    scale = max(1.0, want.double().abs().max().item()) if want.numel() else 1.0
    assert err <= tol * scale, f"{what}: max error {err:.3g} > {tol * scale:.3g}"


@pytest.mark.parametrize("use_h", [True, False], ids=["h-used", "h-unused"])
@pytest.mark.parametrize("dtype", list(TOL), ids=str)
@pytest.mark.parametrize("lead,n", SHAPES)
@pytest.mark.parametrize("norm", list(CASES))
def test_fused_add_matches_unfused_composition(norm, lead, n, dtype, use_h):
    fused, reference, n_params = CASES[norm]
    x, residual, dy, dh, weight, bias = inputs(lead, n, dtype)
    params = (weight, bias)[:n_params]
    got = grads(fused, x, residual, dy, dh, params, use_h)
    want = grads(reference, x, residual, dy, dh, params, use_h)
    names = ["y", "h", "dx", "dresidual", "dweight", "dbias"]
    for name, g, w in zip(names, got, want, strict=False):
        assert g.dtype == dtype, name
        assert_close(g, w, TOL[dtype], f"{norm} {name}")
    if CUDA or dtype != torch.bfloat16:  # the interpreter truncates to bfloat16 (ch. 7)
        assert torch.equal(got[1], x + residual)  # h is exactly the unfused sum
    assert got[2].data_ptr() != got[3].data_ptr()  # two gradients, not one aliased tensor


def test_long_row_path_fuses_the_add_too(monkeypatch):
    monkeypatch.setattr(_launch, "MAX_FUSED_SIZE", 64)
    monkeypatch.setattr(_launch, "LOOP_BLOCK_SIZE", 32)
    x, residual, dy, dh, weight, bias = inputs((2, 3), 123, torch.float32)
    for fused, reference, n_params in CASES.values():
        params = (weight, bias)[:n_params]
        for g, w in zip(grads(fused, x, residual, dy, dh, params),
                        grads(reference, x, residual, dy, dh, params), strict=True):
            assert_close(g, w, TOL[torch.float32], "long rows")


def test_modules_are_drop_in_and_take_a_residual():
    x, residual, *_ = inputs((4,), 12, torch.float32)
    for fused_cls, ref_cls in ((kernels.FusedAddLayerNorm, torch.nn.LayerNorm),
                               (kernels.FusedAddRMSNorm, torch.nn.RMSNorm)):
        ref = ref_cls(12).to(DEVICE)
        torch.nn.init.normal_(ref.weight)
        fused = fused_cls(12).to(DEVICE)
        fused.load_state_dict(ref.state_dict())
        y, h = fused(x, residual)
        torch.testing.assert_close(h, x + residual)
        torch.testing.assert_close(y, ref(x + residual), atol=1e-5, rtol=1e-5)


def test_bad_residual_is_rejected_by_name():
    x = torch.ones(2, 3, device=DEVICE)
    with pytest.raises(ValueError, match="residual must have x's shape"):
        kernels.add_rms_norm(x, torch.ones(2, 4, device=DEVICE), 3)
    with pytest.raises(ValueError, match="residual must have x's shape, dtype"):
        kernels.add_layer_norm(x, torch.ones(2, 3, device=DEVICE, dtype=torch.float64), 3)
    with pytest.raises(TypeError, match="residual must be a torch.Tensor"):
        kernels.add_rms_norm(x, 1.0, 3)


def test_frozen_parameters_skip_their_partial_sums(monkeypatch):
    """needs_input_grad: a norm whose γ, β are frozen asks the kernel for no partials."""
    ln_module = importlib.import_module("normlab.kernels.layer_norm")
    calls = []
    real = ln_module.layer_norm_bwd
    monkeypatch.setattr(ln_module, "layer_norm_bwd",
                        lambda *a: calls.append(a[5:7]) or real(*a))
    x, residual, dy, _, weight, bias = inputs((3,), 40, torch.float32)
    x.requires_grad_()
    kernels.layer_norm(x, 40, weight, bias.requires_grad_()).backward(dy)
    assert calls == [(False, True)] and weight.grad is None and bias.grad is not None
