"""The lab's committed results files: where they live, their provenance, their rounding.

Every grid (``python -m normlab.experiments <name>``) writes one JSON file into
``normlab/data/`` with :func:`write_results`; a chapter reads it with :func:`load_results`.
"""

import json
import math
import os
import platform
from importlib import resources
from pathlib import Path

import torch

from normlab._machine import cpu_name, load_average, utc_now

RESULTS_DIR = Path(__file__).resolve().parents[1] / "data"


def rounded(value):
    """Six significant digits (JSON has no NaN/inf: those become ``None``)."""
    return float(f"{value:.6g}") if math.isfinite(value) else None


def provenance(argv=None):
    """Where and how a result was produced: device, versions, CPU model, date, command."""
    return {"device": "cpu", "cpu": cpu_name(), "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "load_avg_1min": load_average(),
            "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "date": utc_now(),
            "command": "python -m normlab.experiments " + " ".join(argv or [])}


def load_results(name):
    """A committed result file (e.g. ``"training_grid.json"``) from ``normlab/data/``."""
    text = resources.files("normlab").joinpath("data", name).read_text(encoding="utf-8")
    return json.loads(text)


def write_results(path, payload):
    """Write ``payload`` as indented JSON to ``path`` (folders created) and say so."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")
