"""biocredit.data: parsers, search, download and splits, on tiny hand-made files.

Nothing here touches the network, the real user cache or /usr/share (an autouse fixture
points all three at tmp_path); the real Fashion-MNIST check is opt-in (``-m slow``).
"""

from __future__ import annotations

import collections
import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch

from biocredit.data import (
    ChecksumMismatchError,
    CorruptDatasetError,
    Dataset,
    DatasetNotFoundError,
    available,
    load,
)
from biocredit.data import download as dl
from biocredit.data import locate, mnist
from biocredit.data.idx import parse_idx

NAMES = ["amit-linear", "cifar10", "cifar100", "digits", "fashion-mnist", "linear-teacher", "mnist",
         "nonlinear-teacher", "python-reference", "synthetic"]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No real cache, no system folders, no network."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BIOCREDIT_DATA", str(tmp_path / "cache"))
    system = tmp_path / "system" / "fashion-mnist"
    monkeypatch.setattr(locate, "SYSTEM_DIRS", {"fashion-mnist": (system,)})
    monkeypatch.delenv(locate.SYSTEM_ENV, raising=False)

    def offline(*args, **kwargs):
        raise URLError("offline (test)")

    monkeypatch.setattr(dl, "urlopen", offline)
    return tmp_path


# ----------------------------------------------------------------------------- file makers

def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = (0x0800 | array.ndim) if magic is None else magic
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool = False, **kw) -> Path:
    data = idx_bytes(array, **kw)
    if gz:
        path, data = path.with_name(path.name + ".gz"), gzip.compress(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_idx_set(folder: Path, n_train=6, n_test=4, hw=(28, 28), gz=(False, True, True, False)):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, *hw), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, *hw), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for (name, array), z in zip(arrays.items(), gz):
        write_idx(folder / name, array, gz=z)
    return arrays


