r"""GPU additions to :mod:`normlab.bench`: three providers and ``triton.testing.do_bench``.

Providers (registered on import; ``available`` keeps them out where they cannot run)
    ``normlab-triton``: the fused kernels of :mod:`normlab.kernels` (CUDA + Triton).
    ``liger``: Liger Kernel's LayerNorm/RMSNorm (CUDA, only when ``liger_kernel`` imports).
    ``normlab-fused-add``: the residual add fused into the norm (``add_layer_norm`` /
    ``add_rms_norm``): reads ``x`` and ``residual``, writes ``h`` and ``y`` (``4·M·N·s``
    bytes forward; ``7·M·N·s`` with the backward's read of ``h``, ``dy`` and write of ``dx``).
    ``copy``: the ceiling: a device copy ``y ← x`` (``2·M·N·s`` bytes) for the forward, plus
    ``dx ← x + dy`` (``3·M·N·s``) for forward+backward; the same bytes as the model, no norm.

Timing on CUDA: :func:`time_do_bench` (flushes L2 before each repeat, resets the gradients
of ``x``, ``weight``, ``bias`` outside the timed region).

The run the book's chapter 7 plots (``M·N = 2**27`` elements for 16-bit dtypes, half the
rows for float32; every provider side by side in one results file)::

    python -m normlab.bench.gpu   # writes src/normlab/data/benchmarks/<gpu-name>.json

Under a per-command time limit, one dtype (or norm) per call, merged into the same file:
``--dtypes bfloat16`` then ``--dtypes float32 --merge``.

The one-command GPU check (under 8 minutes on one H100 or H200)::

    python -m normlab.bench.gpu --quick

runs the kernel tests at full size (``tests/test_kernels*.py``: shapes up to N = 100003
and a tensor of more than 2**31 elements), then every provider side by side on the
bfloat16 shapes with N = 1024, 4096, 16384, and writes the results file as above.
"""

import argparse
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import torch

from normlab._workloads import HIDDEN, gpu_shapes
from normlab.bench.providers import NORMS, Provider, _from_forward, register
from normlab.bench.report import (
    BENCHMARKS,
    format_table,
    load_results,
    merge_results,
    write_json,
)
from normlab.bench.runner import run

QUICK_HIDDEN = (1024, 4096, 16384)
KERNEL_TESTS = ("tests/test_kernels.py", "tests/test_kernels_fused_add.py",
                "tests/test_kernels_minimal.py")
FUSED_ADD_TRAFFIC = {"fwd": 4, "fwd+bwd": 7}


def _importable(module):
    return importlib.util.find_spec(module) is not None


def time_do_bench(fn, *, budget_ms=500.0, warmup=25, **_):
    """Per-repeat times in ms of ``fn()`` from ``triton.testing.do_bench``.

    ``fn.grad_to_none`` (set by :func:`normlab.bench.providers.autograd_pass`) lists the
    leaves whose gradients do_bench resets between repeats.
    """
    from triton.testing import do_bench

    times = do_bench(fn, warmup=warmup, rep=budget_ms,
                     grad_to_none=getattr(fn, "grad_to_none", None), return_mode="all")
    return [float(t) for t in times]


def use_do_bench(device):
    """do_bench times CUDA runs whenever Triton is installed."""
    return device == "cuda" and _importable("triton")


def _build_triton(norm, pass_, x, weight, bias, dy):
    from normlab import kernels

    fns = {"layernorm": kernels.layer_norm, "rmsnorm": kernels.rms_norm}
    return _from_forward(fns)(norm, pass_, x, weight, bias, dy)


def _build_liger(norm, pass_, x, weight, bias, dy):
    from liger_kernel.transformers.functional import liger_layer_norm, liger_rms_norm

    from normlab.rms_norm import default_eps

    fns = {
        "layernorm": lambda x, shape, w, b: liger_layer_norm(x, w, b, 1e-5),
        # in_place=False: Liger would otherwise overwrite the preallocated dy in backward.
        "rmsnorm": lambda x, shape, w: liger_rms_norm(x, w, default_eps(x.dtype),
                                                      in_place=False),
    }
    return _from_forward(fns)(norm, pass_, x, weight, bias, dy)


