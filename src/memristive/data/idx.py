"""The IDX file format of MNIST / Fashion-MNIST (raw or gzip-compressed)."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}


class IDXError(ValueError):
    """An IDX file is missing, truncated or not IDX."""


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) into a numpy array of its declared shape."""
    path = Path(path)
    if not path.is_file():
        raise IDXError(f"IDX file {str(path)!r} does not exist")
    try:
        with (gzip.open if _is_gzip(path) else open)(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise IDXError(f"IDX file {str(path)!r} could not be read ({exc}); delete it and fetch it again") from None
    if len(data) < 4:
        raise IDXError(f"IDX file {str(path)!r} is truncated ({len(data)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in _DTYPES or ndim == 0:
        raise IDXError(f"{str(path)!r} is not an IDX file (bad magic number)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXError(f"IDX file {str(path)!r} is truncated in its header")
    shape = struct.unpack(">" + "I" * ndim, data[4:header])
    dtype = np.dtype(_DTYPES[code])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise IDXError(
            f"IDX file {str(path)!r} holds {len(data) - header} data bytes, its header promises {expected} "
            f"(shape {shape}); the file is corrupt or truncated"
        )
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray, compress: bool | None = None) -> None:
    """Write a uint8/int8 array as IDX (gzip if ``compress`` or the name ends in .gz)."""
    path = Path(path)
    array = np.ascontiguousarray(array)
    if array.dtype not in _CODES:
        raise ValueError(f"write_idx supports uint8/int8 arrays, got {array.dtype}")
    head = struct.pack(">HBB", 0, _CODES[array.dtype], array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    compress = path.suffix == ".gz" if compress is None else compress
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(head + array.tobytes())


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"
