import os

import pytest
import torch

import biocredit.models as M
from biocredit.data import locate


@pytest.fixture(autouse=True, scope="session")
def _no_installed_data(tmp_path_factory):
    """The suite never sees the data sets installed on the machine: the user cache
    (``$BIOCREDIT_DATA``) and the system folders (``$BIOCREDIT_SYSTEM_DATA``) are empty
    folders for the whole session. Set in ``os.environ``, so the CLI runs that tests start
    as subprocesses inherit them."""
    root = tmp_path_factory.mktemp("installed-data")
    (root / "cache").mkdir()
    (root / "system").mkdir()
    saved = {key: os.environ.get(key) for key in (locate.CACHE_ENV, locate.SYSTEM_ENV)}
    os.environ[locate.CACHE_ENV] = str(root / "cache")
    os.environ[locate.SYSTEM_ENV] = str(root / "system")
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


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


@pytest.fixture(scope="session")
def can_compile():
    """Skip when this torch cannot compile here (no C++ compiler, an unsupported platform)."""
    try:
        torch.compile(lambda t: t * 2 + 1)(torch.ones(3))
    except Exception as err:            # noqa: BLE001 - any failure means "cannot compile"
        pytest.skip(f"torch.compile does not work on this machine: {type(err).__name__}")


@pytest.fixture
def one_thread():
    """One thread, as in each sweep worker (a float sum may depend on the number of threads;
    tiny matmuls on a busy CPU run fastest so), put back afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
