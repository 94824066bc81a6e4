"""Bytes model, provenance, the side-by-side table and the JSON results files."""

import json
import platform
from pathlib import Path

import torch

from normlab._machine import cpu_name, load_average, utc_now
from normlab._workloads import BENCHMARKS

PASS_FACTOR = {"fwd": 2, "fwd+bwd": 5}  # tensors of M×N elements that must move
RESULT_KEYS = ("norm", "pass", "provider", "dtype", "M", "N",
               "ms_median", "ms_p20", "ms_p80", "gbps")
TOP_KEYS = ("device", "host", "torch", "triton", "python", "date", "results")


def bytes_moved(pass_, M, N, dtype):
    """``2·M·N·s`` bytes for ``"fwd"``, ``5·M·N·s`` for ``"fwd+bwd"`` (``s`` = element size)."""
    if pass_ not in PASS_FACTOR:
        raise ValueError(f"pass_ must be one of {sorted(PASS_FACTOR)}, got {pass_!r}")
    return PASS_FACTOR[pass_] * M * N * torch.empty((), dtype=dtype).element_size()


def gbps(nbytes, ms):
    """Effective bandwidth in GB/s (1e9 bytes per second) of ``nbytes`` moved in ``ms``."""
    return nbytes / (ms * 1e-3) / 1e9


def _triton_version():
    try:
        import triton
    except ImportError:
        return None
    return triton.__version__


def metadata(device):
    """Provenance of a run: device, host, versions, date and threads. ``command`` is None
    here; the command-line entry points fill it in."""
    host = torch.cuda.get_device_name() if device == "cuda" else cpu_name()
    return {
        "device": device,
        "host": host,
        "torch": torch.__version__,
        "triton": _triton_version(),
        "python": platform.python_version(),
        "date": utc_now(),
        "threads": torch.get_num_threads(),
        "loadavg": load_average(),
        "command": None,
    }


def check_schema(doc):
    """Raise ``ValueError`` naming the first key that the documented schema misses."""
    for key in TOP_KEYS:
        if key not in doc:
            raise ValueError(f"results file lacks the key {key!r}")
    for i, row in enumerate(doc["results"]):
        for key in RESULT_KEYS:
            if key not in row:
                raise ValueError(f"results[{i}] lacks the key {key!r}")
    return doc


def write_json(doc, path):
    """Write a results document (after checking its schema) as indented JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(check_schema(doc), indent=1) + "\n")
    return path


def load_results(path):
    """Read and check one results file."""
    return check_schema(json.loads(Path(path).read_text()))


def merge_results(old, new):
    """``new`` plus the rows of ``old`` that it does not re-measure: one results file built
    by several calls on the same machine (e.g. one per dtype, to fit a time limit). Each
    case's providers are still timed side by side within one call."""
    for key in ("device", "host", "torch", "triton"):
        if old.get(key) != new.get(key):
            raise ValueError(f"cannot merge results measured with a different {key}: "
                             f"{old.get(key)!r} vs {new.get(key)!r}")
    case = lambda r: (r["norm"], r["pass"], r["dtype"], r["M"], r["N"], r["provider"])  # noqa: E731
    fresh = {case(r) for r in new["results"]}
    return {**new, "command": f'{old["command"]} && {new["command"]}',
            "results": [r for r in old["results"] if case(r) not in fresh] + new["results"]}




def find_results(directory=BENCHMARKS):
    """The results files (``*.json``) in ``directory``, sorted by name."""
    return sorted(Path(directory).glob("*.json"))


def format_table(results):
    """Side-by-side text table: one line per case, ``ms (GB/s)`` per provider."""
    providers = list(dict.fromkeys(r["provider"] for r in results))
    cases = {}
    for r in results:
        key = (r["norm"], r["pass"], r["dtype"], r["M"], r["N"])
        cases.setdefault(key, {})[r["provider"]] = f'{r["ms_median"]:.3g} ms ({r["gbps"]:.3g})'
    head = f'{"norm":<10}{"pass":<9}{"dtype":<10}{"M×N":<12}'
    lines = [head + "".join(f"{p:>22}" for p in providers)]
    for (norm, pass_, dtype, M, N), cells in cases.items():
        line = f"{norm:<10}{pass_:<9}{dtype:<10}{f'{M}×{N}':<12}"
        lines.append(line + "".join(f'{cells.get(p, "-"):>22}' for p in providers))
    return "\n".join(lines) + "\n(median time per call, effective bandwidth in GB/s)"


def lookup(results, **case):
    """The one result row matching every ``key=value`` in ``case`` (``pass_`` for "pass")."""
    case = {("pass" if k == "pass_" else k): v for k, v in case.items()}
    rows = [r for r in results if all(r.get(k) == v for k, v in case.items())]
    if len(rows) != 1:
        raise ValueError(f"{len(rows)} results match {case}, expected exactly one")
    return rows[0]
