"""The test environment is the one requirements.txt describes: on Linux, where Triton is
pinned, a missing Triton must fail here rather than skip the kernel tests unnoticed."""

import importlib.util
import sys

import pytest


@pytest.mark.skipif(sys.platform != "linux", reason="Triton is pinned for Linux only")
def test_triton_is_installed_on_linux():
    assert importlib.util.find_spec("triton"), "pip install -r requirements.txt (Triton)"
