"""Chapter 7's minimal kernel (normlab.kernels.minimal) against torch.nn.functional,
through the interpreter on a CPU."""

import pytest
import torch

pytest.importorskip("triton", reason="Triton is not installed (Linux only): kernels untested")

import torch.nn.functional as F  # noqa: E402

from normlab.kernels import minimal  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# float32 to its precision; bfloat16: one output rounding (twice it through the interpreter,
# which truncates; see tests/test_kernels.py).
TOL = {torch.float32: 1e-5, torch.bfloat16: 3e-2}


@pytest.mark.parametrize("dtype", list(TOL), ids=str)
@pytest.mark.parametrize("m,n", [(3, 1), (4, 123), (2, 1024)])
def test_minimal_layer_norm_matches_torch(m, n, dtype):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(m, n, generator=g) + 2.0).to(DEVICE, dtype)
    w = (1 + 0.5 * torch.randn(n, generator=g)).to(DEVICE)
    b = (0.5 * torch.randn(n, generator=g)).to(DEVICE)
    y = minimal.layer_norm(x, w, b)
    want = F.layer_norm(x.double(), (n,), w.double(), b.double())
    assert y.dtype == dtype
    assert (y.double() - want).abs().max().item() <= TOL[dtype] * max(1.0, want.abs().max())


def test_minimal_layer_norm_refuses_what_it_does_not_handle():
    x = torch.ones(2, 8, device=DEVICE)
    w = torch.ones(8, device=DEVICE)
    with pytest.raises(ValueError, match="contiguous 2-D"):
        minimal.layer_norm(x.t(), w, w)
    with pytest.raises(ValueError, match="N <= 16384"):
        minimal.layer_norm(torch.ones(1, 16385, device=DEVICE), w, w)
    with pytest.raises(ValueError, match=r"bias must be a tensor of shape \(8,\)"):
        minimal.layer_norm(x, w, torch.ones(7, device=DEVICE))
