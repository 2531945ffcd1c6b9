"""TensorProto <-> values with TensorFlow's rules (serving/grpc/tensors.py): pure, golden."""

from __future__ import annotations

import numpy as np
import pytest
from grpc_harness import core

from bertserve.errors import RequestError
from bertserve.serving.grpc import tensors


def proto(dtype: str, shape: list[int], **values):
    message = core.TensorProto(dtype=getattr(core, dtype), **values)
    for size in shape:
        message.tensor_shape.dim.add(size=size)
    return message


def test_strings_decode_as_utf8_texts():
    assert tensors.decode(tensors.string_tensor(["很好", ""]), "string", 10, "text") == ([2], ["很好", ""])


@pytest.mark.parametrize("dtype, field, little_endian", [("DT_INT32", "int_val", "<i4"), ("DT_INT64", "int64_val", "<i8")])
def test_ids_come_from_typed_values_or_tensor_content_alike(dtype, field, little_endian):
    ids = [[101, 2523, 102, 0], [101, 7, 102, 0]]
    typed = proto(dtype, [2, 4], **{field: np.ravel(ids).tolist()})
    raw = proto(dtype, [2, 4], tensor_content=np.asarray(ids, dtype=little_endian).tobytes())
    assert tensors.decode(typed, "int64", 100, "input_ids") == tensors.decode(raw, "int64", 100, "input_ids") == (
        [2, 4], np.ravel(ids).tolist())


def test_short_value_lists_repeat_the_last_value_as_tensorflow_does():
    assert tensors.decode(proto("DT_INT64", [2, 3], int64_val=[101, 0]), "int64", 100)[1] == [101, 0, 0, 0, 0, 0]
    assert tensors.decode(proto("DT_INT32", [1, 2]), "int64", 100)[1] == [0, 0]
    assert tensors.decode(proto("DT_STRING", [2], string_val=[b"a"]), "string", 100)[1] == ["a", "a"]


def test_the_element_bound_is_checked_before_anything_is_allocated():
    with pytest.raises(RequestError, match=r"has shape \[4611686018427387904, 4\]"):
        tensors.decode(proto("DT_INT64", [2**62, 4], int64_val=[1]), "int64", 1000, "input_ids")


def test_float_tensor_keeps_shape_and_float32_values():
    values = np.array([[0.25, 0.75], [0.1, 0.9]], dtype=np.float32)
    message = tensors.float_tensor(values)
    assert message.dtype == core.DT_FLOAT and [dim.size for dim in message.tensor_shape.dim] == [2, 2]
    assert np.array_equal(np.asarray(message.float_val, dtype=np.float32).reshape(2, 2), values)


def test_int_tensor_round_trips():
    message = tensors.int_tensor([[101, 5, 102]], core.DT_INT32)
    assert tensors.decode(message, "int64", 10) == ([1, 3], [101, 5, 102])
