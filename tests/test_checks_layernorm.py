"""normlab.checks.layernorm: right answers pass, each typical mistake gets its own feedback."""

import pytest
import torch

from normlab.checks import ExerciseError
from normlab.checks import layernorm as check
from normlab.checks._base import PASS_MARK


def stub(*args):
    raise NotImplementedError()


def ln(x, normalized_shape, eps, correction=0, last_only=False, eps_outside=False):
    dims = (-1,) if last_only else tuple(range(-len(normalized_shape), 0))
    centred = x - x.mean(dims, keepdim=True)
    var = x.var(dims, correction=correction, keepdim=True)
    return centred / (var.sqrt() + eps if eps_outside else torch.sqrt(var + eps))


@pytest.mark.parametrize("checker", [check.layer_norm_exercise, check.param_grads_exercise,
                                     check.input_grad_exercise, check.cancellation_exercise])
def test_stub_reports_not_implemented(checker):
    with pytest.raises(ExerciseError, match="not implemented yet"):
        checker(stub)


def test_layer_norm_exercise(capsys):
    check.layer_norm_exercise(ln)
    assert capsys.readouterr().out.startswith(PASS_MARK)
    for kwargs, message in [(dict(correction=1), "unbiased"), (dict(last_only=True), "last"),
                            (dict(eps_outside=True), "inside the square root")]:
        with pytest.raises(ExerciseError, match=message):
            check.layer_norm_exercise(lambda x, s, e, kw=kwargs: ln(x, s, e, **kw))
    with pytest.raises(ExerciseError, match="largest difference"):
        check.layer_norm_exercise(lambda x, s, e: ln(x, s, e) + 0.1)
    with pytest.raises(ExerciseError, match="raised ZeroDivisionError"):
        check.layer_norm_exercise(lambda x, s, e: 1 / 0)


def test_param_grads_exercise(capsys):
    check.param_grads_exercise(lambda dy, xh: ((dy * xh).sum((0, 1)), dy.sum((0, 1))))
    assert capsys.readouterr().out.startswith(PASS_MARK)
    wrong = [
        (lambda dy, xh: ((dy * xh).sum(0), dy.sum(0)), "shape"),
        (lambda dy, xh: (dy.sum((0, 1)), dy.sum((0, 1))), "dweight equals dbias"),
        (lambda dy, xh: ((dy * xh).sum((0, 1)), dy.mean((0, 1))), "mean over rows"),
        (lambda dy, xh: (dy * xh).sum((0, 1)), "pair"),
        (lambda dy, xh: ((dy * xh).mean((0, 1)), dy.sum((0, 1))), "dweight"),
    ]
    for fn, message in wrong:
        with pytest.raises(ExerciseError, match=message):
            check.param_grads_exercise(fn)


def dx(dy, x_hat, rstd, weight, terms=2, use_weight=True):
    g = dy * weight if use_weight else dy
    out = g
    if terms >= 1:
        out = out - g.mean(-1, keepdim=True)
    if terms >= 2:
        out = out - x_hat * (g * x_hat).mean(-1, keepdim=True)
    return rstd * out


def test_input_grad_exercise(capsys):
    check.input_grad_exercise(dx)
    assert capsys.readouterr().out.startswith(PASS_MARK)
    wrong = [(dict(terms=0), "did not depend on x"), (dict(terms=1), "not for the variance"),
             (dict(use_weight=False), "ignores weight")]
    for kwargs, message in wrong:
        with pytest.raises(ExerciseError, match=message):
            check.input_grad_exercise(lambda *a, kw=kwargs: dx(*a, **kw))
    with pytest.raises(ExerciseError, match="largest difference"):
        check.input_grad_exercise(lambda *a: 2 * dx(*a))


def test_cancellation_exercise(capsys):
    check.cancellation_exercise(lambda: 1e4 + torch.arange(8, dtype=torch.float32))
    assert PASS_MARK in capsys.readouterr().out
    wrong = [
        (lambda: torch.arange(8, dtype=torch.float32), "not broken yet"),
        (lambda: 1e3 + torch.randn(64, generator=torch.Generator().manual_seed(0)),
         "not broken yet"),  # a few per cent off: visible, not yet broken
        (lambda: torch.full((8,), 1e4), "constant"),
        (lambda: torch.arange(8, dtype=torch.float64) + 1e4, "float32"),
        (lambda: [1.0, 2.0], "1-D float32 tensor"),
        (lambda: torch.tensor([1e4]), "between 2 and 4096"),
        (lambda: torch.tensor([1.0, float("nan")]), "finite"),
    ]
    for fn, message in wrong:
        with pytest.raises(ExerciseError, match=message):
            check.cancellation_exercise(fn)
