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
    with pytest.raises(DataError, match="broken.gz"):
        read_idx(broken)
    not_gzip = tmp_path / "plain.gz"
    not_gzip.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 1, 9]))
    with pytest.raises(DataError, match="cannot read gzip data"):
        read_idx(not_gzip)


def test_unsupported_dtype_is_refused(tmp_path):
    with pytest.raises(DataError, match="cannot store dtype"):
        write_idx(tmp_path / "a.idx", np.zeros(3, dtype=np.complex64))
    assert not (tmp_path / "a.idx").exists()


def test_a_header_declaring_gigabytes_is_refused_before_the_data_is_read(tmp_path):
    import gzip

    bomb = tmp_path / "bomb-idx3-ubyte.gz"
    with gzip.open(bomb, "wb") as f:  # 3 GiB of zeros behind a valid header compress to a few MB; write only the start
        f.write(bytes([0, 0, 8, 3]) + np.array([3_000_000, 1000, 1000], dtype=">u4").tobytes() + bytes(1000))
    with pytest.raises(DataError, match=r"declares shape \(3000000, 1000, 1000\), 2.79e\+03 GiB; more than the 2 GiB"):
        read_idx(bomb)
    overflow = tmp_path / "overflow-idx3-ubyte"
    overflow.write_bytes(bytes([0, 0, 8, 4]) + np.full(4, 65536, dtype=">u4").tobytes())  # 2^64 elements: 0 in int64
    with pytest.raises(DataError, match="declares shape"):
        read_idx(overflow)
