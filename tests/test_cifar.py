"""CIFAR-10 loader on a tiny fixture written in the published python-pickle layout."""

import pickle
import tarfile

import numpy as np
import pytest
import torch

from memristive.data import DataError
from memristive.data.cifar import load_cifar10, read_batch


def _write(folder, name, n, seed):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, n)]
    with open(folder / name, "wb") as f:  # protocol 2 and byte-string keys, as the original files
        pickle.dump({b"batch_label": b"fixture", b"labels": labels, b"data": data,
                     b"filenames": [b"img.png"] * n}, f, protocol=2)
    return data, labels


@pytest.fixture
def cifar_root(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    written = {n: _write(folder, n, 4 + i, i) for i, n in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"])}
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"airplane"] * 10}, f, protocol=2)
    return tmp_path, written


def test_layout_and_values(cifar_root):
    root, written = cifar_root
    d = load_cifar10(root)
    assert d.x_train.shape == (4 + 5 + 6 + 7 + 8, 3072) and d.x_test.shape == (9, 3072)
    data, labels = written["data_batch_2"]
    # image 1 of batch 2: pixel (row 3, col 5) of the green plane is byte 1024 + 3·32 + 5 of its row
    img = d.x_train[4 + 1].view(3, 32, 32)
    assert img[1, 3, 5] == pytest.approx(data[1, 1024 + 3 * 32 + 5] / 255.0)
    assert d.y_train[4 + 1] == labels[1] and d.y_train.dtype == torch.int64
    assert d.y_test.tolist() == written["test_batch"][1]
    assert 0.0 <= float(d.x_train.min()) and float(d.x_train.max()) <= 1.0


def test_archive_is_unpacked(cifar_root, tmp_path_factory):
    root, _ = cifar_root
    other = tmp_path_factory.mktemp("archive")
    with tarfile.open(other / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(root / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    assert len(load_cifar10(other).x_test) == 9


def test_errors(tmp_path, cifar_root):
    with pytest.raises(DataError, match="CIFAR-10 not found"):
        load_cifar10(tmp_path / "empty")
    root, _ = cifar_root
    bad = root / "cifar-10-batches-py" / "data_batch_1"

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad.write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(DataError, match="refusing to load builtins.print"):
        read_batch(bad)
    bad.write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(DataError, match=r"uint8 \(N, 3072\)"):
        load_cifar10(root)
