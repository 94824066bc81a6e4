"""normlab: LayerNorm and RMSNorm, from the math to fast kernels.

Public API re-exports only: the math a user imports. The book's experiments (models, training
grids) live in ``normlab.experiments``, figures, checks, benchmarks and kernels in their own
subpackages.
"""

from normlab.adaptive import AdaLNZero, AdaNorm, ada_norm, modulate
from normlab.dyt import DyT, dyt
from normlab.layer_norm import LayerNorm, layer_norm, layer_norm_backward, layer_norm_stats
from normlab.ngpt import ngpt_update, unit_norm
from normlab.rms_norm import RMSNorm, default_eps, rms_norm, rms_norm_backward

__all__ = ["AdaLNZero", "AdaNorm", "ada_norm", "modulate", "DyT", "dyt",
           "LayerNorm", "RMSNorm", "default_eps", "layer_norm", "layer_norm_backward",
           "layer_norm_stats", "ngpt_update", "rms_norm", "rms_norm_backward", "unit_norm"]
