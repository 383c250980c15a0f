import pytest
import torch

import biocredit.models as M


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture
def small_mlp():
    """A tiny float64 MLP 12 -> 9 -> 7 -> 4 (tanh)."""
    return M.create("mlp:9,7:tanh", input_shape=(1, 3, 4), num_classes=4).double()


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(6, 1, 3, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (6,), generator=g)
    return x, y
