"""Read Google's TensorFlow BERT checkpoints without TensorFlow, as Hugging Face weights.

A TensorFlow checkpoint ("tensor bundle", TF1 `Saver` or TF2 `tf.train.Checkpoint`) is

* `<prefix>.index` - an SSTable (see `bertserve.pretrained.sstable`) mapping each variable name to a
  serialized `BundleEntryProto` {1: dtype, 2: shape, 3: shard_id, 4: offset, 5: size,
  6: crc32c (fixed32, masked), 7: slices}; its empty-key entry is the `BundleHeaderProto`
  {1: num_shards, 2: endianness (0 little, 1 big), 3: version};
* `<prefix>.data-SSSSS-of-NNNNN` - the raw tensor bytes, row-major, at `offset` in shard `shard_id`.

The protobuf wire format is decoded by hand here, so neither `protobuf` nor `tensorflow` is
needed. Typical use (what `bertserve.pretrained.sources` does for a `--pretrained` checkpoint folder):

    from bertserve.pretrained.tf_checkpoint import load_tf_bert_state_dict
    state = load_tf_bert_state_dict(Path("chinese_L-12_H-768_A-12"))  # {"bert.embeddings...": ndarray}

`load_checkpoint_state_dict(prefix)` does the same for one named checkpoint; a run_classifier.py
fine-tuned one (`model.ckpt-N`, with the head `output_weights`/`output_bias`) is picked and checked
by `bertserve.pretrained.tf_classifier` for `bertserve import-tf`.
"""

from __future__ import annotations

import logging
import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from bertserve.pretrained.crc32c import crc32c, unmask
from bertserve.errors import CheckpointError
from bertserve.pretrained.sstable import read_table, read_varint

log = logging.getLogger(__name__)

# TensorFlow `DataType` enum values -> numpy dtypes (little-endian); bfloat16 is widened below.
_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),  # DT_FLOAT
    2: np.dtype("<f8"),  # DT_DOUBLE
    3: np.dtype("<i4"),  # DT_INT32
    4: np.dtype("u1"),  # DT_UINT8
    6: np.dtype("i1"),  # DT_INT8
    9: np.dtype("<i8"),  # DT_INT64
    10: np.dtype("?"),  # DT_BOOL
    14: np.dtype("<u2"),  # DT_BFLOAT16: the high half of a float32
    19: np.dtype("<f2"),  # DT_HALF
}
_DT_BFLOAT16 = 14
_DT_STRING = 7


# ---- protobuf wire format -------------------------------------------------------------------

def parse_protobuf(data: bytes, name: str, what: str) -> dict[int, list[int | bytes]]:
    """Field number -> values of one serialized message: ints for varint/fixed fields, bytes
    for length-delimited ones (nested messages, strings, packed arrays)."""
    fields: dict[int, list[int | bytes]] = {}
    position = 0
    while position < len(data):
        tag, position = read_varint(data, position, name, what)
        number, wire_type = tag >> 3, tag & 7
        value: int | bytes
        if wire_type == 0:
            value, position = read_varint(data, position, name, what)
        elif wire_type == 1:
            if position + 8 > len(data):
                raise CheckpointError(f"{name}: truncated fixed64 field in {what}")
            (value,) = struct.unpack_from("<Q", data, position)
            position += 8
        elif wire_type == 2:
            length, position = read_varint(data, position, name, what)
            if position + length > len(data):
                raise CheckpointError(f"{name}: field {number} of {what} runs past its end; the file is damaged")
            value = data[position : position + length]
            position += length
        elif wire_type == 5:
            if position + 4 > len(data):
                raise CheckpointError(f"{name}: truncated fixed32 field in {what}")
            (value,) = struct.unpack_from("<I", data, position)
            position += 4
        else:
            raise CheckpointError(f"{name}: unsupported protobuf wire type {wire_type} in {what}; the file is damaged")
        fields.setdefault(number, []).append(value)
    return fields


def _int(fields: dict[int, list[int | bytes]], number: int, signed: bool = True) -> int:
    """The last value of a scalar integer field (protobuf's "last one wins"), 0 when absent."""
    value = fields.get(number, [0])[-1]
    if isinstance(value, bytes):
        raise CheckpointError(f"field {number} should be an integer")
    if signed and value >= 1 << 63:  # negative int64/int32 are 10-byte two's-complement varints
        value -= 1 << 64
    return value


