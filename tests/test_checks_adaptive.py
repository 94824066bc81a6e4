"""normlab.checks.adaptive: right answers pass, each typical mistake gets its own feedback."""

import pytest

from normlab.checks import ExerciseError
from normlab.checks import adaptive as check
from normlab.checks._base import PASS_MARK


def stub(*args):
    raise NotImplementedError()


def modulate(x, shift, scale):
    return x * (1 + scale[:, None]) + shift[:, None]


def block(x, c, ada, mlp):
    h, gate = ada(x, c)
    return x + gate[:, None] * mlp(h)


def adaln_params(hidden, cond_dim, n_vectors):
    return cond_dim * n_vectors * hidden + n_vectors * hidden


@pytest.mark.parametrize("checker", [check.modulate_exercise, check.adaln_zero_block_exercise,
                                     check.adaln_params_exercise])
def test_stub_reports_not_implemented(checker):
    with pytest.raises(ExerciseError, match="not implemented yet"):
        checker(stub)


def test_modulate_exercise(capsys):
    check.modulate_exercise(modulate)
    assert capsys.readouterr().out.startswith(PASS_MARK)
    for wrong, message in [
        (lambda x, b, g: x * g[:, None] + b[:, None], "returned zeros"),
        (lambda x, b, g: (x + b[:, None]) * (1 + g[:, None]), "shifts before it scales"),
        (lambda x, b, g: modulate(x, b, g) + 1e-3, "largest difference"),
        (lambda x, b, g: x * (1 + g) + b, "raised RuntimeError"),
    ]:
        with pytest.raises(ExerciseError, match=message):
            check.modulate_exercise(wrong)


def test_modulate_exercise_accepts_the_identity_trick_only_with_zero_inputs():
    # Returning x regardless passes the zero case but fails the general one.
    with pytest.raises(ExerciseError, match="largest difference"):
        check.modulate_exercise(lambda x, b, g: x)


def test_adaln_zero_block_exercise(capsys):
    check.adaln_zero_block_exercise(block)
    assert capsys.readouterr().out.startswith(PASS_MARK)
    for wrong, message in [
        (lambda x, c, a, m: x + m(a(x, c)[0]), "freshly initialised"),
        (lambda x, c, a, m: x, "non-zero modulation"),
    ]:
        with pytest.raises(ExerciseError, match=message):
            check.adaln_zero_block_exercise(wrong)


def test_adaln_zero_block_exercise_names_the_missing_residual():
    def branch_only(x, c, ada, mlp):
        h, gate = ada(x, c)
        out = gate[:, None] * mlp(h)
        return x if gate.abs().sum() == 0 else out

    with pytest.raises(ExerciseError, match="only the residual branch"):
        check.adaln_zero_block_exercise(branch_only)


def test_adaln_params_exercise(capsys):
    check.adaln_params_exercise(adaln_params)
    out = capsys.readouterr().out
    assert out.startswith(PASS_MARK) and "7,969,536" in out
    with pytest.raises(ExerciseError, match="weight only"):
        check.adaln_params_exercise(lambda h, c, n: h * c * n)
    with pytest.raises(ExerciseError, match="expected 12672, got 6336"):
        check.adaln_params_exercise(lambda h, c, n: (c + 1) * 3 * h)
