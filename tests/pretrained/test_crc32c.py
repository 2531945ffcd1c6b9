"""CRC-32C against published test vectors (RFC 3720, appendix B.4) and the lanes path against
the byte-at-a-time path on lengths that leave a ragged tail."""

from __future__ import annotations

import numpy as np
import pytest

from bertserve.pretrained.crc32c import _update_scalar, crc32c, mask, unmask


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"", 0x00000000),
        (b"123456789", 0xE3069283),
        (bytes(32), 0x8A9136AA),
        (b"\xff" * 32, 0x62A8AB43),
        (bytes(range(32)), 0x46DD794E),
        (bytes(range(31, -1, -1)), 0x113FDB5C),
    ],
)
def test_known_vectors(data, expected):
    assert crc32c(data) == expected


@pytest.mark.parametrize("length", [65_536, 65_537, 200_003, 1 << 20])
def test_lanes_path_matches_byte_loop(length):
    data = np.random.default_rng(length).integers(0, 256, length, dtype=np.uint8).tobytes()
    assert crc32c(data) == _update_scalar(0xFFFFFFFF, data) ^ 0xFFFFFFFF


def test_accepts_numpy_arrays_and_bytearrays():
    array = np.arange(100_000, dtype=np.float32)
    assert crc32c(array) == crc32c(array.tobytes()) == crc32c(bytearray(array.tobytes()))


def test_mask_is_tensorflows_and_inverts():
    assert mask(0) == 0xA282EAD8
    for value in (0, 1, 0xE3069283, 0xFFFFFFFF):
        assert unmask(mask(value)) == value