def cifar_rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def write_pickle(path: Path, obj, protocol: int = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def make_cifar10(folder: Path, n=2):
    rows, labels = [], []
    for i in range(1, 6):
        r, y = cifar_rows(n, i), [(i + k) % 10 for k in range(n)]
        write_pickle(folder / f"data_batch_{i}", {b"data": r, b"labels": y, b"batch_label": b"x"})
        rows.append(r), labels.extend(y)
    test = cifar_rows(3, 99)
    write_pickle(folder / "test_batch", {b"data": test, b"labels": [7, 8, 9]}, protocol=4)
    return np.concatenate(rows), np.array(labels), test


def make_cifar100(folder: Path):
    train, test = cifar_rows(4, 1), cifar_rows(2, 2)
    write_pickle(folder / "train", {b"data": train, b"fine_labels": [0, 99, 50, 1],
                                    b"coarse_labels": [0, 19, 10, 1]})
    write_pickle(folder / "test", {b"data": test, b"fine_labels": [42, 3],
                                   b"coarse_labels": [8, 0]})
    return train, test


def make_tar(archive: Path, src_root: Path, members: list[str]) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        for m in members:
            tar.add(src_root / m, arcname=m)


# ----------------------------------------------------------------------------- IDX data sets

def test_mnist_plain_and_gz_values_exact(isolated):
    arrays = make_idx_set(isolated / "d")
    ds = load("mnist", data_dir=isolated / "d", download=False)
    assert ds.train_x.shape == (6, 1, 28, 28) and ds.test_x.shape == (4, 1, 28, 28)
    assert ds.input_shape == (1, 28, 28) and ds.num_classes == 10
    assert ds.train_x.dtype == torch.float32 and ds.train_y.dtype == torch.int64
    expect = torch.from_numpy(arrays["train-images-idx3-ubyte"].astype(np.float32)) / 255
    assert torch.equal(ds.train_x[:, 0], expect)
    assert torch.equal(ds.test_x[:, 0] * 255, torch.from_numpy(
        arrays["t10k-images-idx3-ubyte"].astype(np.float32)))
    assert ds.train_y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert ds.test_y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert ds.val_x is None and ds.val_y is None


def test_idx_dims_come_from_header_and_subfolder_is_searched(isolated):
    make_idx_set(isolated / "d" / "fashion-mnist", n_train=3, n_test=2, hw=(5, 7))
    ds = load("Fashion_MNIST", data_dir=isolated / "d", download=False)
    assert ds.name == "fashion-mnist"
    assert ds.train_x.shape == (3, 1, 5, 7) and ds.test_x.shape == (2, 1, 5, 7)


def test_system_dir_then_cache_are_searched(isolated):
    make_idx_set(isolated / "system" / "fashion-mnist", n_train=2, n_test=1, hw=(3, 3))
    assert load("fashion-mnist", download=False).train_x.shape == (2, 1, 3, 3)
    make_idx_set(isolated / "cache" / "mnist", n_train=3, n_test=1, hw=(2, 2))
    assert load("mnist", download=False).train_x.shape == (3, 1, 2, 2)


def test_parse_idx_generic_dtype():
    data = struct.pack(">I2I", 0x00000C02, 2, 2) + np.array([1, -2, 3, 70000], ">i4").tobytes()
    out = parse_idx(data, "x")
    assert out.tolist() == [[1, -2], [3, 70000]]


# ----------------------------------------------------------------------------- CIFAR

def test_cifar10_folder_channel_layout(isolated):
    train, labels, test = make_cifar10(isolated / "d" / "cifar-10-batches-py")
    train[0, 0] = 10                      # R, pixel (0, 0)
    train[0, 1024 + 32 * 1 + 2] = 20      # G, pixel (1, 2)
    train[0, 2048 + 32 * 31 + 31] = 30    # B, pixel (31, 31)
    write_pickle(isolated / "d" / "cifar-10-batches-py" / "data_batch_1",
                 {b"data": train[:2], b"labels": labels[:2].tolist()})
    ds = load("cifar10", data_dir=isolated / "d", download=False)
    assert ds.train_x.shape == (10, 3, 32, 32) and ds.test_x.shape == (3, 3, 32, 32)
    assert ds.num_classes == 10
    assert ds.train_x[0, 0, 0, 0] * 255 == 10
    assert ds.train_x[0, 1, 1, 2] * 255 == 20
    assert ds.train_x[0, 2, 31, 31] * 255 == 30
    r, g, b = train[:, :1024], train[:, 1024:2048], train[:, 2048:]
    got = (ds.train_x * 255).round().to(torch.uint8).numpy()
    assert (got[:, 0].reshape(-1, 1024) == r).all() and (got[:, 2].reshape(-1, 1024) == b).all()
    assert (got[:, 1].reshape(-1, 1024) == g).all()
    assert ds.train_y.tolist() == labels.tolist() and ds.test_y.tolist() == [7, 8, 9]


def test_cifar100_folder_fine_labels(isolated):
    train, test = make_cifar100(isolated / "d" / "cifar100" / "cifar-100-python")
    ds = load("cifar100", data_dir=isolated / "d", download=False)
    assert ds.num_classes == 100 and ds.train_x.shape == (4, 3, 32, 32)
    assert ds.train_y.tolist() == [0, 99, 50, 1] and ds.test_y.tolist() == [42, 3]
    assert torch.equal(ds.test_x, torch.from_numpy(test.reshape(-1, 3, 32, 32)).float() / 255)


def test_cifar100_from_tar_gz(isolated):
    src = isolated / "src"
    train, _ = make_cifar100(src / "cifar-100-python")
    d = isolated / "d"
    d.mkdir()
    make_tar(d / "cifar-100-python.tar.gz", src, ["cifar-100-python"])
    ds = load("cifar100", data_dir=d, download=False)
    assert torch.equal(ds.train_x, torch.from_numpy(train.reshape(-1, 3, 32, 32)).float() / 255)
    assert sorted(p.name for p in d.iterdir()) == ["cifar-100-python", "cifar-100-python.tar.gz"]
    assert (d / "cifar-100-python" / "train").is_file()


@pytest.mark.parametrize("evil", ["../escape", "/abs/escape", "cifar-100-python/../../escape",
                                  "link"])
def test_tar_with_unsafe_member_is_refused(isolated, evil):
    src = isolated / "src"
    make_cifar100(src / "cifar-100-python")
    d = isolated / "d"
    d.mkdir()
    with tarfile.open(d / "cifar-100-python.tar.gz", "w:gz") as tar:
        tar.add(src / "cifar-100-python", arcname="cifar-100-python")
        info = tarfile.TarInfo(evil)
        if evil == "link":
            info.name, info.type, info.linkname = "cifar-100-python/x", tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = 3
            tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(CorruptDatasetError, match="cifar-100-python.tar.gz"):
        load("cifar100", data_dir=d, download=False)
    assert not (isolated / "escape").exists() and not (d / "cifar-100-python").exists()
    assert [p.name for p in d.iterdir()] == ["cifar-100-python.tar.gz"]


def test_truncated_tar_gz(isolated):
    src = isolated / "src"
    make_cifar100(src / "cifar-100-python")
    d = isolated / "d"
    d.mkdir()
    make_tar(d / "cifar-100-python.tar.gz", src, ["cifar-100-python"])
    archive = d / "cifar-100-python.tar.gz"
    archive.write_bytes(archive.read_bytes()[:-200])
    with pytest.raises(CorruptDatasetError, match="cifar-100-python.tar.gz"):
        load("cifar100", data_dir=d, download=False)
    assert [p.name for p in d.iterdir()] == ["cifar-100-python.tar.gz"]


def test_tar_completes_an_incomplete_folder_without_overwriting(isolated):
    src = isolated / "src"
    make_cifar100(src / "cifar-100-python")
    d = isolated / "d"
    (d / "cifar-100-python").mkdir(parents=True)
    make_tar(d / "cifar-100-python.tar.gz", src, ["cifar-100-python"])
    kept = {b"data": cifar_rows(1, 5), b"fine_labels": [77]}
    write_pickle(d / "cifar-100-python" / "test", kept)
    ds = load("cifar100", data_dir=d, download=False)
    assert ds.test_y.tolist() == [77] and ds.train_y.tolist() == [0, 99, 50, 1]


def test_pickle_with_foreign_global_is_refused(isolated):
    make_cifar100(isolated / "d" / "cifar-100-python")
    (isolated / "d" / "cifar-100-python" / "test").write_bytes(
        b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(CorruptDatasetError, match="test.*refusing to load global os.system"):
        load("cifar100", data_dir=isolated / "d", download=False)


# ----------------------------------------------------------------------------- corrupt files

def test_wrong_magic(isolated):
    make_idx_set(isolated / "d")
    write_idx(isolated / "d" / "train-labels-idx1-ubyte", np.zeros(6), magic=0x00000803)
    with pytest.raises(CorruptDatasetError, match=r"train-labels-idx1-ubyte.*magic.*0x00000803"):
        load("mnist", data_dir=isolated / "d", download=False)


def test_truncated_image_file(isolated):
    make_idx_set(isolated / "d", gz=(False,) * 4)
    path = isolated / "d" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CorruptDatasetError, match=r"train-images-idx3-ubyte.*size does not match"):
        load("mnist", data_dir=isolated / "d", download=False)


def test_bad_gzip(isolated):
    make_idx_set(isolated / "d")
    path = isolated / "d" / "t10k-labels-idx1-ubyte"
    path.unlink()
    path.with_name(path.name + ".gz").write_bytes(b"not gzip at all")
    with pytest.raises(CorruptDatasetError, match=r"t10k-labels-idx1-ubyte.gz.*gzip"):
        load("mnist", data_dir=isolated / "d", download=False)


def test_label_image_count_mismatch(isolated):
    make_idx_set(isolated / "d")
    write_idx(isolated / "d" / "t10k-labels-idx1-ubyte", np.zeros(3))
    with pytest.raises(CorruptDatasetError, match=r"t10k-labels-idx1-ubyte.*3 != image count 4"):
        load("mnist", data_dir=isolated / "d", download=False)


def test_cifar_pickle_missing_key(isolated):
    folder = isolated / "d" / "cifar-10-batches-py"
    make_cifar10(folder)
    write_pickle(folder / "data_batch_3", {b"data": cifar_rows(2, 0)})
    with pytest.raises(CorruptDatasetError, match=r"data_batch_3.*missing key b'labels'"):
        load("cifar10", data_dir=isolated / "d", download=False)


def test_cifar_label_count_mismatch(isolated):
    folder = isolated / "d" / "cifar-10-batches-py"
    make_cifar10(folder)
    write_pickle(folder / "test_batch", {b"data": cifar_rows(2, 0), b"labels": [1]})
    with pytest.raises(CorruptDatasetError, match=r"test_batch.*label count 1 != image count 2"):
        load("cifar10", data_dir=isolated / "d", download=False)


# ----------------------------------------------------------------------------- not found

def test_missing_fashion_mnist_lists_dirs_and_apt_hint(isolated):
    with pytest.raises(DatasetNotFoundError) as info:
        load("fashion-mnist", download=False)
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    for folder in (isolated / "system" / "fashion-mnist", isolated / "cache" / "fashion-mnist"):
        assert str(folder) in msg
        assert folder in info.value.searched
    assert "apt-get install -y dataset-fashion-mnist" in msg
    assert "--data-dir DIR" in msg and "download=True" in msg


@pytest.mark.parametrize("kind", ["missing", "empty", "a file"])
@pytest.mark.parametrize("download", [False, True])
def test_a_data_dir_without_the_data_is_an_error_never_a_fallback(isolated, kind, download):
    """Issue 27 item 1: with the data in the cache and the system folder, an explicit
    data_dir that does not hold it is an error naming it; nothing else is searched and
    nothing is downloaded."""
    make_idx_set(isolated / "cache" / "fashion-mnist", n_train=2, n_test=1, hw=(3, 3))
    make_idx_set(isolated / "system" / "fashion-mnist", n_train=2, n_test=1, hw=(3, 3))
    d = isolated / "given"
    if kind == "empty":
        d.mkdir()
    elif kind == "a file":
        d.write_text("")
    with pytest.raises(DatasetNotFoundError) as info:
        load("fashion-mnist", data_dir=d, download=download)
    msg = str(info.value)
    assert info.value.searched == [d, d / "fashion-mnist"]
    assert f"the data folder given, {d}, does not hold it" in msg
    looked = msg.split("To get it:")[0]
    assert str(isolated / "cache") not in looked and str(isolated / "system") not in looked
    assert d.exists() == (kind != "missing")          # nothing created there


def test_cache_defaults_to_home(isolated, monkeypatch):
    monkeypatch.delenv("BIOCREDIT_DATA")
    with pytest.raises(DatasetNotFoundError, match=r"home/\.cache/biocredit/mnist"):
        load("mnist", download=False)


def test_system_data_variable_replaces_the_system_folders(isolated, monkeypatch):
    """``$BIOCREDIT_SYSTEM_DATA`` lists folders searched as ``<folder>/<name>`` in place of
    ``SYSTEM_DIRS``; set but empty, there are no system folders."""
    a, b = isolated / "a", isolated / "b"
    monkeypatch.setenv(locate.SYSTEM_ENV, f"{a}{os.pathsep}{b}")
    assert locate.search_dirs("fashion-mnist", None) == [
        a / "fashion-mnist", b / "fashion-mnist", isolated / "cache" / "fashion-mnist"]
    assert isolated / "system" / "fashion-mnist" not in locate.search_dirs("fashion-mnist", None)
    monkeypatch.setenv(locate.SYSTEM_ENV, "")
    assert locate.search_dirs("fashion-mnist", None) == [isolated / "cache" / "fashion-mnist"]
    make_idx_set(b / "fashion-mnist", n_train=2, n_test=1, hw=(3, 3))
    monkeypatch.setenv(locate.SYSTEM_ENV, f"{a}{os.pathsep}{b}")
    assert load("fashion-mnist", download=False).train_x.shape[0] > 0


@pytest.mark.parametrize("name", ["fashion-mnist", "mnist", "cifar10"])
def test_failed_download_is_not_found(isolated, monkeypatch, name):
    def fail(url, dest, md5, **kw):
        raise URLError("no route to host")

    monkeypatch.setattr(dl, "download_file", fail)
    with pytest.raises(DatasetNotFoundError, match="download failed.*no route to host") as info:
        load(name)
    assert str(isolated / "cache" / name) in str(info.value)
    assert ("apt-get install -y dataset-fashion-mnist" in str(info.value)) == (
        name == "fashion-mnist")


def test_offline_urlopen_is_not_found(isolated):
    with pytest.raises(DatasetNotFoundError, match="offline"):
        load("mnist")
    assert not any((isolated / "cache" / "mnist").iterdir())  # no partial files left


# ----------------------------------------------------------------------------- downloads

def test_download_checksum_mismatch_leaves_nothing(isolated, monkeypatch):
    monkeypatch.setattr(dl, "urlopen", __import__("urllib.request").request.urlopen)
    src = isolated / "remote.gz"
    src.write_bytes(b"some bytes")
    dest = isolated / "cache" / "x" / "train-images-idx3-ubyte.gz"
    wrong = "0" * 32
    with pytest.raises(ChecksumMismatchError) as info:
        dl.download_file(src.as_uri(), dest, wrong)
    msg = str(info.value)
    assert "train-images-idx3-ubyte.gz" in msg and wrong in msg
    assert hashlib.md5(b"some bytes").hexdigest() in msg
    assert list(dest.parent.iterdir()) == []
    good = hashlib.md5(b"some bytes").hexdigest()
    assert dl.download_file(src.as_uri(), dest, good).read_bytes() == b"some bytes"
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]


