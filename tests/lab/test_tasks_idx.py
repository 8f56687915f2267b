"""The IDX reader and the full-MNIST loader, on small IDX files written here byte by byte
(following the format description, not the library's own writer)."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from descend.lab import tasks
from descend.lab.data.idx import read_idx


def idx_bytes(array: np.ndarray, code: int, big_endian_dtype: str) -> bytes:
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += b"".join(struct.pack(">I", n) for n in array.shape)
    return header + array.astype(big_endian_dtype).tobytes()


@pytest.mark.parametrize(("code", "dtype"), [(0x08, ">u1"), (0x09, ">i1"), (0x0B, ">i2"),
                                             (0x0C, ">i4"), (0x0D, ">f4"), (0x0E, ">f8")])
def test_reads_every_idx_dtype(tmp_path, code, dtype):
    values = np.arange(-3, 21).reshape(2, 3, 4) if dtype[1] != "u" else np.arange(24)
    path = tmp_path / "data.idx"
    path.write_bytes(idx_bytes(values, code, dtype))
    array = read_idx(path)
    assert array.shape == values.shape
    assert array.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(array, values)


def test_reads_gzip_compressed_files(tmp_path):
    path = tmp_path / "labels.idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.array([7, 2, 1]), 0x08, ">u1")))
    np.testing.assert_array_equal(read_idx(path), [7, 2, 1])


def test_known_bytes_decode_as_big_endian(tmp_path):
    path = tmp_path / "int16.idx"
    path.write_bytes(bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xFF, 0xFE]))
    np.testing.assert_array_equal(read_idx(path), [0x0102, -2])


GOOD = idx_bytes(np.zeros((3, 2, 2)), 0x08, ">u1")


@pytest.mark.parametrize(("raw", "message"), [
    (b"\x08\x03\x00\x00" + GOOD[4:], "not an IDX file: magic number 0x08030000"),
    (GOOD[:2] + b"\x07" + GOOD[3:], "not an IDX file"),
    (GOOD[:3], "truncated"),
    (GOOD[:10], "truncated or malformed"),
    (GOOD[:-1], "truncated: shape (3, 2, 2) needs 12 bytes of data, found 11"),
    (GOOD + b"\x00", "longer than its header says"),
])
def test_corrupt_files_raise_one_line_errors_naming_the_file(tmp_path, raw, message):
    path = tmp_path / "broken-idx3-ubyte"
    path.write_bytes(raw)
    with pytest.raises(ValueError) as info:
        read_idx(path)
    text = str(info.value)
    assert message in text and str(path) in text and "\n" not in text
    assert "re-download" in text


def test_missing_file_and_bad_gzip_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_idx(tmp_path / "nope")
    (tmp_path / "bad.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="cannot read IDX file .*bad.gz"):
        read_idx(tmp_path / "bad.gz")


def write_mnist(folder, n_train=60, n_test=20, gz=False, **overrides):
    rng = np.random.default_rng(0)
    files = {
        "train-images-idx3-ubyte": (rng.integers(0, 256, (n_train, 28, 28)), 0x08, ">u1"),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10, 0x08, ">u1"),
        "t10k-images-idx3-ubyte": (rng.integers(0, 256, (n_test, 28, 28)), 0x08, ">u1"),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10, 0x08, ">u1"),
    }
    files.update(overrides)
    for name, (array, code, dtype) in files.items():
        raw = idx_bytes(array, code, dtype)
        (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(raw) if gz else raw)
    return files


@pytest.mark.parametrize("gz", [False, True])
def test_full_mnist_from_a_folder(tmp_path, gz):
    files = write_mnist(tmp_path, gz=gz)
    splits = tasks.get("mnist").with_data_dir(tmp_path).load(0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (54, 6, 20)
    assert splits.train.x.shape[1] == 784
    assert 0.0 <= splits.train.x.min() and splits.train.x.max() <= 1.0
    # the test split is the t10k file, in order, scaled by 1/255
    images = files["t10k-images-idx3-ubyte"][0].reshape(20, -1) / 255
    np.testing.assert_allclose(splits.test.x.numpy(), images, rtol=1e-6)
    np.testing.assert_array_equal(splits.test.y.numpy(), np.arange(20) % 10)
    # train and validation share out the training file's labels, each digit once only
    together = np.concatenate([splits.train.y.numpy(), splits.val.y.numpy()])
    np.testing.assert_array_equal(np.bincount(together), [6] * 10)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"train-labels-idx1-ubyte": (np.arange(59) % 10, 0x08, ">u1")},
     "has 59 labels for 60 images"),
    ({"t10k-labels-idx1-ubyte": (np.arange(20) % 12, 0x08, ">u1")}, "has label 11"),
    ({"train-images-idx3-ubyte": (np.zeros((60, 784)), 0x08, ">u1")}, "expected uint8 images"),
    ({"t10k-images-idx3-ubyte": (np.zeros((20, 14, 14)), 0x08, ">u1")}, "training file has"),
])
def test_inconsistent_mnist_files_are_clear_errors(tmp_path, overrides, message):
    write_mnist(tmp_path, **overrides)
    with pytest.raises(ValueError, match=message) as info:
        tasks.get("mnist").with_data_dir(tmp_path).load(0)
    assert "--data-dir" in str(info.value)


def test_missing_file_or_folder_says_what_to_do(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte .*is missing from"):
        tasks.get("mnist").with_data_dir(tmp_path).load(0)
    with pytest.raises(ValueError, match="is not a folder"):
        tasks.get("mnist").with_data_dir(tmp_path / "absent").load(0)


def test_a_task_without_files_refuses_a_data_dir(tmp_path):
    with pytest.raises(ValueError, match="does not read data from a folder"):
        tasks.get("digits").with_data_dir(tmp_path)
    assert tasks.get("digits").with_data_dir(None) is tasks.get("digits")
