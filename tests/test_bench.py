"""normlab.bench: correctness gate, timing summaries, bytes model, JSON schema, CLI, figure.

No assertion is made on a timing: only on what the benchmark computes and writes.
"""

import importlib.util
import json
import math

import pytest
import torch

from normlab import bench
from normlab.bench import providers as prov
from normlab.bench.__main__ import main, parse_shapes
from normlab.bench.runner import reference_outputs
from normlab.bench.timing import clock_name, summarize, time_cpu, time_fn
from normlab.figures.builtins import bench_figure, provenance

ROW_TYPES = {"norm": str, "pass": str, "provider": str, "dtype": str, "M": int, "N": int,
             "ms_median": float, "ms_p20": float, "ms_p80": float, "gbps": float}
QUICK = {"budget_ms": 1.0, "min_reps": 3, "warmup": 1}


@pytest.fixture
def registry():
    """Restore the provider registry after a test that registers its own."""
    saved = dict(bench.PROVIDERS)
    yield bench.PROVIDERS
    bench.PROVIDERS.clear()
    bench.PROVIDERS.update(saved)


def check_document(doc):
    for key in ("device", "host", "torch", "triton", "python", "date", "results"):
        assert key in doc
    assert doc.get("clock", "wall") in ("wall", "thread", "do_bench", "cuda events")
    assert doc["device"] in ("cpu", "cuda")
    assert doc["torch"] == torch.__version__
    assert doc["triton"] is None or isinstance(doc["triton"], str)
    for row in doc["results"]:
        assert set(ROW_TYPES) <= set(row)
        for key, kind in ROW_TYPES.items():
            assert isinstance(row[key], kind), key
        assert row["norm"] in ("layernorm", "rmsnorm") and row["pass"] in ("fwd", "fwd+bwd")
        assert 0 < row["ms_p20"] <= row["ms_median"] <= row["ms_p80"]
        assert row.get("max_rel_err") is None or 0 <= row["max_rel_err"] < 0.25
        nbytes = bench.bytes_moved(row["pass"], row["M"], row["N"], getattr(torch, row["dtype"]))
        assert row["gbps"] == pytest.approx(nbytes / (row["ms_median"] * 1e-3) / 1e9)


