"""IDX files (the MNIST container): read and write, gzip when the name ends in ``.gz``.

Layout: bytes ``0, 0, type, ndim``, then ``ndim`` big-endian uint32 sizes, then the data in
C order. MNIST uses type ``0x08`` (uint8); the other IDX types are read too.
"""

from __future__ import annotations

import gzip
import io
import math
import zlib
from pathlib import Path

import numpy as np

from causaldiffae.atomic import atomic_file
from causaldiffae.data.base import DataError

_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype: code for code, dtype in _TYPES.items()}


MAX_BYTES = 2**31  # 2 GiB of pixels; all of MNIST is 55 MB, and a header may claim anything


def _open(path: Path) -> io.BufferedIOBase:
    if not path.is_file():
        raise DataError(f"IDX file not found: {path}")
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _read_exactly(f: io.BufferedIOBase, n: int) -> bytes:
    """Up to ``n`` bytes: a short read means the file ended."""
    chunks, left = [], n
    while left > 0:
        chunk = f.read(min(left, 1 << 24))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file, in native byte order.

    The header is read first and the data only up to the size it declares (at most ``MAX_BYTES``),
    so a small gzip file that inflates to gigabytes is refused, not decompressed.
    """
    path = Path(path)
    try:
        with _open(path) as f:
            magic = _read_exactly(f, 4)
            if len(magic) < 4:
                raise DataError(f"{path}: truncated IDX header ({len(magic)} bytes)")
            if magic[0] != 0 or magic[1] != 0 or magic[2] not in _TYPES:
                raise DataError(f"{path}: bad IDX magic number {magic.hex()} (expected 0000 then a type byte such as 08)")
            dtype, ndim = _TYPES[magic[2]], magic[3]
            sizes = _read_exactly(f, 4 * ndim)
            if len(sizes) < 4 * ndim:
                raise DataError(f"{path}: truncated IDX header (needs {4 + 4 * ndim} bytes for {ndim} sizes, has {4 + len(sizes)})")
            shape = tuple(int(v) for v in np.frombuffer(sizes, dtype=">u4"))
            expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow whatever the header says
            if expected > MAX_BYTES:
                raise DataError(f"{path}: the IDX header declares shape {shape}, {expected / 2**30:.3g} GiB; "
                                f"more than the {MAX_BYTES // 2**30} GiB this reader takes")
            raw = _read_exactly(f, expected)
            if len(raw) < expected:
                raise DataError(f"{path}: truncated IDX data: shape {shape} needs {expected} bytes, file has {len(raw)}")
            extra = len(_read_exactly(f, 1 << 20))
            if extra:
                raise DataError(f"{path}: {extra}{'+' if extra == 1 << 20 else ''} unexpected bytes after the IDX data of shape {shape}")
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: cannot read gzip data ({err})") from None
    data = np.frombuffer(raw, dtype=dtype).reshape(shape)
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
