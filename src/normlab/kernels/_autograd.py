r"""Derivatives the fused backward does not give, taken from the reference formulas.

The kernels' backward is first-order reverse mode only: its ``dx`` is computed, not
recorded on a graph. Two uses need more, and both are delegated to autograd of the
differentiable reference (:func:`normlab.layer_norm`, :func:`normlab.rms_norm`) at the
same inputs, so no term is dropped:

- **higher-order reverse mode** (``create_graph=True``: gradient penalties, double
  backward, Hessian-vector products):
  :math:`\nabla_\theta \langle dy, f(\theta)\rangle` recorded on a graph;
- **forward mode** (``torch.func.jvp``, ``torch.autograd.forward_ad``): the tangent
  :math:`\dot y = J_f(\theta)\,\dot\theta`.
"""

import torch


def reference_vjp(reference, inputs, needs, dy):
    r"""``(∂⟨dy, reference(*inputs)⟩/∂inputs[i] if needs[i] else None)`` with a graph.

    ``inputs`` are the Function's saved tensor inputs (their graph links intact),
    ``needs`` its ``ctx.needs_input_grad`` for them.
    """
    wanted = [t for t, need in zip(inputs, needs, strict=True) if need]
    with torch.enable_grad():
        grads = iter(torch.autograd.grad(reference(*inputs), wanted, dy, create_graph=True))
    return tuple(next(grads) if need else None for need in needs)


def reference_jvp(reference, primals, tangents):
    r"""The tangent :math:`\dot y = J\,\dot\theta` of ``reference(*primals)``.

    Found by reverse mode twice (``torch.func.vjp``, which composes both inside
    ``torch.func.jvp`` and under ``torch.autograd.forward_ad``, where a nested forward
    mode is not supported): :math:`g(u) = J^\top u` is linear in u, so the vjp of g
    with :math:`\dot\theta` is :math:`J\dot\theta`. ``None`` primals (an absent weight
    or bias) stay ``None``; a ``None`` tangent of a present primal is a zero tangent.
    """
    present = [i for i, p in enumerate(primals) if p is not None]

    def of_present(*values):
        args = list(primals)
        for i, value in zip(present, values, strict=True):
            args[i] = value
        return reference(*args)

    y, transpose = torch.func.vjp(of_present, *(primals[i] for i in present))
    _, jacobian = torch.func.vjp(transpose, torch.zeros_like(y))
    dots = tuple(torch.zeros_like(primals[i]) if tangents[i] is None else tangents[i]
                 for i in present)
    return jacobian(dots)[0]
