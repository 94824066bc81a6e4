"""normlab.experiments.stack_training: the task, the regressor and the seeded training runs."""

import math

import pytest
import torch

import normlab
from normlab.experiments.deep_stack import DeepStack
from normlab.experiments.stack_training import Regressor, teacher_task, train_losses, training_sweep


def test_teacher_task_is_seeded_and_standardised():
    x, y = teacher_task(128, 16, seed=3)
    assert x.shape == (128, 16) and y.shape == (128, 1)
    assert y.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert y.std().item() == pytest.approx(1.0, rel=1e-6)
    x2, y2 = teacher_task(128, 16, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(y, teacher_task(128, 16, seed=4)[1])
    with pytest.raises(ValueError, match="n must be positive"):
        teacher_task(0, 16)


@pytest.mark.parametrize(("norm", "cls"), [
    (None, torch.nn.Identity), ("layernorm", normlab.LayerNorm), ("rmsnorm", normlab.RMSNorm)])
def test_regressor_adds_a_final_norm_of_the_same_kind(norm, cls):
    model = Regressor(DeepStack(8, 2, norm=norm))
    assert isinstance(model.final_norm, cls)
    assert model(torch.randn(5, 8)).shape == (5, 1)
    assert torch.count_nonzero(model.head.bias) == 0
    double = Regressor(DeepStack(8, 2, norm=norm, dtype=torch.float64))
    assert {p.dtype for p in double.parameters()} == {torch.float64}


def test_training_lowers_the_loss():
    x, y = teacher_task(64, 16)
    losses = train_losses(Regressor(DeepStack(16, 4, norm="layernorm")), x, y, steps=60, lr=0.05)
    assert len(losses) == 61 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.5 * losses[0]


def test_divergence_stops_and_pads_with_nan():
    x, y = teacher_task(64, 16)
    losses = train_losses(Regressor(DeepStack(16, 16, gain=2.0)), x, y, steps=40, lr=1.0)
    first_bad = next(i for i, v in enumerate(losses) if not math.isfinite(v))
    assert len(losses) == 41 and first_bad < 40
    assert all(math.isnan(v) for v in losses[first_bad + 1:])


def test_train_losses_rejects_bad_steps():
    x, y = teacher_task(8, 4)
    with pytest.raises(ValueError, match="steps"):
        train_losses(Regressor(DeepStack(4, 1)), x, y, steps=0, lr=0.1)


def test_training_sweep_is_reproducible():
    variants = {"none": {"norm": None, "gain": 0.3}, "rms": {"norm": "rmsnorm"}}
    kwargs = {"depth": 3, "width": 8, "n": 32, "steps": 5}
    records = training_sweep(variants, (0.01, 0.1), **kwargs)
    assert [(r["label"], r["lr"]) for r in records] == [
        ("none", 0.01), ("none", 0.1), ("rms", 0.01), ("rms", 0.1)]
    assert all(len(r["losses"]) == 6 for r in records)
    assert records == training_sweep(variants, (0.01, 0.1), **kwargs)
    single = training_sweep(variants, (0.01,), dtype=torch.float32, **kwargs)
    assert single[0]["losses"] == pytest.approx(records[0]["losses"], rel=1e-4)
