"""Inputs, the float64 correctness check, and the loop over cases and providers."""

import torch

from normlab.bench.providers import NORMS, PASSES, PROVIDERS, REFERENCE, autograd_pass, call_norm
from normlab.bench.report import PASS_FACTOR, bytes_moved, gbps, metadata
from normlab.bench.timing import clock_name, summarize, time_fn

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Largest error allowed, relative to the largest reference value of each output: about
# 10 ulps of the output dtype, loose enough for fp32 statistics of half inputs.
TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 3e-2}
# dweight/dbias sum M rows. In half precision PyTorch 2.13's own CPU LayerNorm backward is
# off by 14% at M = 4096 (it accumulates them in low precision; chapter 5 measures it), so
# the gate only catches gross errors there; every row reports its error (max_rel_err).
PARAM_GRAD_TOLERANCE = {torch.float32: 1e-4, torch.float16: 0.25, torch.bfloat16: 0.25}


class CorrectnessError(ValueError):
    """A provider's output differs from the float64 reference by more than the tolerance."""


def make_inputs(norm, pass_, M, N, dtype, device="cpu", seed=0):
    """Seeded ``(x, weight, bias, dy)``: ``x``, ``dy`` are ``(M, N)``; ``bias`` is None for
    RMSNorm; leaves require grad for ``"fwd+bwd"``.

    ``x`` has a non-zero mean and ``weight``/``bias`` are not the identity, so a provider
    that forgets to centre, scale or shift fails the check.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if pass_ not in PASSES:
        raise ValueError(f"pass_ must be one of {PASSES}, got {pass_!r}")
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0, shift=0.0):
        t = torch.randn(*shape, generator=gen) * scale + shift
        return t.to(device=device, dtype=dtype).requires_grad_(pass_ == "fwd+bwd")

    x = randn(M, N, scale=2.0, shift=0.5)
    weight = randn(N, scale=0.2, shift=1.0)
    bias = randn(N, scale=0.2) if norm == "layernorm" else None
    dy = randn(M, N).detach()
    return x, weight, bias, dy


def reference_outputs(norm, pass_, x, weight, bias, dy):
    """The float64 outputs every provider is compared with: ``y`` or ``(y, dx, dw, db)``."""
    leaf = [None if t is None else t.detach().double().requires_grad_(pass_ == "fwd+bwd")
            for t in (x, weight, bias)]
    forward = lambda x, w, b: call_norm(REFERENCE, norm, x, w, b)  # noqa: E731
    return autograd_pass(forward, pass_, *leaf, dy.double())()


def _as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


def output_errors(provider, norm, pass_, inputs, fn=None):
    """Run ``provider`` once; ``{output name: error}`` against the float64 reference.

    The error of an output is ``max|got - ref| / max(1, max|ref|)``. ``fn`` is the
    callable already built from ``provider`` (built here when None). A missing output or
    a wrong shape raises :class:`CorrectnessError`.
    """
    fn = provider.build(norm, pass_, *inputs) if fn is None else fn
    got = _as_tuple(fn())
    want = _as_tuple(reference_outputs(norm, pass_, *inputs))
    if len(got) != len(want):
        raise CorrectnessError(f"provider {provider.name!r}, {norm} {pass_}: expected "
                               f"{len(want)} outputs, got {len(got)}")
    errors = {}
    for name, g, w in zip(("y", "dx", "dweight", "dbias"), got, want, strict=False):
        if w is None:
            continue
        if g is None or g.shape != w.shape:
            raise CorrectnessError(
                f"provider {provider.name!r}, {norm} {pass_}, {name}: expected shape "
                f"{tuple(w.shape)}, got {None if g is None else tuple(g.shape)}")
        errors[name] = ((g.detach().double() - w).abs().max()
                        / w.abs().max().clamp(min=1.0)).item()
    return errors


def check_provider(provider, norm, pass_, inputs, fn=None):
    """:func:`output_errors` within :data:`TOLERANCE` (:data:`PARAM_GRAD_TOLERANCE` for
    ``dweight``, ``dbias``), else :class:`CorrectnessError`; returns the largest error."""
    errors = output_errors(provider, norm, pass_, inputs, fn)
    for name, err in errors.items():
        table = PARAM_GRAD_TOLERANCE if name in ("dweight", "dbias") else TOLERANCE
        tol = table[inputs[0].dtype]
        if not err <= tol:  # also catches NaN
            raise CorrectnessError(f"provider {provider.name!r}, {norm} {pass_}, {name}: "
                                   f"relative error {err:.3g} > tolerance {tol:g}")
    return max(errors.values())


def resolve_device(device):
    """``"auto"`` → ``"cuda"`` when a GPU is present, else ``"cpu"``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    return device


def run(norms=NORMS, passes=PASSES, dtypes=("float32",), shapes=((1024, 1024),),
        providers=None, device="auto", seed=0, clock="wall", log=print, **timing):
    """Check and time every provider on every case; return the results document.

    ``shapes`` are ``(M, N)`` pairs (rows × hidden size); ``clock`` ("wall" or "thread")
    is the CPU timer (see :mod:`normlab.bench.timing`); ``timing`` is passed to the timing
    backend (e.g. ``budget_ms``). ``log`` receives one line per case (None: quiet).
    """
    device = resolve_device(device)
    names = list(PROVIDERS) if providers is None else list(providers)
    unknown = [n for n in names if n not in PROVIDERS]
    if unknown:
        raise ValueError(f"unknown providers {unknown}; known: {sorted(PROVIDERS)}")
    chosen = [PROVIDERS[n] for n in names if PROVIDERS[n].available(device)]
    doc = {**metadata(device), "clock": clock_name(device, clock), "results": []}
    for norm in norms:
        for pass_ in passes:
            for dtype_name in dtypes:
                for M, N in shapes:
                    inputs = make_inputs(norm, pass_, M, N, DTYPES[dtype_name], device, seed)
                    nbytes = bytes_moved(pass_, M, N, DTYPES[dtype_name])
                    for p in chosen:
                        factor = p.traffic[pass_] if p.traffic else PASS_FACTOR[pass_]
                        moved = nbytes * factor // PASS_FACTOR[pass_]
                        fn = p.build(norm, pass_, *inputs)
                        err = check_provider(p, norm, pass_, inputs, fn) if p.checked else None
                        ms = summarize(time_fn(fn, device, clock, **timing))
                        row = {"norm": norm, "pass": pass_, "provider": p.name,
                               "dtype": dtype_name, "M": M, "N": N, "ms_median": ms[0],
                               "ms_p20": ms[1], "ms_p80": ms[2], "gbps": gbps(moved, ms[0]),
                               "max_rel_err": err}
                        doc["results"].append(row)
                        if log:
                            log(f"{norm:<9} {pass_:<7} {dtype_name:<8} {M}×{N:<6} "
                                f"{p.name:<8} {ms[0]:8.3f} ms {row['gbps']:8.2f} GB/s")
    return doc
