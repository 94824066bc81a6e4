"""AdaNorm, modulate and adaLN-Zero against float64 references; the conditioning experiment."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

import normlab
from normlab.adaptive import AdaLNZero, AdaNorm, ada_norm, modulate
from normlab.experiments import conditioning

TOL = {torch.float64: (1e-12, 1e-12), torch.float32: (1e-5, 1e-5),
       torch.float16: (2e-2, 1e-2), torch.bfloat16: (1e-1, 5e-2)}


def rand(*shape, dtype=torch.float64, seed=0, offset=0.0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (offset + scale * torch.randn(*shape, generator=g, dtype=torch.float64)).to(dtype)


def ada_norm_ref(x, dims, C, k, eps):
    """The paper's AdaNorm forward in float64, written independently of normlab."""
    x = x.double()
    y = (x - x.mean(dims, keepdim=True)) / torch.sqrt(x.var(dims, correction=0, keepdim=True)
                                                     + eps)
    return C * (1 - k * y) * y


# --- ada_norm forward --------------------------------------------------------------------------

@pytest.mark.parametrize("shape,nshape", [((123,), (123,)), ((2, 3, 1023), (1023,)),
                                          ((4, 5, 6), (5, 6))])
@pytest.mark.parametrize("C,k", [(1.0, 0.1), (2.0, 0.1), (0.5, 0.0), (1.0, -0.3)])
def test_ada_norm_matches_reference(shape, nshape, C, k):
    x = rand(*shape, offset=3.0, scale=2.0)
    dims = tuple(range(-len(nshape), 0))
    torch.testing.assert_close(ada_norm(x, nshape, C, k), ada_norm_ref(x, dims, C, k, 1e-5),
                               atol=1e-12, rtol=1e-12)


def test_ada_norm_without_adaptive_term_is_layer_norm_simple():
    x = rand(8, 64, dtype=torch.float32)
    torch.testing.assert_close(ada_norm(x, 64, C=1.0, k=0.0), F.layer_norm(x, (64,)))


def test_ada_norm_is_invariant_to_shift_and_scale_of_x():
    # phi depends on the normalised y, so a*x + b gives the same output (up to eps).
    x = rand(4, 32)
    torch.testing.assert_close(ada_norm(5.0 * x + 100.0, 32, eps=1e-12),
                               ada_norm(x, 32, eps=1e-12), atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("dtype", list(TOL))
def test_ada_norm_dtypes(dtype):
    x = rand(3, 7, 257, dtype=dtype, offset=1.0)
    out = ada_norm(x, 257, C=2.0)
    assert out.dtype == dtype
    atol, rtol = TOL[dtype]
    torch.testing.assert_close(out.double(), ada_norm_ref(x, (-1,), 2.0, 0.1, 1e-5),
                               atol=atol, rtol=rtol)


# --- ada_norm backward: the detached gain ------------------------------------------------------

def test_detached_gradient_is_phi_times_layer_norm_gradient():
    x, dy = rand(3, 16, seed=1).requires_grad_(), rand(3, 16, seed=2)
    C, k = 2.0, 0.1
    (dx,) = torch.autograd.grad(ada_norm(x, 16, C, k), x, dy)
    y = normlab.layer_norm(x, 16)
    phi = (C * (1 - k * y)).detach()
    (expected,) = torch.autograd.grad(y, x, phi * dy)  # phi is a constant in backprop
    torch.testing.assert_close(dx, expected, atol=1e-12, rtol=1e-12)
    (dx_full,) = torch.autograd.grad(ada_norm(x, 16, C, k, detach=False), x, dy)
    assert (dx - dx_full).abs().max() > 1e-3  # the detach changes the gradient


def test_gradcheck_full_gradient():
    x = rand(2, 3, 8, seed=3).requires_grad_()
    fn = lambda t: ada_norm(t, 8, 1.5, 0.1, detach=False)  # noqa: E731
    assert gradcheck(fn, (x,))
    assert gradgradcheck(fn, (x,))


def test_gradcheck_flags_the_detached_term():
    # Finite differences see phi's dependence on x; the detached autograd graph does not.
    x = rand(2, 8, seed=4).requires_grad_()
    assert not gradcheck(lambda t: ada_norm(t, 8), (x,), raise_exception=False)


def test_ada_norm_module():
    m = AdaNorm((5, 6), C=2.0, k=0.1)
    assert list(m.parameters()) == [] and m.state_dict() == {}
    x = rand(4, 5, 6)
    torch.testing.assert_close(m(x), ada_norm(x, (5, 6), 2.0, 0.1))
    assert "C=2.0" in repr(m) and "detach=True" in repr(m)


@pytest.mark.parametrize("kwargs,error,name", [
    ({"x": [1.0, 2.0]}, TypeError, "x"),
    ({"x": torch.ones(3, 4, dtype=torch.int64)}, TypeError, "x"),
    ({"normalized_shape": 5}, ValueError, "normalized_shape"),
    ({"C": 0.0}, ValueError, "C"),
    ({"C": "2"}, TypeError, "C"),
    ({"k": math.nan}, ValueError, "k"),
    ({"eps": 0.0}, ValueError, "eps"),
])
def test_ada_norm_bad_inputs(kwargs, error, name):
    args = {"x": rand(3, 4), "normalized_shape": 4, **kwargs}
    with pytest.raises(error, match=rf"\b{name}\b"):
        ada_norm(**args)


def test_ada_norm_module_bad_arguments():
    with pytest.raises(ValueError, match="C"):
        AdaNorm(4, C=-1.0)
    with pytest.raises(ValueError, match="normalized_shape"):
        AdaNorm(0)


# --- modulate --------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 8), (2, 5, 8), (2, 3, 4, 8)])
def test_modulate_matches_dit(shape):
    x, shift, scale = rand(*shape, seed=1), rand(2, 8, seed=2), rand(2, 8, seed=3)
    view = (2,) + (1,) * (len(shape) - 2) + (8,)
    expected = x * (1 + scale.reshape(view)) + shift.reshape(view)
    torch.testing.assert_close(modulate(x, shift, scale), expected, atol=0, rtol=0)
    if len(shape) == 3:  # DiT's own broadcast: unsqueeze the sequence dim
        dit = x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)
        torch.testing.assert_close(modulate(x, shift, scale), dit, atol=0, rtol=0)