@dataclass(frozen=True)
class BundleEntry:
    """Where one tensor lives, decoded from its `BundleEntryProto`."""

    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int  # masked, as stored
    sliced: bool  # a partitioned variable: its data lives in other entries


def _parse_entry(value: bytes, name: str, key: str) -> BundleEntry:
    what = f"the entry of {key!r}"
    fields = parse_protobuf(value, name, what)
    shape: list[int] = []
    for shape_message in fields.get(2, []):
        if not isinstance(shape_message, bytes):
            raise CheckpointError(f"{name}: the shape in {what} is not a message; the file is damaged")
        for dim in parse_protobuf(shape_message, name, what).get(2, []):
            if not isinstance(dim, bytes):
                raise CheckpointError(f"{name}: a dimension in {what} is not a message; the file is damaged")
            size = _int(parse_protobuf(dim, name, what), 1)
            if size < 0:
                raise CheckpointError(f"{name}: {what} has unknown or negative dimension {size}")
            shape.append(size)
    try:
        return BundleEntry(
            dtype=_int(fields, 1),
            shape=tuple(shape),
            shard_id=_int(fields, 3),
            offset=_int(fields, 4),
            size=_int(fields, 5),
            crc32c=_int(fields, 6, signed=False),
            sliced=bool(fields.get(7)),
        )
    except CheckpointError as error:
        raise CheckpointError(f"{name}: malformed {what}: {error}") from None


# ---- the bundle ---------------------------------------------------------------------------

def _data_path(prefix: Path, shard: int, shards: int) -> Path:
    return prefix.with_name(f"{prefix.name}.data-{shard:05d}-of-{shards:05d}")


def _decode_strings(raw: bytes, count: int, name: str, key: str) -> np.ndarray:
    """A DT_STRING tensor: `count` varint lengths, a 4-byte checksum of the lengths, then the bytes.
    Only TF2's object-graph entry uses strings in a BERT checkpoint; we decode, never check it."""
    lengths = []
    position = 0
    for _ in range(count):
        length, position = read_varint(raw, position, name, f"string tensor {key!r}")
        lengths.append(length)
    position += 4
    values = np.empty(count, dtype=object)
    for index, length in enumerate(lengths):
        if position + length > len(raw):
            raise CheckpointError(f"{name}: string tensor {key!r} is shorter than its lengths say")
        values[index] = raw[position : position + length]
        position += length
    return values


def read_tensor_bundle(
    prefix: Path,
    include: Callable[[str], bool] | None = None,
    verify_checksums: bool = True,
) -> dict[str, np.ndarray]:
    """Every tensor of the checkpoint `<prefix>.index` + `<prefix>.data-*`, by variable name.

    `include(name)` picks which tensors to read (the rest are never loaded: a fine-tuned BERT
    checkpoint is two-thirds Adam slots). bfloat16 becomes float32; other dtypes keep theirs.
    Tensors of types a BERT checkpoint never holds (resources, variants) are skipped with a log line.
    """
    prefix = Path(prefix)
    index_path = prefix.with_name(prefix.name + ".index")
    if not index_path.is_file():
        raise CheckpointError(
            f"{index_path}: not found; a TensorFlow checkpoint is <prefix>.index plus <prefix>.data-* files"
        )
    name = str(index_path)
    entries = read_table(index_path.read_bytes(), name, verify_checksums)
    if not entries or entries[0][0] != b"":
        raise CheckpointError(f"{name}: no bundle header entry; this is an SSTable but not a TensorFlow checkpoint")
    header = parse_protobuf(entries[0][1], name, "the bundle header")
    shards = _int(header, 1)
    if shards < 1:
        raise CheckpointError(f"{name}: bundle header says {shards} data shards; the file is damaged")
    byte_order = ">" if _int(header, 2) == 1 else "<"

    tensors: dict[str, np.ndarray] = {}
    handles: dict[int, BinaryIO] = {}
    try:
        for raw_key, value in entries[1:]:
            key = raw_key.decode("utf-8", errors="replace")
            if include is not None and not include(key):
                continue
            entry = _parse_entry(value, name, key)
            tensor = _read_tensor(prefix, shards, byte_order, entry, key, handles, verify_checksums)
            if tensor is not None:
                tensors[key] = tensor
    finally:
        for handle in handles.values():
            handle.close()
    return tensors


