"""Time the reference norms before and after a change, side by side in one benchmark run.

    git archive <before-commit> src | tar -x -C /tmp/before
    python src/normlab/data/benchmarks/ordinary-path/before_after.py /tmp/before/src \\
        --device cpu --grid cpu --threads 1 --clock thread \\
        --providers eager-before,eager,torch --out <results.json>

Registers a provider ``eager-before`` (``layer_norm``/``rms_norm`` of the reference in the
given ``src`` folder) next to ``eager`` (this checkout's), then runs ``python -m
normlab.bench`` with the remaining arguments: every case times both, interleaved, on the
same inputs, and checks both against float64.
"""

import importlib.util
import sys

from normlab.bench.__main__ import main
from normlab.bench.providers import Provider, _from_forward, register


def load(path, name):
    """The module at ``path``, imported under ``name`` (beside this checkout's normlab)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    before = sys.argv[1]
    layer_norm = load(f"{before}/normlab/layer_norm.py", "normlab_before_layer_norm")
    rms_norm = load(f"{before}/normlab/rms_norm.py", "normlab_before_rms_norm")
    register(Provider("eager-before",
                      _from_forward({"layernorm": layer_norm.layer_norm,
                                     "rmsnorm": rms_norm.rms_norm}),
                      description=f"the normlab reference in {before}"))
    sys.exit(main(sys.argv[2:]))
