"""Where and when a measurement ran, for the provenance of the committed results files."""

import datetime
import os
import platform
from pathlib import Path


def cpu_name():
    """The CPU model from ``/proc/cpuinfo`` (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average():
    """The 1-minute load average (None where unknown): other processes slow a CPU timing
    down, so this says how far to trust one."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def utc_now():
    """The current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