def _build_fused_add(norm, pass_, x, weight, bias, dy):
    """The fused add + norm on ``x/2 + x/2``: ``h`` equals ``x`` exactly (halving is exact
    in binary floating point), so the output is checked against the same float64 reference
    as every provider, while the kernel reads both operands and writes ``h`` and ``y``."""
    from normlab import kernels

    half = (x.detach() * 0.5).requires_grad_(x.requires_grad)
    residual = x.detach() * 0.5
    fns = {"layernorm": lambda x, shape, w, b: kernels.add_layer_norm(x, residual, shape, w,
                                                                      b)[0],
           "rmsnorm": lambda x, shape, w: kernels.add_rms_norm(x, residual, shape, w)[0]}
    return _from_forward(fns)(norm, pass_, half, weight, bias, dy)


def _build_copy(norm, pass_, x, weight, bias, dy):
    x = x.detach()
    y = torch.empty_like(x)
    if pass_ == "fwd":
        return lambda: y.copy_(x)
    dx = torch.empty_like(x)

    def fwd_bwd():
        y.copy_(x)
        return torch.add(x, dy, out=dx)
    return fwd_bwd


def _cuda_with(module):
    return lambda device: device == "cuda" and _importable(module)


register(Provider("normlab-triton", _build_triton, _cuda_with("triton"),
                  description="normlab.kernels: fused Triton forward and backward"))
register(Provider("liger", _build_liger, _cuda_with("liger_kernel"),
                  description="Liger Kernel (Hsu et al. 2024) LayerNorm / RMSNorm"))
register(Provider("normlab-fused-add", _build_fused_add, _cuda_with("triton"),
                  description="normlab.kernels.add_*_norm: residual add fused into the norm",
                  traffic=FUSED_ADD_TRAFFIC))
register(Provider("copy", _build_copy, checked=False,
                  description="device copy: the bandwidth ceiling (no normalization)"))


def result_path(out):
    """``out`` itself if it names a ``.json`` file, else ``out/<gpu-name>.json``."""
    out = Path(out)
    if out.suffix == ".json":
        return out
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return out / (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + ".json")


REPO_ROOT = Path(__file__).resolve().parents[3]  # src/normlab/bench/gpu.py in a checkout


def run_kernel_tests(root=REPO_ROOT, timeout_s=300):
    """Run the kernel tests (full size on a GPU) with pytest; return its exit status."""
    tests = [root / t for t in KERNEL_TESTS]
    missing = [str(t) for t in tests if not t.exists()]
    if missing:
        raise FileNotFoundError(f"the kernel tests are not here: {missing} (run --quick "
                                "from a checkout of the repository)")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", *map(str, tests)],
                          cwd=root, timeout=timeout_s).returncode


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m normlab.bench.gpu", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(BENCHMARKS),
                   help="folder or .json file (default: the results the chapters plot)")
    p.add_argument("--dtypes", default="bfloat16,float32")
    p.add_argument("--norms", default=",".join(NORMS))
    p.add_argument("--budget-ms", type=float, default=500.0)
    p.add_argument("--merge", action="store_true",
                   help="keep the other cases already in the output file (one call per "
                        "dtype or norm, to fit a time limit)")
    p.add_argument("--quick", action="store_true",
                   help="the one-command GPU check: kernel tests at full size, then the "
                        "bfloat16 benchmark on N = 1024, 4096, 16384 (budget 100 ms)")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        p.error("needs a CUDA GPU (use `python -m normlab.bench` on a CPU)")
    hidden = HIDDEN
    if args.quick:
        status = run_kernel_tests()
        if status:
            print(f"kernel tests failed (pytest exit status {status}): no benchmark run")
            return status
        args.dtypes, args.budget_ms, hidden = "bfloat16", min(args.budget_ms, 100.0), QUICK_HIDDEN
    results = []
    for dtype in args.dtypes.split(","):
        doc = run(norms=args.norms.split(","), dtypes=[dtype], shapes=gpu_shapes(dtype, hidden),
                  device="cuda", budget_ms=args.budget_ms)
        results += doc["results"]
    doc["results"] = results
    doc["command"] = "python -m normlab.bench.gpu " + " ".join(sys.argv[1:] if argv is None
                                                                else argv)
    path = result_path(args.out)
    if args.merge and path.exists():
        doc = merge_results(load_results(path), doc)
    print(format_table(doc["results"]))
    print(f"wrote {write_json(doc, path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
