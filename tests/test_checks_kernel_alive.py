"""A Triton answer without masks gets feedback in a live Jupyter kernel, which survives it.

Before normlab.checks ran learners' kernels on guarded buffers in a child process, this
answer aborted Triton's CPU interpreter ("corrupted double-linked list", exit 134): the
learner lost their kernel, and nbgrader's autograde recorded "Kernel died".
"""

import inspect

import nbformat
import pytest
from nbclient import NotebookClient

pytest.importorskip("triton", reason="Triton is not installed: kernel exercise untested")

from test_checks_fast_kernels import unmasked  # noqa: E402  (the unmasked answer, once)


def test_unmasked_answer_gets_feedback_and_the_kernel_lives():
    cells = [
        "import os\nos.environ['TRITON_INTERPRET'] = '1'\nimport torch\n"
        "import triton\nimport triton.language as tl",
        inspect.getsource(unmasked.fn),
        "from normlab.checks import fast_kernels as check\n"
        "check.fused_add_rms_norm_exercise(unmasked)",
        "print('kernel alive', torch.ones(2).sum().item())",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(notebook, timeout=300, allow_errors=True).execute()
    (error,) = notebook.cells[2].outputs
    assert error["output_type"] == "error" and error["ename"] == "ExerciseError"
    assert "mask the loads and stores with `cols < N`" in error["evalue"]
    assert "read or wrote past N = " in error["evalue"]
    assert notebook.cells[3].outputs[0]["text"] == "kernel alive 2.0\n"
