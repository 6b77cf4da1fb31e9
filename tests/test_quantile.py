"""safe_quantile equals torch.quantile (linear interpolation) and works past torch's 2^24 limit."""

import pytest
import torch

from splat4d.quantile import safe_quantile


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("q", [0.0, 0.05, 0.1, 0.5, 0.9, 0.95, 0.98, 1.0])
def test_equals_torch_quantile(q, dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 13, 5, generator=g, dtype=dtype)
    assert torch.equal(safe_quantile(x, q), torch.quantile(x, q))
    for dim in (0, 1, -1):
        for keepdim in (False, True):
            assert torch.equal(
                safe_quantile(x, q, dim=dim, keepdim=keepdim), torch.quantile(x, q, dim=dim, keepdim=keepdim)
            )
    assert torch.equal(safe_quantile(x, q, keepdim=True), torch.quantile(x, q, keepdim=True))
    wide = torch.randn(64, 1001, generator=g, dtype=dtype) * 3
    assert torch.equal(safe_quantile(wide, q, dim=1), torch.quantile(wide, q, dim=1))
    ties = torch.randint(0, 4, (101,), generator=g).to(dtype)  # repeated values
    assert torch.equal(safe_quantile(ties, q), torch.quantile(ties, q))


def test_nan_and_errors():
    x = torch.tensor([[1.0, float("nan"), 3.0], [1.0, 2.0, 3.0]])
    assert torch.equal(safe_quantile(x, 0.5, dim=1).isnan(), torch.quantile(x, 0.5, dim=1).isnan())
    assert safe_quantile(x[1], 0.25).item() == pytest.approx(1.5)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        safe_quantile(x, 1.5)
    with pytest.raises(TypeError, match="floating-point"):
        safe_quantile(torch.arange(5), 0.5)
    with pytest.raises(ValueError, match="empty"):
        safe_quantile(torch.zeros(0), 0.5)


def test_beyond_torch_size_limit():
    n = 2**24 + 1001  # torch.quantile refuses more than 2^24 elements on the torch versions we support
    values = torch.randperm(n, generator=torch.Generator().manual_seed(0)).double()  # 0 .. n − 1, shuffled
    for q in (0.1, 0.95):
        assert safe_quantile(values, q).item() == pytest.approx(q * (n - 1), abs=1e-6)  # sorted value = rank
    assert safe_quantile(values.float(), 0.5).item() == pytest.approx(0.5 * (n - 1), rel=1e-6)
    rows = values[: (n // 1001) * 1001].reshape(1001, -1)
    per_column = safe_quantile(rows, 0.9, dim=0)
    assert per_column.shape == (rows.shape[1],)
    assert torch.equal(per_column[:64], torch.quantile(rows[:, :64], 0.9, dim=0))
