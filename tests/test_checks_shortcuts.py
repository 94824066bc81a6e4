"""From-scratch exercises notice when the library did the work and say so."""

import pytest
import torch
import torch.nn.functional as F

from normlab.checks import ExerciseError
from normlab.checks import layernorm as ch2
from normlab.checks import rmsnorm as ch4
from normlab.checks._base import PASS_MARK


def ln_library(x, normalized_shape, eps):
    return F.layer_norm(x, normalized_shape, eps=eps)


def ln_module(x, normalized_shape, eps):
    return torch.nn.LayerNorm(normalized_shape, eps=eps, elementwise_affine=False,
                              dtype=x.dtype)(x)


def rms_library(x, weight, eps):
    return F.rms_norm(x, x.shape[-1:], weight, eps)


def rms_torch(x, weight, eps):
    return torch.rms_norm(x, x.shape[-1:], weight, eps)


def identity_via_layer_norm(x, weight, bias, eps):
    return F.layer_norm(x, x.shape[-1:], weight, bias, eps)


def param_grads_by_autograd(dy, x_hat):
    weight = torch.ones(x_hat.shape[-1], dtype=x_hat.dtype, requires_grad=True)
    bias = torch.zeros_like(weight, requires_grad=True)
    (weight * x_hat + bias).backward(dy)
    return weight.grad, bias.grad


def dx_by_autograd(dy, x_hat, rstd, weight):
    x = (x_hat / rstd).detach().requires_grad_()
    (dx,) = torch.autograd.grad(F.layer_norm(x, x.shape[-1:], weight), x, dy)
    return dx


@pytest.mark.parametrize("check,answer,library", [
    (ch2.layer_norm_exercise, ln_library, "torch.nn.functional.layer_norm"),
    (ch2.layer_norm_exercise, ln_module, "behind nn.LayerNorm"),
    (ch2.param_grads_exercise, param_grads_by_autograd, "autograd (Tensor.backward)"),
    (ch2.input_grad_exercise, dx_by_autograd, "torch.nn.functional.layer_norm"),
    (ch4.rms_norm_exercise, rms_library, "torch.nn.functional.rms_norm"),
    (ch4.rms_norm_exercise, rms_torch, "torch.rms_norm"),
    (ch4.layer_norm_identity_exercise, identity_via_layer_norm, "functional.layer_norm"),
])
def test_library_shortcut_gets_feedback(check, answer, library):
    with pytest.raises(ExerciseError) as caught:
        check(answer)
    message = str(caught.value)
    assert f"{answer.__name__} calls " in message and library in message
    assert "the library did the work" in message


def test_dx_by_autograd_alone_is_named():
    def dx_by_backward(dy, x_hat, rstd, weight):
        x = (x_hat / rstd).detach().requires_grad_()
        mean = x.mean(-1, keepdim=True)
        y = (x - mean) * torch.rsqrt(((x - mean) ** 2).mean(-1, keepdim=True) + 1e-5) * weight
        y.backward(dy)
        return x.grad

    with pytest.raises(ExerciseError, match=r"calls autograd \(Tensor.backward\)"):
        ch2.input_grad_exercise(dx_by_backward)


def test_rms_norm_of_the_centred_input_is_allowed(capsys):
    def identity(x, weight, bias, eps):
        centred = x - x.mean(-1, keepdim=True)
        return F.rms_norm(centred, x.shape[-1:], weight, eps) + bias

    ch4.layer_norm_identity_exercise(identity)
    assert capsys.readouterr().out.startswith(PASS_MARK)
