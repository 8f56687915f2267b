"""The IDX file format of MNIST (LeCun et al., http://yann.lecun.com/exdb/mnist/).

Layout (all integers big-endian)::

    bytes 0-1   zero
    byte  2     dtype code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
                0x0E float64
    byte  3     number of dimensions d
    4*d bytes   the size of each dimension, uint32
    the rest    the values, row-major, exactly prod(sizes) of them

``read_idx`` checks every field and raises a one-line ``ValueError`` naming the file, what is
wrong and what to do. ``write_idx`` writes the same format (used by the tests).
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_FIX = "re-download it from the MNIST site (http://yann.lecun.com/exdb/mnist/)"


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in the IDX file ``path`` (gzip-compressed if it ends in ``.gz``)."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"IDX file {path} does not exist; {_FIX}") from None
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise ValueError(f"cannot read IDX file {path} ({e}); {_FIX}") from None
    return parse_idx(raw, str(path))


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """The array in the IDX bytes ``raw``; ``name`` is what errors call the file."""
    if len(raw) < 4:
        raise ValueError(f"IDX file {name} is truncated: {len(raw)} bytes, shorter than the "
                         f"4-byte header; {_FIX}")
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or code not in DTYPES:
        raise ValueError(f"{name} is not an IDX file: magic number 0x{raw[:4].hex()} (expected "
                         f"0x0000 then a dtype code in {', '.join(f'0x{c:02X}' for c in DTYPES)}"
                         f" then the dimension count); {_FIX}")
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise ValueError(f"IDX file {name} is truncated or malformed: header declares {ndim} "
                         f"dimensions but the file has {len(raw)} bytes; {_FIX}")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = DTYPES[code]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        problem = "truncated" if len(raw) - header < expected else "longer than its header says"
        raise ValueError(f"IDX file {name} is {problem}: shape {shape} needs {expected} bytes of "
                         f"data, found {len(raw) - header}; {_FIX}")
    values = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Writes ``array`` as an IDX file (gzip-compressed if ``path`` ends in ``.gz``)."""
    codes = {dtype.newbyteorder("="): code for code, dtype in DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX cannot store dtype {array.dtype}; use one of "
                         f"{', '.join(str(d.newbyteorder('=')) for d in DTYPES.values())}")
    raw = (struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
           + np.ascontiguousarray(array, dtype=DTYPES[code]).tobytes())
    path = Path(path)
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
