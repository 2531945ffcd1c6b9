"""Open Inference Protocol tensors, the same for REST and gRPC: decode inputs, check them, encode outputs.

A tensor on the wire is (name, datatype, shape, data). Data comes either typed (a JSON list, or a
gRPC `InferTensorContents` field) or raw (the binary tensor data extension over REST, gRPC's
`raw_input_contents`): numbers as little-endian row-major bytes, BYTES elements each as a 4-byte
little-endian length followed by the bytes.

    tensor = tensor_from_list("text", "BYTES", [2], ["很好", "太差了"])
    tensor = tensor_from_raw("input_ids", "INT64", [1, 4], raw_bytes)
    raw_of(tensor)        # back to raw bytes (what tritonclient.grpc reads FP32 answers from)

Every malformed tensor (unknown datatype, negative or huge shape, element count or byte length
that disagrees with the shape, a BYTES element past the end) is a `RequestError` (400 /
INVALID_ARGUMENT) that names the tensor and says what was expected.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from bertserve.errors import RequestError

# The protocol's datatypes and their little-endian numpy types; BYTES is variable-length.
NUMPY_OF_DATATYPE: dict[str, np.dtype] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
}
BYTES = "BYTES"
MAX_RANK = 8  # our inputs are rank 1 or 2; a deeper shape is a mistake, refused before any allocation
_LENGTH = struct.Struct("<I")


@dataclass
class Tensor:
    """One decoded tensor: `data` has `shape`; BYTES data is an object array of `bytes`."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray

    @property
    def count(self) -> int:
        return int(self.data.size)


def check_header(name: Any, datatype: Any, shape: Any, max_elements: int) -> tuple[str, str, tuple[int, ...]]:
    """The name, datatype and shape of an input, checked before its data is touched."""
    if not isinstance(name, str) or not name or not name.isprintable() or len(name) > 256:
        raise RequestError(f"every input needs a \"name\" (a short printable string), got {_short(name)}")
    check_text(name, "an input name")
    if datatype != BYTES and datatype not in NUMPY_OF_DATATYPE:
        raise RequestError(
            f"input {name}: unknown datatype {datatype!r}; use one of {', '.join([BYTES, *NUMPY_OF_DATATYPE])}"
        )
    if (
        not isinstance(shape, (list, tuple))
        or len(shape) > MAX_RANK
        or not all(isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0 for dim in shape)
    ):
        raise RequestError(
            f"input {name}: \"shape\" must be a list of at most {MAX_RANK} non-negative integers, got {_short(shape)}"
        )
    count = element_count(shape)
    if count > max_elements:
        raise RequestError(f"input {name}: shape {list(shape)} has {count} elements, more than the limit of {max_elements}")
    return name, datatype, tuple(int(dim) for dim in shape)


