"""What the GPU measurements share: the benchmark shapes and where committed results live.

Both the benchmark (:mod:`normlab.bench.gpu`) and the compile report
(:mod:`normlab.kernels.codegen`) measure the kernels at these shapes; keeping the rule here
lets the kernels' report use it without importing the benchmark.
"""

from pathlib import Path

# The committed results ship inside the package (normlab/data/benchmarks), so the chapters
# find them from any working directory and in a regular (non-editable) install, e.g. Colab.
BENCHMARKS = Path(__file__).resolve().parent / "data" / "benchmarks"

HIDDEN = (1024, 2048, 4096, 8192, 16384)
ELEMENTS = 2**27  # M·N for 2-byte dtypes: 256 MiB per tensor, far beyond any L2 cache


def gpu_shapes(dtype, hidden=HIDDEN):
    """``(M, N)`` with ``M·N = 2**27`` for 16-bit dtypes and half the rows for float32."""
    elements = ELEMENTS // 2 if dtype == "float32" else ELEMENTS
    return [(elements // n, n) for n in hidden]
