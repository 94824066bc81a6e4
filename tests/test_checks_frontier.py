"""The chapter-8 checkers accept right answers and explain wrong ones."""

import math

import pytest
import torch

from normlab.checks import ExerciseError
from normlab.checks import frontier as check
from normlab.checks._base import PASS_MARK


def _rms(x, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def qk_logits(q, k):
    return _rms(q) @ _rms(k).transpose(-2, -1) / math.sqrt(q.shape[-1])


def stub(*args):
    raise NotImplementedError()


def test_qk_norm_accepts_solution(capsys):
    check.qk_norm_exercise(qk_logits)
    assert capsys.readouterr().out.startswith(PASS_MARK)


@pytest.mark.parametrize("wrong, message", [
    (lambda q, k: _rms(q) @ _rms(k).transpose(-2, -1), "too large"),
    (lambda q, k: q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), "not normalised"),
    (lambda q, k: _rms(q) @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), "largest difference"),
    (stub, "not implemented yet"),
])
def test_qk_norm_explains_mistakes(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check.qk_norm_exercise(wrong)


def test_dyt_accepts_solution(capsys):
    check.dyt_exercise(lambda x, a, w, b: w * torch.tanh(a * x) + b)
    assert capsys.readouterr().out.startswith(PASS_MARK)


@pytest.mark.parametrize("wrong, message", [
    (lambda x, a, w, b: a * torch.tanh(x) * w + b, "instead of its input"),
    (lambda x, a, w, b: w * torch.tanh(a * x), "largest difference"),
    (stub, "not implemented yet"),
])
def test_dyt_explains_mistakes(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check.dyt_exercise(wrong)


def test_deepnorm_accepts_solution(capsys):
    check.deepnorm_exercise(lambda n: ((2 * n) ** 0.25, (8 * n) ** -0.25))
    assert capsys.readouterr().out.startswith(PASS_MARK)


@pytest.mark.parametrize("wrong, message", [
    (lambda n: ((8 * n) ** 0.25, (2 * n) ** -0.25), "alpha for 4 layers"),
    (lambda n: (2 * n) ** 0.25, "should return a pair"),
    (stub, "not implemented yet"),
])
def test_deepnorm_explains_mistakes(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check.deepnorm_exercise(wrong)
