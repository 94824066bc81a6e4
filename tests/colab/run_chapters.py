"""Run every chapter once, top to bottom, in this interpreter's environment: `make colab-test`
runs it in a virtualenv pinned to Colab's preinstalled versions (tests/colab/requirements.txt).

A cell that raises fails the run unless it is tagged ``raises-exception`` (nbclient's rule,
the same as nbval's); outputs are not compared (they differ across library versions).
Usage: ``python tests/colab/run_chapters.py chapters/*.ipynb``.
"""

import os
import sys
import time
from pathlib import Path

# The kernel must be this environment's python, not a user-wide "python3" kernelspec, and
# must import the installed normlab (as on Colab), not a source tree on PYTHONPATH.
os.environ["JUPYTER_PREFER_ENV_PATH"] = "1"
os.environ.pop("PYTHONPATH", None)

import nbformat  # noqa: E402
from nbclient import NotebookClient  # noqa: E402

PROBE = ("import sys, ipywidgets, normlab\n"
         "print(sys.executable, ipywidgets.__version__, normlab.__file__)")


def run(path):
    """Execute ``path``; return the kernel's ``python ipywidgets-version`` line."""
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(PROBE))
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(Path(path).parent)}}).execute()
    return notebook.cells[-1].outputs[0]["text"].strip()


def main(paths):
    for path in paths:
        start = time.perf_counter()
        kernel = run(path)
        if not kernel.startswith(sys.executable) or "site-packages" not in kernel:
            sys.exit(f"{path} ran in another environment or normlab: {kernel}")
        print(f"{path}: ran in {time.perf_counter() - start:.0f} s ({kernel})", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
