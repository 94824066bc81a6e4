r"""A LayerNorm/RMSNorm benchmark anyone can rerun: ``python -m normlab.bench``.

For every case (norm × pass × dtype × shape ``M×N``) and every available *provider*,
the benchmark builds the inputs (seeded ``x``, ``weight``, ``bias`` and a preallocated
random ``dy``), checks the provider's outputs against a float64 reference, then times it
and reports the median (and 20th/80th percentiles) and the effective bandwidth.

Providers
    A provider (:class:`Provider`) is a name, a ``build(norm, pass_, x, weight, bias, dy)``
    function returning a no-argument callable that runs one pass, and an
    ``available(device)`` check. ``eager`` is the from-scratch :mod:`normlab` reference,
    ``torch`` is ``F.layer_norm``/``F.rms_norm``, ``compile`` is
    ``torch.compile(dynamic=False)`` of the reference. Others add theirs with
    :func:`register`.

Timing
    GPU: ``triton.testing.do_bench`` (L2 flushed before each repeat) where Triton is
    installed, else CUDA events around each call, after warm-up; CPU: ``time.perf_counter``, or
    with ``clock="thread"`` the thread's CPU time (repeatable on a busy machine; one torch
    thread only). Both take the median of many repeats. The backward pass uses
    ``y.backward(dy)`` with a preallocated ``dy`` (never ``y.sum().backward()``, whose
    ``dy`` of ones is free to make), and gradients are reset to ``None`` between repeats.

Bytes model (fixed; parameters ignored, they are ``N`` elements against ``M·N``)
    .. math::
        B_\text{fwd} = 2\,M N\,s \;(\text{read } x,\ \text{write } y),\qquad
        B_\text{fwd+bwd} = 5\,M N\,s \;(\text{forward, then read } x, dy,\ \text{write } dx)

    with ``s`` the element size in bytes; bandwidth = ``B / time`` in GB/s (1e9 B/s).
    It is the traffic a fused kernel cannot avoid, so it measures how close a provider
    comes to the memory ceiling, not the bytes it really moves.

Correctness gate
    Each output (``y``; ``dx``, ``dweight``, ``dbias``) is compared with float64 autograd
    of the reference: error ``max|got - ref| / max(1, max|ref|)`` within a per-dtype
    tolerance (``runner.TOLERANCE``), else :class:`CorrectnessError` and no timing.

JSON schema (``--out``)
    ``{"device": "cpu"|"cuda", "host": CPU model or GPU name, "torch": version,
    "triton": version or null, "python": version, "date": ISO 8601 UTC,
    "threads": torch CPU threads, "loadavg": 1-minute load average at the start (or null),
    "clock": "wall"|"thread"|"do_bench"|"cuda events",
    "command": the command line (null when run from Python, e.g. a chapter),
    "results": [{"norm": "layernorm"|"rmsnorm", "pass": "fwd"|"fwd+bwd",
    "provider": str, "dtype": "float32"|"bfloat16"|"float16", "M": int, "N": int,
    "ms_median": float, "ms_p20": float, "ms_p80": float, "gbps": float,
    "max_rel_err": largest error against float64 or null if unchecked}]}``
"""

from normlab.bench import gpu  # noqa: F401  registers normlab-triton, liger, copy
from normlab.bench.providers import PROVIDERS, Provider, register
from normlab.bench.report import (
    BENCHMARKS,
    bytes_moved,
    find_results,
    format_table,
    load_results,
    lookup,
    merge_results,
    metadata,
    write_json,
)
from normlab.bench.runner import (
    CorrectnessError,
    check_provider,
    make_inputs,
    output_errors,
    run,
)

__all__ = [
    "BENCHMARKS",
    "PROVIDERS",
    "CorrectnessError",
    "Provider",
    "bytes_moved",
    "check_provider",
    "find_results",
    "format_table",
    "load_results",
    "lookup",
    "make_inputs",
    "merge_results",
    "metadata",
    "output_errors",
    "register",
    "run",
    "write_json",
]