def test_modulate_zero_is_identity_and_gradcheck():
    x = rand(2, 5, 8, dtype=torch.float32)
    zero = torch.zeros(2, 8)
    assert torch.equal(modulate(x, zero, zero), x)
    args = (rand(2, 5, 8, seed=4), rand(2, 8, seed=5), rand(2, 8, seed=6))
    args = tuple(a.requires_grad_() for a in args)
    assert gradcheck(modulate, args)
    assert gradgradcheck(modulate, args)


@pytest.mark.parametrize("dtype", list(TOL))
def test_modulate_dtypes(dtype):
    args = [rand(2, 5, 64, seed=7, dtype=dtype), rand(2, 64, seed=8, dtype=dtype),
            rand(2, 64, seed=9, dtype=dtype)]
    out = modulate(*args)
    assert out.dtype == dtype
    atol, rtol = TOL[dtype]  # values up to ≈ 11: bfloat16 rounds them to 1/16
    torch.testing.assert_close(out.double(), modulate(*(a.double() for a in args)), atol=atol,
                               rtol=rtol)


@pytest.mark.parametrize("x,shift,scale,error,name", [
    ("x", torch.zeros(2, 8), torch.zeros(2, 8), TypeError, "x"),
    (torch.zeros(8), torch.zeros(2, 8), torch.zeros(2, 8), ValueError, "x"),
    (torch.zeros(2, 5, 8), torch.zeros(2, 5, 8), torch.zeros(2, 8), ValueError, "shift"),
    (torch.zeros(2, 5, 8), torch.zeros(2, 8), torch.zeros(3, 8), ValueError, "scale"),
    (torch.zeros(2, 5, 8), torch.zeros(2, 8), torch.zeros(2, 8, dtype=torch.int32),
     TypeError, "scale"),
])
def test_modulate_bad_inputs(x, shift, scale, error, name):
    with pytest.raises(error, match=rf"\b{name}\b"):
        modulate(x, shift, scale)


# --- AdaLNZero --------------------------------------------------------------------------------

def test_fresh_adaln_zero_block_is_exactly_the_identity():
    torch.manual_seed(0)
    ada, mlp = AdaLNZero(16, 6), torch.nn.Linear(16, 16)
    x, c = rand(3, 5, 16, dtype=torch.float32), rand(3, 6, dtype=torch.float32, seed=1)
    h, gate = ada(x, c)
    assert torch.equal(h, normlab.layer_norm(x, 16, eps=1e-6))  # shift = scale = 0
    assert torch.equal(gate, torch.zeros(3, 16))
    assert torch.equal(x + gate[:, None] * mlp(h), x)


def test_gradients_reach_the_conditioning_layer():
    torch.manual_seed(0)
    ada, mlp = AdaLNZero(8, 4), torch.nn.Linear(8, 8)
    x, c = rand(2, 3, 8, dtype=torch.float32), rand(2, 4, dtype=torch.float32, seed=1)

    def grads():
        ada.zero_grad()
        h, gate = ada(x, c)
        (x + gate[:, None] * mlp(h)).pow(2).sum().backward()
        return ada.modulation[-1].weight.grad.split(8)  # shift, scale, gate rows

    d_shift, d_scale, d_gate = grads()
    # At init only the gate rows learn: shift and scale act through gate = 0.
    assert d_gate.abs().sum() > 0
    assert torch.equal(d_shift, torch.zeros_like(d_shift))
    assert torch.equal(d_scale, torch.zeros_like(d_scale))
    with torch.no_grad():  # one SGD step opens the gate, then every row gets a gradient
        ada.modulation[-1].weight -= 0.1 * ada.modulation[-1].weight.grad
        ada.modulation[-1].bias -= 0.1 * ada.modulation[-1].bias.grad
    assert all(d.abs().sum() > 0 for d in grads())


