"""The SSTable reader on tables built by hand here, following TensorFlow's table_builder.cc:
shared key prefixes, restart points, several data blocks, checksummed trailers, the footer."""

from __future__ import annotations

import struct

import pytest

from bertserve.pretrained.crc32c import crc32c, mask
from bertserve.errors import CheckpointError
from bertserve.pretrained.sstable import MAGIC, read_table


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def build_block(entries: list[tuple[bytes, bytes]], restart_interval: int = 2) -> bytes:
    out, restarts, previous = bytearray(), [], b""
    for number, (key, value) in enumerate(entries):
        shared = 0
        if number % restart_interval == 0:
            restarts.append(len(out))
        else:
            while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
                shared += 1
        out += varint(shared) + varint(len(key) - shared) + varint(len(value)) + key[shared:] + value
        previous = key
    restarts = restarts or [0]
    return bytes(out) + b"".join(struct.pack("<I", offset) for offset in restarts) + struct.pack("<I", len(restarts))


def build_table(entries: list[tuple[bytes, bytes]], per_block: int = 3, compression: int = 0) -> bytes:
    out = bytearray()

    def write_block(block: bytes) -> bytes:
        handle = varint(len(out)) + varint(len(block))
        trailer = bytes([compression])
        out.extend(block + trailer + struct.pack("<I", mask(crc32c(block + trailer))))
        return handle

    index = []
    for start in range(0, len(entries), per_block):
        chunk = entries[start : start + per_block]
        index.append((chunk[-1][0], write_block(build_block(chunk))))
    metaindex_handle = write_block(build_block([]))
    index_handle = write_block(build_block(index, restart_interval=1))
    footer = (metaindex_handle + index_handle).ljust(40, b"\0") + struct.pack("<Q", MAGIC)
    return bytes(out) + footer


ENTRIES = [(b"", b"header")] + [
    (f"bert/encoder/layer_{layer}/{part}".encode(), bytes([layer]) * (layer + 1))
    for layer in range(4)
    for part in ("attention/kernel", "attention/bias", "output/kernel")
]


def test_round_trip_with_shared_prefixes_and_several_blocks():
    table = build_table(ENTRIES, per_block=5)
    assert read_table(table, "t.index") == ENTRIES


def test_single_block_and_empty_values():
    entries = [(b"a", b""), (b"ab", b"x"), (b"abc", b"")]
    assert read_table(build_table(entries, per_block=10), "t.index") == entries


def test_snappy_block_is_refused_with_advice():
    with pytest.raises(CheckpointError, match="snappy-compressed.*re-save"):
        read_table(build_table(ENTRIES, compression=1), "t.index")


def test_unknown_compression_type():
    with pytest.raises(CheckpointError, match="unknown compression type 7"):
        read_table(build_table(ENTRIES, compression=7), "t.index")


def test_flipped_byte_fails_the_block_checksum():
    table = bytearray(build_table(ENTRIES))
    table[3] ^= 0x01
    with pytest.raises(CheckpointError, match=r"t\.index: checksum mismatch in data block 0"):
        read_table(bytes(table), "t.index")


def test_too_short_and_bad_magic():
    with pytest.raises(CheckpointError, match="10 bytes, shorter than the 48-byte SSTable footer"):
        read_table(b"x" * 10, "t.index")
    table = build_table(ENTRIES)
    with pytest.raises(CheckpointError, match="bad magic number"):
        read_table(table[:-1] + b"\0", "t.index")


def test_corrupt_entry_lengths_are_caught_even_without_checksums():
    block = varint(5) + varint(1) + varint(0) + b"k" + struct.pack("<I", 0) + struct.pack("<I", 1)
    out = bytearray()
    out += block + b"\0" + struct.pack("<I", 0)
    index = build_block([(b"k", varint(0) + varint(len(block)))], restart_interval=1)
    index_offset = len(out)
    out += index + b"\0" + struct.pack("<I", 0)
    empty = len(out)
    footer = (varint(empty) + varint(0) + varint(index_offset) + varint(len(index))).ljust(40, b"\0")
    table = bytes(out) + footer + struct.pack("<Q", MAGIC)
    with pytest.raises(CheckpointError, match="corrupt entry in data block 0"):
        read_table(table, "t.index", verify_checksums=False)
