"""binder/: the learners' environment, and the one image definition for Binder and for a
JupyterHub (repo2docker reads binder/). It must resolve, match the book's pins, and bring
no book-building or test tools."""

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK_OR_TEST_TOOLS = {"jupyter-book", "sphinx", "myst-nb", "myst-parser", "sqlalchemy",
                      "pytest", "nbval", "nbgrader", "playwright", "ruff"}


def pins(path):
    """``{name: version}`` of the ``name==version`` lines of a requirements file."""
    found = {}
    for line in (ROOT / path).read_text().splitlines():
        match = re.match(r"([A-Za-z0-9_.-]+)==([^;\s]+)", line)
        if match:
            found[match[1].lower()] = match[2]
    return found


def test_binder_pins_follow_the_book():
    book = pins("requirements.txt")
    binder = pins("binder/requirements.txt")
    different = {name: (version, book[name]) for name, version in binder.items()
                 if name in book and version.split("+")[0] != book[name]}
    assert different == {}, different


def test_binder_environment_resolves_without_book_or_test_tools(tmp_path):
    report = tmp_path / "report.json"
    subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
                    "--quiet", "--retries", "0", "--timeout", "20", "--report", str(report),
                    "-r", "binder/requirements.txt"], cwd=ROOT, check=True)
    resolved = {item["metadata"]["name"].lower(): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    assert resolved["torch"].endswith("+cpu") and "triton" in resolved
    assert "nbgitpuller" in resolved and "normlab" in resolved
    assert BOOK_OR_TEST_TOOLS.isdisjoint(resolved), BOOK_OR_TEST_TOOLS & set(resolved)