def _read_tensor(
    prefix: Path,
    shards: int,
    byte_order: str,
    entry: BundleEntry,
    key: str,
    handles: dict[int, BinaryIO],
    verify: bool,
) -> np.ndarray | None:
    if entry.sliced:
        raise CheckpointError(
            f"{prefix}: variable {key!r} is partitioned into slices, which bertserve does not read; "
            "re-save it unpartitioned with TensorFlow"
        )
    if not 0 <= entry.shard_id < shards:
        raise CheckpointError(f"{prefix}: variable {key!r} is in shard {entry.shard_id}, but there are {shards}")
    if entry.dtype not in _DTYPES and entry.dtype != _DT_STRING:
        log.info("skipping %s: TensorFlow dtype %d is not a plain tensor", key, entry.dtype)
        return None
    path = _data_path(prefix, entry.shard_id, shards)
    if entry.shard_id not in handles:
        if not path.is_file():
            raise CheckpointError(f"{path}: missing; the checkpoint's .index refers to it (copy every .data-* file)")
        handles[entry.shard_id] = path.open("rb")
    handle = handles[entry.shard_id]
    count = math.prod(entry.shape)
    if entry.dtype != _DT_STRING and entry.size != count * _DTYPES[entry.dtype].itemsize:
        raise CheckpointError(
            f"{path}: variable {key!r} has {entry.size} bytes but shape {list(entry.shape)} needs "
            f"{count * _DTYPES[entry.dtype].itemsize}; the .index is damaged"
        )
    raw = bytearray(entry.size)  # writable, so torch.from_numpy() can share it without a copy
    handle.seek(entry.offset)
    if handle.readinto(raw) != entry.size:
        raise CheckpointError(
            f"{path}: truncated; variable {key!r} needs bytes {entry.offset}..{entry.offset + entry.size} "
            "(copy the .data file again)"
        )
    if entry.dtype == _DT_STRING:
        return _decode_strings(bytes(raw), count, str(path), key).reshape(entry.shape)
    if verify and crc32c(raw) != unmask(entry.crc32c):
        raise CheckpointError(f"{path}: checksum mismatch for variable {key!r}; the file is damaged")
    array = np.frombuffer(raw, dtype=_DTYPES[entry.dtype].newbyteorder(byte_order)).reshape(entry.shape)
    if entry.dtype == _DT_BFLOAT16:
        return (array.astype(np.uint32) << np.uint32(16)).view(np.float32)
    return array if byte_order == "<" else array.astype(array.dtype.newbyteorder("<"))


# ---- Google BERT names -> Hugging Face names ------------------------------------------------

_OPTIMIZER = re.compile(r"(^|/)(adam_[mv]|Adam(_\d+)?|Momentum|global_step|beta[12]_power)($|/)")
_LAYER = re.compile(r"/layer_(\d+)/")
_PARAMETER = {"kernel": "weight", "gamma": "weight", "beta": "bias", "bias": "bias"}


def _hf_name(tf_name: str) -> tuple[str, bool] | None:
    """The Hugging Face key for a Google BERT variable and whether to transpose it, else None."""
    if tf_name == "output_weights":  # run_classifier.py: logits = pooled @ output_weights^T
        return "classifier.weight", False
    if tf_name == "output_bias":
        return "classifier.bias", False
    if not tf_name.startswith("bert/"):
        return None
    if tf_name.startswith("bert/embeddings/") and tf_name.endswith("_embeddings"):
        return tf_name.replace("/", ".") + ".weight", False
    path, _, parameter = _LAYER.sub(r"/layer.\1/", tf_name).rpartition("/")
    if parameter not in _PARAMETER:
        return None
    return f"{path.replace('/', '.')}.{_PARAMETER[parameter]}", parameter == "kernel"


