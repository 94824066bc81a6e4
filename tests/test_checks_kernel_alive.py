"""A Triton answer without masks gets feedback in a live Jupyter kernel, which survives it.

Before normlab.checks ran learners' kernels on guarded buffers in a child process, this
answer aborted Triton's CPU interpreter ("corrupted double-linked list", exit 134): the
learner lost their kernel, and nbgrader's autograde recorded "Kernel died".
"""

import inspect
import textwrap

import nbformat
import pytest
from nbclient import NotebookClient

pytest.importorskip("triton", reason="Triton is not installed: kernel exercise untested")


def unmasked_answer():
    import triton
    import triton.language as tl

    @triton.jit
    def add_rms_norm_kernel(x_ptr, residual_ptr, weight_ptr, h_ptr, y_ptr, N, eps,
                            BLOCK_SIZE: tl.constexpr):
        row = tl.program_id(0)
        cols = tl.arange(0, BLOCK_SIZE)
        h = tl.load(x_ptr + row * N + cols) + tl.load(residual_ptr + row * N + cols)
        tl.store(h_ptr + row * N + cols, h)
        y = h / tl.sqrt(tl.sum(h * h, axis=0) / N + eps) * tl.load(weight_ptr + cols)
        tl.store(y_ptr + row * N + cols, y)


def test_unmasked_answer_gets_feedback_and_the_kernel_lives():
    body = textwrap.dedent("".join(inspect.getsourcelines(unmasked_answer)[0][1:]))
    cells = [
        "import os\nos.environ['TRITON_INTERPRET'] = '1'\nimport torch",
        body,
        "from normlab.checks import fast_kernels as check\n"
        "check.fused_add_rms_norm_exercise(add_rms_norm_kernel)",
        "print('kernel alive', torch.ones(2).sum().item())",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(notebook, timeout=300, allow_errors=True).execute()
    (error,) = notebook.cells[2].outputs
    assert error["output_type"] == "error" and error["ename"] == "ExerciseError"
    assert "mask the loads and stores with `cols < N`" in error["evalue"]
    assert "read or wrote past N = " in error["evalue"]
    assert notebook.cells[3].outputs[0]["text"] == "kernel alive 2.0\n"
