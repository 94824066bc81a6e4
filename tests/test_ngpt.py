"""normlab.ngpt: nGPT's hidden-state update stays on the sphere and interpolates."""

import pytest
import torch
from torch.autograd import gradcheck

from normlab import ngpt_update, unit_norm


def _angle(a, b):
    return torch.arccos((unit_norm(a) * unit_norm(b)).sum(-1).clamp(-1, 1))


def test_unit_norm_puts_rows_on_the_sphere_and_keeps_zero_finite():
    x = torch.randn(3, 5, 7, dtype=torch.float64) * 10
    assert torch.allclose(unit_norm(x).norm(dim=-1), torch.ones(3, 5, dtype=torch.float64))
    assert torch.allclose(unit_norm(x), x / x.norm(dim=-1, keepdim=True))
    assert torch.equal(unit_norm(torch.zeros(2, 4)), torch.zeros(2, 4))


def test_update_stays_on_the_sphere_and_interpolates():
    torch.manual_seed(0)
    h, h_sub = unit_norm(torch.randn(4, 16, dtype=torch.float64)), 5 * torch.randn(4, 16)
    h_sub = h_sub.double()
    for alpha in (0.05, 0.5, torch.full((16,), 0.3, dtype=torch.float64)):
        out = ngpt_update(h, h_sub, alpha)
        assert out.shape == h.shape
        assert torch.allclose(out.norm(dim=-1), torch.ones(4, dtype=torch.float64))
        # the new state lies between h and the target: angles add up along the arc
        assert torch.allclose(_angle(h, out) + _angle(out, h_sub), _angle(h, h_sub))
    assert torch.allclose(ngpt_update(h, h_sub, 0.0), h)
    assert torch.allclose(ngpt_update(h, h_sub, 1.0), unit_norm(h_sub))
    assert torch.allclose(ngpt_update(h, 7 * h_sub, 0.2), ngpt_update(h, h_sub, 0.2))


def test_gradcheck():
    torch.manual_seed(1)
    h = unit_norm(torch.randn(3, 6, dtype=torch.float64)).requires_grad_()
    h_sub = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    alpha = torch.rand(6, dtype=torch.float64, requires_grad=True)
    assert gradcheck(ngpt_update, (h, h_sub, alpha))


def test_errors():
    h = torch.randn(2, 4)
    with pytest.raises(ValueError, match="same shape"):
        ngpt_update(h, torch.randn(3, 4), 0.1)
    with pytest.raises(TypeError, match="h_sub must be a torch.Tensor"):
        ngpt_update(h, [1.0, 2.0], 0.1)
    with pytest.raises(ValueError, match="h must have at least one dimension"):
        ngpt_update(torch.tensor(1.0), torch.tensor(1.0), 0.1)
    with pytest.raises(TypeError, match="dtype"):
        ngpt_update(h.long(), h, 0.1)
