"""Command line: ``python -m normlab.bench --device cpu --grid tiny --out results.json``.

Grids name a set of ``(M, N)`` shapes (rows × hidden size) and dtypes; ``--shapes`` and
``--dtypes`` override them. See :mod:`normlab.bench` for the providers, the bytes model
and the JSON schema.
"""

import argparse
import sys

import torch

from normlab.bench.providers import NORMS, PASSES, PROVIDERS
from normlab.bench.report import format_table, write_json
from normlab.bench.runner import DTYPES, run

# Rows M = tokens in a batch; hidden N from a small MLP to a large LLM. The CPU grid keeps
# every tensor under 32 MiB: glibc serves larger blocks with fresh mmap pages, so each call
# would also time page faults (a 100x slowdown on some VMs), not the norm.
GRIDS = {
    "tiny": {"shapes": [(64, 128), (32, 1000)], "dtypes": ["float32"]},
    "small": {"shapes": [(512, 256), (512, 1024), (512, 4096)], "dtypes": ["float32"]},
    "cpu": {"shapes": [(4096, 256), (1024, 1024), (1024, 4096), (256, 16384)],
            "dtypes": ["float32", "bfloat16"]},
    "gpu": {"shapes": [(8192, 512), (8192, 1024), (8192, 2048), (8192, 4096),
                       (8192, 8192), (4096, 16384)],
            "dtypes": ["float32", "bfloat16", "float16"]},
}


def parse_shapes(text):
    """``"4096x1024,512x8192"`` → ``[(4096, 1024), (512, 8192)]``."""
    try:
        shapes = [tuple(int(n) for n in item.lower().split("x")) for item in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"shapes must look like 4096x1024,512x8192: {text!r}") from None
    if any(len(s) != 2 or min(s) <= 0 for s in shapes):
        raise argparse.ArgumentTypeError(f"each shape must be MxN with M, N > 0: {text!r}")
    return shapes


def _names(allowed):
    def parse(text):
        names = text.split(",")
        bad = [n for n in names if n not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {list(allowed)}")
        return names
    return parse


def parser():
    p = argparse.ArgumentParser(prog="python -m normlab.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--grid", default="small", choices=sorted(GRIDS))
    p.add_argument("--shapes", type=parse_shapes, help="MxN,... (overrides the grid's)")
    p.add_argument("--dtypes", type=_names(DTYPES), help="comma-separated (overrides the grid's)")
    p.add_argument("--norms", type=_names(NORMS), default=list(NORMS))
    p.add_argument("--passes", type=_names(PASSES), default=list(PASSES))
    p.add_argument("--providers", type=_names(PROVIDERS), default=None,
                   help=f"comma-separated, default all available: {','.join(PROVIDERS)}")
    p.add_argument("--budget-ms", type=float, default=None,
                   help="time spent repeating each case (default: 200 CPU, 500 GPU)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's); 1 avoids stalls on a busy machine")
    p.add_argument("--clock", default="wall", choices=["wall", "thread"],
                   help="CPU timer: wall clock, or this thread's CPU time (needs --threads 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the results JSON here")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    grid = GRIDS[args.grid]
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    timing = {} if args.budget_ms is None else {"budget_ms": args.budget_ms}
    doc = run(norms=args.norms, passes=args.passes, dtypes=args.dtypes or grid["dtypes"],
              shapes=args.shapes or grid["shapes"], providers=args.providers,
              device=args.device, seed=args.seed, clock=args.clock, **timing)
    doc["command"] = "python -m normlab.bench " + " ".join(sys.argv[1:] if argv is None
                                                            else argv)
    print(format_table(doc["results"]))
    if args.out:
        print(f"wrote {write_json(doc, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
