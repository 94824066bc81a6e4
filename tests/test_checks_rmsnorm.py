"""The chapter 4 checkers accept right answers and explain wrong ones."""

import pytest
import torch

import normlab
from normlab.checks import ExerciseError
from normlab.checks import rmsnorm as check
from normlab.checks._base import PASS_MARK


def good_rms_norm(x, weight, eps):
    return weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def eps_outside(x, weight, eps):
    return weight * x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps)


def centred(x, weight, eps):
    return good_rms_norm(x - x.mean(-1, keepdim=True), weight, eps)


def stub(*args):
    raise NotImplementedError()


def in_place(x, weight, eps):
    x *= torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x


def test_rms_norm_accepts_a_right_answer(capsys):
    check.rms_norm_exercise(good_rms_norm)
    assert capsys.readouterr().out.startswith(PASS_MARK)


@pytest.mark.parametrize("fn,message", [
    (eps_outside, "outside the root"),
    (centred, "subtracted the mean"),
    (stub, "not implemented yet"),
    (in_place, "in place"),
    (lambda x, w, eps: good_rms_norm(x, w, eps)[..., :-1], "expected shape"),
    (lambda x, w, eps: x, "largest difference"),
    (lambda x, w, eps: 1.01 * good_rms_norm(x, w, eps), "largest difference"),  # 1 % off
    (lambda x, w, eps: None, "expected a torch.Tensor"),
])
def test_rms_norm_explains_wrong_answers(fn, message):
    with pytest.raises(ExerciseError, match=message):
        check.rms_norm_exercise(fn)


def test_eps_gap_accepts_rms_near_sqrt_eps(capsys):
    check.eps_gap_exercise(lambda eps: torch.full((4,), eps ** 0.5))
    assert capsys.readouterr().out.startswith(PASS_MARK)


@pytest.mark.parametrize("fn,message", [
    (lambda eps: torch.ones(8), "differ by at most"),  # RMS 1: gap ≈ ε
    (lambda eps: torch.full((4,), 20 * eps ** 0.5), "differ by at most"),  # gap ≈ 0.12 %
    (lambda eps: torch.zeros(8), "differ by at most"),  # both placements give 0
    (lambda eps: torch.tensor(1e-3), "at least one"),
    (lambda eps: [eps] * 4, "floating-point tensor"),
    (lambda eps: torch.ones(4, dtype=torch.int64), "floating-point tensor"),
    (lambda eps: torch.full((4,), float("nan")), "non-finite"),
    (stub, "not implemented yet"),
])
def test_eps_gap_explains_wrong_answers(fn, message):
    with pytest.raises(ExerciseError, match=message):
        check.eps_gap_exercise(fn)


def test_placement_gap_matches_the_closed_form():
    """y_in / y_out = (r + ε) / √(r² + ε) ≈ 1 + ε/r − ε/(2r²) for a row of RMS r ≫ √ε."""
    r, eps = 10.0, 1e-6
    x = torch.full((3, 16), r)
    exact = (r + eps) / (r**2 + eps) ** 0.5 - 1
    assert check.placement_gap(x, eps) == pytest.approx(exact, rel=1e-6)
    assert exact == pytest.approx(eps / r - eps / (2 * r**2), rel=1e-6)


def good_identity(x, weight, bias, eps):
    return normlab.rms_norm(x - x.mean(-1, keepdim=True), x.shape[-1], weight, eps) + bias


def test_identity_accepts_a_right_answer(capsys):
    check.layer_norm_identity_exercise(good_identity)
    assert capsys.readouterr().out.startswith(PASS_MARK)


@pytest.mark.parametrize("fn,message", [
    (lambda x, w, b, eps: good_identity(x, w, b, eps) - b, "without the bias"),
    (lambda x, w, b, eps: normlab.rms_norm(x, x.shape[-1], w, eps) + b, "largest difference"),
    (stub, "not implemented yet"),
])
def test_identity_explains_wrong_answers(fn, message):
    with pytest.raises(ExerciseError, match=message):
        check.layer_norm_identity_exercise(fn)