def _serve(files: dict[str, bytes]):
    def fake_urlopen(request, timeout=None):
        assert timeout is not None and timeout <= 60
        return io.BytesIO(files[request.full_url.rsplit("/", 1)[1]])
    return fake_urlopen


def test_load_downloads_into_cache(isolated, monkeypatch):
    arrays = make_idx_set(isolated / "remote", n_train=3, n_test=2, hw=(4, 4), gz=(True,) * 4)
    files = {p.name: p.read_bytes() for p in (isolated / "remote").iterdir()}
    for stem in mnist.FILES:
        monkeypatch.setitem(mnist.MNIST.md5, stem, hashlib.md5(files[stem + ".gz"]).hexdigest())
    monkeypatch.setattr(dl, "urlopen", _serve(files))
    ds = load("mnist")
    assert ds.train_y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert sorted(p.name for p in (isolated / "cache" / "mnist").iterdir()) == sorted(files)


def test_load_download_with_bad_checksum_raises(isolated, monkeypatch):
    make_idx_set(isolated / "remote", gz=(True,) * 4)
    files = {p.name: p.read_bytes() for p in (isolated / "remote").iterdir()}
    monkeypatch.setattr(dl, "urlopen", _serve(files))
    with pytest.raises(ChecksumMismatchError, match="train-images-idx3-ubyte.gz.*f68b3c2d"):
        load("mnist")
    assert list((isolated / "cache" / "mnist").iterdir()) == []


