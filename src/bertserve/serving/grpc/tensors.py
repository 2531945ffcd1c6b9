"""TensorProto <-> Python values, with TensorFlow's rules (`Tensor::FromProto`), as pure functions.

    shape, texts = decode(proto, "string", max_elements=256)      # DT_STRING -> [b"..."] as str
    shape, ids = decode(proto, "int64", max_elements=32768)       # DT_INT32/DT_INT64 -> np.int64
    proto = float_tensor(probabilities)                           # DT_FLOAT [batch, labels], float_val

Values come from the dtype's typed list (`string_val`, `int_val`, `int64_val`) or, for numbers, from
`tensor_content` (raw little-endian bytes, what `tf.make_tensor_proto` writes for arrays). As in
TensorFlow, fewer typed values than the shape holds are padded with the last one (none: zeros);
unlike TensorFlow, more values than the shape holds are refused instead of silently dropped.
Every problem is a RequestError (INVALID_ARGUMENT) naming the input and the fix.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bertserve.errors import RequestError
from bertserve.serving.grpc.protos import load

core, _ = load("tensorflow_core")

# DT_INT32 arrives in int_val, DT_INT64 in int64_val; both may use tensor_content instead.
_INTEGER_TYPES = {core.DT_INT32: ("int_val", "<i4"), core.DT_INT64: ("int64_val", "<i8")}


def dtype_name(dtype: int) -> str:
    try:
        return core.DataType.Name(dtype)
    except ValueError:
        return f"DataType({dtype})"


def shape_of(name: str, proto: Any, max_elements: int) -> list[int]:
    """The tensor's dimensions, refused when unknown, negative or holding more than `max_elements`."""
    if proto.tensor_shape.unknown_rank:
        raise RequestError(f"input '{name}' has an unknown rank; give its tensor_shape", 400)
    shape = [int(dim.size) for dim in proto.tensor_shape.dim]
    if any(size < 0 for size in shape):
        raise RequestError(f"input '{name}' has a negative dimension in shape {shape}; give every size", 400)
    elements = math.prod(shape)
    if elements > max_elements:
        raise RequestError(
            f"input '{name}' has shape {shape} ({elements} values); the limit is {max_elements} values per input "
            "(send fewer instances per request)", 400
        )
    return shape


def _fill(name: str, values: list[Any] | np.ndarray, count: int, empty: Any) -> list[Any] | np.ndarray:
    """TensorFlow's FromProtoField: pad a short list with its last value (or zeros)."""
    given = len(values)
    if given == count:
        return values
    if given > count:
        raise RequestError(f"input '{name}' holds {given} values but its shape has room for {count}; fix tensor_shape", 400)
    last = values[-1] if given else empty
    if isinstance(values, np.ndarray):
        return np.concatenate([values, np.full(count - given, last, dtype=values.dtype)])
    return list(values) + [last] * (count - given)


def decode(proto: Any, kind: str, max_elements: int, name: str = "") -> tuple[list[int], list[Any]]:
    """(shape, flat values) of a TensorProto: `kind` "string" (str values) or "int64" (np.int64)."""
    shape = shape_of(name, proto, max_elements)
    count = math.prod(shape)
    if kind == "string":
        if proto.dtype != core.DT_STRING:
            raise RequestError(f"input '{name}' must be DT_STRING (the texts), got {dtype_name(proto.dtype)}", 400)
        if proto.tensor_content:
            raise RequestError(f"input '{name}': send DT_STRING values in string_val, not tensor_content", 400)
        try:
            texts = [value.decode("utf-8") for value in proto.string_val]
        except UnicodeDecodeError:
            raise RequestError(f"input '{name}' holds a string that is not valid UTF-8; encode texts as UTF-8", 400) from None
        return shape, list(_fill(name, texts, count, ""))
    if proto.dtype not in _INTEGER_TYPES:
        raise RequestError(
            f"input '{name}' must be DT_INT32 or DT_INT64 (token ids), got {dtype_name(proto.dtype)}", 400
        )
    field, little_endian = _INTEGER_TYPES[proto.dtype]
    if proto.tensor_content:
        content = proto.tensor_content
        itemsize = np.dtype(little_endian).itemsize
        if len(content) != count * itemsize:
            raise RequestError(
                f"input '{name}': tensor_content has {len(content)} bytes, shape {shape} of "
                f"{dtype_name(proto.dtype)} needs {count * itemsize}", 400
            )
        values = np.frombuffer(content, dtype=little_endian).astype(np.int64)
    else:
        values = _fill(name, np.asarray(getattr(proto, field), dtype=np.int64), count, 0)
    return shape, values.tolist()


def float_tensor(values: np.ndarray) -> Any:
    """A DT_FLOAT TensorProto of `values` (its shape kept), values in float_val as TF Serving sends them."""
    array = np.asarray(values, dtype=np.float32)
    proto = core.TensorProto(dtype=core.DT_FLOAT)
    proto.tensor_shape.dim.extend(core.TensorShapeProto.Dim(size=size) for size in array.shape)
    proto.float_val.extend(array.ravel().tolist())
    return proto


def string_tensor(texts: list[str]) -> Any:
    """A DT_STRING TensorProto [len(texts)] (clients build requests with it)."""
    proto = core.TensorProto(dtype=core.DT_STRING)
    proto.tensor_shape.dim.add(size=len(texts))
    proto.string_val.extend(text.encode("utf-8") for text in texts)
    return proto


def int_tensor(rows: Any, dtype: int | None = None) -> Any:
    """A DT_INT64 (or `dtype`) TensorProto of a 2-D list of ids, values in tensor_content."""
    dtype = core.DT_INT64 if dtype is None else dtype
    array = np.asarray(rows, dtype=_INTEGER_TYPES[dtype][1])
    proto = core.TensorProto(dtype=dtype, tensor_content=array.tobytes())
    proto.tensor_shape.dim.extend(core.TensorShapeProto.Dim(size=size) for size in array.shape)
    return proto