def check_text(text: str, what: str) -> None:
    """Refuse a string that cannot be written back as UTF-8 (a lone surrogate from JSON's \\ud800)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestError(f"{what} is not valid UTF-8 (a lone surrogate?)") from None


def element_count(shape: Sequence[int]) -> int:
    count = 1
    for dim in shape:
        count *= int(dim)
    return count


def tensor_from_list(name: str, datatype: str, shape: tuple[int, ...], data: Any) -> Tensor:
    """A tensor from typed data: a flat or nested list (JSON), flattened row-major."""
    values = _flatten(data, name)
    count = element_count(shape)
    if len(values) != count:
        raise RequestError(f"input {name}: shape {list(shape)} needs {count} elements, got {len(values)}")
    if datatype == BYTES:
        items = []
        for value in values:
            if isinstance(value, str):
                # A lone surrogate ("\\ud800" in JSON) is kept, and refused where the text is used.
                items.append(value.encode("utf-8", "surrogatepass"))
            elif isinstance(value, (bytes, bytearray)):
                items.append(bytes(value))
            else:
                raise RequestError(f"input {name}: BYTES elements must be strings, got {_short(value)}")
        array = np.empty(count, dtype=object)
        array[:] = items
        return Tensor(name, datatype, shape, array.reshape(shape))
    dtype = NUMPY_OF_DATATYPE[datatype]
    for value in values:
        if isinstance(value, bool) and dtype.kind != "b" or not isinstance(value, (int, float, bool)):
            raise RequestError(f"input {name}: {datatype} elements must be numbers, got {_short(value)}")
        if dtype.kind in "iu" and not isinstance(value, int):
            raise RequestError(f"input {name}: {datatype} elements must be integers, got {_short(value)}")
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if values and (min(values) < info.min or max(values) > info.max):
            raise RequestError(f"input {name}: a value lies outside the range of {datatype}")
    return Tensor(name, datatype, shape, np.asarray(values, dtype=dtype).reshape(shape))


def tensor_from_raw(name: str, datatype: str, shape: tuple[int, ...], raw: bytes) -> Tensor:
    """A tensor from raw bytes (binary tensor data over REST, raw_input_contents over gRPC)."""
    count = element_count(shape)
    if datatype == BYTES:
        array = np.empty(count, dtype=object)
        array[:] = split_bytes(raw, count, name)
        return Tensor(name, datatype, shape, array.reshape(shape))
    dtype = NUMPY_OF_DATATYPE[datatype]
    if len(raw) != count * dtype.itemsize:
        raise RequestError(
            f"input {name}: shape {list(shape)} of {datatype} needs {count * dtype.itemsize} bytes, got {len(raw)}"
        )
    return Tensor(name, datatype, shape, np.frombuffer(raw, dtype=dtype).reshape(shape))


def split_bytes(raw: bytes, count: int, name: str) -> list[bytes]:
    """`count` BYTES elements, each a 4-byte little-endian length and that many bytes, filling `raw`."""
    items, offset = [], 0
    for _ in range(count):
        if offset + 4 > len(raw):
            raise RequestError(f"input {name}: raw BYTES data ends inside the length of element {len(items)}")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise RequestError(
                f"input {name}: BYTES element {len(items)} claims {length} bytes, only {len(raw) - offset} remain"
            )
        items.append(bytes(raw[offset : offset + length]))
        offset += length
    if offset != len(raw):
        raise RequestError(f"input {name}: {len(raw) - offset} bytes left after {count} BYTES elements; check the shape")
    return items


def join_bytes(items: Sequence[bytes]) -> bytes:
    """The raw form of BYTES elements (the inverse of `split_bytes`)."""
    return b"".join(_LENGTH.pack(len(item)) + item for item in items)


def raw_of(tensor: Tensor) -> bytes:
    """The raw little-endian row-major bytes of an output tensor."""
    if tensor.datatype == BYTES:
        return join_bytes([bytes(item) for item in tensor.data.reshape(-1)])
    return np.ascontiguousarray(tensor.data, dtype=NUMPY_OF_DATATYPE[tensor.datatype]).tobytes()


def list_of(tensor: Tensor) -> list:
    """The flat row-major JSON form of an output tensor (BYTES as UTF-8 strings)."""
    flat = tensor.data.reshape(-1)
    if tensor.datatype == BYTES:
        return [bytes(item).decode("utf-8", "replace") for item in flat]
    return flat.tolist()


def _flatten(data: Any, name: str) -> list:
    """Nested lists flattened row-major (the protocol allows either form), iteratively (no recursion limit)."""
    if not isinstance(data, list):
        raise RequestError(f"input {name}: \"data\" must be a list, got {_short(data)}")
    if not any(isinstance(item, list) for item in data):
        return data
    flat, stack = [], [iter(data)]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, list):
            if len(stack) > MAX_RANK:
                raise RequestError(f"input {name}: \"data\" is nested deeper than {MAX_RANK} levels")
            stack.append(iter(item))
        else:
            flat.append(item)
    return flat


_END = object()


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