# ----------------------------------------------------------------------------- digits + API

def test_available():
    assert available() == NAMES


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as info:
        load("imagenet")
    assert "imagenet" in str(info.value)
    assert all(n in str(info.value) for n in NAMES)


@pytest.mark.parametrize("kw", [{"normalize": "zscore"}, {"validation": -1},
                                {"validation": 1.0}, {"validation": 2.5}, {"validation": True},
                                {"validation": "0.1"}, {"validation": float("nan")},
                                {"validation": 1437}])
def test_bad_arguments(kw):
    with pytest.raises(ValueError, match="normalize|validation"):
        load("digits", **kw)


def test_digits_shapes_values_and_fixed_split():
    ds = load("digits")
    assert ds.train_x.shape == (1437, 1, 8, 8) and ds.test_x.shape == (360, 1, 8, 8)
    assert ds.num_classes == 10 and ds.input_shape == (1, 8, 8)
    assert ds.train_x.dtype == torch.float32 and ds.test_y.dtype == torch.int64
    assert ds.train_x.min() >= 0 and ds.train_x.max() == 1 and ds.test_x.max() <= 1
    assert set(ds.train_y.tolist()) == set(range(10))
    again = load("digits", split_seed=5, validation=10)
    assert torch.equal(ds.test_x, again.test_x) and torch.equal(ds.test_y, again.test_y)
    scaled = (ds.train_x * 16).round()
    assert torch.allclose(ds.train_x * 16, scaled, atol=1e-5)  # values were 0..16 integers


