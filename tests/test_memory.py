"""normlab.experiments.memory: the saved-for-backward accounting."""

import torch
import torch.nn.functional as F
from torch import nn

import normlab
from normlab.experiments.memory import new_saved_bytes, norm_saved_bytes, saved_tensors


class SaveTwo(torch.autograd.Function):
    """Saves its input and a new (3, 1) float64 tensor."""

    @staticmethod
    def forward(ctx, x):
        stat = torch.ones(x.shape[0], 1, dtype=torch.float64)
        ctx.save_for_backward(x, stat)
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return 2 * g


def test_records_shape_dtype_size_and_inputs():
    x = torch.randn(3, 5, requires_grad=True)
    out, records = saved_tensors(SaveTwo.apply, x)
    assert out.shape == (3, 5)
    assert [(r.shape, r.dtype, r.nbytes, r.is_input) for r in records] == [
        ((3, 5), torch.float32, 60, True), ((3, 1), torch.float64, 24, False)]
    assert new_saved_bytes(records) == 24


def test_a_tensor_saved_twice_is_counted_once():
    x = torch.randn(4, 8, requires_grad=True)
    _, records = saved_tensors(lambda x: x.exp() * x.exp().detach().requires_grad_(), x)
    _, twice = saved_tensors(lambda x: (lambda e: e * e)(x.exp()), x)
    # exp saves its result e; e * e saves e twice: one new storage of 4·8·4 bytes
    assert sum(not r.is_input for r in twice) == 3
    assert new_saved_bytes(twice) == 4 * 8 * 4
    assert new_saved_bytes(records) == 2 * 4 * 8 * 4


def test_module_parameters_count_as_inputs():
    torch.manual_seed(0)
    lin = nn.Linear(6, 2)
    _, records = saved_tensors(lin, torch.randn(3, 6, requires_grad=True))
    assert records and all(r.is_input for r in records)


def test_builtin_layer_norm_saves_only_two_statistics_per_row():
    M, N = 64, 256
    _, new = norm_saved_bytes(F.layer_norm, (N,), M)
    assert new == 2 * M * 4  # mean and rstd, float32


def test_from_scratch_layer_norm_saves_more_than_x():
    M, N = 64, 256
    _, new = norm_saved_bytes(normlab.layer_norm, (N,), M)
    assert new >= 2 * M * N * 4


def test_half_inputs_and_rms_without_bias():
    records, new = norm_saved_bytes(normlab.rms_norm, (4, 8), 3, torch.bfloat16, bias=False)
    assert any(r.dtype == torch.float32 for r in records)  # statistics kept in float32
    assert new > 0
