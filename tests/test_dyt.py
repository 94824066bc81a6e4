"""normlab.DyT: the formula, its gradients, parameters and errors."""

import pytest
import torch
from torch.autograd import gradcheck

from normlab.dyt import DyT, dyt


def test_matches_the_formula_and_has_layernorm_like_parameters():
    torch.manual_seed(0)
    m = DyT(6, alpha_init=0.7)
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5)
        m.bias.uniform_(-1, 1)
    x = 3 * torch.randn(4, 5, 6)
    assert torch.allclose(m(x), m.weight * torch.tanh(0.7 * x) + m.bias)
    assert set(m.state_dict()) == {"alpha", "weight", "bias"}
    assert m.alpha.shape == () and m.weight.shape == (6,) == m.bias.shape


def test_small_inputs_are_scaled_large_ones_clipped():
    m = DyT(3, alpha_init=0.5)
    small = torch.full((1, 3), 1e-3)
    assert torch.allclose(m(small), 0.5 * small, rtol=1e-5)
    assert torch.allclose(m(torch.full((1, 3), 100.0)), torch.ones(1, 3))


def test_no_affine_and_no_bias():
    assert DyT(4, elementwise_affine=False).weight is None
    m = DyT(4, bias=False)
    assert m.bias is None and set(m.state_dict()) == {"alpha", "weight"}


def test_gradcheck_in_float64():
    x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    alpha = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda *a: dyt(a[0], 5, *a[1:]), (x, alpha, w, b))


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="normalized_shape"):
        dyt(torch.randn(2, 4), 5, 0.5)
    with pytest.raises(ValueError, match="alpha must be a scalar"):
        dyt(torch.randn(2, 4), 4, torch.ones(4))
    with pytest.raises(ValueError, match="alpha_init"):
        DyT(4, alpha_init=0.0)
    with pytest.raises(ValueError, match="weight"):
        dyt(torch.randn(2, 4), 4, 0.5, weight=torch.ones(3))
