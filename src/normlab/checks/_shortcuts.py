"""Notice when a library did a from-scratch exercise's work, and say so.

A learner's function runs under a :class:`torch.overrides.TorchFunctionMode` that records
every torch function it calls (``F.layer_norm``, ``nn.LayerNorm`` through it,
``torch.rms_norm``, ``Tensor.backward``, ``torch.autograd.grad``, …). If one of the
exercise's shortcuts is among them, the checker explains why that does not count instead
of giving the point: the exercise is the formula, the library is what it is compared with.
"""

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from normlab.checks._base import call, fail

NORMS = {
    F.layer_norm: "torch.nn.functional.layer_norm (also behind nn.LayerNorm)",
    F.rms_norm: "torch.nn.functional.rms_norm (also behind nn.RMSNorm)",
    F.group_norm: "torch.nn.functional.group_norm",
    F.batch_norm: "torch.nn.functional.batch_norm",
    F.instance_norm: "torch.nn.functional.instance_norm",
    torch.layer_norm: "torch.layer_norm",
    torch.rms_norm: "torch.rms_norm",
    torch.native_layer_norm: "torch.native_layer_norm",
    torch.group_norm: "torch.group_norm",
    torch.batch_norm: "torch.batch_norm",
}
AUTOGRAD = {
    torch.Tensor.backward: "autograd (Tensor.backward)",
    torch.autograd.backward: "autograd (torch.autograd.backward)",
    torch.autograd.grad: "autograd (torch.autograd.grad)",
}


class _Calls(TorchFunctionMode):
    """Records every torch function called while it is active."""

    def __init__(self):
        super().__init__()
        self.seen = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.seen.add(func)
        return func(*args, **(kwargs or {}))


def call_from_scratch(fn, *args, shortcuts, task):
    """``call(fn, *args)``, failing with an explanation if ``fn`` used one of ``shortcuts``
    (a ``{function: name}`` dict) for ``task`` (what the learner is asked to write)."""
    calls = _Calls()
    with calls:
        result = call(fn, *args)
    used = [name for func, name in shortcuts.items() if func in calls.seen]
    if used:
        fail(f"{fn.__name__} calls {used[0]}: the library did the work, so the check cannot "
             f"tell whether you can {task}.",
             "write it from the formula with elementary tensor operations (mean, sum, sqrt, "
             "*, /); the library is what the checker compares your answer with.")
    return result