def test_trained_adaln_zero_splits_shift_scale_gate_as_dit():
    """With non-zero modulation weights: (β, γ, α) = W·SiLU(c) + b in DiT's chunk order
    (shift, scale, gate), and h = LN(x)·(1 + γ) + β."""
    torch.manual_seed(0)
    ada = AdaLNZero(8, 4).double()
    linear = ada.modulation[-1]
    for p in (linear.weight, linear.bias):
        torch.nn.init.normal_(p)
    x, c = rand(2, 3, 8), rand(2, 4, seed=1)
    m = F.silu(c) @ linear.weight.T + linear.bias
    shift, scale, gate = m[:, :8], m[:, 8:16], m[:, 16:]
    h, got_gate = ada(x, c)
    ln = F.layer_norm(x, (8,), eps=1e-6)
    torch.testing.assert_close(h, ln * (1 + scale[:, None]) + shift[:, None])
    torch.testing.assert_close(got_gate, gate)


def test_adaln_zero_parameter_count():
    ada = AdaLNZero(1152, 1152)
    assert sum(p.numel() for p in ada.parameters()) == 1152 * 3 * 1152 + 3 * 1152
    assert "hidden=1152" in repr(ada)


@pytest.mark.parametrize("args,x,c,error,name", [
    ((0, 4), None, None, ValueError, "hidden"),
    ((8.0, 4), None, None, TypeError, "hidden"),
    ((8, True), None, None, TypeError, "cond_dim"),
    ((8, 4), torch.zeros(2, 3, 8), torch.zeros(3, 4), ValueError, "c"),
    ((8, 4), torch.zeros(2, 3, 8), torch.zeros(2, 5), ValueError, "c"),
    ((8, 4), torch.zeros(2, 3, 7), torch.zeros(2, 4), ValueError, "normalized_shape"),
])
def test_adaln_zero_bad_inputs(args, x, c, error, name):
    with pytest.raises(error, match=rf"\b{name}\b"):
        ada = AdaLNZero(*args)
        ada(x, c)


# --- the conditioning experiment --------------------------------------------------------------

def test_task_is_seeded_and_standardised():
    a, b = conditioning.make_task("multiplicative", 512), conditioning.make_task(
        "multiplicative", 512)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    y = a[2]
    torch.testing.assert_close(y.mean(0), torch.zeros(16, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(y.std(0), torch.ones(16, dtype=torch.float64))
    with pytest.raises(ValueError, match="kind"):
        conditioning.make_task("nope", 4)


def test_matched_models_share_a_budget_and_start_as_identity_blocks():
    models = conditioning.matched_models(hidden=32)
    budget = conditioning.n_params(models["adaln"])
    for name in ("concat", "none"):
        net = models[name]
        assert conditioning.n_params(net) >= budget
        narrower = conditioning.CondNet(name, net.inp.out_features - 1)
        assert conditioning.n_params(narrower) < budget  # the narrowest such width
    x, c = rand(4, 16, dtype=torch.float32), torch.arange(4)
    h = models["adaln"].inp(x)
    e = models["adaln"].embed(c)
    assert all(torch.equal(block(h, e), h) for block in models["adaln"].blocks)


def test_condnet_rejects_unknown_conditioning():
    with pytest.raises(ValueError, match="conditioning"):
        conditioning.CondNet("film", 8)


def test_run_trains_all_four_students():
    result = conditioning.run("additive", n_train=256, n_test=128, steps=30)
    assert set(result) == {"adaln", "adaln_default", "concat", "none"}
    for r in result.values():
        assert len(r["curve"]) == 30 and math.isfinite(r["test"])
        assert r["curve"][-1] < r["curve"][0]


def test_plain_adaln_has_the_same_modulation_without_the_zero_init():
    models = conditioning.matched_models(hidden=32)
    zero, plain = models["adaln"], models["adaln_default"]
    assert conditioning.n_params(plain) == conditioning.n_params(zero)
    x, c = rand(4, 16, dtype=torch.float32), torch.arange(4)
    h, e = plain.inp(x), plain.embed(c)
    for block in plain.blocks:
        assert block.norm.modulation[-1].weight.abs().sum() > 0
        assert not torch.equal(block(h, e), h)  # not the identity at initialisation
