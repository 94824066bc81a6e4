"""A short, seeded training run of a :class:`~normlab.experiments.deep_stack.DeepStack` (chapter 1).

Full-batch gradient descent on a small synthetic regression task, small enough to run
in about a second on one CPU core, so the chapter can compare normalizations and
learning rates with real loss curves.
"""

import math

import torch
from torch import nn

from normlab._validate import check_positive_int
from normlab.experiments.deep_stack import DeepStack, make_norm


def teacher_task(n, width, *, seed=0):
    r"""A small regression task: :math:`x \sim \mathcal N(0, I_d)`, :math:`y = \tanh(xA)\,b`.

    ``A`` is ``(d, 4d)`` with entries ``𝒩(0, 4/d)`` (so the teacher is non-linear), ``b`` is
    ``(4d, 1)``; ``y`` is standardised, so predicting 0 gives loss 1. Shapes ``(n, d), (n, 1)``.
    """
    n, width = check_positive_int(n, "n"), check_positive_int(width, "width")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, width, generator=gen)
    a = torch.randn(width, 4 * width, generator=gen) * (2 / math.sqrt(width))
    b = torch.randn(4 * width, 1, generator=gen)
    y = torch.tanh(x @ a) @ b
    return x, (y - y.mean()) / y.std()


class Regressor(nn.Module):
    """``stack`` → a final norm of the same kind (as in pre-norm Transformers) → linear head."""

    def __init__(self, stack, seed=0):
        super().__init__()
        width = stack.blocks[0].linear.in_features
        self.stack = stack
        self.final_norm = make_norm(stack.norm, width)
        self.head = nn.Linear(width, 1)
        with torch.no_grad():
            nn.init.normal_(self.head.weight, std=1 / math.sqrt(width),
                            generator=torch.Generator().manual_seed(seed))
            self.head.bias.zero_()
        self.to(stack.blocks[0].linear.weight.dtype)

    def forward(self, x):
        return self.head(self.final_norm(self.stack(x)))


def train_losses(model, x, y, *, steps, lr):
    r"""Full-batch gradient descent on :math:`\tfrac1n\lVert \mathrm{model}(x) - y\rVert^2`.

    Returns ``steps + 1`` losses (before each step, and after the last). Once the loss is
    no longer finite the run has diverged: it stops and the rest is ``nan``.
    """
    steps = check_positive_int(steps, "steps")
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for step in range(steps + 1):
        opt.zero_grad(set_to_none=True)
        loss = (model(x) - y).pow(2).mean()
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            return losses + [math.nan] * (steps + 1 - len(losses))
        if step < steps:  # the last loss is measured after the last step
            loss.backward()
            opt.step()
    return losses


def training_sweep(variants, lrs, *, depth=32, width=32, n=256, steps=300, seed=0,
                   dtype=torch.float64):
    """Train every variant at every learning rate from the same data and seed.

    ``variants`` maps a label to :class:`DeepStack` keyword arguments (``norm``, ``gain``,
    ...). Returns records ``{"label", "lr", "losses"}``. float64 by default: near the edge
    of stability gradient descent amplifies rounding differences, and the chapter's stored
    loss curves must reproduce on any CPU.
    """
    x, y = (t.to(dtype) for t in teacher_task(n, width, seed=seed))
    records = []
    for label, stack_kwargs in variants.items():
        for lr in lrs:
            stack = DeepStack(width, depth, seed=seed, dtype=dtype, **stack_kwargs)
            model = Regressor(stack, seed=seed)
            records.append({"label": label, "lr": lr,
                            "losses": train_losses(model, x, y, steps=steps, lr=lr)})
    return records
