"""Run a learner's Triton kernel where no mistake can take the Jupyter kernel down.

Two layers of protection:

- **Guard buffers.** Every tensor the kernel sees sits in the middle of a larger buffer
  with ``guard`` extra elements on each side, so a load or store a little past the end (an
  unmasked ``tl.load(x_ptr + row * N + cols)`` with ``BLOCK_SIZE > N``) lands in memory the
  checker owns instead of corrupting the heap (Triton's CPU interpreter then aborts the
  whole process with "corrupted double-linked list"). The kernel runs twice with different
  guard values: outputs that differ read the guard, an output guard that changed was
  written; either way the checker can say so.
- **A forked child process** (Linux, CPU tensors) runs the launches, so even an access far
  outside every buffer kills only the child; the parent reports the crash as feedback.
"""

import faulthandler
import multiprocessing
import os
import pickle
import warnings

import torch

# Output guards start as this value; input guards take each of these in turn.
OUT_SENTINEL = 12345.0
IN_FILLS = (0.0, float("nan"))
TIMEOUT_S = 300


class KernelCrashed(Exception):
    """The child process running the kernel died (``exitcode`` < 0: killed by a signal)."""

    def __init__(self, exitcode):
        super().__init__(f"the process running your kernel died (exit code {exitcode})")
        self.exitcode = exitcode


class KernelRaised(Exception):
    """The kernel launch raised; ``kind``, ``text`` and ``detail`` describe the error."""

    def __init__(self, kind, text, detail):
        super().__init__(text)
        self.kind, self.text, self.detail = kind, text, detail


def guarded(tensor, fill, guard):
    """``(buffer, view)``: a copy of contiguous ``tensor`` inside a flat buffer of ``fill``
    with ``guard`` elements before and after it."""
    buffer = torch.full((tensor.numel() + 2 * guard,), fill, dtype=tensor.dtype,
                        device=tensor.device)
    view = buffer[guard:guard + tensor.numel()].view(tensor.shape)
    view.copy_(tensor)
    return buffer, view


def _guards(buffer, guard):
    """The two guard regions of ``buffer``, concatenated."""
    return torch.cat([buffer[:guard], buffer[buffer.numel() - guard:]])


def run_guarded(launch, inputs, outputs, guard):
    """Call ``launch(*input_views, *output_views)`` once per value of ``IN_FILLS``.

    ``inputs`` and ``outputs`` are tensors (outputs give shape, dtype and starting values).
    Returns ``(outputs, read_past, wrote_past)``: the output views of the first run, whether
    any output changed with the input guards' values, and whether any output guard changed.
    """
    results, wrote_past = [], False
    for fill in IN_FILLS:
        ins = [guarded(t, fill, guard)[1] for t in inputs]
        outs = [guarded(t, OUT_SENTINEL, guard) for t in outputs]
        launch(*ins, *(view for _, view in outs))
        for buffer, _ in outs:
            wrote_past |= not torch.all(_guards(buffer, guard) == OUT_SENTINEL).item()
        results.append([view.clone() for _, view in outs])
    first, second = results
    read_past = not all(torch.allclose(a, b, rtol=0, atol=0, equal_nan=True)
                        for a, b in zip(first, second, strict=True))
    return first, read_past, wrote_past


def in_child(fn):
    """Return ``fn()`` computed in a forked child process.

    Raises :class:`KernelCrashed` if the child dies and :class:`KernelRaised` if ``fn``
    raises. Where fork is unavailable or unsafe (no ``os.fork``; CUDA already initialised,
    which a forked child cannot use), ``fn`` runs in this process.
    """
    if not hasattr(os, "fork") or torch.cuda.is_initialized():
        return _describe_errors(fn)
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)

    def child():
        faulthandler.disable()  # a crash is reported by the parent, without a C traceback
        torch.set_num_threads(1)  # OpenMP thread pools do not survive a fork
        try:
            message = ("ok", _describe_errors(fn))
        except KernelRaised as err:
            message = ("raised", (err.kind, err.text, err.detail))
        # plain pickle: torch.multiprocessing would share tensors through files that
        # vanish with the child
        send.send_bytes(pickle.dumps(message))

    with warnings.catch_warnings():  # "multi-threaded, use of fork() may lead to deadlocks"
        warnings.simplefilter("ignore", DeprecationWarning)
        process = context.Process(target=child, daemon=True)
        process.start()
    send.close()
    try:
        if not receive.poll(TIMEOUT_S):
            process.kill()
            raise KernelRaised("TimeoutError", f"no result after {TIMEOUT_S} s", "")
        status, value = pickle.loads(receive.recv_bytes())
    except EOFError:
        process.join()
        raise KernelCrashed(process.exitcode) from None
    finally:
        receive.close()
    process.join()
    if status == "raised":
        raise KernelRaised(*value)
    return value


def _describe_errors(fn):
    """``fn()``, with any exception turned into a picklable :class:`KernelRaised`."""
    try:
        return fn()
    except Exception as err:  # noqa: BLE001 - the learner's kernel: any error becomes feedback
        raise KernelRaised(type(err).__name__, str(err), repr(err)) from None
