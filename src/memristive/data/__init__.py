"""Datasets: IDX reader, MNIST / Fashion-MNIST loaders with offline fallbacks, and small helpers.

Where data is looked for (first hit wins): the ``root`` argument, ``$MEMRISTIVE_DATA``, ``./data``
under the current directory, ``~/.cache/memristive``. ``memristive data fetch NAME`` (and
``make data``) puts the files there.
"""

from .idx import read_idx, write_idx
from .mnist import DATASETS, DataError, Dataset, data_dir, fetch, load_dataset, load_fashion_mnist, load_mnist, verify

__all__ = [
    "read_idx",
    "write_idx",
    "DataError",
    "Dataset",
    "data_dir",
    "fetch",
    "load_mnist",
    "load_fashion_mnist",
    "load_dataset",
    "verify",
    "DATASETS",
]