def _rows(x: torch.Tensor, y: torch.Tensor) -> collections.Counter:
    return collections.Counter(
        (xi.numpy().tobytes(), int(yi)) for xi, yi in zip(x, y))


@pytest.mark.parametrize("validation, count", [(0.1, 144), (100, 100)])
def test_digits_validation_split(validation, count):
    full = load("digits")
    ds = load("digits", validation=validation)
    assert len(ds.val_x) == len(ds.val_y) == count
    assert len(ds.train_x) == 1437 - count
    assert _rows(ds.train_x, ds.train_y) + _rows(ds.val_x, ds.val_y) == _rows(
        full.train_x, full.train_y)
    same = load("digits", validation=validation)
    other = load("digits", validation=validation, split_seed=1)
    assert torch.equal(ds.val_x, same.val_x) and torch.equal(ds.train_y, same.train_y)
    assert not torch.equal(ds.val_x, other.val_x)


def test_digits_standardize_uses_train_statistics():
    ds = load("digits", normalize="standardize", validation=0.2)
    mean = ds.train_x.mean(dim=(0, 2, 3))
    std = ds.train_x.std(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.zeros(1), atol=1e-5)
    assert torch.allclose(std, torch.ones(1), atol=1e-3)
    scaled = load("digits", validation=0.2)
    m, s = scaled.train_x.mean(), scaled.train_x.std(correction=0)
    assert torch.allclose(ds.test_x, (scaled.test_x - m) / s, atol=1e-5)
    assert torch.allclose(ds.val_x, (scaled.val_x - m) / s, atol=1e-5)


