"""Fused Triton kernels for LayerNorm and RMSNorm (forward and backward).

The only part of normlab that imports ``triton``. ``import normlab`` works without it;
``import normlab.kernels`` raises an :class:`ImportError` that says what to install.
On a machine without a GPU set ``TRITON_INTERPRET=1`` *before* importing this package
and the kernels run on CPU tensors through Triton's interpreter (slow; for tests and
the book).
"""

try:
    import triton  # noqa: F401
except ImportError as err:  # pragma: no cover - exercised only where triton is missing
    raise ImportError(
        "normlab.kernels needs Triton, which is not installed. Install it with "
        "`pip install 'triton; sys_platform == \"linux\"'` (Linux only; the kernels run on "
        "NVIDIA GPUs, or on CPU tensors through the interpreter with TRITON_INTERPRET=1). "
        "The reference normlab.layer_norm / normlab.rms_norm need no Triton."
    ) from err

from normlab.kernels import _launch
from normlab.kernels._launch import interpreting

if interpreting() and not _launch.interpreter_active():
    raise ImportError(
        "TRITON_INTERPRET=1 was set after triton had been imported, so Triton's own functions "
        "(tl.sum, ...) were compiled for the GPU. Set it before the first `import triton` "
        "(in the shell, or at the top of the notebook/test before importing torch helpers)."
    )
from normlab.kernels.fused_add import (
    FusedAddLayerNorm,
    FusedAddRMSNorm,
    add_layer_norm,
    add_rms_norm,
)
from normlab.kernels.layer_norm import LayerNormFunction, TritonLayerNorm, layer_norm
from normlab.kernels.rms_norm import RMSNormFunction, TritonRMSNorm, rms_norm

__all__ = [
    "FusedAddLayerNorm",
    "FusedAddRMSNorm",
    "LayerNormFunction",
    "RMSNormFunction",
    "TritonLayerNorm",
    "TritonRMSNorm",
    "add_layer_norm",
    "add_rms_norm",
    "interpreting",
    "layer_norm",
    "rms_norm",
]
