"""The chapter 1 checkers accept right answers and give specific feedback on typical mistakes."""

import math

import pytest
import torch

from normlab.checks import ExerciseError
from normlab.checks import why_normalize as check
from normlab.checks._base import PASS_MARK
from normlab.experiments.deep_stack import trace as _trace


def rms_right(stack, x):
    with torch.no_grad():
        return torch.stack([h.pow(2).mean().sqrt() for h in _trace(stack, x)])


def not_implemented(*args):
    raise NotImplementedError()


def test_activation_rms_accepts_the_right_answer(capsys):
    check.activation_rms_exercise(rms_right)
    assert capsys.readouterr().out.startswith(PASS_MARK)


@pytest.mark.parametrize(("answer", "message"), [
    (lambda s, x: rms_right(s, x)[1:], "expected 6"),
    (lambda s, x: rms_right(s, x) ** 2, "mean square"),
    (lambda s, x: torch.stack([h.std() for h in _trace(s, x)]).detach(), "standard deviation"),
    (lambda s, x: torch.stack([h.pow(2).mean(-1).sqrt().mean() for h in _trace(s, x)]).detach(),
     "each row's RMS"),
    (lambda s, x: rms_right(s, x) + 0.1, "largest difference"),
    (lambda s, x: 1 / 0, "ZeroDivisionError"),
    (not_implemented, "not implemented yet"),
])
def test_activation_rms_explains_mistakes(answer, message):
    with pytest.raises(ExerciseError, match=message):
        check.activation_rms_exercise(answer)


def gain_right(depth):
    return math.sqrt(2 * (3 ** (1 / depth) - 1))  # RMS ratio √3, mid-way in log


def test_gain_accepts_the_right_answer(capsys):
    check.gain_exercise(gain_right)
    assert capsys.readouterr().out.startswith(PASS_MARK)


@pytest.mark.parametrize(("answer", "message"), [
    (lambda depth: 1.0, r"multiplied the RMS by 5\.1.*more than 2"),
    (lambda depth: 0.0, r"less than 1\.5.*identity"),
    (lambda depth: 0.25, "The answer depends on L"),
    (lambda depth: 0.6 * gain_right(depth) if depth == 128 else gain_right(depth), "L = 128"),
    (lambda depth: "small", "expected a number"),
    (lambda depth: -1.0, "finite number >= 0"),
    (not_implemented, "not implemented yet"),
])
def test_gain_explains_mistakes(answer, message):
    with pytest.raises(ExerciseError, match=message):
        check.gain_exercise(answer)

