"""Timing of one pass: CUDA events on a GPU, ``time.perf_counter`` (or thread time) on a CPU.

Both warm up first (allocator, caches, ``torch.compile``'s first call), repeat the call
many times and summarise by quantiles: the median is robust to the occasional slow
repeat (an interrupt, a page fault), and p20/p80 show the spread.
"""

import time

import numpy as np
import torch


def summarize(times_ms):
    """``(median, p20, p80)`` of a list of times in milliseconds."""
    if len(times_ms) == 0:
        raise ValueError("times_ms must hold at least one time")
    median, p20, p80 = np.percentile(np.asarray(times_ms, dtype=float), [50, 20, 80])
    return float(median), float(p20), float(p80)


def _repeats(first_ms, budget_ms, min_reps, max_reps):
    """Enough repeats to fill ``budget_ms``, within ``[min_reps, max_reps]``."""
    return int(min(max_reps, max(min_reps, budget_ms / max(first_ms, 1e-3))))


# "wall": elapsed time, what a user waits for. "thread": CPU time of this thread, which
# leaves out the time the OS gave to other processes: on a busy shared machine (a cloud VM,
# Binder) it is far more repeatable, but it only counts torch's work with one thread.
CLOCKS = {"wall": time.perf_counter, "thread": time.thread_time}


def time_cpu(fn, *, clock="wall", warmup=2, budget_ms=200.0, min_reps=5, max_reps=200):
    """Times of ``fn()`` in ms, each read from ``CLOCKS[clock]`` around one call."""
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {sorted(CLOCKS)}, got {clock!r}")
    if clock == "thread" and torch.get_num_threads() != 1:
        raise ValueError("clock='thread' counts only the calling thread: use it with "
                         f"torch.set_num_threads(1), not {torch.get_num_threads()} threads")
    now = CLOCKS[clock]
    for _ in range(warmup):
        fn()
    start = now()
    fn()
    first_ms = (now() - start) * 1e3
    times = []
    for _ in range(_repeats(first_ms, budget_ms, min_reps, max_reps)):
        start = now()
        fn()
        times.append((now() - start) * 1e3)
    return times


def time_cuda(fn, *, warmup=25, budget_ms=500.0, min_reps=20, max_reps=1000):
    """Times of ``fn()`` in ms, each from a pair of CUDA events around one call.

    Events measure GPU time, so the Python launch overhead of a *single* call is hidden
    when the GPU is busy; each repeat still waits for the previous one (synchronize)
    so the median is the time of one isolated call.
    """
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    times = []
    for _ in range(_repeats(start.elapsed_time(end), budget_ms, min_reps, max_reps)):
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return times


def clock_name(device, clock="wall"):
    """What times runs on ``device``: the CPU ``clock`` ("wall" or "thread"), or on CUDA
    ``"do_bench"`` (``triton.testing.do_bench``, where Triton is installed) or
    ``"cuda events"`` (:func:`time_cuda`)."""
    if device == "cuda":
        from normlab.bench import gpu

        return "do_bench" if gpu.use_do_bench(device) else "cuda events"
    if device == "cpu":
        return clock
    raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")


def time_fn(fn, device, clock="wall", **kwargs):
    """Times of ``fn()`` in ms with the timer :func:`clock_name` names for ``device``."""
    name = clock_name(device, clock)
    if name == "do_bench":
        from normlab.bench.gpu import time_do_bench

        return time_do_bench(fn, **kwargs)
    if name == "cuda events":
        return time_cuda(fn, **kwargs)
    return time_cpu(fn, clock=name, **kwargs)
