"""The provider registry: who is timed, and how one pass of a provider is run.

A provider's ``build(norm, pass_, x, weight, bias, dy)`` returns a callable with no
arguments that runs one forward (``pass_ == "fwd"``) or forward+backward (``"fwd+bwd"``)
pass and returns ``y`` or ``(y, dx, dweight, dbias)``. Most providers only supply a
forward function and let :func:`autograd_pass` wrap it.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from normlab.layer_norm import layer_norm
from normlab.rms_norm import rms_norm

NORMS = ("layernorm", "rmsnorm")
PASSES = ("fwd", "fwd+bwd")


def _always(device):
    return True


@dataclass(frozen=True)
class Provider:
    """A named implementation to benchmark.

    ``checked=False`` skips the float64 comparison (for a ceiling such as a plain copy,
    which computes no norm). ``traffic`` maps a pass to the ``M×N`` tensors it must move
    when that differs from the norm's (:data:`normlab.bench.report.PASS_FACTOR`), e.g. a
    norm with the residual add fused in.
    """

    name: str
    build: Callable
    available: Callable = field(default=_always)
    checked: bool = True
    description: str = ""
    traffic: dict | None = None


PROVIDERS = {}


def register(provider):
    """Add ``provider`` to :data:`PROVIDERS` (replacing one of the same name); return it."""
    if not isinstance(provider, Provider):
        raise TypeError(f"provider must be a normlab.bench.Provider, got {type(provider).__name__}")
    PROVIDERS[provider.name] = provider
    return provider


def call_norm(fns, norm, x, weight, bias):
    """Call ``fns[norm]`` with torch's signature; RMSNorm takes no bias."""
    shape = x.shape[-1:]
    if norm == "layernorm":
        return fns[norm](x, shape, weight, bias)
    return fns[norm](x, shape, weight)


def autograd_pass(forward, pass_, x, weight, bias, dy):
    """One pass of ``forward(x, weight, bias)``; the backward is ``y.backward(dy)``.

    Gradients are reset to ``None`` before each call so no repeat accumulates into
    (and reads) the previous repeat's gradient.
    """
    leaves = [t for t in (x, weight, bias) if t is not None]
    if pass_ == "fwd":
        def fwd():
            with torch.no_grad():
                return forward(x, weight, bias)
        return fwd

    def fwd_bwd():
        for t in leaves:
            t.grad = None
        y = forward(x, weight, bias)
        y.backward(dy)
        return y, x.grad, getattr(weight, "grad", None), getattr(bias, "grad", None)
    fwd_bwd.grad_to_none = leaves  # for triton.testing.do_bench (normlab.bench.gpu)
    return fwd_bwd


def _from_forward(fns):
    """A ``build`` function for providers given as ``{"layernorm": f, "rmsnorm": g}``."""
    def build(norm, pass_, x, weight, bias, dy):
        return autograd_pass(lambda x, w, b: call_norm(fns, norm, x, w, b),
                             pass_, x, weight, bias, dy)
    return build


REFERENCE = {"layernorm": layer_norm, "rmsnorm": rms_norm}
BUILTIN = {"layernorm": F.layer_norm, "rmsnorm": F.rms_norm}


def _build_compiled(norm, pass_, x, weight, bias, dy):
    # Dynamo caches compiled graphs per code object and falls back to eager after a few
    # recompilations; a grid of shapes and dtypes would hit that, so start afresh.
    torch._dynamo.reset()
    compiled = torch.compile(REFERENCE[norm], dynamic=False)
    return _from_forward({norm: compiled})(norm, pass_, x, weight, bias, dy)


def _compile_available(device):
    # Inductor needs a C++ compiler on CPU and Triton on GPU.
    from torch._inductor import utils

    if device == "cpu":
        import shutil

        return shutil.which("c++") is not None or shutil.which("gcc") is not None
    return utils.has_triton()


register(Provider("eager", _from_forward(REFERENCE),
                  description="normlab reference (plain PyTorch ops, from scratch)"))
register(Provider("torch", _from_forward(BUILTIN),
                  description="torch.nn.functional.layer_norm / rms_norm"))
register(Provider("compile", _build_compiled, _compile_available,
                  description="torch.compile(dynamic=False) of the normlab reference"))
