"""Tests of normlab.experiments.deep_stack: construction, measurements, mean-field predictions."""

import math

import pytest
import torch

import normlab
from normlab.experiments.deep_stack import (
    NORMS,
    DeepStack,
    activation_rms,
    flat_fraction,
    gradient_rms,
    init_profile,
    init_sweep,
    make_norm,
    predicted_rms,
    trace,
)


def _x(batch=64, width=32, seed=0, dtype=torch.float64):
    return torch.randn(batch, width, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize(("kwargs", "error", "name"), [
    ({"width": 8.0}, TypeError, "width"),
    ({"width": 0}, ValueError, "width"),
    ({"depth": True}, TypeError, "depth"),
    ({"depth": -1}, ValueError, "depth"),
    ({"gain": "1"}, TypeError, "gain"),
    ({"gain": -0.5}, ValueError, "gain"),
    ({"gain": math.inf}, ValueError, "gain"),
    ({"norm": "groupnorm"}, ValueError, "norm"),
    ({"activation": "gelu"}, ValueError, "activation"),
])
def test_bad_arguments_name_the_argument(kwargs, error, name):
    args = {"width": 8, "depth": 2, **kwargs}
    with pytest.raises(error, match=name):
        DeepStack(args.pop("width"), args.pop("depth"), **args)


def test_norm_modules_are_the_package_ones():
    assert isinstance(make_norm("layernorm", 8), normlab.LayerNorm)
    assert isinstance(make_norm("rmsnorm", 8), normlab.RMSNorm)
    assert isinstance(make_norm("batchnorm", 8), torch.nn.BatchNorm1d)
    assert isinstance(make_norm(None, 8), torch.nn.Identity)


def test_seed_fixes_weights_whatever_the_global_rng():
    torch.manual_seed(1)
    a = DeepStack(16, 3, seed=5)
    torch.manual_seed(2)
    b = DeepStack(16, 3, seed=5)
    c = DeepStack(16, 3, seed=6)
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(pa, pb)
        assert not torch.equal(pa, pc)


def test_weight_scale_is_gain_over_sqrt_width():
    stack = DeepStack(256, 2, gain=1.7)
    w = torch.cat([b.linear.weight.flatten() for b in stack.blocks])
    assert w.std().item() == pytest.approx(1.7 / 16, rel=0.02)
    assert abs(w.mean().item()) < 3 * 1.7 / 16 / math.sqrt(w.numel())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_block_is_residual_update_of_norm_act_linear(dtype):
    stack = DeepStack(8, 1, norm="rmsnorm", activation="tanh", dtype=dtype)
    block, x = stack.blocks[0], _x(4, 8, dtype=dtype)
    w = block.linear.weight
    expected = x + torch.tanh(torch.nn.functional.rms_norm(x, (8,), eps=None)) @ w.T
    torch.testing.assert_close(block(x), expected)
    plain = DeepStack(8, 1, residual=False, dtype=dtype)
    torch.testing.assert_close(plain(x), torch.relu(x) @ plain.blocks[0].linear.weight.T)


def test_trace_and_activation_rms():
    stack, x = DeepStack(32, 4, dtype=torch.float64), _x()
    xs = trace(stack, x)
    assert len(xs) == 5 and torch.equal(xs[0], x)
    torch.testing.assert_close(xs[-1], stack(x))
    expected = torch.tensor([h.pow(2).mean().sqrt().item() for h in xs], dtype=torch.float64)
    torch.testing.assert_close(activation_rms(stack, x), expected)


def test_gradient_rms_matches_autograd():
    stack, x = DeepStack(32, 3, norm="layernorm", dtype=torch.float64), _x()
    got = gradient_rms(stack, x, seed=7)
    v = torch.randn(64, 32, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    xin = x.clone().requires_grad_(True)
    (dx,) = torch.autograd.grad((stack(xin) * v).sum(), xin)
    assert got.shape == (4,)
    torch.testing.assert_close(got[0], dx.pow(2).mean().sqrt())
    torch.testing.assert_close(got[-1], v.pow(2).mean().sqrt())
    assert all(p.grad is None for p in stack.parameters())


def test_flat_fraction_relu_is_half_and_tanh_saturates():
    relu = DeepStack(256, 1, residual=False)
    assert flat_fraction(relu, _x(512, 256, dtype=torch.float32))[0].item() == pytest.approx(
        0.5, abs=0.01)
    tanh, x = DeepStack(256, 1, activation="tanh", dtype=torch.float64), 3 * _x(64, 256)
    z_flat = math.atanh(math.sqrt(0.9))  # tanh'(z) = 1 - tanh(z)² = 0.1, z ≈ 1.82
    expected = (x.abs() > z_flat).double().mean()
    assert flat_fraction(tanh, x)[0].item() == pytest.approx(expected.item())
    assert flat_fraction(tanh, 0.01 * x)[0].item() == 0.0


def test_predicted_rms_formulas():
    assert predicted_rms(2, 2.0, residual=True, normalized=False) == pytest.approx(3.0)
    assert predicted_rms(4, 2.0, residual=False, normalized=False) == pytest.approx(4.0)
    assert predicted_rms(10, 1.0, residual=True, normalized=True) == pytest.approx(math.sqrt(6))
    assert predicted_rms(10, 3.0, residual=False, normalized=True) == pytest.approx(3 / 2**0.5)
    with pytest.raises(ValueError, match="depth"):
        predicted_rms(0, 1.0, residual=True, normalized=True)


@pytest.mark.parametrize(("norm", "residual", "gain"), [
    (None, True, 1.0), (None, True, 0.5), (None, False, math.sqrt(2)),
    ("layernorm", True, 1.0), ("rmsnorm", True, 2.0), ("layernorm", False, 1.0),
])
def test_measured_rms_follows_mean_field_theory(norm, residual, gain):
    depth = 6
    rms = init_profile(512, depth, batch=256, norm=norm, residual=residual, gain=gain)["act_rms"]
    theory = predicted_rms(depth, gain, residual=residual, normalized=norm is not None)
    assert rms[-1] / rms[0] == pytest.approx(theory, rel=0.1)


def test_plain_layernorm_stack_activations_scale_linearly_with_gain():
    x = _x()
    one = activation_rms(DeepStack(32, 5, norm="layernorm", residual=False, gain=1.0,
                                   dtype=torch.float64), x)
    three = activation_rms(DeepStack(32, 5, norm="layernorm", residual=False, gain=3.0,
                                     dtype=torch.float64), x)
    torch.testing.assert_close(three[1:], 3 * one[1:], rtol=1e-4, atol=0)


def test_unnormalized_residual_stack_explodes_and_norm_tames_it():
    none = init_profile(64, 32, norm=None, gain=1.0)
    for norm in ("layernorm", "rmsnorm", "batchnorm"):
        normed = init_profile(64, 32, norm=norm, gain=1.0)
        assert normed["act_rms"][-1] < 10 < 100 < none["act_rms"][-1]
        assert normed["grad_rms"][0] < 20 < 100 < none["grad_rms"][0]


def test_init_sweep_covers_every_combination():
    records = init_sweep((2, 3), (0.5, 1.0), width=8, batch=4)
    assert len(records) == 2 * 2 * 2 * len(NORMS)
    r = records[0]
    assert (r["depth"], r["gain"], r["residual"], r["norm"]) == (2, 0.5, False, None)
    assert len(r["act_rms"]) == 3 and len(r["grad_rms"]) == 3 and len(r["flat"]) == 2
    assert records == init_sweep((2, 3), (0.5, 1.0), width=8, batch=4)
