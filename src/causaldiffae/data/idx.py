"""IDX files (the MNIST container): read and write, gzip when the name ends in ``.gz``.

Layout: bytes ``0, 0, type, ndim``, then ``ndim`` big-endian uint32 sizes, then the data in
C order. MNIST uses type ``0x08`` (uint8); the other IDX types are read too.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from causaldiffae.atomic import atomic_file
from causaldiffae.data.base import DataError

_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype: code for code, dtype in _TYPES.items()}


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise DataError(f"IDX file not found: {path}")
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: cannot read gzip data ({err})") from None


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file, in native byte order."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes)")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise DataError(f"{path}: bad IDX magic number {raw[:4].hex()} (expected 0000 then a type byte such as 08)")
    dtype, ndim = _TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header (needs {header} bytes for {ndim} sizes, has {len(raw)})")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header
    if found < expected:
        raise DataError(f"{path}: truncated IDX data: shape {shape} needs {expected} bytes, file has {found}")
    if found > expected:
        raise DataError(f"{path}: {found - expected} unexpected bytes after the IDX data of shape {shape}")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` atomically as IDX (gzip-compressed when ``path`` ends in ``.gz``)."""
    path = Path(path)
    array = np.asarray(array)
    big = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    if big not in _CODES:
        raise DataError(f"{path}: IDX cannot store dtype {array.dtype}")
    if array.ndim > 255:
        raise DataError(f"{path}: IDX stores at most 255 dimensions, got {array.ndim}")
    payload = bytes([0, 0, _CODES[big], array.ndim])
    payload += np.asarray(array.shape, dtype=">u4").tobytes() + np.ascontiguousarray(array, dtype=big).tobytes()
    with atomic_file(path) as tmp:
        if path.name.endswith(".gz"):
            # mtime=0 keeps the bytes identical for identical data (reproducible datasets).
            with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as f:
                f.write(payload)
        else:
            tmp.write_bytes(payload)