def test_dataset_to_and_checks():
    ds = load("digits", validation=5)
    moved = ds.to("cpu")
    assert isinstance(moved, Dataset) and moved.train_x.device.type == "cpu"
    assert moved.val_x.dtype == torch.float32 and moved.val_y.dtype == torch.int64
    assert "digits" in repr(ds) and "1437" not in repr(ds)
    with pytest.raises(ValueError):
        Dataset("bad", ds.train_x, ds.train_y[:-1], ds.test_x, ds.test_y, 10)
    with pytest.raises(ValueError):
        Dataset("bad", ds.train_x, ds.train_y, ds.test_x, ds.test_y, 10, val_x=ds.val_x)


# ----------------------------------------------------------------------------- real data (opt-in)

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_debian_fashion_mnist(monkeypatch):
    monkeypatch.setattr(locate, "SYSTEM_DIRS", {"fashion-mnist": (DEBIAN_FASHION,)})
    monkeypatch.delenv(locate.SYSTEM_ENV, raising=False)
    ds = load("fashion-mnist", download=False)
    assert ds.train_x.shape == (60000, 1, 28, 28) and ds.test_x.shape == (10000, 1, 28, 28)
    assert ds.train_y.bincount().tolist() == [6000] * 10
    assert abs(ds.train_x.mean().item() - 0.2860) < 1e-3


@pytest.mark.parametrize("name", ["digits", "synthetic", "amit-linear"])
def test_a_data_dir_for_a_built_in_set_is_an_error_not_ignored(name, tmp_path):
    with pytest.raises(ValueError, match=f"{name} is built in .*--data-dir .* does not apply"):
        load(name, data_dir=tmp_path)
