"""normlab.bench.gpu: the GPU providers, the copy ceiling, do_bench timing and the shapes.

No assertion is made on a timing; the providers that need a GPU are tested there only.
"""

import pytest
import torch

from normlab import bench
from normlab.bench import gpu

CUDA = torch.cuda.is_available()


def test_shapes_follow_the_element_budget():
    for dtype, elements in (("bfloat16", 2**27), ("float16", 2**27), ("float32", 2**26)):
        shapes = gpu.gpu_shapes(dtype)
        assert [n for _, n in shapes] == [1024, 2048, 4096, 8192, 16384]
        assert all(m * n == elements for m, n in shapes)


def test_providers_are_registered_and_gated():
    for name in ("normlab-triton", "liger", "copy"):
        assert name in bench.PROVIDERS
    assert not bench.PROVIDERS["normlab-triton"].available("cpu")
    assert not bench.PROVIDERS["liger"].available("cpu")
    assert bench.PROVIDERS["copy"].available("cpu")
    assert not bench.PROVIDERS["copy"].checked  # a copy computes no norm


@pytest.mark.parametrize("pass_", ["fwd", "fwd+bwd"])
def test_copy_moves_the_modelled_tensors(pass_):
    x, weight, bias, dy = bench.make_inputs("layernorm", pass_, 8, 16, torch.float32)
    out = bench.PROVIDERS["copy"].build("layernorm", pass_, x, weight, bias, dy)()
    want = x.detach() if pass_ == "fwd" else x.detach() + dy
    assert torch.equal(out, want)


def test_copy_runs_in_the_cpu_benchmark():
    doc = bench.run(norms=["rmsnorm"], passes=["fwd+bwd"], shapes=[(4, 8)],
                    providers=["torch", "copy"], device="cpu", log=None,
                    budget_ms=1.0, min_reps=3, warmup=1)
    assert [r["provider"] for r in doc["results"]] == ["torch", "copy"]
    assert all(r["gbps"] > 0 for r in doc["results"])


def test_fwd_bwd_pass_exposes_leaves_for_do_bench():
    inputs = bench.make_inputs("layernorm", "fwd+bwd", 4, 8, torch.float32)
    fn = bench.PROVIDERS["torch"].build("layernorm", "fwd+bwd", *inputs)
    assert [id(t) for t in fn.grad_to_none] == [id(t) for t in inputs[:3]]


def test_result_path(tmp_path):
    assert gpu.result_path(tmp_path / "a.json") == tmp_path / "a.json"
    name = gpu.result_path(tmp_path).name
    assert name.endswith(".json") and name == name.lower() and " " not in name


def test_main_refuses_without_a_gpu():
    if CUDA:
        pytest.skip("a GPU is present")
    with pytest.raises(SystemExit):
        gpu.main(["--out", "unused.json"])


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_do_bench_and_gpu_providers_pass_the_check():
    pytest.importorskip("triton")
    for name in ("normlab-triton", "liger", "copy"):
        provider = bench.PROVIDERS[name]
        if not provider.available("cuda"):
            continue
        for norm in ("layernorm", "rmsnorm"):
            inputs = bench.make_inputs(norm, "fwd+bwd", 256, 1024, torch.bfloat16, "cuda")
            fn = provider.build(norm, "fwd+bwd", *inputs)
            if provider.checked:
                bench.check_provider(provider, norm, "fwd+bwd", inputs, fn)
            times = gpu.time_do_bench(fn, budget_ms=20)
            assert times and all(t > 0 for t in times)


def test_merge_keeps_other_cases_and_replaces_remeasured_ones():
    def doc(dtype, ms, host="H100", command="a"):
        rows = [{"norm": "rmsnorm", "pass": "fwd", "provider": p, "dtype": dtype, "M": 8,
                 "N": 16, "ms_median": ms} for p in ("torch", "copy")]
        return {"device": "cuda", "host": host, "torch": "2.13", "triton": "3.9",
                "command": command, "results": rows}

    merged = bench.merge_results(doc("bfloat16", 1.0), doc("float32", 2.0, command="b"))
    assert [(r["dtype"], r["ms_median"]) for r in merged["results"]] == [
        ("bfloat16", 1.0), ("bfloat16", 1.0), ("float32", 2.0), ("float32", 2.0)]
    assert merged["command"] == "a && b"
    again = bench.merge_results(merged, doc("float32", 3.0))
    assert sorted(r["ms_median"] for r in again["results"]) == [1.0, 1.0, 3.0, 3.0]
    with pytest.raises(ValueError, match="different host"):
        bench.merge_results(doc("bfloat16", 1.0), doc("float32", 2.0, host="A100"))


@pytest.mark.parametrize("pass_", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
def test_fused_add_provider_is_checked_against_the_reference(norm, pass_):
    """x/2 + x/2 = x exactly, so the fused add + norm must match the norm's reference
    (through the interpreter on a CPU; the provider itself is offered on CUDA only)."""
    inputs = bench.make_inputs(norm, pass_, 4, 24, torch.float32, device="cuda" if CUDA else "cpu")
    provider = bench.PROVIDERS["normlab-fused-add"]
    assert provider.available("cpu") is False and provider.traffic == {"fwd": 4, "fwd+bwd": 7}
    assert bench.check_provider(provider, norm, pass_, inputs) < 1e-5


def test_provider_traffic_sets_the_bytes_of_its_rows():
    bench.register(bench.Provider("torch-as-fused", bench.PROVIDERS["torch"].build,
                                  traffic={"fwd": 4, "fwd+bwd": 7}))
    try:
        doc = bench.run(norms=["rmsnorm"], passes=["fwd"], shapes=[(4, 8)],
                        providers=["torch", "torch-as-fused"], device="cpu", log=None,
                        budget_ms=1.0, min_reps=3, warmup=1)
    finally:
        del bench.PROVIDERS["torch-as-fused"]
    plain, fused = doc["results"]
    # bytes = GB/s × ms: the fused provider's rows count 4 tensors instead of the norm's 2
    assert fused["gbps"] * fused["ms_median"] == pytest.approx(
        2 * plain["gbps"] * plain["ms_median"])


def test_quick_check_finds_the_kernel_tests():
    assert all((gpu.REPO_ROOT / t).exists() for t in gpu.KERNEL_TESTS)
    with pytest.raises(FileNotFoundError, match="kernel tests are not here"):
        gpu.run_kernel_tests(root=gpu.REPO_ROOT / "nowhere")
