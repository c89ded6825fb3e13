"""IDX round trips (plain and gzip) and a one-line error naming the file for each corruption."""

import gzip

import numpy as np
import pytest

from causaldiffae.data.base import DataError
from causaldiffae.data.idx import read_idx, write_idx


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
def test_round_trip(tmp_path, name, dtype):
    array = (np.random.default_rng(0).random((5, 28, 28)) * 200).astype(dtype)
    write_idx(tmp_path / name, array)
    back = read_idx(tmp_path / name)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_layout_is_the_published_one(tmp_path):
    labels = np.array([3, 1, 4], dtype=np.uint8)
    write_idx(tmp_path / "labels-idx1-ubyte", labels)
    assert (tmp_path / "labels-idx1-ubyte").read_bytes() == bytes([0, 0, 8, 1, 0, 0, 0, 3, 3, 1, 4])
    write_idx(tmp_path / "labels.gz", labels)
    assert gzip.decompress((tmp_path / "labels.gz").read_bytes()) == bytes([0, 0, 8, 1, 0, 0, 0, 3, 3, 1, 4])


def test_gzip_output_is_reproducible(tmp_path):
    array = np.arange(100, dtype=np.uint8)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b.gz", array)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()
    assert (tmp_path / "a.gz").read_bytes()[4:8] == bytes(4)  # no write time in the header: equal in any second


def _write(path, payload: bytes) -> None:
    path.write_bytes(gzip.compress(payload) if path.name.endswith(".gz") else payload)


@pytest.mark.parametrize("name", ["x-idx1-ubyte", "x-idx1-ubyte.gz"])
@pytest.mark.parametrize(
    "payload, message",
    [
        (bytes([0x1F, 0x8B, 8, 1, 0, 0, 0, 1, 7]), "bad IDX magic number"),
        (bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 7]), "bad IDX magic number"),
        (bytes([0, 0, 8]), "truncated IDX header"),
        (bytes([0, 0, 8, 3, 0, 0, 0, 2]), "truncated IDX header"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]), "truncated IDX data"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 1, 1, 2]), "unexpected bytes"),
    ],
)
def test_corruption_is_a_clear_error(tmp_path, name, payload, message):
    path = tmp_path / name
    _write(path, payload)
    with pytest.raises(DataError, match=message) as err:
        read_idx(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_and_broken_gzip_files(tmp_path):
    with pytest.raises(DataError, match="IDX file not found"):
        read_idx(tmp_path / "nope.gz")
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3, 4]))[:-12])
    with pytest.raises(DataError, match=r"broken\.gz: cannot read gzip data \(Compressed file ended"):
        read_idx(broken)
    not_gzip = tmp_path / "plain.gz"
    not_gzip.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 1, 9]))
    with pytest.raises(DataError, match="cannot read gzip data"):
        read_idx(not_gzip)


def test_unsupported_dtype_is_refused(tmp_path):
    with pytest.raises(DataError, match="cannot store dtype"):
        write_idx(tmp_path / "a.idx", np.zeros(3, dtype=np.complex64))
    assert not (tmp_path / "a.idx").exists()


class _CountingReader:
    """A file that counts the bytes handed to its reader (for a gzip file: the inflated bytes)."""

    def __init__(self, f):
        self.f, self.delivered = f, 0

    def read(self, n=-1):
        chunk = self.f.read(n)
        self.delivered += len(chunk)
        return chunk

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def test_a_header_declaring_gigabytes_is_refused_before_the_data_is_read(tmp_path, monkeypatch):
    import tracemalloc

    from causaldiffae.data import idx

    bomb = tmp_path / "bomb-idx3-ubyte.gz"
    with gzip.open(bomb, "wb") as f:  # a 3 GiB header, then 10 MB of zeros (a 10 KB file)
        f.write(bytes([0, 0, 8, 3]) + np.array([3_000_000, 1000, 1000], dtype=">u4").tobytes() + bytes(10_000_000))
    real_open, opened = idx._open, []

    def counting_open(path):
        opened.append(_CountingReader(real_open(path)))
        return opened[-1]

    monkeypatch.setattr(idx, "_open", counting_open)
    tracing = tracemalloc.is_tracing()  # a run under -X tracemalloc keeps its own tracing
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        with pytest.raises(DataError, match=r"declares shape \(3000000, 1000, 1000\), 2.79e\+03 GiB; more than the 2 GiB"):
            read_idx(bomb)
        peak = tracemalloc.get_traced_memory()[1] - tracemalloc.get_traced_memory()[0]  # above what was held before
    finally:
        if not tracing:
            tracemalloc.stop()
    assert len(opened) == 1 and opened[0].delivered < 1_000_000  # about the 16-byte header, not the 10 MB behind it
    assert peak < 5_000_000  # nor inflated some other way
    overflow = tmp_path / "overflow-idx3-ubyte"
    overflow.write_bytes(bytes([0, 0, 8, 4]) + np.full(4, 65536, dtype=">u4").tobytes())  # 2^64 elements: 0 in int64
    with pytest.raises(DataError, match="declares shape"):
        read_idx(overflow)


@pytest.mark.parametrize("name", ["x-idx2-ubyte", "x-idx2-ubyte.gz"])
def test_a_header_exactly_at_the_byte_cap_is_read_not_refused(tmp_path, monkeypatch, name):
    from causaldiffae.data import idx

    monkeypatch.setattr(idx, "MAX_BYTES", 12)
    path = tmp_path / name
    _write(path, bytes([0, 0, 8, 2, 0, 0, 0, 3, 0, 0, 0, 4]))  # 3 x 4 uint8: exactly the cap, and no data behind it
    with pytest.raises(DataError, match=r"truncated IDX data: shape \(3, 4\) needs 12 bytes, file has 0"):
        read_idx(path)
    _write(path, bytes([0, 0, 8, 2, 0, 0, 0, 3, 0, 0, 0, 4]) + bytes(range(12)))
    np.testing.assert_array_equal(read_idx(path), np.arange(12, dtype=np.uint8).reshape(3, 4))
    _write(path, bytes([0, 0, 8, 1, 0, 0, 0, 13]) + bytes(13))  # one byte over
    with pytest.raises(DataError, match=r"declares shape \(13,\)"):
        read_idx(path)
