"""Exercise checkers of chapter 5 (PyTorch's built-ins)."""

import torch
from torch import nn

from normlab.bench.report import bytes_moved
from normlab.checks._base import call, expect_number, fail, passed

BYTES_CASES = ((4096, 1024, torch.float32), (8192, 4096, torch.bfloat16),
               (3, 1000, torch.float16), (1, 1, torch.float64))


def forward_bytes_exercise(fn):
    """``fn(M, N, dtype)`` must return the bytes a forward pass must move: ``2·M·N·s``."""
    for M, N, dtype in BYTES_CASES:
        expected = bytes_moved("fwd", M, N, dtype)
        got = call(fn, M, N, dtype)
        size = torch.empty((), dtype=dtype).element_size()
        hint = (f"{dtype} has {size} bytes per element (torch.empty((), dtype=dtype)"
                ".element_size()); a forward pass reads x once and writes y once.")
        try:
            ratio = float(got) / expected
        except (TypeError, ValueError):
            ratio = None
        if ratio == 0.5:
            hint = "Half of the answer: count both the read of x and the write of y."
        elif ratio == 8:
            hint = "Count bytes, not bits: element_size() is already in bytes."
        expect_number(got, expected, f"forward_bytes({M}, {N}, {dtype})", hint=hint)
    passed("forward_bytes is right: 2·M·N·(bytes per element).")


class _Block(nn.Module):
    """A pre-norm block with one normalisation in an attribute and one in a ModuleList."""

    def __init__(self, d):
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.mix = nn.Linear(d, d)
        self.extra = nn.ModuleList([nn.LayerNorm(d, eps=1e-6), nn.GELU()])


def toy_model(d=16, seed=0):
    """Two blocks and a final LayerNorm without affine parameters, with random γ, β."""
    torch.manual_seed(seed)
    model = nn.Sequential(_Block(d), _Block(d), nn.LayerNorm(d, elementwise_affine=False))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.LayerNorm) and m.weight is not None:
                m.weight.normal_(1.0, 0.1)
                m.bias.normal_(0.0, 0.1)
    return model


def _count(model):
    return sum(p.numel() for p in model.parameters())


def swap_norms_exercise(fn):
    """``fn(model)`` replaces every ``nn.LayerNorm`` by an ``nn.RMSNorm`` in place (same
    shape, eps, affine flag and weight γ) and returns the number of parameters saved."""
    model = toy_model()
    before = {name: m for name, m in model.named_modules() if isinstance(m, nn.LayerNorm)}
    expected = sum(m.bias.numel() for m in before.values() if m.bias is not None)
    total = _count(model)
    got = call(fn, model)
    after = dict(model.named_modules())
    for name, old in before.items():
        new = after.get(name)
        if isinstance(new, nn.LayerNorm) or not isinstance(new, nn.RMSNorm):
            fail(f"model.{name} is {type(new).__name__}, expected an nn.RMSNorm.",
                 "Walk model.named_children() recursively and setattr(parent, name, new); "
                 "LayerNorms inside an nn.ModuleList count too.")
        if tuple(new.normalized_shape) != tuple(old.normalized_shape) or new.eps != old.eps:
            fail(f"model.{name}: expected normalized_shape {tuple(old.normalized_shape)} and "
                 f"eps {old.eps}, got {tuple(new.normalized_shape)} and {new.eps}.",
                 "Pass the LayerNorm's normalized_shape and eps to nn.RMSNorm.")
        if new.elementwise_affine != old.elementwise_affine:
            fail(f"model.{name}: elementwise_affine should stay {old.elementwise_affine}.")
        if old.weight is not None and not torch.equal(new.weight.detach(), old.weight.detach()):
            fail(f"model.{name}: the RMSNorm's weight differs from the LayerNorm's γ.",
                 "Copy it: rms.weight.data.copy_(ln.weight.data), so the learned scale is kept.")
    if total - _count(model) != expected:
        fail(f"the model lost {total - _count(model)} parameters, expected {expected} "
             "(only the biases β disappear).")
    expect_number(got, expected, "the returned number of parameters saved",
                  hint="Count the parameters before and after, or sum the biases' numel().")
    passed(f"every LayerNorm is an RMSNorm now; {expected} parameters saved "
           f"({expected / total:.1%} of this toy model).")
