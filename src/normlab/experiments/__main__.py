"""``python -m normlab.experiments <name> [options]``: every grid whose results a chapter plots.

Each name is dispatched to the ``main(argv)`` of the module that owns it; ``--help`` lists
them, ``<name> --help`` lists a grid's options.
"""

import sys

from normlab.experiments import frontier, training

# name -> (module whose main(argv) runs it, one line for the listing)
COMMANDS = {
    "grad-norms": (training, "chapter 6: per-layer gradient norms at init, several depths"),
    "train-grid": (training, "chapter 6: LN/RMS/none x post/pre/sandwich x warm-up grid"),
    "seed-spread": (training, "chapter 6: one norm, several placements x seeds, no warm-up"),
    "step-times": (training, "chapter 6: ms per training step, configs timed round-robin"),
    "frontier-qk": (frontier, "chapter 8: QK-norm (none, per head, whole projection) x LR"),
    "frontier-placement": (frontier, "chapter 8: post, DeepNorm, pre, pre+LNS, peri, OLMo 2"),
    "frontier-dyt": (frontier, "chapter 8: LayerNorm vs DyT, whole text vs 10k characters"),
    "frontier-depth": (frontier, "chapter 8: the six placements at 2-32 layers, at init"),
}


def usage():
    lines = ["usage: python -m normlab.experiments <name> [options]", "", "names:"]
    lines += [f"  {name:20s}{about}" for name, (_, about) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"unknown experiment {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    COMMANDS[argv[0]][0].main(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
