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
