"""A reader for the LevelDB-style SSTable that is a TensorFlow checkpoint's `.index` file.

Layout (TensorFlow's `core/lib/io/table_builder.cc`, `block_builder.cc`, `format.cc`):

    [data block 1] ... [data block N] [metaindex block] [index block] [footer: 48 bytes]

* footer: varint BlockHandle (offset, size) of the metaindex block, then of the index block,
  zero padding to 40 bytes, then the little-endian 64-bit magic 0xdb4775248b80fb57;
* every block is followed by a 5-byte trailer: compression type (0 none, 1 snappy) and the
  masked CRC-32C of the block bytes plus that type byte;
* a block is a run of entries `varint shared | varint unshared | varint value_length |
  key[shared:] | value` (a key stores only what differs from the previous key) followed by
  the restart array (uint32 offsets of entries stored with shared == 0) and its uint32 count;
* the index block maps a separator key per data block to that block's BlockHandle.

TensorFlow writes checkpoint index files uncompressed; a snappy block is refused with a clear
error rather than pulling in a decompressor for a case that does not occur in practice.

    entries = read_table(Path("bert_model.ckpt.index").read_bytes(), "bert_model.ckpt.index")
"""

from __future__ import annotations

import struct

from bertserve.pretrained.crc32c import crc32c, unmask
from bertserve.errors import CheckpointError

MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48  # two BlockHandles padded to 2 * 20 bytes, plus the 8-byte magic
TRAILER_SIZE = 5  # 1 byte compression type + 4 bytes masked CRC-32C
NO_COMPRESSION = 0
SNAPPY_COMPRESSION = 1


def read_varint(data: bytes, position: int, name: str, what: str) -> tuple[int, int]:
    """Decode one base-128 varint (at most 10 bytes) at `position`; returns (value, next position)."""
    result = 0
    for index in range(10):
        if position + index >= len(data):
            raise CheckpointError(f"{name}: truncated varint in {what} at byte {position}; the file is damaged")
        byte = data[position + index]
        result |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return result, position + index + 1
    raise CheckpointError(f"{name}: varint longer than 10 bytes in {what} at byte {position}; the file is damaged")


def _block_handle(data: bytes, position: int, name: str, what: str) -> tuple[int, int, int]:
    offset, position = read_varint(data, position, name, what)
    size, position = read_varint(data, position, name, what)
    return offset, size, position


def _read_block(table: bytes, offset: int, size: int, name: str, what: str, verify_checksums: bool) -> bytes:
    end = offset + size
    if end + TRAILER_SIZE > len(table) - FOOTER_SIZE:
        raise CheckpointError(
            f"{name}: {what} at bytes {offset}..{end} runs past the end of the file ({len(table)} bytes); "
            "the file is truncated or damaged"
        )
    block = table[offset:end]
    compression = table[end]
    if verify_checksums:
        (stored,) = struct.unpack_from("<I", table, end + 1)
        if crc32c(table[offset : end + 1]) != unmask(stored):
            raise CheckpointError(f"{name}: checksum mismatch in {what} at byte {offset}; the file is damaged")
    if compression == SNAPPY_COMPRESSION:
        raise CheckpointError(
            f"{name}: {what} is snappy-compressed, which TensorFlow never writes for checkpoints and "
            "bertserve does not decode; re-save the checkpoint with TensorFlow's default options"
        )
    if compression != NO_COMPRESSION:
        raise CheckpointError(f"{name}: {what} has unknown compression type {compression}; the file is damaged")
    return block


def parse_block(block: bytes, name: str, what: str) -> list[tuple[bytes, bytes]]:
    """The (key, value) entries of one uncompressed block, in stored order."""
    if len(block) < 4:
        raise CheckpointError(f"{name}: {what} is {len(block)} bytes, too short to hold its restart count")
    (restart_count,) = struct.unpack_from("<I", block, len(block) - 4)
    entries_end = len(block) - 4 - 4 * restart_count
    if entries_end < 0:
        raise CheckpointError(f"{name}: {what} claims {restart_count} restart points, more than fit in it")
    entries: list[tuple[bytes, bytes]] = []
    key = b""
    position = 0
    while position < entries_end:
        shared, position = read_varint(block, position, name, what)
        unshared, position = read_varint(block, position, name, what)
        value_length, position = read_varint(block, position, name, what)
        if shared > len(key) or position + unshared + value_length > entries_end:
            raise CheckpointError(f"{name}: corrupt entry in {what} at byte {position}; the file is damaged")
        key = key[:shared] + block[position : position + unshared]
        position += unshared
        entries.append((key, block[position : position + value_length]))
        position += value_length
    return entries


def read_table(table: bytes, name: str, verify_checksums: bool = True) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of an SSTable held in `table`, in key order. `name` is used in errors."""
    if len(table) < FOOTER_SIZE:
        raise CheckpointError(
            f"{name}: {len(table)} bytes, shorter than the {FOOTER_SIZE}-byte SSTable footer; "
            "the file is truncated or not a TensorFlow checkpoint index"
        )
    footer = table[-FOOTER_SIZE:]
    (magic,) = struct.unpack_from("<Q", footer, FOOTER_SIZE - 8)
    if magic != MAGIC:
        raise CheckpointError(
            f"{name}: bad magic number {magic:#018x} (expected {MAGIC:#018x}); "
            "this is not a TensorFlow checkpoint .index file, or its end is cut off"
        )
    _, _, position = _block_handle(footer, 0, name, "footer")  # metaindex: TF stores no filters in it
    index_offset, index_size, _ = _block_handle(footer, position, name, "footer")
    index = _read_block(table, index_offset, index_size, name, "index block", verify_checksums)
    entries: list[tuple[bytes, bytes]] = []
    for block_number, (_, handle) in enumerate(parse_block(index, name, "index block")):
        offset, size, _ = _block_handle(handle, 0, name, "index block")
        what = f"data block {block_number}"
        entries.extend(parse_block(_read_block(table, offset, size, name, what, verify_checksums), name, what))
    return entries