def convert_tf_bert_variables(variables: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(Hugging Face state dict, {skipped TF name: why}). Dense kernels are stored [in, out] by
    TensorFlow and [out, in] by torch, so they are transposed; floats become float32."""
    state: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    for tf_name, value in variables.items():
        if _OPTIMIZER.search(tf_name):
            skipped[tf_name] = "optimizer state"
            continue
        if tf_name.startswith("cls/"):
            skipped[tf_name] = "pretraining head (masked LM / next sentence)"
            continue
        mapped = _hf_name(tf_name)
        if mapped is None:
            skipped[tf_name] = "not a BERT encoder or run_classifier.py head variable"
            continue
        key, transpose = mapped
        array = np.asarray(value)
        if array.dtype.kind == "f":
            array = array.astype(np.float32, copy=False)
        state[key] = np.ascontiguousarray(array.T) if transpose else array
    return state, skipped


def tf_bert_to_hf_state_dict(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Google BERT variables -> `BertForSequenceClassification` state dict; skipped ones are logged."""
    state, skipped = convert_tf_bert_variables(variables)
    if skipped:
        reasons: dict[str, int] = {}
        for reason in skipped.values():
            reasons[reason] = reasons.get(reason, 0) + 1
        log.info("skipped %d checkpoint variables: %s", len(skipped), reasons)
    return state


def hf_bert_config(bert_config: dict) -> dict:
    """`bert_config.json` as Hugging Face `BertConfig` arguments. Google's modeling.py computes
    "gelu" with the tanh approximation, which Hugging Face names "gelu_new" (its "gelu" is the
    exact erf form: logits would differ by ~1e-3 on the test fixture)."""
    config = dict(bert_config)
    if config.get("hidden_act") == "gelu":
        config["hidden_act"] = "gelu_new"
    return config


def _wanted(tf_name: str) -> bool:
    return not _OPTIMIZER.search(tf_name) and not tf_name.startswith("cls/")


def find_checkpoint_prefix(folder: Path) -> Path:
    """`bert_model.ckpt`, else the `checkpoint` file's model_checkpoint_path, else the only *.index."""
    folder = Path(folder)
    if (folder / "bert_model.ckpt.index").is_file():
        return folder / "bert_model.ckpt"
    state_file = folder / "checkpoint"
    if state_file.is_file():
        match = re.search(r'^model_checkpoint_path:\s*"(.*)"', state_file.read_text(encoding="utf-8"), re.M)
        if match:
            recorded = Path(match.group(1))
            # The path may be absolute on the machine that trained it; the files sit beside `checkpoint`.
            for candidate in (folder / recorded, folder / recorded.name):
                if candidate.with_name(candidate.name + ".index").is_file():
                    return candidate
    indexes = sorted(folder.glob("*.index"))
    if len(indexes) == 1:
        return indexes[0].with_suffix("")
    if not indexes:
        raise CheckpointError(
            f"{folder}: no TensorFlow checkpoint (expected bert_model.ckpt.index and bert_model.ckpt.data-00000-of-00001)"
        )
    raise CheckpointError(
        f"{folder}: several checkpoints ({', '.join(path.name for path in indexes)}); keep one, "
        "or name it in a `checkpoint` file (model_checkpoint_path: \"NAME\")"
    )


def load_tf_bert_state_dict(folder: Path) -> dict[str, np.ndarray]:
    """The Hugging Face state dict of the Google BERT checkpoint in `folder`."""
    return load_checkpoint_state_dict(find_checkpoint_prefix(folder))


def load_checkpoint_state_dict(prefix: Path) -> dict[str, np.ndarray]:
    """The Hugging Face state dict of the checkpoint `<prefix>.index` + `.data-*`: the encoder and, if
    it was fine-tuned by run_classifier.py, `classifier.weight`/`.bias`. Optimizer slots, `global_step`
    and the pretraining heads are never read."""
    prefix = Path(prefix)
    variables = read_tensor_bundle(prefix, include=_wanted)
    state = tf_bert_to_hf_state_dict(variables)
    if not any(key.startswith("bert.") for key in state):
        raise CheckpointError(
            f"{prefix}: no Google BERT variables (bert/...) found (has e.g. {sorted(variables)[:3]}); "
            "only checkpoints written by google-research/bert's modeling.py are supported"
        )
    return state
