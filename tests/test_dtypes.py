"""Unsupported dtypes are refused by one check with one message, in both paths (issue #16,
cause 3): float8 formats, integers, bool and complex, as input or as affine parameter."""

import importlib.util

import pytest
import torch

import normlab
from normlab._validate import SUPPORTED_DTYPES

NO_TRITON = pytest.mark.skipif(importlib.util.find_spec("triton") is None,
                               reason="Triton not installed")
PATHS = ["reference", pytest.param("kernels", marks=NO_TRITON)]
CANDIDATES = ["float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
              "float8_e8m0fnu", "bool", "uint8", "int8", "int16", "int32", "int64", "uint16",
              "uint32", "uint64", "complex32", "complex64", "complex128"]


def unsupported():
    """Every dtype of this torch build (from the list above) in which a tensor can be made."""
    found = []
    for name in CANDIDATES:
        dtype = getattr(torch, name, None)
        try:
            torch.zeros(1, dtype=dtype)
        except (TypeError, RuntimeError):
            continue
        found.append(dtype)
    return found


UNSUPPORTED = unsupported()


def functions(path):
    """``{name: f(x, weight, bias)}``: every public entry point of the path."""
    if path == "reference":
        ln, rms = normlab.layer_norm, normlab.rms_norm
    else:
        from normlab import kernels

        ln, rms = kernels.layer_norm, kernels.rms_norm
    return {"layer_norm": lambda x, w, b: ln(x, 4, w, b),
            "rms_norm": lambda x, w, b: rms(x, 4, w),
            "rms_norm (1 + weight)": lambda x, w, b: rms(x, 4, w, add_unit_offset=True)}


def message(dtype, name):
    return (f"{name} must have dtype float16, bfloat16, float32 or float64 (what normlab "
            f"computes in), got {dtype}")


def test_the_list_covers_float8_integers_bool_and_complex():
    names = {str(d).removeprefix("torch.") for d in UNSUPPORTED}
    assert {"float8_e4m3fn", "float8_e5m2", "int64", "bool", "complex64"} <= names
    assert not set(UNSUPPORTED) & set(SUPPORTED_DTYPES)


@pytest.mark.parametrize("dtype", UNSUPPORTED, ids=str)
@pytest.mark.parametrize("path", PATHS)
def test_unsupported_input_dtype_is_refused_with_the_one_message(path, dtype):
    x = torch.zeros(2, 4).to(dtype)
    w = torch.ones(4)
    for name, f in functions(path).items():
        with pytest.raises(TypeError) as err:
            f(x, w, torch.zeros(4))
        assert str(err.value) == message(dtype, "x"), name


@pytest.mark.parametrize("dtype", UNSUPPORTED, ids=str)
@pytest.mark.parametrize("path", PATHS)
def test_unsupported_parameter_dtype_is_refused_with_the_one_message(path, dtype):
    x, param = torch.randn(2, 4), torch.ones(4).to(dtype)
    for name, f in functions(path).items():
        with pytest.raises(TypeError) as err:
            f(x, param, None)
        assert str(err.value) == message(dtype, "weight"), name
    with pytest.raises(TypeError) as err:
        functions(path)["layer_norm"](x, None, param)
    assert str(err.value) == message(dtype, "bias")


@pytest.mark.parametrize("dtype", UNSUPPORTED[:2], ids=str)
def test_modules_refuse_unsupported_inputs_alike(dtype):
    """The drop-in modules go through the same check."""
    modules = [normlab.LayerNorm(4), normlab.RMSNorm(4)]
    if importlib.util.find_spec("triton") is not None:
        from normlab import kernels

        modules += [kernels.TritonLayerNorm(4), kernels.TritonRMSNorm(4)]
    for module in modules:
        with pytest.raises(TypeError, match="float16, bfloat16, float32 or float64"):
            module(torch.zeros(2, 4).to(dtype))


@pytest.mark.parametrize("dtype", SUPPORTED_DTYPES, ids=str)
@pytest.mark.parametrize("path", PATHS)
def test_supported_dtypes_still_run(path, dtype):
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(0)).to(dtype)
    for f in functions(path).values():
        assert f(x, torch.ones(4), torch.zeros(4)).dtype == dtype
