"""What a forward pass keeps alive for the backward pass, measured.

Autograd saves tensors during the forward pass (``ctx.save_for_backward`` inside each op)
and frees them after the backward pass. ``torch.autograd.graph.saved_tensors_hooks``
sees every one of them as it is saved; :func:`saved_tensors` records their shape, dtype
and size, and marks which ones are the arguments themselves (which exist anyway).
"""

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class SavedTensor:
    """One tensor saved for backward: ``nbytes`` of its storage, ``is_input`` when that
    storage belongs to an argument (or a parameter) of the function."""

    shape: tuple
    dtype: torch.dtype
    nbytes: int
    storage: int
    is_input: bool


def _storage(t):
    return t.untyped_storage().data_ptr()


def saved_tensors(fn, *args, **kwargs):
    """Call ``fn(*args, **kwargs)`` and return ``(output, [SavedTensor, ...])``.

    When ``fn`` is an ``nn.Module`` its parameters count as inputs too.
    """
    inputs = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
    if isinstance(fn, nn.Module):
        inputs += list(fn.parameters())
    known = {_storage(t) for t in inputs}
    records = []

    def pack(t):
        records.append(SavedTensor(tuple(t.shape), t.dtype, t.untyped_storage().nbytes(),
                                   _storage(t), _storage(t) in known))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*args, **kwargs)
    return out, records


def new_saved_bytes(records):
    """Bytes a forward pass adds to memory until backward: distinct saved storages that
    are not inputs (a tensor saved by two ops is counted once)."""
    return sum({r.storage: r.nbytes for r in records if not r.is_input}.values())


def norm_saved_bytes(fn, normalized_shape, M, dtype=torch.float32, bias=True, seed=0):
    """``(records, new_bytes)`` for ``fn(x, normalized_shape, weight[, bias])`` on an
    ``(M, *normalized_shape)`` input that requires grad, with affine parameters."""
    gen = torch.Generator().manual_seed(seed)
    shape = tuple(normalized_shape)
    x = torch.randn(M, *shape, generator=gen).to(dtype).requires_grad_()
    weight = torch.ones(shape, dtype=dtype, requires_grad=True)
    args = (x, shape, weight) + ((torch.zeros_like(weight, requires_grad=True),) if bias else ())
    _, records = saved_tensors(fn, *args)
    return records, new_saved_bytes(records)
