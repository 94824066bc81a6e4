"""Chapter 5 exercise checkers accept right answers and explain wrong ones."""

import pytest
import torch
from torch import nn

from normlab.checks import ExerciseError
from normlab.checks import builtins as check
from normlab.checks._base import PASS_MARK


def forward_bytes(M, N, dtype):
    return 2 * M * N * torch.empty((), dtype=dtype).element_size()


def swap(model):
    saved = 0
    for name, child in model.named_children():
        if isinstance(child, nn.LayerNorm):
            rms = nn.RMSNorm(child.normalized_shape, child.eps, child.elementwise_affine)
            if child.weight is not None:
                rms.weight.data.copy_(child.weight.data)
            saved += sum(p.numel() for p in child.parameters())
            saved -= sum(p.numel() for p in rms.parameters())
            setattr(model, name, rms)
        else:
            saved += swap(child)
    return saved


def test_right_answers_pass(capsys):
    check.forward_bytes_exercise(forward_bytes)
    check.swap_norms_exercise(swap)
    out = capsys.readouterr().out
    assert out.count(PASS_MARK) == 2 and "64 parameters saved" in out


def test_stub_reports_not_implemented():
    def stub(*args):
        raise NotImplementedError()

    for checker in (check.forward_bytes_exercise, check.swap_norms_exercise):
        with pytest.raises(ExerciseError, match="not implemented yet"):
            checker(stub)


@pytest.mark.parametrize("fn, hint", [
    (lambda M, N, dtype: M * N * torch.empty((), dtype=dtype).element_size(), "both the read"),
    (lambda M, N, dtype: 16 * M * N * torch.empty((), dtype=dtype).element_size(), "not bits"),
    (lambda M, N, dtype: 2 * M * N * 4, "bytes per element"),
])
def test_wrong_byte_counts_get_a_hint(fn, hint):
    with pytest.raises(ExerciseError, match=hint):
        check.forward_bytes_exercise(fn)


def _swap_with(recurse=True, copy_weight=True, keep_eps=True, returned=64):
    """A swap that is right except where a flag says otherwise."""
    def swap(model):
        for parent in list(model.modules()) if recurse else [model]:
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.LayerNorm):
                    rms = nn.RMSNorm(child.normalized_shape, child.eps if keep_eps else None,
                                     child.elementwise_affine)
                    if copy_weight and child.weight is not None:
                        rms.weight.data.copy_(child.weight.data)
                    setattr(parent, name, rms)
        return returned
    return swap


def test_flagged_swap_is_right_when_nothing_is_flagged(capsys):
    check.swap_norms_exercise(_swap_with())
    assert PASS_MARK in capsys.readouterr().out


@pytest.mark.parametrize("flags, message", [
    ({"recurse": False}, "expected an nn.RMSNorm"),
    ({"copy_weight": False}, "weight differs"),
    ({"returned": 96}, "parameters saved"),
    ({"keep_eps": False}, "eps"),
])
def test_wrong_swaps_are_explained(flags, message):
    with pytest.raises(ExerciseError, match=message):
        check.swap_norms_exercise(_swap_with(**flags))


def test_toy_model_has_layer_norms_everywhere():
    model = check.toy_model()
    names = [n for n, m in model.named_modules() if isinstance(m, nn.LayerNorm)]
    assert names == ["0.norm1", "0.extra.0", "1.norm1", "1.extra.0", "2"]
