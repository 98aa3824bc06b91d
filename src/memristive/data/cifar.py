"""CIFAR-10 from the published "python version" layout (``cifar-10-python.tar.gz``).

The archive unpacks to ``cifar-10-batches-py/`` with ``data_batch_1`` … ``data_batch_5`` (10,000
images each), ``test_batch`` and ``batches.meta``. Each batch is a pickled dict with byte-string keys:
``b"data"`` a ``uint8`` array ``(10000, 3072)`` — per row the 1024 red, then green, then blue values
of a 32×32 image in row-major order — and ``b"labels"`` a list of 10,000 ints in 0–9;
``batches.meta`` holds ``b"label_names"``.

Looked for in the data folder (:func:`memristive.data.data_dir`): ``cifar-10-batches-py/`` or the
``cifar-10-python.tar.gz`` archive (unpacked there on first use). It cannot be downloaded here; put the
archive in the data folder. The pickles are read with an unpickler that admits only plain containers
and numpy arrays (no arbitrary code from a pickle).
"""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch

from .mnist import DataError, Dataset, data_dir

__all__ = ["CIFAR10_CLASSES", "load_cifar10", "read_batch", "cifar10_dir"]

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FOLDER = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
TEST = "test_batch"

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"), ("copyreg", "_reconstructor"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"CIFAR batch: refusing to load {module}.{name} from a pickle")


def read_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file → ``(images uint8 (N, 3, 32, 32), labels int64 (N,))``."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            d = _SafeUnpickler(f, encoding="bytes").load()
    except (OSError, pickle.UnpicklingError, EOFError) as exc:
        raise DataError(f"{path}: not a readable CIFAR-10 python batch ({exc})") from None
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        raise DataError(f"{path}: expected a dict with b'data' and b'labels', got {type(d).__name__}")
    data = np.asarray(d[b"data"])
    labels = np.asarray(d[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(f"{path}: b'data' must be uint8 (N, 3072) with N labels, got {data.dtype} {data.shape} "
                        f"and {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{path}: labels must lie in 0..9, got {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels


def cifar10_dir(root: str | Path | None = None) -> Path:
    """The ``cifar-10-batches-py`` folder (unpacking the archive if only that is present)."""
    base = data_dir(root)
    folder = base / FOLDER
    if not folder.is_dir() and (base / ARCHIVE).is_file():
        with tarfile.open(base / ARCHIVE, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(FOLDER + "/") and m.isfile()]
            tar.extractall(base, members=members, filter="data")
    if not folder.is_dir():
        raise DataError(f"CIFAR-10 not found: put {ARCHIVE} (https://www.cs.toronto.edu/~kriz/cifar.html) or its "
                        f"{FOLDER}/ folder into {base} (the data folder: $MEMRISTIVE_DATA, ./data or ~/.cache/memristive)")
    return folder


def load_cifar10(root: str | Path | None = None) -> Dataset:
    """CIFAR-10 as a :class:`Dataset`: images flattened ``(N, 3·32·32)`` (channel-major, i.e.
    ``x.view(-1, 3, 32, 32)``) float32 in [0, 1]; 50,000 training and 10,000 test images."""
    folder = cifar10_dir(root)
    missing = [n for n in TRAIN + [TEST] if not (folder / n).is_file()]
    if missing:
        raise DataError(f"{folder}: missing batch file(s) {missing}")
    parts = [read_batch(folder / n) for n in TRAIN]
    x_tr = np.concatenate([p[0] for p in parts])
    y_tr = np.concatenate([p[1] for p in parts])
    x_te, y_te = read_batch(folder / TEST)

    def to_x(a):
        return torch.from_numpy(a.reshape(len(a), -1).astype(np.float32) / 255.0)

    return Dataset(to_x(x_tr), torch.from_numpy(y_tr), to_x(x_te), torch.from_numpy(y_te), "cifar10", str(folder))
