"""The chapter-6 checkers accept right answers and explain wrong ones."""

import pytest

from normlab.checks import ExerciseError
from normlab.checks import transformers as check
from normlab.checks._base import PASS_MARK


def pre_norm(block, x):
    x = x + block.attn(block.norm1(x))
    return x + block.mlp(block.norm2(x))


def post_norm(block, x):
    x = block.norm1(x + block.attn(x))
    return block.norm2(x + block.mlp(x))


def swapped_norms(block, x):
    x = x + block.attn(block.norm2(x))
    return x + block.mlp(block.norm1(x))


def stub(*args):
    raise NotImplementedError()


def test_pre_norm_accepts_solution(capsys):
    check.pre_norm_exercise(pre_norm)
    assert capsys.readouterr().out.startswith(PASS_MARK)


@pytest.mark.parametrize("wrong, message", [
    (post_norm, "still after the residual addition"),
    (swapped_norms, "largest difference"),
    (stub, "not implemented yet"),
    (lambda block, x: x[0], "expected shape"),
])
def test_pre_norm_explains_mistakes(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check.pre_norm_exercise(wrong)


def grad_norms(model):
    return [b.mlp.out.weight.grad.norm().item() for b in model.blocks]


def test_grad_norms_accepts_solution(capsys):
    check.grad_norms_exercise(grad_norms)
    assert capsys.readouterr().out.startswith(PASS_MARK)


@pytest.mark.parametrize("wrong, message", [
    (lambda m: grad_norms(m)[::-1], "reverse order"),
    (lambda m: [b.mlp.out.weight.norm().item() for b in m.blocks], "norms of the weights"),
    (lambda m: grad_norms(m)[:-1], "one number per layer"),
    (lambda m: [b.mlp.fc.weight.grad.norm().item() for b in m.blocks], "layer 1: expected"),
    (lambda m: "big", "list of numbers"),
    (stub, "not implemented yet"),
])
def test_grad_norms_explains_mistakes(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check.grad_norms_exercise(wrong)


RUNS = [{"norm": "layernorm", "placement": p, "depth": d, "grad_norm": g}
        for p, d, g in [("post", 2, [1.0, 1.0]), ("pre", 2, [2.0, 1.0]),
                        ("sandwich", 2, [2.0, 1.5]), ("post", 3, [1.0, 1.0, 1.1]),
                        ("pre", 3, [2.0, 1.0, 0.5]), ("sandwich", 3, [2.0, 1.0, 0.6])]]


def test_prediction_uses_the_deepest_runs(capsys):
    check.placement_prediction_exercise(lambda: "post", RUNS)
    assert "depth 3" in capsys.readouterr().out
    with pytest.raises(ExerciseError, match="'pre' is not the largest"):
        check.placement_prediction_exercise(lambda: "pre", RUNS)
    with pytest.raises(ExerciseError, match="must be one of"):
        check.placement_prediction_exercise(lambda: "Post-LN", RUNS)
    with pytest.raises(ExerciseError, match="not implemented yet"):
        check.placement_prediction_exercise(stub, RUNS)
