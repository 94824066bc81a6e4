"""normlab.variance: three variance algorithms, their rounding and their failure modes."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from normlab.variance import (
    METHODS,
    cancellation_table,
    running_sum,
    variance_one_pass,
    variance_two_pass,
    variance_welford,
)

ALL = list(METHODS.values())


def rows(shape, offset=0.0, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (offset + torch.randn(shape, generator=gen, dtype=torch.float64)).to(dtype)


@pytest.mark.parametrize("method", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize("shape", [(5,), (4, 7), (2, 3, 33), (3, 1)], ids=str)
def test_float64_matches_torch_var(method, shape):
    x = rows(shape, offset=1.5)
    got = method(x)
    assert got.shape == shape[:-1] and got.dtype == torch.float64
    torch.testing.assert_close(got, x.var(-1, unbiased=False), atol=1e-13, rtol=1e-12)


@pytest.mark.parametrize("method", ALL, ids=lambda f: f.__name__)
def test_accumulates_in_dtype_left_to_right(method):
    """Same bits as a scalar float32 loop: the rounding the chapter describes is the real one."""
    x = rows((1, 50), offset=300.0, dtype=torch.float32)
    v = x[0].numpy()
    d, f = np.float32(len(v)), np.float32
    s = s2 = mean = m2 = f(0)
    for k, xi in enumerate(v):
        s, s2 = f(s + xi), f(s2 + f(xi * xi))
        delta = f(xi - mean)
        mean = f(mean + f(delta / f(k + 1)))
        m2 = f(m2 + f(delta * f(xi - mean)))
    mu = f(s / d)
    centred = [f(xi - mu) for xi in v]
    c2 = f(0)
    for c in centred:
        c2 = f(c2 + f(c * c))
    expected = {variance_one_pass: f(f(s2 / d) - f(mu * mu)),
                variance_two_pass: f(c2 / d), variance_welford: f(m2 / d)}[method]
    assert method(x).item() == expected.item()


def test_one_pass_cancels_catastrophically_in_float32():
    x = rows((200, 256), offset=1e4, dtype=torch.float32)
    ref = variance_two_pass(x.double())
    rel = {name: ((m(x).double() - ref).abs() / ref) for name, m in METHODS.items()}
    assert rel["one pass"].median() > 1.0  # not a single correct digit
    assert (variance_one_pass(x) < 0).any()  # some "variances" are negative
    assert rel["two pass"].max() < 1e-3 and rel["Welford"].max() < 1e-2


def test_bfloat16_one_pass_negative_and_float32_accumulation_fixes_it():
    x = rows((50, 256), offset=100.0, dtype=torch.bfloat16)
    assert (variance_one_pass(x) < 0).all()
    ref = variance_two_pass(x.double())
    for method in ALL:
        rel = (method(x, torch.float32).double() - ref).abs() / ref
        assert rel.max() < 1e-2, method.__name__


@settings(max_examples=50, deadline=None)
@given(arrays("float64", st.tuples(st.integers(1, 3), st.integers(1, 40)),
              elements=st.floats(-1e3, 1e3, allow_nan=False, width=64)),
       st.sampled_from([torch.float32, torch.bfloat16]))
def test_welford_and_two_pass_never_negative(data, dtype):
    x = torch.from_numpy(data).to(dtype)
    for method in (variance_two_pass, variance_welford):
        assert (method(x) >= 0).all(), method.__name__


@settings(max_examples=50, deadline=None)
@given(arrays("float64", st.tuples(st.integers(1, 3), st.integers(2, 40)),
              elements=st.floats(-1e3, 1e3, allow_nan=False, width=64)))
def test_stable_methods_agree_with_float64_in_float32(data):
    x = torch.from_numpy(data).float()
    ref = x.double().var(-1, unbiased=False)
    scale = x.double().abs().amax(-1) ** 2  # rounding errors are relative to max|x|², not σ²
    for method in (variance_two_pass, variance_welford):
        err = (method(x).double() - ref).abs()
        assert (err <= 1e-5 * scale + 1e-30).all(), method.__name__


@pytest.mark.parametrize("method", ALL, ids=lambda f: f.__name__)
def test_bad_inputs(method):
    with pytest.raises(TypeError, match=r"\bx\b"):
        method(torch.ones(3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"\bx\b"):
        method(torch.tensor(1.0))
    with pytest.raises(ValueError, match=r"\bx\b"):
        method(torch.ones(2, 0))
    with pytest.raises(TypeError, match=r"\bdtype\b"):
        method(torch.ones(3), torch.int32)


def test_cancellation_table():
    table = cancellation_table([1.0, 1e4], torch.float32, rows=20, d=32)
    assert [(r["offset"], r["method"]) for r in table] == [
        (c, m) for c in (1.0, 1e4) for m in METHODS]
    err = {(r["offset"], r["method"]): r["median_rel_error"] for r in table}
    assert err[(1.0, "one pass")] < 1e-5 < err[(1e4, "one pass")]
    assert err[(1e4, "two pass")] < 1e-4
    assert table == cancellation_table([1.0, 1e4], torch.float32, rows=20, d=32)


def test_running_sum_rounds_after_every_step():
    # 1 + 2**-9 rounds back to 1 in bfloat16 (8 significant bits), so 256 small terms
    # added one at a time are all lost, while one float32 sum keeps them (1.5).
    v = torch.cat([torch.ones(1), torch.full((256,), 2.0**-9)]).to(torch.bfloat16)
    assert running_sum(v).item() == 1.0
    assert v.float().sum().item() == 1.5