def test_cli_tiny_grid_writes_documented_schema(tmp_path, capsys):
    out = tmp_path / "cpu.json"
    assert main(["--device", "cpu", "--grid", "tiny", "--providers", "eager,torch",
                 "--budget-ms", "1", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    check_document(doc)
    # 2 norms × 2 passes × 1 dtype × 2 shapes × 2 providers
    assert len(doc["results"]) == 16
    assert {r["provider"] for r in doc["results"]} == {"eager", "torch"}
    assert {(r["M"], r["N"]) for r in doc["results"]} == {(64, 128), (32, 1000)}
    assert doc["command"].startswith("python -m normlab.bench --device cpu --grid tiny")
    printed = capsys.readouterr().out
    assert "eager" in printed and "GB/s" in printed and str(out) in printed


def test_cli_options_select_cases(tmp_path):
    out = tmp_path / "r.json"
    main(["--device", "cpu", "--shapes", "8x48", "--dtypes", "bfloat16", "--norms", "rmsnorm",
          "--passes", "fwd", "--providers", "torch", "--budget-ms", "1", "--out", str(out)])
    rows = json.loads(out.read_text())["results"]
    assert [(r["norm"], r["pass"], r["dtype"], r["M"], r["N"], r["provider"]) for r in rows] \
        == [("rmsnorm", "fwd", "bfloat16", 8, 48, "torch")]


def test_compile_provider_matches_reference():
    inputs = bench.make_inputs("rmsnorm", "fwd+bwd", 8, 32, torch.float32)
    assert bench.check_provider(bench.PROVIDERS["compile"], "rmsnorm", "fwd+bwd", inputs) < 1e-4


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
@pytest.mark.parametrize("pass_", ["fwd", "fwd+bwd"])
def test_builtin_providers_pass_the_check(norm, pass_, dtype):
    inputs = bench.make_inputs(norm, pass_, 33, 123, dtype)
    for name in ("eager", "torch"):
        assert bench.check_provider(bench.PROVIDERS[name], norm, pass_, inputs) >= 0.0


def _forgets_centering(norm, pass_, x, weight, bias, dy):
    wrong = {"layernorm": lambda x, s, w, b: torch.nn.functional.rms_norm(x, s, w) + b}
    return prov.autograd_pass(lambda x, w, b: prov.call_norm(wrong, norm, x, w, b),
                              pass_, x, weight, bias, dy)


def _wrong_dx(norm, pass_, x, weight, bias, dy):
    class Doubled(torch.autograd.Function):  # right forward, gradient twice too large
        @staticmethod
        def forward(ctx, t):
            return t.view_as(t)

        @staticmethod
        def backward(ctx, g):
            return 2 * g

    return prov.autograd_pass(lambda x, w, b: torch.nn.functional.layer_norm(
        Doubled.apply(x), x.shape[-1:], w, b), pass_, x, weight, bias, dy)


@pytest.mark.parametrize("build, pass_, match", [
    (_forgets_centering, "fwd", "y"),
    (_wrong_dx, "fwd+bwd", "dx"),
    (lambda *a: lambda: torch.zeros(3), "fwd", "shape"),
    (lambda norm, pass_, x, *rest: lambda: torch.nn.functional.layer_norm(x, x.shape[-1:]),
     "fwd+bwd", "expected 4 outputs, got 1"),  # y only: no gradient to check
])
def test_wrong_provider_is_rejected(registry, build, pass_, match):
    bench.register(bench.Provider("wrong", build))
    with pytest.raises(bench.CorrectnessError, match=match):
        bench.run(norms=["layernorm"], passes=[pass_], shapes=[(16, 64)],
                  providers=["torch", "wrong"], device="cpu", log=None, **QUICK)


@pytest.mark.parametrize("bad_dweight", [torch.zeros_like, lambda t: torch.full_like(t, math.nan)],
                         ids=["zero", "nan"])
def test_wrong_parameter_gradient_is_rejected(bad_dweight):
    builtin = prov._from_forward(prov.BUILTIN)

    def build(*args):
        run_builtin = builtin(*args)

        def fn():
            y, dx, dweight, dbias = run_builtin()
            return y, dx, bad_dweight(dweight), dbias
        return fn

    inputs = bench.make_inputs("layernorm", "fwd+bwd", 16, 64, torch.float32)
    with pytest.raises(bench.CorrectnessError, match="dweight"):
        bench.check_provider(bench.Provider("bad", build), "layernorm", "fwd+bwd", inputs)


def test_unchecked_provider_is_timed_without_check(registry):
    bench.register(bench.Provider("copy", lambda norm, pass_, x, *rest: x.clone,
                                  checked=False))
    doc = bench.run(norms=["rmsnorm"], passes=["fwd"], shapes=[(4, 8)], providers=["copy"],
                    device="cpu", log=None, **QUICK)
    assert [r["provider"] for r in doc["results"]] == ["copy"]


def test_unavailable_provider_is_skipped(registry):
    bench.register(bench.Provider("never", prov._from_forward(prov.BUILTIN),
                                  available=lambda device: False))
    doc = bench.run(norms=["rmsnorm"], passes=["fwd"], shapes=[(4, 8)],
                    providers=["torch", "never"], device="cpu", log=None, **QUICK)
    assert [r["provider"] for r in doc["results"]] == ["torch"]


def test_fwd_bwd_resets_grads_between_calls():
    inputs = bench.make_inputs("layernorm", "fwd+bwd", 5, 7, torch.float64)
    fn = bench.PROVIDERS["torch"].build("layernorm", "fwd+bwd", *inputs)
    first = [t.clone() for t in fn()[1:]]
    second = fn()[1:]
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # and the gradient is that of <y, dy>, not of y.sum()
    ref = reference_outputs("layernorm", "fwd+bwd", *inputs)
    torch.testing.assert_close(second[0], ref[1])


def test_bytes_model():
    assert bench.bytes_moved("fwd", 4096, 1024, torch.float32) == 2 * 4096 * 1024 * 4
    assert bench.bytes_moved("fwd+bwd", 10, 3, torch.bfloat16) == 5 * 10 * 3 * 2
    with pytest.raises(ValueError, match="pass_"):
        bench.bytes_moved("bwd", 1, 1, torch.float32)


def test_summarize_and_cpu_timer():
    assert summarize([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) == pytest.approx((3.5, 2.0, 5.0))
    with pytest.raises(ValueError, match="times_ms"):
        summarize([])
    calls = []
    times = time_cpu(lambda: calls.append(1), warmup=2, budget_ms=0.0, min_reps=4)
    assert len(times) == 4 and len(calls) == 2 + 1 + 4 and min(times) >= 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="norm"):
        bench.make_inputs("batchnorm", "fwd", 2, 2, torch.float32)
    with pytest.raises(ValueError, match="pass_"):
        bench.make_inputs("rmsnorm", "backward", 2, 2, torch.float32)
    with pytest.raises(ValueError, match="unknown providers"):
        bench.run(providers=["nope"], device="cpu", log=None)
    with pytest.raises(ValueError, match="device"):
        bench.run(device="tpu", log=None)
    with pytest.raises(TypeError, match="provider"):
        bench.register("eager")
    assert parse_shapes("4096x1024,8X16") == [(4096, 1024), (8, 16)]
    for text in ("4096", "0x4", "ax4"):
        with pytest.raises(Exception, match="shape"):
            parse_shapes(text)


def test_results_files_round_trip_and_schema_check(tmp_path):
    doc = bench.run(norms=["rmsnorm"], passes=["fwd"], shapes=[(4, 8)], providers=["torch"],
                    device="cpu", log=None, **QUICK)
    assert doc["command"] is None  # called from Python: no command line to record
    path = bench.write_json(doc, tmp_path / "a.json")
    assert bench.find_results(tmp_path) == [path]
    assert bench.load_results(path) == json.loads(json.dumps(doc))
    del doc["results"][0]["gbps"]
    with pytest.raises(ValueError, match="gbps"):
        bench.write_json(doc, tmp_path / "b.json")
    assert "torch" in bench.format_table(bench.load_results(path)["results"])
    rows = bench.load_results(path)["results"]
    assert bench.lookup(rows, norm="rmsnorm", pass_="fwd", N=8)["provider"] == "torch"
    with pytest.raises(ValueError, match="0 results"):
        bench.lookup(rows, norm="layernorm")


@pytest.mark.parametrize("key", [*bench.report.TOP_KEYS, *bench.report.RESULT_KEYS])
def test_schema_check_names_a_missing_key(key):
    doc = bench.run(norms=["rmsnorm"], passes=["fwd"], shapes=[(4, 8)], providers=["torch"],
                    device="cpu", log=None, **QUICK)
    del (doc["results"][0] if key in bench.report.RESULT_KEYS else doc)[key]
    with pytest.raises(ValueError, match=repr(key)):
        bench.report.check_schema(doc)


def test_committed_results_follow_the_schema():
    files = bench.find_results()
    assert files, "benchmarks/ should hold at least one measured results file"
    for path in files:
        check_document(bench.load_results(path))


def test_figure_works_for_a_gpu_document_with_more_providers():
    rows = [{"norm": n, "pass": p, "provider": prov_name, "dtype": "bfloat16", "M": 8192,
             "N": N, "ms_median": 0.1, "ms_p20": 0.09, "ms_p80": 0.12, "gbps": 1000.0}
            for n in ("layernorm", "rmsnorm") for p in ("fwd", "fwd+bwd")
            for prov_name in ("torch", "triton", "liger", "copy") for N in (1024, 4096)]
    doc = {"device": "cuda", "host": "NVIDIA H100", "torch": "2.13.0", "triton": "3.9.0",
           "python": "3.11.7", "date": "2026-01-01T00:00:00+00:00", "results": rows}
    fig = bench_figure(doc)
    assert len(fig.data) == 4 * 4  # (norm, pass, dtype) combos × providers
    assert sum(t.visible for t in fig.data) == 4
    assert len(fig.layout.updatemenus[0].buttons) == 4
    assert "NVIDIA H100" in fig.layout.annotations[0].text
    assert "triton 3.9.0" in provenance(doc) and "2026-01-01" in provenance(doc)


def test_thread_clock_needs_one_thread():
    calls = []
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert len(time_cpu(lambda: calls.append(1), clock="thread", budget_ms=0.0,
                            min_reps=3, warmup=0)) == 3
        torch.set_num_threads(2)
        with pytest.raises(ValueError, match="set_num_threads"):
            time_cpu(lambda: None, clock="thread")
    finally:
        torch.set_num_threads(threads)
    with pytest.raises(ValueError, match="clock"):
        time_cpu(lambda: None, clock="sundial")


def test_results_name_the_timer_that_was_used():
    assert clock_name("cpu", "thread") == "thread"
    want = "do_bench" if importlib.util.find_spec("triton") else "cuda events"
    assert clock_name("cuda") == want
    with pytest.raises(ValueError, match="device"):
        time_fn(lambda: None, "tpu")
    doc = bench.run(norms=["rmsnorm"], passes=["fwd"], shapes=[(4, 8)], providers=["torch"],
                    device="cpu", clock="wall", log=None, budget_ms=0.0, min_reps=1, warmup=0)
    assert doc["clock"] == "wall"
